"""The setpoint lease and the failsafe: how a site stays legal when its controller is gone.

Every fleet setpoint batch carries `lease_s`. Each batch (a renewal is the same setpoints under a new id) moves the
lease's expiry forward. If no batch arrives before expiry + `grace_s`, the agent puts its miners in the configured
safe state by itself:

- ``sleep_unprotected``: every miner not marked `protected` is put to sleep;
- ``cap_w``: this gateway's miners are brought under `cap_w` watts in total: protected miners keep their draw, the
  rest share what is left equally; a miner whose share is below its minimum, or which has no power target, sleeps.

A miner that cannot sleep (unsupported or not answering) is switched off at its mapped outlet when
`outlet_off_fallback` is on. Devices that did not reach the safe state are retried every `retry_s`. The failsafe is
reported in every telemetry batch (`lease.failsafe_active`, `failsafe_since`) and logged; the next valid setpoint
batch ends it. The lease is persisted, so an agent restarted while its controller is away still fails safe.

The lease runs on the monotonic clock, never the wall clock (agent.clock): a wall clock stepped by an hour
neither fires the failsafe early nor holds it off. The persisted lease keeps its monotonic deadline with the boot it
belongs to (Linux's boot id; CLOCK_MONOTONIC counts from boot, so an agent restarted in the same boot restores the
deadline exactly); after a reboot it falls back to the wall clock, and never grants more than the lease's own
length (a clock stepped back cannot stretch it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from agent import clock
from agent.actuator import Actuator
from agent.buffer import Buffer
from agent.config import FailsafeConfig
from agent.coordinator import Fleet, MinerDevice
from agent.priority import CommandsFirst
from kuat.wire import v1

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """This boot's id (Linux); None where there is none (the persisted lease then goes by the wall clock)."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


class Lease:
    """The current lease, kept in wall-clock and monotonic time (the latter immune to clock steps)."""

    def __init__(self, buffer: Buffer | None = None) -> None:
        self.buffer = buffer
        self.batch_id: str | None = None
        self.expires_at: datetime | None = None
        self.lease_s: float | None = None
        self._deadline: float | None = None
        self.failsafe_since: datetime | None = None
        self._restore()

    def renew(self, batch_id: str, lease_s: float) -> None:
        self.batch_id = batch_id
        self.lease_s = lease_s
        self.expires_at = clock.now() + timedelta(seconds=lease_s)  # reported only: what the gateway's clock says
        self._deadline = time.monotonic() + lease_s
        self._save()

    def seconds_left(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    @property
    def failsafe_active(self) -> bool:
        return self.failsafe_since is not None

    def set_failsafe(self, active: bool) -> None:
        self.failsafe_since = clock.now() if active else None
        self._save()

    def status(self) -> v1.LeaseStatus:
        left = self.seconds_left()
        return v1.LeaseStatus(
            batch_id=self.batch_id,
            expires_at=self.expires_at,
            expired=left is not None and left <= 0,
            failsafe_active=self.failsafe_active,
            failsafe_since=self.failsafe_since,
        )

    def _save(self) -> None:
        if self.buffer is None:
            return
        state = {
            "batch_id": self.batch_id,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "failsafe_since": self.failsafe_since.isoformat() if self.failsafe_since else None,
            "lease_s": self.lease_s,
            "deadline_monotonic": self._deadline,
            "boot_id": boot_id(),
        }
        self.buffer.set_meta("lease", json.dumps(state))

    def _restore(self) -> None:
        raw = self.buffer.get_meta("lease") if self.buffer else None
        if not raw:
            return
        state = json.loads(raw)
        self.batch_id = state.get("batch_id")
        self.lease_s = state.get("lease_s")
        if state.get("expires_at"):
            self.expires_at = datetime.fromisoformat(state["expires_at"])
            self._deadline = self._restored_deadline(state)
        if state.get("failsafe_since"):
            self.failsafe_since = datetime.fromisoformat(state["failsafe_since"])
        log.info("lease restored from the buffer: batch %s, %s", self.batch_id, _left_text(self.seconds_left()))


    def _restored_deadline(self, state: dict[str, object]) -> float:
        """The same boot: the stored monotonic deadline, exact whatever the wall clock did. Another boot: what the
        wall clock says is left, at most the lease's length."""
        stored = state.get("deadline_monotonic")
        if isinstance(stored, int | float) and state.get("boot_id") is not None and state.get("boot_id") == boot_id():
            return float(stored)
        assert self.expires_at is not None
        left = (self.expires_at - clock.now()).total_seconds()
        if self.lease_s is not None:
            left = min(left, self.lease_s)
        return time.monotonic() + left


def _left_text(left: float | None) -> str:
    if left is None:
        return "no expiry"
    return f"expires in {left:.0f}s" if left > 0 else f"expired {-left:.0f}s ago"


class Failsafe:
    def __init__(self, cfg: FailsafeConfig, lease: Lease, fleet: Fleet, actuator: Actuator,
                 gate: CommandsFirst | None = None) -> None:
        self.cfg = cfg
        self.gate = gate or CommandsFirst(0.0)  # the safe state goes before the poll loop's reads (agent.priority)
        self.lease = lease
        self.fleet = fleet
        self.actuator = actuator
        self._pending: set[str] = set()  # miners not yet in their safe state
        self._last_attempt = 0.0
        self._engage_hooks: list[Callable[[], None]] = []
        self._sem = asyncio.Semaphore(64)
        self._resume = lease.failsafe_active  # restarted in failsafe: re-assert the safe state once at start

    def on_engage(self, hook: Callable[[], None]) -> None:
        self._engage_hooks.append(hook)

    def renew(self, batch_id: str, lease_s: float) -> None:
        """A valid setpoint batch arrived: extend the lease and end the failsafe if it was on."""
        self.lease.renew(batch_id, lease_s)
        if self.lease.failsafe_active:
            log.warning("failsafe ended: setpoint batch %s arrived (lease %.0fs)", batch_id, lease_s)
            self.lease.set_failsafe(False)
            self._pending.clear()
            self._resume = False

    def due(self) -> bool:
        left = self.lease.seconds_left()
        return left is not None and left + self.cfg.grace_s <= 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:  # the failsafe must outlive any one bad attempt
                log.exception("failsafe check failed; trying again")
            try:
                await asyncio.wait_for(stop.wait(), CHECK_EVERY_S)
            except TimeoutError:
                pass

    async def check(self) -> None:
        if self._resume:
            self._resume = False
            log.warning("failsafe was active before the restart: re-applying the safe state")
            await self._apply()
        elif not self.lease.failsafe_active and self.due():
            await self.engage()
        elif self.lease.failsafe_active and self._pending and time.monotonic() - self._last_attempt >= self.cfg.retry_s:
            log.warning("failsafe: retrying %d device(s) not yet in the safe state", len(self._pending))
            await self._apply(only=set(self._pending))

    async def engage(self) -> None:
        left = self.lease.seconds_left() or 0.0
        log.warning(
            "lease of setpoint batch %s expired %.1fs ago with no renewal: applying failsafe %s",
            self.lease.batch_id, -left, self._describe(),
        )
        self.lease.set_failsafe(True)
        for hook in self._engage_hooks:
            hook()
        await self._apply()

    def _describe(self) -> str:
        if self.cfg.mode == "cap_w":
            return f"cap_w ({self.cfg.cap_w:.0f} W for this gateway)"
        return "sleep_unprotected"

    async def _apply(self, only: set[str] | None = None) -> None:
        self._last_attempt = time.monotonic()
        plan = self._plan()
        if only is not None:
            plan = [(dev, job) for dev, job in plan if dev.device_id in only]
        with self.gate.acting():
            results = await asyncio.gather(*(self._bounded(job()) for _, job in plan))
        failed = {dev.device_id for (dev, _), ok in zip(plan, results, strict=True) if not ok}
        self._pending = failed
        done = len(plan) - len(failed)
        log.warning("failsafe applied: %d of %d miners in the safe state%s", done, len(plan),
                    f"; will retry {sorted(failed)[:10]}" if failed else "")

    async def _bounded(self, work: Awaitable[bool]) -> bool:
        async with self._sem:
            return await work

    def _plan(self) -> list[tuple[MinerDevice, Callable[[], Awaitable[bool]]]]:
        unprotected = [m for m in self.fleet.miners if not m.cfg.protected]
        if self.cfg.mode == "sleep_unprotected":
            return [(m, self._job_sleep(m)) for m in unprotected]
        assert self.cfg.cap_w is not None
        protected_w = sum((m.last.power_w or 0.0) for m in self.fleet.miners if m.cfg.protected and m.last)
        share = max(0.0, self.cfg.cap_w - protected_w) / max(1, len(unprotected))
        return [(m, self._job_cap(m, share)) for m in unprotected]

    def _job_sleep(self, dev: MinerDevice) -> Callable[[], Awaitable[bool]]:
        return lambda: self._sleep_or_cut(dev)

    def _job_cap(self, dev: MinerDevice, share_w: float) -> Callable[[], Awaitable[bool]]:
        return lambda: self._cap_or_sleep(dev, share_w)

    async def _sleep_or_cut(self, dev: MinerDevice) -> bool:
        if dev.last is not None and dev.last.state == v1.MinerState.SLEEPING and dev.available:
            return True  # asleep already: a second sleep could fail and wrongly cut its outlet
        slept = await self.actuator.sleep(dev)
        if slept.status == v1.AckStatus.APPLIED:
            return True
        if self.cfg.outlet_off_fallback and self.fleet.outlets.outlet_of(dev.device_id) is not None:
            log.warning("failsafe: %s could not sleep (%s): switching its outlet off", dev.device_id, slept.reason)
            cut = await self.actuator.miner_outlet(dev, "off")
            return cut.status == v1.AckStatus.APPLIED
        log.error("failsafe: %s could not sleep (%s) and has no outlet to cut", dev.device_id, slept.reason)
        return False

    async def _cap_or_sleep(self, dev: MinerDevice, share_w: float) -> bool:
        caps = dev.last.capabilities if dev.last else None
        if dev.last is not None and dev.last.state == v1.MinerState.SLEEPING:
            return True  # already drawing less than any share
        fits = caps is not None and caps.power_target and (caps.power_min_w is None or share_w >= caps.power_min_w)
        if caps is not None and fits:
            watts = min(share_w, caps.power_max_w) if caps.power_max_w is not None else share_w
            capped = await self.actuator.power_target(dev, watts)
            if capped.status == v1.AckStatus.APPLIED:
                return True
        return await self._sleep_or_cut(dev)
