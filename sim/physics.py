"""Physics of one mining machine: what it draws and hashes at any moment, given what was done to it.

State is evaluated lazily from the clock, so thousands of units cost nothing between reads. Energy is
integrated by `advance()` (trapezoids between calls; the site ticks every unit once a simulated second), and
the PDU outlet meters read it, so the controller's ledger can be checked against an independent meter.

Phases::

    OFF --outlet on--> BOOTING --boot_s--> RAMPING --ramp_s--> MINING
    MINING --sleep--> FALLING_ASLEEP --sleep_s--> SLEEPING --wake--> BOOTING (wake_s) ...
    any --reboot / power-limit change on Whatsminer--> BOOTING
    any --outlet off--> OFF (0 W, unreachable)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from enum import StrEnum

from kuat.catalog import ModelSpec, power_at_ratio, ratio_at_power
from sim.clock import SimClock


class Phase(StrEnum):
    OFF = "off"
    BOOTING = "booting"
    RAMPING = "ramping"
    MINING = "mining"
    FALLING_ASLEEP = "falling_asleep"
    SLEEPING = "sleeping"


class Fault(StrEnum):
    OFFLINE = "offline"  # network dead: connections refused
    TIMEOUT = "timeout"  # accepts, never answers
    SLOW = "slow"  # answers after `slow_s`
    BROKEN_JSON = "broken_json"  # firmware-style malformed JSON (`}{`, `[,{`, `,}`)
    STRING_NUMBERS = "string_numbers"  # numbers as strings, like S17 Pro "GHS 5s":"54997.01"
    IGNORE_COMMANDS = "ignore_commands"  # acknowledges control commands and does nothing
    HASHBOARD = "hashboard"  # board 1 dead
    OVERHEAT = "overheat"  # chips hot; firmware throttles to 75 %


BOOT_DRAW_W = 120.0  # fans at full, control board, PSU: what a booting machine pulls before hashing
NETWORK_UP_AFTER_S = 8.0  # a booting machine answers on the network after this many seconds


def unit_spread(serial: str) -> tuple[float, float]:
    """Deterministic per-unit tolerance from the serial: +-3 % hash rate, +-5 % power (spec tolerance)."""
    h = hashlib.sha256(serial.encode()).digest()
    a = (h[0] / 255.0) * 2 - 1
    b = (h[1] / 255.0) * 2 - 1
    return 1.0 + 0.03 * a, 1.0 + 0.05 * b


@dataclass
class MinerPhysics:
    spec: ModelSpec
    serial: str
    clock: SimClock
    ambient_c: float = 25.0
    boot_s: float = 40.0
    wake_s: float = 30.0
    sleep_s: float = 3.0
    ramp_s: float = 20.0
    sleep_w: float | None = None  # override the model's sleep draw
    powered: bool = True
    faults: set[Fault] = field(default_factory=set)
    # control state
    target_ratio: float = 1.0  # from a power limit, a preset or low-power mode
    power_limit_w: float | None = None
    disabled_boards: set[int] = field(default_factory=set)  # hash boards switched off (Braiins OS)
    # internal
    _phase: Phase = Phase.MINING
    _phase_t: float = 0.0  # when the current phase started
    _booted_at: float = 0.0
    _asleep_requested: bool = False
    energy_wh: float = 0.0
    _last_t: float | None = None
    _last_p: float = 0.0
    hash_mult: float = 1.0
    power_mult: float = 1.0

    def __post_init__(self) -> None:
        self.hash_mult, self.power_mult = unit_spread(self.serial)
        t = self.clock.now()
        self._phase_t = t
        # a site starts with its machines long booted, so uptimes look real
        self._booted_at = t - 3600.0 * (1 + (hash(self.serial) % 240))
        if not self.powered:
            self._phase = Phase.OFF
        self._last_t = t
        self._last_p = self.power_w()

    # ------------------------------------------------------------ phase machine
    def phase(self) -> Phase:
        t = self.clock.now()
        while True:
            elapsed = t - self._phase_t
            p = self._phase
            if p == Phase.BOOTING and elapsed >= self._boot_duration():
                self._enter(Phase.RAMPING, self._phase_t + self._boot_duration())
            elif p == Phase.RAMPING and elapsed >= self.ramp_s:
                self._enter(Phase.MINING, self._phase_t + self.ramp_s)
            elif p == Phase.FALLING_ASLEEP and elapsed >= self.sleep_s:
                self._enter(Phase.SLEEPING, self._phase_t + self.sleep_s)
            else:
                return p

    def _boot_duration(self) -> float:
        return self.wake_s if self._asleep_requested else self.boot_s

    def _enter(self, phase: Phase, at: float | None = None) -> None:
        self._phase = phase
        self._phase_t = self.clock.now() if at is None else at

    # ------------------------------------------------------------ observables
    @property
    def reachable(self) -> bool:
        """Does the control board answer on the network right now?"""
        if Fault.OFFLINE in self.faults:
            return False
        p = self.phase()
        if p == Phase.OFF:
            return False
        return not (p == Phase.BOOTING and not self._asleep_requested
                    and self.clock.now() - self._phase_t < NETWORK_UP_AFTER_S)

    @property
    def is_sleeping(self) -> bool:
        return self.phase() in (Phase.SLEEPING, Phase.FALLING_ASLEEP)

    @property
    def is_hashing(self) -> bool:
        return self.phase() in (Phase.RAMPING, Phase.MINING)

    def _effective_ratio(self) -> float:
        r = self.target_ratio
        if Fault.OVERHEAT in self.faults:
            r = min(r, 0.75)
        return r

    def _ramp_fraction(self) -> float:
        p = self.phase()
        if p == Phase.MINING:
            return 1.0
        if p == Phase.RAMPING:
            return min(1.0, (self.clock.now() - self._phase_t) / self.ramp_s) if self.ramp_s > 0 else 1.0
        return 0.0

    def _dead_board(self) -> int:
        return 0 if Fault.HASHBOARD in self.faults else -1

    def live_boards(self) -> int:
        """Boards hashing: not dead, not switched off. Power and hash rate scale with them (one board's share of
        the hashing power each; the control board and fans stay)."""
        off = self.disabled_boards | ({self._dead_board()} - {-1})
        return self.spec.boards - len(off & set(range(self.spec.boards)))

    def set_boards_enabled(self, boards: set[int], enabled: bool) -> bool:
        if Fault.IGNORE_COMMANDS in self.faults:
            return False
        self._change()
        (self.disabled_boards.difference_update if enabled else self.disabled_boards.update)(boards)
        self._last_p = self.power_w()
        return True

    def hashrate_ths(self) -> float:
        """Hash rate right now (TH/s), with this unit's tolerance and its dead boards."""
        f = self._ramp_fraction()
        if f <= 0:
            return 0.0
        board_share = self.live_boards() / self.spec.boards
        return self.spec.nominal_ths * self._effective_ratio() * f * self.hash_mult * board_share

    def board_hashrates_ths(self) -> list[float]:
        total = self.hashrate_ths()
        live = self.live_boards()
        per = total / live if live else 0.0
        dead = self._dead_board()
        return [0.0 if i == dead or i in self.disabled_boards else per for i in range(self.spec.boards)]

    def _temp_factor(self) -> float:
        """Power rises with temperature at fixed frequency: ~0.4 % per degree of ambient above 25 C."""
        return 1.0 + 0.004 * (self.ambient_c - 25.0)

    def _sleep_draw(self) -> float:
        return self.sleep_w if self.sleep_w is not None else self.spec.sleep_w

    def power_w(self) -> float:
        """Wall power right now (W): what the PDU outlet meters."""
        p = self.phase()
        if p == Phase.OFF:
            return 0.0
        if p == Phase.SLEEPING:
            return self._sleep_draw()
        if p == Phase.FALLING_ASLEEP:
            frac = min(1.0, (self.clock.now() - self._phase_t) / self.sleep_s) if self.sleep_s else 1.0
            return self._running_power(1.0) * (1 - frac) + self._sleep_draw() * frac
        if p == Phase.BOOTING:
            return BOOT_DRAW_W
        return max(BOOT_DRAW_W, self._running_power(self._ramp_fraction()))

    def _running_power(self, ramp: float) -> float:
        ratio = self._effective_ratio() * ramp
        board_share = self.live_boards() / self.spec.boards
        hashing = (power_at_ratio(self.spec, ratio) - self.spec.base_w) * board_share
        return (self.spec.base_w + hashing) * self.power_mult * self._temp_factor()

    def load(self) -> float:
        """0..1: how hard the machine works, for temperatures and fans."""
        return min(1.0, self.power_w() / self.spec.nominal_w)

    def board_temps_c(self) -> list[float]:
        base = self.ambient_c + 5 + 40 * self.load()
        if Fault.OVERHEAT in self.faults:
            base += 35
        dead = 0 if Fault.HASHBOARD in self.faults else -1
        return [round(self.ambient_c + 2 if i == dead else base + i, 1) for i in range(self.spec.boards)]

    def chip_temps_c(self) -> list[float]:
        return [t + 12 if t > self.ambient_c + 3 else t for t in self.board_temps_c()]

    def fans_rpm(self) -> list[int]:
        p = self.phase()
        if p == Phase.OFF:
            return [0, 0, 0, 0]
        if p in (Phase.SLEEPING, Phase.FALLING_ASLEEP):
            return [1200, 1200, 1200, 1200]
        rpm = 2400 + 3600 * self.load() + 60 * max(0.0, self.ambient_c - 25)
        if Fault.OVERHEAT in self.faults:
            rpm = 6600
        return [int(rpm) + d for d in (0, 30, -20, 10)]

    def uptime_s(self) -> int:
        return max(0, int(self.clock.now() - self._booted_at)) if self.phase() != Phase.OFF else 0

    # ------------------------------------------------------------ energy
    def advance(self) -> None:
        """Integrate energy up to now (trapezoid since the last call)."""
        t = self.clock.now()
        p = self.power_w()
        if self._last_t is not None and t > self._last_t:
            self.energy_wh += (self._last_p + p) / 2 * (t - self._last_t) / 3600.0
        self._last_t = t
        self._last_p = p

    def _change(self) -> None:
        """Close the energy integral at the old power before a state change."""
        self.advance()

    # ------------------------------------------------------------ control
    def set_powered(self, on: bool) -> None:
        self._change()
        if on and self._phase == Phase.OFF:
            self.powered = True
            self._asleep_requested = False
            self._booted_at = self.clock.now()
            self._enter(Phase.BOOTING)
        elif not on:
            self.powered = False
            self._enter(Phase.OFF)
        self._last_p = self.power_w()

    def sleep(self) -> bool:
        if Fault.IGNORE_COMMANDS in self.faults or self.phase() == Phase.OFF:
            return False
        self._change()
        if self.phase() not in (Phase.SLEEPING, Phase.FALLING_ASLEEP):
            self._enter(Phase.FALLING_ASLEEP)
        self._last_p = self.power_w()
        return True

    def wake(self) -> bool:
        if Fault.IGNORE_COMMANDS in self.faults or self.phase() == Phase.OFF:
            return False
        self._change()
        if self.phase() in (Phase.SLEEPING, Phase.FALLING_ASLEEP):
            self._asleep_requested = True  # boot from sleep takes wake_s, network stays up
            self._enter(Phase.BOOTING)
        self._last_p = self.power_w()
        return True

    def reboot(self) -> bool:
        if Fault.IGNORE_COMMANDS in self.faults or self.phase() == Phase.OFF:
            return False
        self._change()
        self._asleep_requested = False
        self._booted_at = self.clock.now()
        self._enter(Phase.BOOTING)
        self._last_p = self.power_w()
        return True

    def set_ratio(self, ratio: float) -> bool:
        """Underclock to `ratio` of nominal hash rate (a preset, or Antminer low-power mode)."""
        if Fault.IGNORE_COMMANDS in self.faults:
            return False
        self._change()
        self.target_ratio = min(max(ratio, self.spec.min_ratio), self.spec.max_ratio)
        self._last_p = self.power_w()
        return True

    def set_power_limit(self, watts: float | None, reboot: bool = False) -> bool:
        """Cap wall power at `watts` (None lifts the cap); `reboot` for firmware that reboots to apply it."""
        if Fault.IGNORE_COMMANDS in self.faults:
            return False
        self._change()
        self.power_limit_w = watts
        if watts is None:
            self.target_ratio = 1.0
        else:
            # the firmware tunes to the limit as it measures it, so this unit's spread is compensated
            nominal_equiv = watts / (self.power_mult * self._temp_factor())
            self.target_ratio = ratio_at_power(self.spec, nominal_equiv)
        self._last_p = self.power_w()
        if reboot:
            self.reboot()
        return True

    def inject(self, fault: Fault, on: bool = True) -> None:
        self._change()
        (self.faults.add if on else self.faults.discard)(fault)
        self._last_p = self.power_w()


def efficiency_j_per_th(power_w: float, hashrate_ths: float) -> float:
    return power_w / hashrate_ths if hashrate_ths > 0 else math.inf
