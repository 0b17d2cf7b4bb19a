"""Bulk commands: one operator action over many machines (sleep, wake, power target, reboot, outlet cycle), sent as
one single-device command per machine so each is acked by its own agent, and tracked together under a batch id.

A machine's outcome is read from its command record (controller.services.commands) each time the batch is asked
for: `pending` until its agent acks, then `acked` (applied) or `failed` with the agent's reason; a machine the
controller could not send to (unknown, on several sites, no broker) is `failed` at once with why. Batches are kept
in memory, the newest `keep` of them, like the command records they point to.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from controller.services.commands import CommandService, NotConnected, UnknownDevice
from kuat import clock
from kuat.wire import v1

BULK_KINDS = frozenset({v1.CommandKind.SLEEP, v1.CommandKind.WAKE, v1.CommandKind.SET_POWER_TARGET,
                        v1.CommandKind.REBOOT, v1.CommandKind.OUTLET_CYCLE})  # fmt: skip


@dataclass
class BulkItem:
    device_id: str
    command_id: str | None = None
    error: str | None = None  # not sent, and why


@dataclass
class BulkBatch:
    id: str
    kind: v1.CommandKind
    power_w: float | None
    issued_by: str
    created_at: datetime
    items: list[BulkItem] = field(default_factory=list)


@dataclass(frozen=True)
class ItemOutcome:
    device_id: str
    command_id: str | None
    outcome: str  # pending / acked / failed
    reason: str | None
    acked_at: datetime | None


class BulkCommands:
    def __init__(self, commands: CommandService, keep: int = 500) -> None:
        self.commands = commands
        self.keep = keep
        self._batches: OrderedDict[str, BulkBatch] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, kind: v1.CommandKind, device_ids: list[str], power_w: float | None, issued_by: str) -> BulkBatch:
        """Send `kind` to every machine; a machine that cannot be sent to is recorded as failed, not raised."""
        batch = BulkBatch(uuid.uuid4().hex, kind, power_w, issued_by, clock.now())
        sites: dict[str, list[str]] = {}  # device id -> its sites, read once (a lookup per machine scans them all)
        for d in self.commands.live.device_list():
            sites.setdefault(d.device_id, []).append(d.site)
        for device_id in device_ids:
            item = BulkItem(device_id)
            found = sites.get(device_id, [])
            site = found[0] if len(found) == 1 else None  # none or several: send() says why it cannot
            try:
                item.command_id = self.commands.send(kind, device_id, power_w, None, site, issued_by).command.id
            except (UnknownDevice, NotConnected, ConnectionError) as exc:
                item.error = f"not sent: {exc}"
            batch.items.append(item)
        with self._lock:
            self._batches[batch.id] = batch
            while len(self._batches) > self.keep:
                self._batches.popitem(last=False)
        return batch

    def get(self, batch_id: str) -> BulkBatch | None:
        with self._lock:
            return self._batches.get(batch_id)

    def outcomes(self, batch: BulkBatch) -> list[ItemOutcome]:
        return [self._outcome(i) for i in batch.items]

    def _outcome(self, item: BulkItem) -> ItemOutcome:
        if item.command_id is None:
            return ItemOutcome(item.device_id, None, "failed", item.error, None)
        record = self.commands.get(item.command_id)
        if record is None:
            return ItemOutcome(item.device_id, item.command_id, "failed", "command record expired before its ack",
                               None)  # fmt: skip
        if record.status == "sent":
            return ItemOutcome(item.device_id, item.command_id, "pending", None, None)
        if record.status == v1.AckStatus.APPLIED.value:
            return ItemOutcome(item.device_id, item.command_id, "acked", record.reason, record.acked_at)
        reason = f"{record.status}: {record.reason}" if record.reason else record.status
        return ItemOutcome(item.device_id, item.command_id, "failed", reason, record.acked_at)
