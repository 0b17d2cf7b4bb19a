"""Commands to devices: built here, published to the device's gateway over MQTT, tracked until the agent's ack.

The API route and (later) the quota loop call `send`; the MQTT ingest calls `on_ack`. Records are kept in memory
(the newest `keep` of them): the agent's own store keeps the idempotency; this is the operator's view.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.live import LiveState
from kuat.wire import v1

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]  # topic, payload (QoS 1)


class UnknownDevice(LookupError):
    """No live device has this id (or it is on several sites and none was named)."""


class NotConnected(RuntimeError):
    """The controller has no broker connection to publish on."""


@dataclass
class CommandRecord:
    command: v1.Command
    site: str
    gateway: str
    status: str = "sent"  # sent / applied / rejected / failed
    reason: str | None = None
    acked_at: datetime | None = None
    items: list[v1.ItemAck] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        c = self.command
        return {
            "id": c.id, "kind": c.kind.value, "device_id": c.device_id, "power_w": c.power_w, "outlet": c.outlet,
            "site": self.site, "gateway": self.gateway, "ts": c.ts, "issued_by": c.issued_by, "status": self.status,
            "reason": self.reason, "acked_at": self.acked_at,
            "items": [i.model_dump(mode="json") for i in self.items],
        }  # fmt: skip


class CommandService:
    def __init__(self, live: LiveState, publish: Publish | None = None, keep: int = 10_000) -> None:
        self.live = live
        self.publish = publish
        self.keep = keep
        self._records: OrderedDict[str, CommandRecord] = OrderedDict()
        self._lock = threading.Lock()

    def send(
        self,
        kind: v1.CommandKind,
        device_id: str,
        power_w: float | None = None,
        outlet: int | None = None,
        site: str | None = None,
        issued_by: str | None = None,
    ) -> CommandRecord:
        """Validate (the wire model's own rules), route to the device's gateway, publish; raise on failure."""
        found = self.live.find(device_id, site)
        if not found:
            raise UnknownDevice(f"no device {device_id!r}" + (f" on site {site!r}" if site else ""))
        if len(found) > 1:
            raise UnknownDevice(f"device {device_id!r} is on several sites; name one")
        device = found[0]
        command = v1.Command(
            id=uuid.uuid4().hex, kind=kind, device_id=device_id, power_w=power_w, outlet=outlet, issued_by=issued_by
        )
        return self._publish(command, device.site, device.gateway)

    def send_setpoints(
        self, site: str, gateway: str, setpoints: list[v1.Setpoint], lease_s: float, issued_by: str | None = None
    ) -> CommandRecord:
        """A fleet setpoint batch with a lease, for one gateway (the quota loop's way out)."""
        command = v1.Command(
            id=uuid.uuid4().hex, kind=v1.CommandKind.SETPOINTS, setpoints=setpoints, lease_s=lease_s,
            issued_by=issued_by,
        )  # fmt: skip
        return self._publish(command, site, gateway)

    def send_setpoints_json(
        self, site: str, gateway: str, setpoints_json: bytes, lease_s: float, issued_by: str | None = None,
        epoch: int | None = None,
    ) -> CommandRecord:
        """`send_setpoints` for a batch already serialised as a JSON array of `v1.Setpoint` (the quota loop's path
        for 100,000 machines: a validated model per setpoint would take seconds). The record keeps no setpoints."""
        command = v1.Command(
            id=uuid.uuid4().hex, kind=v1.CommandKind.SETPOINTS, lease_s=lease_s, issued_by=issued_by, epoch=epoch,
        )  # fmt: skip
        payload = v1.dumps(command).replace(b'"setpoints":[]', b'"setpoints":' + setpoints_json, 1)
        return self._publish(command, site, gateway, payload)

    def _publish(self, command: v1.Command, site: str, gateway: str, payload: bytes | None = None) -> CommandRecord:
        if self.publish is None:
            raise NotConnected("no MQTT connection to publish commands on")
        record = CommandRecord(command, site, gateway)
        with self._lock:
            self._records[command.id] = record
            while len(self._records) > self.keep:
                self._records.popitem(last=False)
        self.publish(v1.topic(site, gateway, "cmd"), payload if payload is not None else v1.dumps(command))
        log.info("command %s %s -> %s/%s device %s", command.id, command.kind.value, site, gateway, command.device_id)
        return record

    def on_ack(self, site: str, gateway: str, ack: v1.Ack) -> bool:
        """Attach an ack to its command; False for an ack of a command we do not know (logged)."""
        with self._lock:
            record = self._records.get(ack.command_id)
        if record is None:
            log.warning("ack from %s/%s for unknown command %s (%s)", site, gateway, ack.command_id, ack.status.value)
            return False
        record.status, record.reason, record.acked_at, record.items = ack.status.value, ack.reason, ack.ts, ack.items
        log.info("command %s %s%s", ack.command_id, ack.status.value, f": {ack.reason}" if ack.reason else "")
        return True

    def get(self, command_id: str) -> CommandRecord | None:
        with self._lock:
            return self._records.get(command_id)

    def for_device(self, device_id: str, limit: int = 20) -> list[CommandRecord]:
        with self._lock:
            records = [r for r in self._records.values() if r.command.device_id == device_id]
        return records[-limit:][::-1]
