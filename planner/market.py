"""What the planner knows of tomorrow's auction in one zone, from the history of published results.

The day-ahead session for miners (QUOTA.md, REGULATION.md): the system operator (KEGOC) enters the hourly volumes
it allows miners per zone by 09:15; the session runs 09:30-10:00 Astana time; winners are registered within those
volumes, **pay-as-bid**; no bid may be below the zone's floor (the highest generator price cap of the zone, Ministry
of Energy order No. 514 of 14.12.2018 as amended); bids must fit a prepayment made by 08:00.

From the published results per zone and hour the planner keeps, per hour of the day:

* the **offered volume** (the system operator's quota). Tomorrow's is not known when the prepayment is made, so the
  planner expects the `volume_quantile` of the last `days` published volumes of that hour (default: the median);
  it never bids more than that in the hour, since energy bid beyond what can be won only ties up prepayment.
* the **clearing price**: the lowest accepted price of that zone-hour. When miners asked for less than was offered
  (on average they bought 29 % of it in the first year), every bid at or above the floor won, and the clearing
  price is the floor. Its empirical distribution over the last days is the planner's chance to win at a price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

HOURS = 24


@dataclass(frozen=True, slots=True)
class ZoneHourResult:
    """One published zone-hour (or one recorded in a backtest)."""

    day: date
    zone: str
    hour: int
    offered_mwh: float  # the system operator's volume for miners
    sold_mwh: float | None = None  # what all miners bought
    clearing_kzt_per_mwh: float | None = None  # lowest accepted price (None: not published; floor if not rationed)


@dataclass(frozen=True, slots=True)
class ZoneOutlook:
    """The zone's auction tomorrow as the planner sees it: one entry per hour 1..24."""

    zone: str
    floor_kzt_per_mwh: float
    floor_source: str = ""
    expected_volume_mwh: tuple[float | None, ...] = field(default_factory=lambda: (None,) * HOURS)
    clearing_history: tuple[tuple[float, ...], ...] = field(default_factory=lambda: ((),) * HOURS)
    history_days: int = 0  # distinct days the history covers

    def win_probability(self, hour: int, price: float) -> float:
        """Share of past days whose clearing price this price would have met (1.0 with no history: every bid
        at or above the floor is assumed to win, as on most days of the first year)."""
        past = self.clearing_history[hour - 1]
        if price < self.floor_kzt_per_mwh - 1e-9:
            return 0.0
        if not past:
            return 1.0
        return sum(1 for c in past if c <= price + 1e-9) / len(past)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method), for plain lists."""
    xs = sorted(values)
    if not xs:
        raise ValueError("quantile of nothing")
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def zone_outlook(zone: str, floor_kzt_per_mwh: float, history: Sequence[ZoneHourResult], before: date,
                 days: int = 30, volume_quantile: float = 0.5, floor_source: str = "") -> ZoneOutlook:
    """The outlook for the day `before` from the zone's results of the `days` days before it."""
    rows = [r for r in history if r.zone == zone and r.day < before and (before - r.day).days <= days]
    volumes: list[list[float]] = [[] for _ in range(HOURS)]
    clearing: list[list[float]] = [[] for _ in range(HOURS)]
    for r in rows:
        if not 1 <= r.hour <= HOURS:
            continue
        volumes[r.hour - 1].append(r.offered_mwh)
        price = r.clearing_kzt_per_mwh
        rationed = r.sold_mwh is not None and r.sold_mwh >= r.offered_mwh - 1e-9
        if price is None and r.sold_mwh is not None and not rationed:
            price = floor_kzt_per_mwh  # everyone who bid won: the floor cleared
        if price is not None:
            clearing[r.hour - 1].append(max(price, floor_kzt_per_mwh))
    expected = tuple(quantile(v, volume_quantile) if v else None for v in volumes)
    return ZoneOutlook(zone, floor_kzt_per_mwh, floor_source, expected, tuple(tuple(c) for c in clearing),
                       len({r.day for r in rows}))
