"""Stepwise price-quantity bids per zone and hour, under every constraint of the auction, and what each one cost.

Per zone and hour:

1. **Blocks.** Every site's curve (planner.curve) is cut at the site's connection capacity for the hour; the blocks
   of all sites of the zone are merged by falling value (for concave curves this is the best split of any amount of
   energy between the sites). A block's value is what its MWh earn net of pool fee and mining fee
   (planner.economics); the site uses `usable_share` of what it bought (the quota loop holds back its energy
   margin), so a bought MWh is worth that share of a used one, and the fee is paid on what is used.
2. **Floor.** A block worth less than the zone's floor is not bid: no allowed price would pay for it.
3. **Volume.** No more than the system operator's expected volume of the hour (planner.market) is bid.
4. **Steps.** The blocks are grouped into at most `max_steps` steps so that pricing each step at its lowest block's
   value gives up the least value (an exact dynamic programme over the sorted blocks). A step is therefore never
   priced above the value of the least valuable MWh it buys.
5. **Shading for pay-as-bid.** A winner pays its own price, so bidding the value earns nothing. With the zone-hour's
   clearing prices of the last days (planner.market) the price is the best response to their empirical
   distribution: the candidate b in {floor} U {past clearing prices in [floor, cap]} that maximises
   (step's average value - b) x P(clearing <= b), the higher b on a tie. With no history it is
   floor + `shade` x (cap - floor). Prices never rise from one step to the next (a lower step never outbids a
   higher one), are rounded down to `price_tick_kzt` (never up past the value) and never fall below the floor.
6. **Prepayment.** Over the whole day the bids must fit `budget_kzt` (price x quantity of every step, won or not).
   If they do not, the step with the least expected margin per tenge prepaid is cut first, always the bottom step
   of its hour, the last one cut only as far as needed.

The cost of a constraint is the expected margin the plan gains when that constraint alone is lifted (plan again
without it): what the connection, the expected volume, the floor, the prepayment and the step limit each cost.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from planner.curve import Curve
from planner.economics import Economics
from planner.errors import PlannerProblems
from planner.market import HOURS, ZoneOutlook

EPS = 1e-9


@dataclass(frozen=True, slots=True)
class SiteHour:
    """One site's curve for one hour (sampled up to what its fleet can draw) and its connection capacity."""

    site: str
    zone: str
    hour: int
    curve: Curve
    connection_mwh: float  # connection less reserved headroom, over one hour


@dataclass(frozen=True, slots=True)
class BidRules:
    max_steps: int = 5
    price_tick_kzt: float = 1.0
    lot_mwh: float = 0.001  # quantities are rounded down to this (1 kWh)
    shade: float = 0.5  # without history: floor + shade x (value - floor)
    budget_kzt: float | None = None  # prepayment; None: unlimited
    usable_share: float = 1.0  # share of a purchase the site may use (1 - the quota loop's energy margin)
    use_connection: bool = True  # the flags below exist to price each constraint: plan again with one lifted
    use_volume: bool = True
    use_floor: bool = True

    def check(self) -> None:
        p = PlannerProblems()
        if self.max_steps < 1:
            p.add("max_steps", "must be at least 1")
        if not self.price_tick_kzt > 0:
            p.add("price_tick_kzt", "must be positive")
        if not self.lot_mwh > 0:
            p.add("lot_mwh", "must be positive")
        if not 0 <= self.shade <= 1:
            p.add("shade", "must be in [0, 1]")
        if self.budget_kzt is not None and not (math.isfinite(self.budget_kzt) and self.budget_kzt >= 0):
            p.add("budget_kzt", "must be a non-negative number of tenge")
        if not 0 < self.usable_share <= 1:
            p.add("usable_share", "must be in (0, 1]")
        p.raise_if_any()


@dataclass(frozen=True, slots=True)
class _Piece:
    site: str
    mwh: float  # bought MWh
    ths: float  # TH/s (hour average) it adds
    value: float  # KZT per bought MWh, net of pool fee and mining fee


@dataclass(frozen=True, slots=True)
class Step:
    zone: str
    hour: int
    step: int  # 1 = highest price
    mwh: float
    price_kzt_per_mwh: float
    value_kzt_per_mwh: float  # the least valuable MWh of the step: the price never exceeds it
    avg_value_kzt_per_mwh: float
    ths: float  # hash rate the step adds (hour average)
    win_probability: float
    price_rule: str  # "best response to N days", "shade 0.5 (no history)", "floor", "capped by the step above"
    sites: tuple[tuple[str, float], ...]  # (site, MWh) of this step

    @property
    def cost_kzt(self) -> float:
        return self.mwh * self.price_kzt_per_mwh

    @property
    def expected_margin_kzt(self) -> float:
        return self.win_probability * self.mwh * (self.avg_value_kzt_per_mwh - self.price_kzt_per_mwh)


@dataclass(frozen=True, slots=True)
class HourLimits:
    """The quantities that bound one zone-hour's bid, and which one binds."""

    fleet_mwh: float  # what the fleets could use
    connection_mwh: float
    above_floor_mwh: float  # of what the connection allows, the part worth at least the floor
    volume_mwh: float | None  # the system operator's expected volume
    bid_mwh: float  # after steps, rounding and the prepayment
    binding: str  # "fleet", "connection", "floor", "volume", "prepayment"


@dataclass
class ZoneHourPlan:
    zone: str
    hour: int
    steps: list[Step]
    limits: HourLimits


@dataclass
class Summary:
    bid_mwh: float = 0.0
    prepayment_kzt: float = 0.0  # what the bids need prepaid (every step, won or not)
    expected_mwh: float = 0.0
    expected_cost_kzt: float = 0.0
    expected_revenue_kzt: float = 0.0  # after pool fee
    expected_fee_kzt: float = 0.0  # mining fee on the energy used
    expected_margin_kzt: float = 0.0
    expected_avg_ths: float = 0.0  # the day's average hash rate if the expected energy is won
    all_win_avg_ths: float = 0.0


@dataclass
class BidPlan:
    zones: list[str]
    hours: list[ZoneHourPlan]
    summary: Summary
    economics: Economics
    rules: BidRules
    constraint_costs: dict[str, float] = field(default_factory=dict)  # constraint -> KZT of expected margin

    def steps(self) -> list[Step]:
        return [s for h in self.hours for s in h.steps]


def _pieces(site_hours: Sequence[SiteHour], econ: Economics, rules: BidRules) -> tuple[list[_Piece], float, float]:
    """Every site's blocks cut at its connection, in bought MWh, merged by falling value. Also the fleet's and the
    connection's MWh."""
    pieces, fleet_mwh, conn_mwh = [], 0.0, 0.0
    for sh in site_hours:
        fleet_mwh += sh.curve.max_mwh / rules.usable_share
        conn_mwh += sh.connection_mwh
        cap_used = sh.connection_mwh * rules.usable_share if rules.use_connection else math.inf
        for b in sh.curve.blocks:
            used = min(b.mwh, cap_used - b.start_mwh)
            if used <= EPS:
                break
            ths = b.ths * used / b.mwh
            bought = used / rules.usable_share
            value = (econ.revenue_kzt(ths) - econ.fee_kzt_per_mwh * used) / bought
            pieces.append(_Piece(sh.site, bought, ths, value))
    pieces.sort(key=lambda p: -p.value)
    return pieces, fleet_mwh, conn_mwh


def _group(pieces: Sequence[_Piece], max_steps: int) -> list[list[_Piece]]:
    """Split value-sorted pieces into at most `max_steps` contiguous groups minimising the value given up by
    pricing each group at its lowest value: sum over pieces of (value - group's last value) x MWh."""
    n = len(pieces)
    if n <= max_steps:
        return [[p] for p in pieces]
    k = max_steps
    # prefix sums of MWh and value x MWh
    e, ve = [0.0], [0.0]
    for p in pieces:
        e.append(e[-1] + p.mwh)
        ve.append(ve[-1] + p.value * p.mwh)

    def loss(i: int, j: int) -> float:  # group pieces[i:j], priced at pieces[j-1].value
        return (ve[j] - ve[i]) - pieces[j - 1].value * (e[j] - e[i])

    inf = math.inf
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for g in range(1, k + 1):
        for j in range(1, n + 1):
            for i in range(g - 1, j):
                if best[g - 1][i] < inf:
                    c = best[g - 1][i] + loss(i, j)
                    if c < best[g][j] - 1e-12:
                        best[g][j], cut[g][j] = c, i
    g = min(range(1, k + 1), key=lambda q: (best[q][n], q))
    groups, j = [], n
    while g > 0:
        i = cut[g][j]
        groups.append(list(pieces[i:j]))
        j, g = i, g - 1
    return groups[::-1]


def _price(cap: float, avg: float, outlook: ZoneOutlook, hour: int, rules: BidRules, floor: float
           ) -> tuple[float, str]:
    """The shaded price of a step worth at least `cap` (and `avg` on average) per MWh."""
    past = outlook.clearing_history[hour - 1]
    if past:
        candidates = {floor, *(c for c in past if floor <= c <= cap)}
        best = max(candidates, key=lambda b: ((avg - b) * outlook.win_probability(hour, b), b))
        rule = f"best response to {len(past)} days of clearing prices"
    else:
        best = floor + rules.shade * (cap - floor)
        rule = f"floor + {rules.shade:g} x (value - floor), no history"
    return best, rule


def _round_price(p: float, floor: float, tick: float) -> float:
    down = math.floor(p / tick + 1e-9) * tick
    return max(floor, down)


def _round_mwh(q: float, lot: float) -> float:
    return math.floor(q / lot + 1e-9) * lot


def plan_zone_hour(site_hours: Sequence[SiteHour], outlook: ZoneOutlook, hour: int, econ: Economics,
                   rules: BidRules) -> ZoneHourPlan:
    """The bid of one zone for one hour (before the day's prepayment is applied)."""
    floor = outlook.floor_kzt_per_mwh
    pieces, fleet_mwh, conn_mwh = _pieces(site_hours, econ, rules)
    allowed = sum(p.mwh for p in pieces)
    pieces = [p for p in pieces if p.value >= floor and p.value > 0]
    above_floor = sum(p.mwh for p in pieces)
    volume = outlook.expected_volume_mwh[hour - 1] if rules.use_volume else None
    if volume is not None:
        kept, left = [], volume
        for p in pieces:
            if left <= EPS:
                break
            part = min(p.mwh, left)
            kept.append(replace(p, mwh=part, ths=p.ths * part / p.mwh))
            left -= part
        pieces = kept
    steps: list[Step] = []
    prev_price = math.inf
    for group in _group(pieces, rules.max_steps):
        mwh = _round_mwh(sum(p.mwh for p in group), rules.lot_mwh)
        if mwh <= 0:
            continue
        total = sum(p.mwh for p in group)
        cap = group[-1].value
        avg = sum(p.value * p.mwh for p in group) / total
        price, rule = _price(cap, avg, outlook, hour, rules, floor)
        if price > prev_price:
            price, rule = prev_price, "capped by the step above"
        price = _round_price(price, floor, rules.price_tick_kzt)
        if price <= floor + EPS and rule != "capped by the step above":
            rule = f"floor ({rule})"
        prev_price = price
        sites: dict[str, float] = {}
        for p in group:
            sites[p.site] = sites.get(p.site, 0.0) + p.mwh * mwh / total
        steps.append(Step(outlook.zone, hour, len(steps) + 1, mwh, price, cap, avg,
                          sum(p.ths for p in group) * mwh / total, outlook.win_probability(hour, price), rule,
                          tuple(sorted(sites.items()))))  # fmt: skip
    bid = sum(s.mwh for s in steps)
    binding = _binding(fleet_mwh, conn_mwh if rules.use_connection else math.inf, allowed, above_floor, volume, bid)
    return ZoneHourPlan(outlook.zone, hour, steps,
                        HourLimits(fleet_mwh, conn_mwh, above_floor, volume, bid, binding))  # fmt: skip


def _binding(fleet: float, conn: float, allowed: float, above_floor: float, volume: float | None,
             bid: float) -> str:
    if volume is not None and volume < above_floor - 1e-6:
        return "volume"
    if above_floor < allowed - 1e-6:
        return "floor"
    return "connection" if conn < fleet - 1e-6 else "fleet"


def _fit_budget(hours: list[ZoneHourPlan], budget: float, lot: float) -> None:
    """Cut bottom steps, least expected margin per tenge prepaid first, until the day's bids fit `budget`."""
    total = sum(s.cost_kzt for h in hours for s in h.steps)
    excess = total - budget
    if excess <= 1e-6:
        return

    def ratio(s: Step) -> float:
        return s.win_probability * (s.avg_value_kzt_per_mwh - s.price_kzt_per_mwh) / s.price_kzt_per_mwh

    heap = [(ratio(h.steps[-1]), n) for n, h in enumerate(hours) if h.steps]
    heapq.heapify(heap)
    while excess > 1e-6 and heap:
        _, n = heapq.heappop(heap)
        h = hours[n]
        s = h.steps[-1]
        if s.cost_kzt <= excess + 1e-6:
            h.steps.pop()
            excess -= s.cost_kzt
        else:
            keep = _round_mwh((s.cost_kzt - excess) / s.price_kzt_per_mwh, lot)
            share = keep / s.mwh
            if keep <= 0:
                h.steps.pop()
                excess -= s.cost_kzt
            else:
                h.steps[-1] = replace(s, mwh=keep, ths=s.ths * share,
                                      sites=tuple((site, q * share) for site, q in s.sites))
                excess -= s.cost_kzt - h.steps[-1].cost_kzt
        if h.steps and h.steps[-1] is not s:
            heapq.heappush(heap, (ratio(h.steps[-1]), n))
        bid = sum(x.mwh for x in h.steps)
        if bid < h.limits.bid_mwh - 1e-9:
            h.limits = replace(h.limits, bid_mwh=bid, binding="prepayment")


def summarise(hours: Sequence[ZoneHourPlan], site_hours: Sequence[SiteHour], econ: Economics,
              rules: BidRules) -> Summary:
    s = Summary()
    for h in hours:
        for st in h.steps:
            used = st.mwh * rules.usable_share
            s.bid_mwh += st.mwh
            s.prepayment_kzt += st.cost_kzt
            s.expected_mwh += st.win_probability * st.mwh
            s.expected_cost_kzt += st.win_probability * st.cost_kzt
            s.expected_revenue_kzt += st.win_probability * econ.revenue_kzt(st.ths)
            s.expected_fee_kzt += st.win_probability * used * econ.fee_kzt_per_mwh
            s.expected_avg_ths += st.win_probability * st.ths / HOURS
            s.all_win_avg_ths += st.ths / HOURS
    s.expected_margin_kzt = s.expected_revenue_kzt - s.expected_fee_kzt - s.expected_cost_kzt
    return s


def without_floor(outlook: ZoneOutlook) -> ZoneOutlook:
    """The zone as if it had no floor: hours that cleared at the floor (nobody rationed) would have cleared at
    zero; rationed hours keep their clearing prices."""
    floor = outlook.floor_kzt_per_mwh
    history = tuple(tuple(0.0 if c <= floor + EPS else c for c in hour) for hour in outlook.clearing_history)
    return replace(outlook, floor_kzt_per_mwh=0.0, clearing_history=history)


def _plan(site_hours: Sequence[SiteHour], outlooks: dict[str, ZoneOutlook], econ: Economics,
          rules: BidRules) -> BidPlan:
    rules.check()
    zones = sorted(outlooks)
    hours = []
    for zone in zones:
        outlook = outlooks[zone] if rules.use_floor else without_floor(outlooks[zone])
        for hour in range(1, HOURS + 1):
            mine = [sh for sh in site_hours if sh.zone == zone and sh.hour == hour]
            hours.append(plan_zone_hour(mine, outlook, hour, econ, rules))
    if rules.budget_kzt is not None:
        _fit_budget(hours, rules.budget_kzt, rules.lot_mwh)
    return BidPlan(zones, hours, summarise(hours, site_hours, econ, rules), econ, rules)


CONSTRAINTS = {
    "connection": {"use_connection": False},
    "volume": {"use_volume": False},
    "floor": {"use_floor": False},
    "prepayment": {"budget_kzt": None},
    "steps": {"max_steps": 1000},
}


def plan_bids(site_hours: Sequence[SiteHour], outlooks: dict[str, ZoneOutlook], econ: Economics,
              rules: BidRules, price_constraints: bool = True) -> BidPlan:
    """The day's bids for every zone in `outlooks` and what each constraint cost (expected margin, KZT)."""
    problems = PlannerProblems()
    for sh in site_hours:
        if sh.zone not in outlooks:
            problems.add("zone", f"site {sh.site} is in zone {sh.zone!r}, which has no floor or outlook")
        if not 1 <= sh.hour <= HOURS:
            problems.add("hour", f"must be 1..{HOURS} (got {sh.hour})")
    problems.raise_if_any()
    plan = _plan(site_hours, outlooks, econ, rules)
    if price_constraints:
        for name, lift in CONSTRAINTS.items():
            relaxed = _plan(site_hours, outlooks, econ, replace(rules, **lift))  # type: ignore[arg-type]
            plan.constraint_costs[name] = max(0.0, relaxed.summary.expected_margin_kzt
                                              - plan.summary.expected_margin_kzt)
    return plan
