"""What limits a site's power at any moment, and why.

Inputs (all pushed by people or systems, kept by the controller, handed in here as plain dataclasses):

* `DaySchedule`: purchased energy per Astana-local hour of one day, for a site or a trading zone;
* `EmergencyOrder`: the system operator's written order: a cap in MW or a share of the schedule, for a window
  or until lifted, with the order's reference; effective immediately;
* `GridReading` against a `GridContract`: the live grid target; a stale signal means the contract's safe level;
* `SiteConfig`: connection capacity, reserved headroom, zone membership, tenant shares.

`effective_limit` returns the most restrictive of everything that applies, with every candidate and the one that
binds, so the engine can say why. Inferred rule (REGULATION.md): grid power for mining comes only from purchased
volume, so an hour without a schedule has a limit of 0 unless the site is configured otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from enum import StrEnum

from quota.errors import Problems
from quota.timebase import ASTANA, HOUR, hour_window, hours_in_day, local_day_and_hour, require_aware

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class HourEnergy:
    hour: int  # 1-based local hour of the day
    kwh: float


@dataclass(frozen=True, slots=True)
class DaySchedule:
    area: str  # a site id or a trading-zone id
    day: date  # Astana-local calendar day
    hours: tuple[HourEnergy, ...]
    reference: str | None = None  # e.g. the market operator's registration number

    @classmethod
    def from_kwh(cls, area: str, day: date, kwh: Sequence[float], reference: str | None = None) -> DaySchedule:
        return cls(area, day, tuple(HourEnergy(i + 1, float(v)) for i, v in enumerate(kwh)), reference)

    def kwh(self, hour: int) -> float | None:
        for h in self.hours:
            if h.hour == hour:
                return h.kwh
        return None


@dataclass(frozen=True, slots=True)
class EmergencyOrder:
    area: str  # site or zone the order names
    reference: str  # the written order's number
    start: datetime
    end: datetime | None = None  # None: until lifted
    cap_mw: float | None = None  # give exactly one of cap_mw / share_pct
    share_pct: float | None = None  # percent of the scheduled (purchased) power; 0 = full stop
    lifted_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        if at < self.start:
            return False
        if self.end is not None and at >= self.end:
            return False
        return self.lifted_at is None or at < self.lifted_at

    def stops_at(self) -> datetime | None:
        ends = [t for t in (self.end, self.lifted_at) if t is not None]
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class GridContract:
    contract_mw: float  # what a 100 % target means
    stale_after_s: float = 240.0  # no message for this long means: curtail
    safe_pct: float = 0.0  # the contract's safe curtailment level while the signal is stale


@dataclass(frozen=True, slots=True)
class GridReading:
    """The last grid signal received (the controller keeps it; kuat.wire.v1.GridSignal carries it)."""

    ts: datetime
    target_pct: float | None = None
    target_mw: float | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class SiteConfig:
    site: str
    connection_kw: float
    reserved_headroom_kw: float = 0.0
    zone: str | None = None
    zone_share: float = 1.0  # this site's share of its zone's schedule (1.0: the zone's only buyer)
    tenant_shares: Mapping[str, float] = field(default_factory=dict)  # subtype-II tenant -> share of allotment
    lend_unused_share: bool = True  # a tenant's unused share may flow to others
    grid: GridContract | None = None
    require_schedule: bool = True  # no purchased energy for an hour -> limit 0

    def areas(self) -> tuple[str, ...]:
        return (self.site,) if self.zone is None else (self.site, self.zone)


@dataclass(frozen=True, slots=True)
class QuotaState:
    """Everything in force for one site (the controller assembles it from its store)."""

    site: SiteConfig
    schedules: tuple[DaySchedule, ...] = ()
    orders: tuple[EmergencyOrder, ...] = ()
    grid: GridReading | None = None
    tz: tzinfo = ASTANA


# ---------------------------------------------------------------- results


class Source(StrEnum):
    CONNECTION = "connection"
    SCHEDULE = "schedule"
    ZONE_SCHEDULE = "zone_schedule"
    NO_SCHEDULE = "no_schedule"
    EMERGENCY = "emergency"
    GRID_SIGNAL = "grid_signal"
    GRID_STALE = "grid_stale"
    ENERGY_BUDGET = "energy_budget"


@dataclass(frozen=True, slots=True)
class Constraint:
    source: Source
    limit_w: float
    reason: str
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class EffectiveLimit:
    at: datetime
    limit_w: float
    binding: Constraint
    constraints: tuple[Constraint, ...]

    def explain(self) -> str:
        others = ", ".join(f"{c.source.value} {c.limit_w / 1000:.1f} kW" for c in self.constraints if c != self.binding)
        return f"{self.limit_w / 1000:.1f} kW because {self.binding.reason}" + (f" (also: {others})" if others else "")


@dataclass(frozen=True, slots=True)
class PlanSegment:
    start: datetime
    end: datetime
    limit_w: float
    binding: Constraint


@dataclass(frozen=True, slots=True)
class HourPlan:
    hour: int
    start: datetime
    end: datetime
    purchased_kwh: float | None  # None: nothing purchased (and the site requires a schedule -> 0)
    cap_kwh: float  # energy the instantaneous caps (connection, emergencies) allow in this hour
    planned_kwh: float  # min of both: what the engine aims to use


@dataclass(frozen=True, slots=True)
class EffectivePlan:
    day: date
    segments: tuple[PlanSegment, ...]
    hours: tuple[HourPlan, ...]


# ---------------------------------------------------------------- validation


def _finite_non_negative(p: Problems, name: str, value: float | None) -> bool:
    if value is None:
        return True
    if not isinstance(value, int | float) or not math.isfinite(value):
        p.add(name, f"must be a finite number (got {value!r})")
        return False
    if value < 0:
        p.add(name, f"must not be negative (got {value})")
        return False
    return True


def _aware(p: Problems, name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return require_aware(value, name)
    except ValueError as e:
        p.add(name, str(e))
        return None


def _known_area(p: Problems, name: str, area: str, known_areas: Iterable[str]) -> None:
    known = set(known_areas)
    if area not in known:
        p.add(name, f"unknown site or zone {area!r}; known: {', '.join(sorted(known)) or 'none'}")


def validate_schedule(
    schedule: DaySchedule, known_areas: Iterable[str], now: datetime, tz: tzinfo = ASTANA
) -> None:
    """Raise QuotaInputError naming every bad field; return quietly when the schedule can be accepted."""
    p = Problems()
    _known_area(p, "area", schedule.area, known_areas)
    if not date.min < schedule.day < date.max:  # the hours of 0001-01-01 or 9999-12-31 are outside what datetime holds
        p.add("day", f"{schedule.day} is not a day a schedule can be for")
        p.raise_if_any()
    expected = hours_in_day(schedule.day, tz)
    if len(schedule.hours) != expected:
        p.add("hours", f"{schedule.day} has {expected} hours in {tz}; the schedule gives {len(schedule.hours)}")
    previous = 0
    for i, h in enumerate(schedule.hours):
        if not isinstance(h.hour, int) or not 1 <= h.hour <= expected:
            p.add(f"hours[{i}].hour", f"must be an hour 1..{expected} (got {h.hour!r})")
        elif h.hour == previous:
            p.add(f"hours[{i}].hour", f"hour {h.hour} given twice (overlapping windows)")
        elif h.hour < previous:
            p.add(f"hours[{i}].hour", f"hour {h.hour} after hour {previous} (out of order)")
        else:
            previous = h.hour
        _finite_non_negative(p, f"hours[{i}].kwh", h.kwh)
    day_end = hour_window(schedule.day, expected, tz)[1]
    if day_end <= require_aware(now, "now"):
        p.add("day", f"{schedule.day} is already over (ended {day_end.isoformat()})")
    p.raise_if_any()


def validate_orders(orders: Sequence[EmergencyOrder], known_areas: Iterable[str], now: datetime) -> None:
    """Check a push of one or more emergency orders; overlapping windows for one area within a push are ambiguous."""
    p = Problems()
    known = list(known_areas)
    now = require_aware(now, "now")
    windows: list[tuple[int, str, datetime, datetime | None]] = []
    for i, o in enumerate(orders):
        pre = f"orders[{i}]" if len(orders) > 1 else "order"
        _known_area(p, f"{pre}.area", o.area, known)
        if not o.reference or not o.reference.strip():
            p.add(f"{pre}.reference", "the order's reference number is required")
        _check_order_level(p, pre, o)
        start = _aware(p, f"{pre}.start", o.start)
        end = _aware(p, f"{pre}.end", o.end)
        if start is not None and end is not None and end <= start:
            p.add(f"{pre}.end", f"ends {end.isoformat()}, not after its start {start.isoformat()} (out of order)")
        elif end is not None and end <= now:
            p.add(f"{pre}.end", f"window already over ({end.isoformat()} is in the past)")
        elif start is not None:
            windows.append((i, o.area, start, end))
    _check_overlaps(p, windows, prefix="orders" if len(orders) > 1 else "order")
    p.raise_if_any()


def _check_order_level(p: Problems, pre: str, o: EmergencyOrder) -> None:
    if (o.cap_mw is None) == (o.share_pct is None):
        p.add(f"{pre}.cap_mw", "give exactly one of cap_mw or share_pct")
        return
    _finite_non_negative(p, f"{pre}.cap_mw", o.cap_mw)
    if _finite_non_negative(p, f"{pre}.share_pct", o.share_pct) and o.share_pct is not None and o.share_pct > 100:
        p.add(f"{pre}.share_pct", f"is a percentage 0..100 (got {o.share_pct})")


def _check_overlaps(p: Problems, windows: list[tuple[int, str, datetime, datetime | None]], prefix: str) -> None:
    """Within one push, windows of the same area must not overlap (which order would apply is ambiguous)."""
    latest: dict[str, tuple[int, datetime | None]] = {}  # area -> (index, end) of the window reaching furthest
    for j, area, start, end in sorted(windows, key=lambda w: (w[1], w[2])):
        if area in latest:
            i, reach = latest[area]
            if reach is None or start < reach:
                p.add(f"{prefix}[{j}].start", f"overlaps {prefix}[{i}] for {area!r} in the same push")
            if reach is None or (end is not None and end <= reach):
                continue
        latest[area] = (j, end)


def validate_site(cfg: SiteConfig) -> None:
    p = Problems()
    if not cfg.site:
        p.add("site", "a site id is required")
    if _finite_non_negative(p, "connection_kw", cfg.connection_kw) and cfg.connection_kw <= 0:
        p.add("connection_kw", "must be positive")
    if _finite_non_negative(p, "reserved_headroom_kw", cfg.reserved_headroom_kw) and (
        cfg.reserved_headroom_kw >= cfg.connection_kw
    ):
        p.add("reserved_headroom_kw", "must be below the connection capacity")
    if not (math.isfinite(cfg.zone_share) and 0 < cfg.zone_share <= 1):
        p.add("zone_share", f"must be in (0, 1] (got {cfg.zone_share})")
    for tenant, share in cfg.tenant_shares.items():
        if not (isinstance(share, int | float) and math.isfinite(share) and 0 <= share <= 1):
            p.add(f"tenant_shares.{tenant}", f"must be a share in [0, 1] (got {share!r})")
    total = sum(s for s in cfg.tenant_shares.values() if isinstance(s, int | float) and math.isfinite(s))
    if total > 1 + 1e-9:
        p.add("tenant_shares", f"add up to {total:.3f}, more than the whole allotment")
    if cfg.grid is not None:
        _finite_non_negative(p, "grid.contract_mw", cfg.grid.contract_mw)
        _finite_non_negative(p, "grid.stale_after_s", cfg.grid.stale_after_s)
        if _finite_non_negative(p, "grid.safe_pct", cfg.grid.safe_pct) and cfg.grid.safe_pct > 100:
            p.add("grid.safe_pct", "is a percentage 0..100")
    p.raise_if_any()


def validate_grid_reading(reading: GridReading) -> None:
    p = Problems()
    _aware(p, "ts", reading.ts)
    if (reading.target_pct is None) == (reading.target_mw is None):
        p.add("target_pct", "give exactly one of target_pct or target_mw")
    _finite_non_negative(p, "target_mw", reading.target_mw)
    if _finite_non_negative(p, "target_pct", reading.target_pct) and (reading.target_pct or 0) > 100:
        p.add("target_pct", "is a percentage 0..100")
    p.raise_if_any()


# ---------------------------------------------------------------- the limit at one instant


def purchased_kwh(state: QuotaState, day: date, hour: int) -> tuple[float, Source, str | None] | None:
    """The site's purchased energy for one hour: its own schedule, its zone's times its share; the lower wins."""
    cfg = state.site
    found: list[tuple[float, Source, str | None]] = []
    for s in state.schedules:
        if s.day != day:
            continue
        kwh = s.kwh(hour)
        if kwh is None:
            continue
        if s.area == cfg.site:
            found.append((kwh, Source.SCHEDULE, s.reference))
        elif s.area == cfg.zone:
            found.append((kwh * cfg.zone_share, Source.ZONE_SCHEDULE, s.reference))
    return min(found, key=lambda f: f[0]) if found else None


def _schedule_constraint(state: QuotaState, at: datetime) -> Constraint | None:
    day, hour = local_day_and_hour(at, state.tz)
    bought = purchased_kwh(state, day, hour)
    if bought is None:
        if not state.site.require_schedule:
            return None
        return Constraint(Source.NO_SCHEDULE, 0.0, f"no energy purchased for {day} hour {hour}")
    kwh, source, ref = bought
    what = "zone schedule share" if source == Source.ZONE_SCHEDULE else "schedule"
    return Constraint(source, kwh * 1000.0, f"{what}: {kwh:.1f} kWh purchased for {day} hour {hour}", ref)


def _order_constraint(state: QuotaState, order: EmergencyOrder, at: datetime) -> Constraint:
    cfg = state.site
    zone_part = cfg.zone_share if order.area == cfg.zone and order.area != cfg.site else 1.0
    if order.cap_mw is not None:
        limit = order.cap_mw * 1e6 * zone_part
        why = f"emergency order {order.reference}: cap {order.cap_mw:g} MW"
    else:
        share = (order.share_pct or 0.0) / 100.0
        sched = _schedule_constraint(state, at)
        basis = sched.limit_w if sched is not None else cfg.connection_kw * 1000.0
        limit = share * basis
        why = f"emergency order {order.reference}: {order.share_pct:g} % of the {'schedule' if sched else 'connection'}"
    return Constraint(Source.EMERGENCY, limit, why, order.reference)


def _grid_constraint(state: QuotaState, at: datetime) -> Constraint | None:
    contract = state.site.grid
    if contract is None:
        return None
    full_w = contract.contract_mw * 1e6
    reading = state.grid
    age = None if reading is None else (at - require_aware(reading.ts, "grid.ts")).total_seconds()
    if reading is None or age is None or age > contract.stale_after_s:
        since = "never received" if reading is None else f"last message {age:.0f} s ago"
        return Constraint(
            Source.GRID_STALE, full_w * contract.safe_pct / 100.0,
            f"grid signal stale ({since}, limit {contract.stale_after_s:g} s): contract safe level "
            f"{contract.safe_pct:g} %",
        )
    if reading.target_mw is not None:
        return Constraint(Source.GRID_SIGNAL, reading.target_mw * 1e6, f"grid target {reading.target_mw:g} MW",
                          reading.reference)
    pct = reading.target_pct or 0.0
    return Constraint(Source.GRID_SIGNAL, full_w * pct / 100.0, f"grid target {pct:g} % of the contract",
                      reading.reference)


def constraints_at(state: QuotaState, at: datetime, live: bool = True, energy: bool = True) -> list[Constraint]:
    """Every limit that applies at `at`; `live` adds the grid signal (a plan for the future leaves it out);
    `energy=False` leaves out the schedule's hourly average (instantaneous caps only; orders stated as a share of
    the schedule still use it as their basis)."""
    at = require_aware(at, "at")
    cfg = state.site
    out = [Constraint(
        Source.CONNECTION, (cfg.connection_kw - cfg.reserved_headroom_kw) * 1000.0,
        f"connection {cfg.connection_kw:g} kW less {cfg.reserved_headroom_kw:g} kW reserved headroom",
    )]
    sched = _schedule_constraint(state, at) if energy else None
    if sched is not None:
        out.append(sched)
    areas = cfg.areas()
    out += [_order_constraint(state, o, at) for o in state.orders if o.area in areas and o.active_at(at)]
    grid = _grid_constraint(state, at) if live else None
    if grid is not None:
        out.append(grid)
    return out


def most_restrictive(at: datetime, constraints: Sequence[Constraint]) -> EffectiveLimit:
    binding = min(constraints, key=lambda c: c.limit_w)  # first of equals wins: stable, deterministic
    return EffectiveLimit(at, max(0.0, binding.limit_w), binding, tuple(constraints))


def effective_limit(state: QuotaState, at: datetime, extra: Sequence[Constraint] = ()) -> EffectiveLimit:
    """The most restrictive power limit at `at` (W) and why. `extra` adds e.g. the hour's energy-budget pace."""
    return most_restrictive(require_aware(at, "at"), [*constraints_at(state, at), *extra])


# ---------------------------------------------------------------- the plan over a day


def _breakpoints(state: QuotaState, start: datetime, end: datetime) -> list[datetime]:
    points = {start, end}
    day, _ = local_day_and_hour(start, state.tz)
    t = hour_window(day, 1, state.tz)[0]
    while t < end:
        if t > start:
            points.add(t)
        t += HOUR
    for o in state.orders:
        for edge in (o.start, o.stops_at()):
            if edge is not None and start < edge < end:
                points.add(edge)
    return sorted(points)


def plan_segments(state: QuotaState, start: datetime, end: datetime, energy: bool = True) -> list[PlanSegment]:
    """Piecewise-constant limit from `start` to `end` (without the live grid signal), merged where unchanged;
    `energy=False`: instantaneous caps only (the schedule's hourly energy is accounted separately)."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    points = _breakpoints(state, start, end)
    segments: list[PlanSegment] = []
    for a, b in itertools.pairwise(points):
        lim = most_restrictive(a, constraints_at(state, a, live=False, energy=energy))
        last = segments[-1] if segments else None
        if last is not None and last.binding == lim.binding and last.limit_w == lim.limit_w:
            segments[-1] = replace(last, end=b)
        else:
            segments.append(PlanSegment(a, b, lim.limit_w, lim.binding))
    return segments


def _cap_kwh(segments: Sequence[PlanSegment], start: datetime, end: datetime) -> float:
    """Energy the instantaneous caps allow in [start, end): schedule limits excluded (they are energy, not power)."""
    total = 0.0
    for s in segments:
        a, b = max(s.start, start), min(s.end, end)
        if b > a:
            total += s.limit_w * (b - a).total_seconds() / 3.6e6
    return total


def effective_plan(state: QuotaState, day: date) -> EffectivePlan:
    """The day's plan: limit segments and, per hour, purchased vs allowed energy (what an accepted push returns)."""
    n = hours_in_day(day, state.tz)
    start, end = hour_window(day, 1, state.tz)[0], hour_window(day, n, state.tz)[1]
    segments = plan_segments(state, start, end)
    caps = plan_segments(state, start, end, energy=False)
    hours = []
    for h in range(1, n + 1):
        a, b = hour_window(day, h, state.tz)
        bought = purchased_kwh(state, day, h)
        cap = _cap_kwh(caps, a, b)
        purchased = None if bought is None else bought[0]
        allowed = purchased if purchased is not None else (0.0 if state.site.require_schedule else cap)
        hours.append(HourPlan(h, a, b, purchased, cap, min(allowed, cap)))
    return EffectivePlan(day, tuple(segments), tuple(hours))


def accept_schedule(state: QuotaState, schedule: DaySchedule, now: datetime) -> tuple[QuotaState, EffectivePlan]:
    """Validate a pushed schedule; return the new state (it replaces any schedule for the same area and day)
    and the day's effective plan. Raises QuotaInputError and changes nothing when the push is bad."""
    validate_schedule(schedule, state.site.areas(), now, state.tz)
    kept = tuple(s for s in state.schedules if (s.area, s.day) != (schedule.area, schedule.day))
    new_state = replace(state, schedules=(*kept, schedule))
    return new_state, effective_plan(new_state, schedule.day)


def accept_orders(
    state: QuotaState, orders: Sequence[EmergencyOrder], now: datetime
) -> tuple[QuotaState, EffectivePlan]:
    """Validate pushed emergency orders (effective immediately); return the new state and today's plan."""
    validate_orders(orders, state.site.areas(), now)
    normalised = tuple(
        replace(o, start=require_aware(o.start), end=None if o.end is None else require_aware(o.end)) for o in orders
    )
    new_state = replace(state, orders=(*state.orders, *normalised))
    return new_state, effective_plan(new_state, local_day_and_hour(now, state.tz)[0])


def lift_order(state: QuotaState, reference: str, at: datetime) -> QuotaState:
    """Mark the order `reference` lifted at `at` (KeyError if no active order has that reference)."""
    at = require_aware(at, "at")
    found = False
    orders = []
    for o in state.orders:
        if o.reference == reference and o.lifted_at is None:
            o = replace(o, lifted_at=at)
            found = True
        orders.append(o)
    if not found:
        raise KeyError(f"no open emergency order {reference!r}")
    return replace(state, orders=tuple(orders))


def hour_bounds(at: datetime, tz: tzinfo = ASTANA) -> tuple[datetime, datetime, int]:
    """UTC start and end of the schedule hour containing `at`, and its number."""
    day, hour = local_day_and_hour(at, tz)
    start, end = hour_window(day, hour, tz)
    return start, end, hour

