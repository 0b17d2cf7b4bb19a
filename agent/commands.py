"""Commands from the controller: validate, execute once per id, and answer with an ack.

Idempotency: the ack of every command id is kept in the buffer DB; a repeated id gets the stored ack back (marked
`duplicate`) and nothing is re-applied, even after an agent restart. Outcomes per device: `applied`; `rejected`
(never touched the device: unknown device, unsupported by the firmware - the driver's CommandUnsupported reason -,
bad value); `failed` (tried, the device did not do it: unreachable, timeout, refused).

A fleet setpoint batch carries a lease; it renews the lease (see agent.failsafe), ends an active failsafe, and is
applied item by item. Renewals repeat the same setpoints under a new id: a device whose setpoint did not change and
whose telemetry agrees with it is not touched again (a Whatsminer power target reboots the miner).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from agent.actuator import Actuator, rejected
from agent.boards import BoardSetpoints
from agent.boards import drifted as boards_drifted
from agent.buffer import Buffer
from agent.coordinator import Fleet, MinerDevice
from agent.drivers.base import OutletAction
from agent.priority import CommandsFirst
from kuat.wire import v1

if TYPE_CHECKING:
    from agent.failsafe import Failsafe

log = logging.getLogger(__name__)

DRIFT_GRACE_S = 30.0  # after this long, telemetry that contradicts an applied setpoint makes a renewal re-send it
OUTLET_ACTIONS: dict[v1.CommandKind, OutletAction] = {
    v1.CommandKind.OUTLET_ON: "on",
    v1.CommandKind.OUTLET_OFF: "off",
    v1.CommandKind.OUTLET_CYCLE: "cycle",
}
_SEVERITY = {v1.AckStatus.APPLIED: 0, v1.AckStatus.REJECTED: 1, v1.AckStatus.FAILED: 2}


def worst(statuses: list[v1.AckStatus]) -> v1.AckStatus:
    return max(statuses, key=_SEVERITY.__getitem__, default=v1.AckStatus.APPLIED)


@dataclass
class _Pending:
    setpoint: v1.Setpoint
    outcome: asyncio.Future[v1.ItemAck]


def _as_item(sp: v1.Setpoint, other: v1.ItemAck, superseded: bool = False) -> v1.ItemAck:
    item = other.model_copy(update={"device_id": sp.device_id})
    if superseded:
        item.reason = "superseded by a newer setpoint" + (f" ({other.reason})" if other.reason else "")
    return item


@dataclass
class _Applied:
    setpoint: v1.Setpoint
    at: float  # time.monotonic()


class CommandProcessor:
    def __init__(
        self,
        gateway: str,
        fleet: Fleet,
        actuator: Actuator,
        buffer: Buffer,
        failsafe: Failsafe,
        concurrency: int = 64,
        on_applied: Callable[[], None] | None = None,
        gate: CommandsFirst | None = None,
    ) -> None:
        self.gateway = gateway
        self.fleet = fleet
        self.actuator = actuator
        self.buffer = buffer
        self.failsafe = failsafe
        self._sem = asyncio.Semaphore(concurrency)
        self._on_applied = on_applied
        self.gate = gate or CommandsFirst(0.0)  # the poll loop's reads wait while a command is applied
        self._applied: dict[str, _Applied] = {}
        self._in_progress: dict[str, asyncio.Future[v1.Ack]] = {}
        self._newest: dict[str, _Pending] = {}  # device -> its newest setpoint item (queued, running or done)
        self.board_setpoints = BoardSetpoints(actuator)  # `boards_on`, and undoing it (agent.boards)
        # the newest controller-lease epoch seen on a setpoint batch (persisted): older batches are ignored
        stored = buffer.get_meta("epoch")
        self.newest_epoch: int | None = int(stored) if stored else None
        failsafe.on_engage(self._applied.clear)  # after the failsafe, new setpoints are applied in full

    async def handle_raw(self, payload: bytes) -> v1.Ack:
        """Parse a command message; a malformed one is rejected (with its id when one can be read)."""
        try:
            cmd = v1.Command.model_validate_json(payload)
        except ValidationError as exc:
            command_id = _peek_id(payload)
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())
            log.warning("command %s rejected: %s", command_id, reason)
            return v1.Ack(command_id=command_id, gateway=self.gateway, status=v1.AckStatus.REJECTED,
                          reason=f"invalid command: {reason}")
        return await self.handle(cmd)

    async def handle(self, cmd: v1.Command) -> v1.Ack:
        """Execute `cmd` once; a repeated id returns the first ack with duplicate=True."""
        stored = self.buffer.command_ack(cmd.id)
        if stored is not None:
            ack = v1.Ack.model_validate_json(stored)
            ack.duplicate = True
            log.info("command %s is a repeat: answering with its first ack (%s)", cmd.id, ack.status.value)
            return ack
        if cmd.id in self._in_progress:  # the same id again while the first is still running
            first = await asyncio.shield(self._in_progress[cmd.id])
            return first.model_copy(update={"duplicate": True})
        future: asyncio.Future[v1.Ack] = asyncio.get_running_loop().create_future()
        self._in_progress[cmd.id] = future
        try:
            with self.gate.acting():
                ack = await self._execute(cmd)
        except BaseException as exc:
            future.set_exception(exc)
            with contextlib.suppress(BaseException):
                future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._in_progress[cmd.id]
        future.set_result(ack)
        self._remember(cmd.id, ack)
        if ack.status == v1.AckStatus.APPLIED and self._on_applied is not None:
            self._on_applied()
        return ack

    def _remember(self, command_id: str, ack: v1.Ack) -> None:
        try:
            self.buffer.remember_command(command_id, v1.dumps(ack))
        except (sqlite3.Error, OSError) as exc:  # the ack still goes out; only a later repeat could re-apply it
            log.error("command %s: could not store its ack for idempotency: %s", command_id, exc)

    async def _execute(self, cmd: v1.Command) -> v1.Ack:
        log.info("command %s: %s %s", cmd.id, cmd.kind.value, cmd.device_id or f"{len(cmd.setpoints)} setpoints")
        if cmd.kind == v1.CommandKind.SETPOINTS and not self._current_epoch(cmd):
            return v1.Ack(command_id=cmd.id, gateway=self.gateway, status=v1.AckStatus.REJECTED,
                          reason=f"stale controller epoch {cmd.epoch} (newest seen {self.newest_epoch}): ignored")
        if cmd.kind == v1.CommandKind.SETPOINTS:
            items = await self._setpoints(cmd)
            status = worst([i.status for i in items])
            reason = None if status == v1.AckStatus.APPLIED else _summary(items)
            return v1.Ack(command_id=cmd.id, gateway=self.gateway, status=status, reason=reason, items=items)
        item = await self._single(cmd)
        return v1.Ack(command_id=cmd.id, gateway=self.gateway, status=item.status, reason=item.reason, items=[item])

    def _current_epoch(self, cmd: v1.Command) -> bool:
        """A batch from a controller that lost its lease (an epoch older than the newest seen) is ignored: it
        neither applies nor renews the lease. A batch without an epoch (no active/standby pair) always counts."""
        if cmd.epoch is None:
            return True
        if self.newest_epoch is not None and cmd.epoch < self.newest_epoch:
            log.warning("command %s: setpoints of controller epoch %d, older than %d: ignored", cmd.id, cmd.epoch,
                        self.newest_epoch)  # fmt: skip
            return False
        if cmd.epoch != self.newest_epoch:
            log.info("controller epoch %d (was %s)", cmd.epoch, self.newest_epoch)
            self.newest_epoch = cmd.epoch
            try:
                self.buffer.set_meta("epoch", str(cmd.epoch))
            except (sqlite3.Error, OSError) as exc:  # kept in memory; a restart forgets it
                log.error("controller epoch %d not stored: %s", cmd.epoch, exc)
        return True

    # ------------------------------------------------------------ single-device commands
    async def _single(self, cmd: v1.Command) -> v1.ItemAck:
        assert cmd.device_id is not None  # the schema requires it for every kind but setpoints
        if cmd.kind in OUTLET_ACTIONS:
            return await self._outlet_command(cmd, cmd.device_id)
        dev = self.fleet.miner(cmd.device_id)
        if dev is None:
            return rejected(cmd.device_id, "unknown device on this gateway")
        self._applied.pop(dev.device_id, None)  # a direct command overrides; the next setpoints re-assert
        if cmd.kind == v1.CommandKind.SLEEP:
            return await self.actuator.sleep(dev)
        if cmd.kind == v1.CommandKind.WAKE:
            return await self.actuator.wake(dev)
        if cmd.kind == v1.CommandKind.REBOOT:
            return await self.actuator.reboot(dev)
        if cmd.kind == v1.CommandKind.SET_POWER_TARGET:
            return await self.actuator.power_target(dev, cmd.power_w)
        return rejected(cmd.device_id, f"command {cmd.kind.value} is not supported by this agent")

    async def _outlet_command(self, cmd: v1.Command, device_id: str) -> v1.ItemAck:
        action = OUTLET_ACTIONS[cmd.kind]
        pdu = self.fleet.pdu(device_id)
        if pdu is not None:
            if cmd.outlet is None:
                return rejected(device_id, "an outlet command on a PDU needs `outlet`")
            if pdu.last is not None and pdu.last.outlets and cmd.outlet not in {o.index for o in pdu.last.outlets}:
                return rejected(device_id, f"the PDU has no outlet {cmd.outlet}")
            return await self.actuator.outlet(pdu, cmd.outlet, action, device_id)
        dev = self.fleet.miner(device_id)
        if dev is None:
            return rejected(device_id, "unknown device on this gateway")
        self._applied.pop(dev.device_id, None)
        return await self.actuator.miner_outlet(dev, action)

    # ------------------------------------------------------------ fleet setpoints
    async def _setpoints(self, cmd: v1.Command) -> list[v1.ItemAck]:
        assert cmd.lease_s is not None
        self.failsafe.renew(cmd.id, cmd.lease_s)
        seen: set[str] = set()
        jobs: list[Awaitable[v1.ItemAck] | None] = [None] * len(cmd.setpoints)
        # the biggest power cuts take the first slots, increases the last: under a new cap the site drops fastest,
        # and a wake never runs ahead of the sleeps that make room for it
        order = sorted(range(len(cmd.setpoints)), key=lambda k: -self._cut_w(cmd.setpoints[k]))
        for k in order:
            sp = cmd.setpoints[k]
            if sp.device_id in seen:
                jobs[k] = _done(rejected(sp.device_id, "device appears twice in the batch"))
                continue
            seen.add(sp.device_id)
            jobs[k] = self._latest_wins(sp)
        tasks = {k: asyncio.ensure_future(job) for k in order if (job := jobs[k]) is not None}
        return [await tasks[k] for k in range(len(cmd.setpoints))]

    def _cut_w(self, sp: v1.Setpoint) -> float:
        """How much power applying `sp` should take off (negative: it adds), from the device's last reading."""
        dev = self.fleet.miner(sp.device_id)
        now_w = (dev.last.power_w or 0.0) if dev is not None and dev.last is not None else 0.0
        if sp.mode in (v1.SetpointMode.SLEEP, v1.SetpointMode.OUTLET_OFF):
            return now_w
        if sp.mode == v1.SetpointMode.POWER_TARGET and sp.power_w is not None:
            return now_w - sp.power_w
        if sp.boards_on is not None and dev is not None and dev.last is not None and dev.last.boards:
            return now_w * (1.0 - sp.boards_on / len(dev.last.boards))  # roughly: each board's share
        return -1e9 if dev is None or dev.last is None or dev.last.state == v1.MinerState.SLEEPING else 0.0

    async def _latest_wins(self, sp: v1.Setpoint) -> v1.ItemAck:
        """Apply `sp` once, however many batches carry it while it waits or runs.

        Under a big change the controller's renewals (every loop run) arrive while the agent is still working
        through the first batch. The same setpoint for a device already queued or running is not applied again: it
        shares that item's outcome. A different, newer setpoint supersedes one still waiting for a slot, which then
        reports the newer one's outcome. Without this every renewal re-queued the whole batch behind itself."""
        newest = self._newest.get(sp.device_id)
        if newest is not None and newest.setpoint == sp and not newest.outcome.done():
            return _as_item(sp, await asyncio.shield(newest.outcome))
        mine = self._newest[sp.device_id] = _Pending(sp, asyncio.get_running_loop().create_future())
        try:
            async with self._sem:
                superseded = self._newest[sp.device_id] is not mine
                item = None if superseded else await self._setpoint(sp)
            if item is None:  # released the slot: the newer setpoint's outcome is this one's
                item = _as_item(sp, await asyncio.shield(self._newest[sp.device_id].outcome), superseded=True)
        except BaseException as exc:
            mine.outcome.set_exception(exc)
            with contextlib.suppress(BaseException):
                mine.outcome.exception()  # retrieved: no warning when nobody shares it
            raise
        mine.outcome.set_result(item)
        return item

    async def _setpoint(self, sp: v1.Setpoint) -> v1.ItemAck:
        dev = self.fleet.miner(sp.device_id)
        if dev is None:
            return rejected(sp.device_id, "unknown device on this gateway")
        previous = self._applied.get(dev.device_id)
        wanted = sp.model_copy(update={"reapply": False}) if sp.reapply else sp
        if previous is not None and previous.setpoint == wanted and not sp.reapply \
                and not _drifted(sp, dev, previous.at):
            return v1.ItemAck(device_id=sp.device_id, status=v1.AckStatus.APPLIED, reason="unchanged")
        item = await self._apply_setpoint(sp, dev)
        item.device_id = sp.device_id
        if item.status == v1.AckStatus.APPLIED:
            self._applied[dev.device_id] = _Applied(wanted, time.monotonic())
        else:
            self._applied.pop(dev.device_id, None)
        return item

    async def _apply_setpoint(self, sp: v1.Setpoint, dev: MinerDevice) -> v1.ItemAck:
        if sp.mode == v1.SetpointMode.SLEEP:
            return await self.actuator.sleep(dev)
        if sp.mode == v1.SetpointMode.OUTLET_OFF:
            return await self.actuator.miner_outlet(dev, "off")
        woke = await self._ensure_running(dev)
        if woke.status != v1.AckStatus.APPLIED:
            return woke
        if sp.mode == v1.SetpointMode.POWER_TARGET:
            item = await self.actuator.power_target(dev, sp.power_w)
        else:
            item = await self._run_at(dev, sp.power_w)
        if item.status != v1.AckStatus.APPLIED:
            return item
        return await self.board_setpoints.follow(sp, dev, item)

    async def _ensure_running(self, dev: MinerDevice) -> v1.ItemAck:
        """Power the outlet if we know it is off, and wake the miner unless it is known to be hashing."""
        ref = self.fleet.outlets.outlet_of(dev.device_id)
        if ref is not None and _outlet_state(self.fleet, ref) == v1.OutletState.OFF:
            on = await self.actuator.miner_outlet(dev, "on")
            if on.status != v1.AckStatus.APPLIED:
                return on
            return v1.ItemAck(device_id=dev.device_id, status=v1.AckStatus.APPLIED, reason="outlet switched on")
        state = dev.last.state if dev.last else None
        if state in (v1.MinerState.MINING, v1.MinerState.DEGRADED, v1.MinerState.REBOOTING):
            return v1.ItemAck(device_id=dev.device_id, status=v1.AckStatus.APPLIED)
        return await self.actuator.wake(dev)

    async def _run_at(self, dev: MinerDevice, watts: float | None) -> v1.ItemAck:
        """`run`: full power, or `watts` where the firmware has a power target (else full, and the ack says so)."""
        caps = dev.last.capabilities if dev.last else v1.Capabilities()
        if not caps.power_target:
            note = "no power target on this firmware: running at full power" if watts is not None else None
            return v1.ItemAck(device_id=dev.device_id, status=v1.AckStatus.APPLIED, reason=note)
        limit = dev.last.power_limit_w if dev.last else None
        if watts is None and (limit is None or caps.power_max_w is None or limit >= caps.power_max_w * 0.98):
            return v1.ItemAck(device_id=dev.device_id, status=v1.AckStatus.APPLIED)  # already at full
        return await self.actuator.power_target(dev, watts)


def _drifted(sp: v1.Setpoint, dev: MinerDevice, applied_at: float) -> bool:
    """Telemetry read well after the setpoint was applied plainly contradicts it (re-send to machines that drift)."""
    if dev.last is None or time.monotonic() - applied_at < DRIFT_GRACE_S or not dev.last.available:
        return False
    hashing = (dev.last.hashrate_ths or 0) > 0
    if sp.mode in (v1.SetpointMode.SLEEP, v1.SetpointMode.OUTLET_OFF):
        return hashing
    if boards_drifted(sp, dev):
        return True
    return dev.last.state == v1.MinerState.SLEEPING


def _outlet_state(fleet: Fleet, ref: v1.OutletRef) -> v1.OutletState:
    pdu = fleet.pdu(ref.pdu)
    if pdu is None or pdu.last is None:
        return v1.OutletState.UNKNOWN
    return next((o.state for o in pdu.last.outlets if o.index == ref.outlet), v1.OutletState.UNKNOWN)


def _summary(items: list[v1.ItemAck]) -> str:
    bad = [i for i in items if i.status != v1.AckStatus.APPLIED]
    shown = "; ".join(f"{i.device_id}: {i.status.value} ({i.reason})" for i in bad[:5])
    return f"{len(bad)} of {len(items)} not applied: {shown}" + (" ..." if len(bad) > 5 else "")


async def _done(item: v1.ItemAck) -> v1.ItemAck:
    return item


def _peek_id(payload: bytes) -> str:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        value = json.loads(payload).get("id")
        if isinstance(value, str) and value:
            return value[:128]
    return "?"
