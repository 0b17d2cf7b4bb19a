"""Tomorrow's fleet, hour by hour: which machines can run and how well, from what is known now.

* **Machines available now.** A machine the controller cannot reach now (offline, rebooting with no answer, its
  outlet cut by a person) is assumed to stay down tomorrow: buying energy for it would be paying for nothing. A
  machine that comes back is in the next day's plan.
* **Known faults.** A degraded machine (a hashboard down) keeps its share of boards that hash: its hash factor is
  scaled by boards hashing / boards. A non-compliant machine (a registry violation) gets no power at all, as in the
  allocator.
* **Thermal derating from recent telemetry.** For each Astana hour of the day, the median over the last days of the
  machine's observed TH/s against the model's TH/s at the observed power (`kuat.catalog.hashrate_at_power`), in
  minutes it was hashing. Hot afternoons make firmware lower its frequency (an S21 drops 490 -> 440 MHz above 40 C
  ambient, DEVICES.md), so the same watts buy fewer TH/s then; the factor carries that, and the machine's own
  efficiency against its model, into the curve of that hour. A machine that answered in less than `min_available`
  of an hour's minutes on recent days (it trips in the heat, or its rack loses power then) is left out of that hour.

Everything here is plain numbers in, plain numbers out: the controller reads the minute rollups and the live state
(controller/planner/fleet.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from statistics import median

from kuat.catalog import ModelSpec, hashrate_at_power
from quota.fleet import FleetArrays, Machine

HOURS = 24
FACTOR_MIN, FACTOR_MAX = 0.5, 1.2  # outside this an observation is a bad reading, not a machine (quota.fleet too)
MIN_OBSERVATIONS = 2  # observations of one hour of the day needed before its factor is trusted


@dataclass(frozen=True, slots=True)
class Observation:
    """One machine over one stored stretch of an hour (a minute, or an hour of controller.history.device_minute
    summed), reduced to what derating needs."""

    hour: int  # Astana schedule hour 1..24 of the minute
    power_w: float | None
    hashrate_ths: float | None
    available_share: float  # available samples / samples in that minute


@dataclass(frozen=True, slots=True)
class MachineOutlook:
    """One machine for tomorrow: how the allocator sees it, and per hour how much of its model's hash per watt it
    delivers (None: as its factor says) and whether it takes part."""

    machine: Machine
    hash_by_hour: tuple[float, ...] | None = None  # observed / model TH/s per hour 1..24
    available_by_hour: tuple[bool, ...] | None = None
    out: str | None = None  # why it takes no part tomorrow ("offline now", "non-compliant"): None, it may run
    note: str | None = None  # why it runs reduced ("2 of 3 boards hash")

    def takes_part(self, hour: int) -> bool:
        if self.out is not None:
            return False
        return self.available_by_hour is None or self.available_by_hour[hour - 1]

    def factor(self, hour: int) -> float:
        base = self.machine.hash_factor
        return base if self.hash_by_hour is None else base * self.hash_by_hour[hour - 1]


def derating(spec: ModelSpec, minutes: Iterable[Observation], min_available: float = 0.5,
             ) -> tuple[tuple[float, ...], tuple[bool, ...]]:
    """Per hour 1..24: the median observed/model TH/s in minutes the machine hashed (1.0 where fewer than
    MIN_OBSERVATIONS), and whether it answered in at least `min_available` of that hour's minutes (True where the
    hour was never seen: no evidence against it)."""
    ratios: list[list[float]] = [[] for _ in range(HOURS)]
    shares: list[list[float]] = [[] for _ in range(HOURS)]
    for m in minutes:
        if not 1 <= m.hour <= HOURS:
            continue
        shares[m.hour - 1].append(m.available_share)
        if m.power_w is None or m.hashrate_ths is None or m.hashrate_ths <= 0 or m.power_w < spec.min_power_w * 0.9:
            continue
        model = hashrate_at_power(spec, min(m.power_w, spec.max_power_w))
        if model > 0:
            r = m.hashrate_ths / model
            if FACTOR_MIN <= r <= FACTOR_MAX:
                ratios[m.hour - 1].append(r)
    factors = tuple(min(1.0, median(r)) if len(r) >= MIN_OBSERVATIONS else 1.0 for r in ratios)
    available = tuple(not s or sum(s) / len(s) >= min_available for s in shares)
    return factors, available


def board_factor(boards_hashing: int | None, boards: int | None) -> float:
    """Share of a degraded machine's boards that still hash (1.0 when unknown)."""
    if not boards or boards_hashing is None:
        return 1.0
    return max(0.0, min(1.0, boards_hashing / boards))


def hour_key(outlooks: Sequence[MachineOutlook], hour: int, resolution: float = 0.01) -> tuple[object, ...]:
    """What distinguishes one hour's fleet from another's: who takes part and their factors to `resolution`.
    Hours with the same key share one curve."""
    return tuple((o.takes_part(hour), round(o.factor(hour) / resolution)) for o in outlooks)


def hour_fleet(outlooks: Sequence[MachineOutlook], hour: int, resolution: float = 0.01) -> FleetArrays:
    """The allocator's fleet for `hour`: machines that take part, with that hour's hash factor."""
    machines = []
    for o in outlooks:
        if not o.takes_part(hour):
            continue
        f = round(o.factor(hour) / resolution) * resolution
        machines.append(o.machine if math.isclose(f, o.machine.hash_factor) else replace(o.machine, hash_factor=f))
    return FleetArrays.from_machines(machines)
