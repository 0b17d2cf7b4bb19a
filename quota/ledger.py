"""Accounting: allotted vs consumed energy per minute and per hour, and every excursion above a cap.

Pure arithmetic on what the controller hands in: power samples (piecewise linear between samples, the way a
meter's readings are usually integrated) or meter energy deltas, the hourly allotments and the caps in force.
The controller stores the rows and serves them (API, CSV). Units: W, kWh, and MW x s for excursion sizes
(1 kWh = 3.6 MW x s).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from quota.timebase import require_aware

J_PER_KWH = 3.6e6


@dataclass(frozen=True, slots=True)
class PowerSample:
    t: datetime
    watts: float


@dataclass(frozen=True, slots=True)
class EnergyDelta:
    """A meter's energy between two readings (spread evenly over the interval when split into periods)."""

    start: datetime
    end: datetime
    kwh: float


@dataclass(frozen=True, slots=True)
class Allotment:
    start: datetime
    end: datetime
    kwh: float  # e.g. one hour's purchased energy; prorated by time when a period covers part of it


@dataclass(frozen=True, slots=True)
class CapWindow:
    start: datetime
    end: datetime
    limit_w: float
    cause: str  # the constraint's source, e.g. "emergency", "connection", "grid_signal"
    reason: str = ""
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Excursion:
    start: datetime
    end: datetime
    peak_over_w: float
    excess_kwh: float
    cause: str
    reason: str = ""
    reference: str | None = None

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def excess_mw_s(self) -> float:
        return self.excess_kwh * J_PER_KWH / 1e6


@dataclass(frozen=True, slots=True)
class LedgerRow:
    kind: str  # "site", "zone" or "tenant"
    entity: str
    start: datetime
    end: datetime
    allotted_kwh: float
    consumed_kwh: float

    @property
    def over_kwh(self) -> float:
        return max(0.0, self.consumed_kwh - self.allotted_kwh)


# ---------------------------------------------------------------- integration


def _check_samples(samples: Sequence[PowerSample]) -> list[PowerSample]:
    out = sorted((PowerSample(require_aware(s.t, "sample.t"), s.watts) for s in samples), key=lambda s: s.t)
    for s in out:
        if not math.isfinite(s.watts) or s.watts < 0:
            raise ValueError(f"power sample at {s.t.isoformat()}: {s.watts!r} is not a finite, non-negative wattage")
    return out


def _value_at(a: PowerSample, b: PowerSample, t: datetime) -> float:
    span = (b.t - a.t).total_seconds()
    return a.watts if span <= 0 else a.watts + (b.watts - a.watts) * (t - a.t).total_seconds() / span


def energy_kwh(samples: Sequence[PowerSample], start: datetime, end: datetime) -> float:
    """Energy in [start, end) from samples joined by straight lines (no data outside the samples' span)."""
    pts = _check_samples(samples)
    total_ws = 0.0
    for a, b in itertools.pairwise(pts):
        lo, hi = max(a.t, start), min(b.t, end)
        if hi <= lo:
            continue
        total_ws += (_value_at(a, b, lo) + _value_at(a, b, hi)) / 2 * (hi - lo).total_seconds()
    return total_ws / J_PER_KWH


def _periods(start: datetime, end: datetime, period_s: int) -> Iterable[tuple[datetime, datetime]]:
    step = timedelta(seconds=period_s)
    t = start
    while t < end:
        yield t, min(t + step, end)
        t += step


def _prorated(items: Iterable[Allotment | EnergyDelta], a: datetime, b: datetime) -> float:
    total = 0.0
    for it in items:
        lo, hi = max(it.start, a), min(it.end, b)
        span = (it.end - it.start).total_seconds()
        if hi > lo and span > 0:
            total += it.kwh * (hi - lo).total_seconds() / span
    return total


def ledger_rows(
    kind: str, entity: str, samples: Sequence[PowerSample], allotments: Sequence[Allotment],
    start: datetime, end: datetime, period_s: int = 60,
) -> list[LedgerRow]:
    """Allotted vs consumed per period (60: per minute, 3600: per hour) from power samples."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    return [LedgerRow(kind, entity, a, b, _prorated(allotments, a, b), energy_kwh(samples, a, b))
            for a, b in _periods(start, end, period_s)]


def ledger_rows_from_deltas(
    kind: str, entity: str, deltas: Sequence[EnergyDelta], allotments: Sequence[Allotment],
    start: datetime, end: datetime, period_s: int = 60,
) -> list[LedgerRow]:
    """The same from meter energy deltas (each spread evenly over its interval)."""
    for d in deltas:
        if not math.isfinite(d.kwh) or d.kwh < 0:
            raise ValueError(f"energy delta {d.start.isoformat()}..{d.end.isoformat()}: {d.kwh!r} kWh is not valid")
    start, end = require_aware(start, "start"), require_aware(end, "end")
    return [LedgerRow(kind, entity, a, b, _prorated(allotments, a, b), _prorated(deltas, a, b))
            for a, b in _periods(start, end, period_s)]


def tenant_allotments(site: Sequence[Allotment], share: float) -> list[Allotment]:
    """A subtype-II tenant's allotment: its contract share of the site's."""
    if not (math.isfinite(share) and 0 <= share <= 1):
        raise ValueError(f"tenant share must be in [0, 1] (got {share!r})")
    return [Allotment(a.start, a.end, a.kwh * share) for a in site]


def combine(kind: str, entity: str, rows: Iterable[LedgerRow]) -> list[LedgerRow]:
    """Sum rows of several entities period by period (sites of a zone)."""
    acc: dict[tuple[datetime, datetime], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        acc[(r.start, r.end)][0] += r.allotted_kwh
        acc[(r.start, r.end)][1] += r.consumed_kwh
    return [LedgerRow(kind, entity, a, b, v[0], v[1]) for (a, b), v in sorted(acc.items())]


# ---------------------------------------------------------------- excursions


def _cap_at(caps: Sequence[CapWindow], t: datetime) -> CapWindow | None:
    active = [c for c in caps if c.start <= t < c.end]
    return min(active, key=lambda c: c.limit_w) if active else None


def _excess_piece(fa: float, fb: float, seconds: float) -> tuple[float, float, float]:
    """Integral of max(0, f) for f linear from fa to fb over `seconds`; also where the positive part starts/ends
    (as fractions of the piece)."""
    if fa >= 0 and fb >= 0:
        return (fa + fb) / 2 * seconds, 0.0, 1.0
    if fa <= 0 and fb <= 0:
        return 0.0, 1.0, 0.0
    cross = fa / (fa - fb)
    if fa > 0:
        return fa / 2 * cross * seconds, 0.0, cross
    return fb / 2 * (1 - cross) * seconds, cross, 1.0


@dataclass
class _Open:
    cap: CapWindow
    start: datetime
    end: datetime
    ws: float = 0.0
    peak_w: float = 0.0

    def close(self) -> Excursion:
        c = self.cap
        return Excursion(self.start, self.end, self.peak_w, self.ws / J_PER_KWH, c.cause, c.reason, c.reference)


def excursions(samples: Sequence[PowerSample], caps: Sequence[CapWindow]) -> list[Excursion]:
    """Every stretch of time the power was above the (lowest) cap in force, with its energy and cause."""
    pts = _check_samples(samples)
    caps = [CapWindow(require_aware(c.start), require_aware(c.end), c.limit_w, c.cause, c.reason, c.reference)
            for c in caps]
    found: list[Excursion] = []
    cur: _Open | None = None
    for a, b in itertools.pairwise(pts):
        edges = sorted({a.t, b.t, *(e for c in caps for e in (c.start, c.end) if a.t < e < b.t)})
        for lo, hi in itertools.pairwise(edges):
            cap = _cap_at(caps, lo)
            seconds = (hi - lo).total_seconds()
            pa, pb = _value_at(a, b, lo), _value_at(a, b, hi)
            ws, f0, f1 = (0.0, 1.0, 0.0) if cap is None else _excess_piece(pa - cap.limit_w, pb - cap.limit_w, seconds)
            if cap is None or ws <= 0:
                cur = _flush(found, cur)
                continue
            seg_start, seg_end = lo + timedelta(seconds=f0 * seconds), lo + timedelta(seconds=f1 * seconds)
            if cur is not None and (cur.cap is not cap or cur.end != seg_start):
                cur = _flush(found, cur)
            if cur is None:
                cur = _Open(cap, seg_start, seg_end)
            cur.end = seg_end
            cur.ws += ws
            cur.peak_w = max(cur.peak_w, max(pa, pb) - cap.limit_w)
            if f1 < 1.0:
                cur = _flush(found, cur)
    _flush(found, cur)
    return found


def _flush(found: list[Excursion], cur: _Open | None) -> _Open | None:
    """Record the open excursion, if any; returns the new open state (none)."""
    if cur is not None:
        found.append(cur.close())
    return None


def energy_excursions(rows: Iterable[LedgerRow], cause: str = "purchased_energy") -> list[Excursion]:
    """Periods whose consumption exceeded the allotment (an hour above its purchased kWh)."""
    out = []
    for r in rows:
        if r.over_kwh > 0:
            seconds = (r.end - r.start).total_seconds()
            out.append(Excursion(r.start, r.end, r.over_kwh * J_PER_KWH / seconds if seconds else 0.0, r.over_kwh,
                                 cause, f"{r.kind} {r.entity}: {r.consumed_kwh:.3f} kWh against "
                                        f"{r.allotted_kwh:.3f} kWh allotted"))
    return out
