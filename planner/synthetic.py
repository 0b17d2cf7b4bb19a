"""A SYNTHETIC market for backtests and the demo: every figure here is made up, shaped by what is public.

No machine-readable archive of KOREM's miners' auction is at hand, so the backtest runs on days generated here and
says so in its output. What shapes them (QUOTA.md, REGULATION.md):

* the system operator offers more at night (winter surplus) than in the evening peak, and miners bought on average
  about 29 % of what was offered (8-66 %) in the first year: most zone-hours are not rationed and clear at the floor;
* when demand exceeds the volume (mostly evening, sometimes daytime), the lowest accepted price rises above the floor
  (here 1.3-2.6 x the floor, uniform);
* hashprice wanders around 50 USD/PH/day (QUOTA.md's example figure), the USD rate around 500 KZT.

The generator is seeded: the same seed gives the same month.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from kuat.catalog import MODELS
from planner.backtest import BacktestConfig, BacktestSite, MarketDay, StrategyResult, run_backtest
from planner.bids import BidRules
from planner.curve import Curve, energy_curve
from planner.market import HOURS, ZoneHourResult
from quota.fleet import FleetArrays, Machine

LABEL = "SYNTHETIC market (planner.synthetic): volumes, clearing prices, hashprice and USD rate are generated"


def _offered(hour: int, rng: random.Random, scale_mwh: float) -> float:
    if hour <= 7 or hour >= 23:
        base = 1.6
    elif 17 <= hour <= 21:
        base = 0.35
    else:
        base = 0.9
    return max(0.0, scale_mwh * base * rng.uniform(0.6, 1.4))


def _rationed_chance(hour: int) -> float:
    if 17 <= hour <= 21:
        return 0.55
    if hour <= 7 or hour >= 23:
        return 0.05
    return 0.2


def market_days(start: date, days: int, zones: dict[str, float], scale_mwh: float = 5.0, seed: int = 1,
                hashprice0: float = 50.0, usd0: float = 500.0) -> list[MarketDay]:
    """`days` synthetic days from `start`; `zones` maps zone -> floor (KZT/MWh); `scale_mwh` is a typical hour's
    offered volume (a share of the zone's quota a site like ours could get)."""
    rng = random.Random(seed)
    hashprice, usd = hashprice0, usd0
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        hashprice = min(70.0, max(35.0, hashprice * (1 + rng.gauss(0, 0.03))))
        usd = usd * (1 + rng.gauss(0, 0.003))
        rows = []
        for zone, floor in zones.items():
            for hour in range(1, HOURS + 1):
                offered = _offered(hour, rng, scale_mwh)
                if rng.random() < _rationed_chance(hour):
                    clearing = floor * rng.uniform(1.3, 2.6)
                    sold = offered
                else:
                    clearing = floor
                    sold = offered * min(0.95, rng.uniform(0.08, 0.66))
                rows.append(ZoneHourResult(day, zone, hour, round(offered, 3), round(sold, 3), round(clearing, 0)))
        out.append(MarketDay(day, tuple(rows), round(hashprice, 2), round(usd, 2)))
    return out


FLEET_MIX: tuple[tuple[str, int, bool], ...] = (
    # (catalogue model, machines, continuous power target) on switched outlets; stock ones have presets 1.0 / 0.75
    ("S21", 300, False),
    ("S19j Pro", 400, True),
    ("S19", 300, False),
    ("M30S", 200, True),
    ("S9", 200, False),
)


def synthetic_fleet(mix: tuple[tuple[str, int, bool], ...] = FLEET_MIX) -> list[Machine]:
    """A mixed fleet of the catalogue's models (1,400 machines, about 4.2 MW at full by default)."""
    machines = []
    for model, count, target in mix:
        spec = MODELS[model]
        for i in range(count):
            machines.append(Machine(f"{model.replace(' ', '')}-{i:04d}", spec, power_target=target,
                                    presets=(1.0,) if target else (1.0, 0.75), sleep=True, outlet_switchable=True,
                                    reboots_on_power_change=spec.make == "Whatsminer"))  # fmt: skip
    return machines


def fleet_outages(days: int, seed: int = 1) -> list[float]:
    """Per day, the share of the fleet down (maintenance batches, a container's transformer, a batch of machines
    waiting for parts): none on about 60 % of days; otherwise 5-35 %, lasting 1-4 days. Rounded to 5 %."""
    rng = random.Random(seed * 7919 + 1)
    out: list[float] = []
    while len(out) < days:
        if rng.random() < 0.6:
            out.append(0.0)
            continue
        share = round(rng.uniform(0.05, 0.35) * 20) / 20
        out.extend([share] * rng.randint(1, 4))
    return out[:days]


def without_share(machines: list[Machine], share: float) -> list[Machine]:
    """The fleet with `share` of each model's machines down (the first ones of each model, deterministically)."""
    by_model: dict[str, list[Machine]] = {}
    for m in machines:
        by_model.setdefault(m.spec.key, []).append(m)
    return [m for ms in by_model.values() for m in ms[round(len(ms) * share):]]


@dataclass
class SyntheticRun:
    results: list[StrategyResult]
    header: str  # what was run, on what (starts with LABEL)
    footer: str  # the outages and the time taken


def synthetic_backtest(days: int = 30, warmup: int = 30, seed: int = 1, connection_mw: float = 4.0,
                       budget_mkzt: float | None = 2.5, volume_scale_mwh: float = 40.0, mining_fee: float = 2.0,
                       pool_fee: float = 0.02, floor: float = 18_000.0, zone: str = "north-south",
                       progress: Callable[[int], None] | None = None) -> SyntheticRun:
    """The backtest of `bench/plan_backtest.py` and `kuat plan backtest --synthetic`: the synthetic fleet with
    synthetic outages, a warm-up month of history, then `days` settled days."""
    t0 = time.perf_counter()
    machines = synthetic_fleet()
    market = market_days(date(2026, 10, 1), warmup + days, {zone: floor}, volume_scale_mwh, seed)
    outages = fleet_outages(days, seed)
    curves: dict[float, Curve] = {}
    for share in sorted({0.0, *outages}):
        curves[share] = energy_curve(FleetArrays.from_machines(without_share(machines, share)),
                                     extra_powers=[connection_mw * 1e6])
    t_curve = time.perf_counter() - t0
    history = [r for d in market[:warmup] for r in d.results]
    rules = BidRules(budget_kzt=None if budget_mkzt is None else budget_mkzt * 1e6, usable_share=0.9975)
    cfg = BacktestConfig({zone: floor}, rules, pool_fee=pool_fee, mining_fee_kzt_per_kwh=mining_fee)
    by_day = {d.day: curves[share] for d, share in zip(market[warmup:], outages, strict=True)}
    site = BacktestSite("dpc-1", zone, curves[0.0], connection_mw, by_day)
    t1 = time.perf_counter()
    results = run_backtest(market[warmup:], history, [site], cfg, progress)
    t_run = time.perf_counter() - t1
    budget = "none" if budget_mkzt is None else f"{budget_mkzt:g} M KZT/day"
    header = (f"{LABEL}\nbacktest {market[warmup].day} .. {market[-1].day} ({days} days after {warmup} of history, "
              f"seed {seed}); fleet {len(machines)} machines, {site.curve.fleet_max_w / 1e6:.2f} MW at full; "
              f"connection {connection_mw:g} MW; floor {floor:,.0f} KZT/MWh; prepayment {budget}; mining fee "
              f"{mining_fee:g} KZT/kWh; pool fee {pool_fee:.0%}")
    down = [f"{s:.0%}" for s in outages if s > 0]
    footer = (f"fleet down (SYNTHETIC outages, known the day before): {len(down)} of {days} days "
              f"({', '.join(down) or 'none'})\ncurves: {len(curves)} fleets x {len(site.curve.points) - 1} allocator "
              f"runs in {t_curve:.2f} s; backtest {t_run:.2f} s")
    return SyntheticRun(results, header, footer)
