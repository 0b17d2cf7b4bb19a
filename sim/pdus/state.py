"""The live side of one simulated PDU: readings computed from the site's physics at request time, and outlet
commands (on / off / reboot, immediate or delayed) carried out on the site's outlets."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.clock import SimClock
from sim.pdus.mib import Command
from sim.runtime import SimOutlet, SimPdu

log = logging.getLogger(__name__)

LOADED_POWER_FACTOR = 1.0  # runtime current is P/V, so apparent power = V x I = P
RATED_HEADROOM = 1.25  # a PDU is rated 25 % above the nameplate draw of what it feeds (the 80 % rule)
MIN_RATING_W = 7360.0  # 32 A x 230 V: the smallest PDU we pretend to be
NEAR_OVERLOAD = 0.9
LOW_LOAD = 0.05


@dataclass
class PduState:
    pdu: SimPdu
    clock: SimClock
    reboot_s: float = 5.0  # simulated seconds an outlet stays off during a reboot / cycle
    started_at: float = 0.0  # simulated time the PDU's agent booted (sysUpTime)
    peak_w: float = 0.0
    _pending: dict[int, asyncio.TimerHandle] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.started_at:
            # a PDU has been up for days when the simulation starts: a stable, per-PDU figure
            days = 3 + hashlib.sha256(self.pdu.d.id.encode()).digest()[0] % 60
            self.started_at = self.clock.now() - days * 86400.0

    # ------------------------------------------------------------ readings
    def outlet(self, number: int) -> SimOutlet:
        return self.pdu.outlet(number)

    @property
    def voltage(self) -> float:
        return self.pdu.voltage

    def power_w(self) -> float:
        """Total active power: the sum of the outlets (the inlet meter of a real PDU measures the same load)."""
        p = self.pdu.power_w()
        self.peak_w = max(self.peak_w, p)
        return p

    def current_a(self) -> float:
        return self.power_w() / self.voltage if self.voltage else 0.0

    def energy_wh(self) -> float:
        return self.pdu.energy_wh()

    def power_factor(self) -> float:
        return LOADED_POWER_FACTOR if self.pdu.power_w() > 0 else 0.0

    def rating_w(self) -> float:
        nameplate = sum(o.miner.phys.spec.nominal_w for o in self.pdu.outlets if o.miner is not None)
        return max(MIN_RATING_W, nameplate * RATED_HEADROOM)

    def load_fraction(self) -> float:
        return self.power_w() / self.rating_w()

    def uptime_ticks(self) -> int:
        """sysUpTime in hundredths of a second, wrapped like the 32-bit TimeTicks it is."""
        return int((self.clock.now() - self.started_at) * 100) % 2**32

    def outlet_pending(self, number: int) -> bool:
        return number in self._pending

    def any_pending(self) -> bool:
        return bool(self._pending)

    # ------------------------------------------------------------ control
    def command(self, number: int, cmd: Command) -> None:
        """Carry out `cmd` on outlet `number`; a new command replaces a pending one (cancel = action 'none')."""
        self._cancel(number)
        if cmd.action == "none":
            return
        if cmd.delay_s > 0:
            self._later(number, cmd.delay_s, lambda: self._act(number, cmd.action))
        else:
            self._act(number, cmd.action)

    def _act(self, number: int, action: str) -> None:
        self._pending.pop(number, None)
        outlet = self.outlet(number)
        log.info("PDU %s outlet %d (%s): %s", self.pdu.d.id, number, outlet.name, action)
        if action == "on":
            outlet.switch(True)
        elif action == "off":
            outlet.switch(False)
        elif action == "reboot":
            outlet.switch(False)
            self._later(number, self.reboot_s, lambda: self._act(number, "on"))

    def _later(self, number: int, sim_seconds: float, fn: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._pending[number] = loop.call_later(self.clock.real_seconds(sim_seconds), fn)

    def _cancel(self, number: int) -> None:
        handle = self._pending.pop(number, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for number in list(self._pending):
            self._cancel(number)
