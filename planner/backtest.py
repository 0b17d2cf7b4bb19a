"""Backtest: the planner's bids against two baselines over recorded (or synthetic, labelled) market days.

Every day the three strategies bid knowing only what a bidder knows by 08:00 that day: the results of earlier days
(volumes, clearing prices) and the day before's hashprice and USD rate. The recorded day then settles them:

* a step wins when its price is at least the zone-hour's clearing price (ties win), from the top; a zone-hour never
  gives more than the system operator offered;
* pay-as-bid: each won step costs its own price;
* the site uses `usable_share` of what it won, at most what that day's fleet draws (energy won for machines that are
  down is paid and lost), hashing along its curve (the allocator's bound), and earns that day's hashprice at that
  day's USD rate less the pool fee; the mining fee is paid on what is used.

Strategies:

* **planner**: `planner.bids.plan_bids` with the zone's outlook from the history so far.
* **flat**: the connection capacity every hour, one step at one price: floor + shade x (average value of the
  fleet's energy at the connection - floor); the prepayment scales every hour down alike.
* **yesterday**: what the site used in each hour the day before, priced like flat. An hour in which it won nothing
  the day before (so used nothing) falls back to the connection, as it does on the first day: read literally, one
  lost hour would stop it from ever bidding in that hour again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from planner.bids import BidRules, SiteHour, Step, plan_bids
from planner.curve import Curve
from planner.economics import Economics
from planner.market import HOURS, ZoneHourResult, zone_outlook


@dataclass(frozen=True, slots=True)
class MarketDay:
    day: date
    results: tuple[ZoneHourResult, ...]  # the zone-hours as published (the market without us)
    hashprice_usd_per_ph_day: float
    usd_kzt: float


@dataclass(frozen=True, slots=True)
class BacktestSite:
    site: str
    zone: str
    curve: Curve  # the fleet's curve (every hour of a day alike)
    connection_mwh: float
    curves: dict[date, Curve] = field(default_factory=dict)  # days whose fleet differs (machines down): known the
    # day before, as the planner knows tomorrow's fleet from today's

    def on(self, day: date) -> Curve:
        return self.curves.get(day, self.curve)


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    floors: dict[str, float]  # zone -> KZT/MWh
    rules: BidRules
    pool_fee: float = 0.0
    mining_fee_kzt_per_kwh: float = 0.0
    history_days: int = 30
    volume_quantile: float = 0.5
    baseline_shade: float = 0.5


@dataclass
class StrategyResult:
    name: str
    bid_mwh: float = 0.0
    won_mwh: float = 0.0
    cost_kzt: float = 0.0
    revenue_kzt: float = 0.0
    fee_kzt: float = 0.0
    ths_hours: float = 0.0
    days: int = 0
    losing_days: int = 0
    prepaid_kzt: float = 0.0
    daily_margin: list[float] = field(default_factory=list)

    @property
    def margin_kzt(self) -> float:
        return self.revenue_kzt - self.fee_kzt - self.cost_kzt

    @property
    def avg_price(self) -> float:
        return self.cost_kzt / self.won_mwh if self.won_mwh else 0.0

    @property
    def avg_ths(self) -> float:
        return self.ths_hours / (self.days * HOURS) if self.days else 0.0


Strategy = Callable[[MarketDay, Sequence[ZoneHourResult], dict[str, list[float]], Economics], list[Step]]


def _econ(cfg: BacktestConfig, hashprice: float, usd: float) -> Economics:
    return Economics(hashprice, usd, cfg.pool_fee, cfg.mining_fee_kzt_per_kwh, "backtest", "backtest", "backtest")


def planner_strategy(sites: Sequence[BacktestSite], cfg: BacktestConfig) -> Strategy:
    def bid(day: MarketDay, history: Sequence[ZoneHourResult], used: dict[str, list[float]],
            econ: Economics) -> list[Step]:
        outlooks = {z: zone_outlook(z, f, history, day.day, cfg.history_days, cfg.volume_quantile)
                    for z, f in cfg.floors.items()}
        site_hours = [SiteHour(s.site, s.zone, h, s.on(day.day), s.connection_mwh) for s in sites
                      for h in range(1, 25)]  # fmt: skip
        return plan_bids(site_hours, outlooks, econ, cfg.rules, price_constraints=False).steps()

    return bid


def _one_price(curve: Curve, connection_mwh: float, floor: float, econ: Economics, cfg: BacktestConfig) -> float:
    """floor + shade x (average value of the fleet's energy at the connection - floor), for the fleet it knows
    (the one of the first day: these baselines do not follow the fleet's outages)."""
    used = min(connection_mwh * cfg.rules.usable_share, curve.max_mwh)
    bought = used / cfg.rules.usable_share
    avg = (econ.revenue_kzt(curve.ths_at(used)) - econ.fee_kzt_per_mwh * used) / bought if bought else 0.0
    return max(floor, floor + cfg.baseline_shade * (avg - floor))


def _single_steps(sites: Sequence[BacktestSite], cfg: BacktestConfig, econ: Economics,
                  qty: Callable[[BacktestSite, int], float]) -> list[Step]:
    steps = []
    for s in sites:
        price = _one_price(s.curve, s.connection_mwh, cfg.floors[s.zone], econ, cfg)
        for h in range(1, HOURS + 1):
            q = qty(s, h)
            if q > 0:
                steps.append(Step(s.zone, h, 1, q, price, price, price, s.curve.ths_at(q * cfg.rules.usable_share),
                                  1.0, "one price", ((s.site, q),)))  # fmt: skip
    budget = cfg.rules.budget_kzt
    total = sum(x.cost_kzt for x in steps)
    if budget is not None and total > budget:
        k = budget / total
        steps = [replace(x, mwh=x.mwh * k, sites=tuple((a, q * k) for a, q in x.sites)) for x in steps]
    return steps


def flat_strategy(sites: Sequence[BacktestSite], cfg: BacktestConfig) -> Strategy:
    def bid(day: MarketDay, history: Sequence[ZoneHourResult], used: dict[str, list[float]],
            econ: Economics) -> list[Step]:
        return _single_steps(sites, cfg, econ, lambda s, h: s.connection_mwh)

    return bid


def yesterday_strategy(sites: Sequence[BacktestSite], cfg: BacktestConfig) -> Strategy:
    def bid(day: MarketDay, history: Sequence[ZoneHourResult], used: dict[str, list[float]],
            econ: Economics) -> list[Step]:
        def qty(s: BacktestSite, h: int) -> float:
            before = used.get(s.site)
            if before is None or before[h - 1] <= 0:
                return s.connection_mwh
            return min(s.connection_mwh, before[h - 1] / cfg.rules.usable_share)

        return _single_steps(sites, cfg, econ, qty)

    return bid


def settle(steps: Sequence[Step], day: MarketDay, floors: dict[str, float]) -> dict[tuple[str, int], list[Step]]:
    """The steps the recorded day accepts, per (zone, hour), filled from the top within the offered volume."""
    market = {(r.zone, r.hour): r for r in day.results}
    won: dict[tuple[str, int], list[Step]] = {}
    for key in sorted({(s.zone, s.hour) for s in steps}):
        r = market.get(key)
        if r is None:
            continue
        clearing = r.clearing_kzt_per_mwh if r.clearing_kzt_per_mwh is not None else floors[key[0]]
        left = r.offered_mwh
        for s in sorted((s for s in steps if (s.zone, s.hour) == key), key=lambda s: -s.price_kzt_per_mwh):
            if s.price_kzt_per_mwh + 1e-9 < clearing or left <= 1e-12:
                continue
            take = min(s.mwh, left)
            k = take / s.mwh
            won.setdefault(key, []).append(replace(s, mwh=take, sites=tuple((a, q * k) for a, q in s.sites)))
            left -= take
    return won


def run_backtest(days: Sequence[MarketDay], history: Sequence[ZoneHourResult], sites: Sequence[BacktestSite],
                 cfg: BacktestConfig, progress: Callable[[int], None] | None = None) -> list[StrategyResult]:
    """Run the three strategies over `days`, each day seeing `history` plus the days already settled."""
    strategies = {"planner": planner_strategy(sites, cfg), "flat connection": flat_strategy(sites, cfg),
                  "yesterday's use": yesterday_strategy(sites, cfg)}  # fmt: skip
    results = {name: StrategyResult(name) for name in strategies}
    used: dict[str, dict[str, list[float]]] = {name: {} for name in strategies}
    seen = list(history)
    by_site = {s.site: s for s in sites}
    previous: MarketDay | None = None
    for n, day in enumerate(days):
        known = previous or day  # the first day knows its own hashprice: there is no earlier one in the data
        forecast = _econ(cfg, known.hashprice_usd_per_ph_day, known.usd_kzt)
        actual = _econ(cfg, day.hashprice_usd_per_ph_day, day.usd_kzt)
        for name, strategy in strategies.items():
            steps = strategy(day, seen, used[name], forecast)
            res = results[name]
            res.days += 1
            res.bid_mwh += sum(s.mwh for s in steps)
            res.prepaid_kzt += sum(s.cost_kzt for s in steps)
            margin = 0.0
            today = {s.site: [0.0] * HOURS for s in sites}
            for (_, hour), won in settle(steps, day, cfg.floors).items():
                per_site: dict[str, float] = {}
                for s in won:
                    res.won_mwh += s.mwh
                    res.cost_kzt += s.cost_kzt
                    margin -= s.cost_kzt
                    for site, q in s.sites:
                        per_site[site] = per_site.get(site, 0.0) + q
                for site, q in per_site.items():
                    curve = by_site[site].on(day.day)
                    use = min(q * cfg.rules.usable_share, curve.max_mwh)  # won beyond what the fleet draws: lost
                    ths = curve.ths_at(use)
                    today[site][hour - 1] += use
                    res.ths_hours += ths
                    rev, fee = actual.revenue_kzt(ths), actual.fee_kzt_per_mwh * use
                    res.revenue_kzt += rev
                    res.fee_kzt += fee
                    margin += rev - fee
            used[name] = today
            res.daily_margin.append(margin)
            res.losing_days += margin < 0
        seen.extend(day.results)
        previous = day
        if progress is not None:
            progress(n + 1)
    return list(results.values())


def table(results: Sequence[StrategyResult], label: str) -> str:
    """The strategies side by side (plain text, one column each)."""
    rows = [
        ("bid, MWh", lambda r: f"{r.bid_mwh:,.1f}"),
        ("won, MWh", lambda r: f"{r.won_mwh:,.1f}"),
        ("paid, M KZT", lambda r: f"{r.cost_kzt / 1e6:,.2f}"),
        ("avg price paid, KZT/MWh", lambda r: f"{r.avg_price:,.0f}"),
        ("revenue after pool fee, M KZT", lambda r: f"{r.revenue_kzt / 1e6:,.2f}"),
        ("mining fee, M KZT", lambda r: f"{r.fee_kzt / 1e6:,.2f}"),
        ("margin, M KZT", lambda r: f"{r.margin_kzt / 1e6:,.2f}"),
        ("margin per MWh won, KZT", lambda r: f"{r.margin_kzt / r.won_mwh:,.0f}" if r.won_mwh else "-"),
        ("average hash rate, PH/s", lambda r: f"{r.avg_ths / 1000:,.2f}"),
        ("days with a loss", lambda r: f"{r.losing_days} of {r.days}"),
        ("prepaid (all bids), M KZT", lambda r: f"{r.prepaid_kzt / 1e6:,.2f}"),
    ]
    base = next((r for r in results if r.name == "planner"), None)
    width = max(len(r.name) for r in results) + 2
    head = f"{label}\n{'':32}" + "".join(f"{r.name:>{max(width, 16)}}" for r in results)
    lines = [head]
    for title, f in rows:
        lines.append(f"{title:32}" + "".join(f"{f(r):>{max(width, 16)}}" for r in results))
    if base is not None:
        lines.append(f"{'planner margin vs this':32}" + "".join(
            f"{_vs(base, r):>{max(width, 16)}}" for r in results))
    return "\n".join(lines)


def _vs(base: StrategyResult, other: StrategyResult) -> str:
    if other is base:
        return "-"
    diff = base.margin_kzt - other.margin_kzt
    return f"{diff / 1e6:+,.2f} M"
