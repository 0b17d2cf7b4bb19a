"""Backtest of the day-ahead bid planner against two baselines, side by side, on a SYNTHETIC month.

The market (volumes, clearing prices, hashprice, USD rate) comes from `planner.synthetic` and is labelled as such in
the output: no archive of the miners' auction is at hand. A warm-up month gives the planner its history; the
backtest month then settles the three strategies (planner.backtest): the planner's bids, the connection bought flat
at one price, and yesterday's use bought at that price.

Run:  .venv/bin/python bench/plan_backtest.py [--days 30] [--warmup 30] [--seed 1] [--budget-mkzt 2.5]
(same as `kuat plan backtest --synthetic`)
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from planner.backtest import BacktestConfig, BacktestSite, run_backtest, table
from planner.bids import BidRules
from planner.curve import Curve, energy_curve
from planner.synthetic import LABEL, fleet_outages, market_days, synthetic_fleet, without_share
from quota.fleet import FleetArrays

ZONE, FLOOR = "north-south", 18_000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30, help="days backtested (default 30)")
    ap.add_argument("--warmup", type=int, default=30, help="days of history before them (default 30)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connection-mw", type=float, default=4.0)
    ap.add_argument("--budget-mkzt", type=float, default=2.5, help="prepayment per day, million KZT (default 2.5)")
    ap.add_argument("--volume-scale-mwh", type=float, default=40.0, help="typical hour's offered volume (MWh)")
    ap.add_argument("--mining-fee", type=float, default=2.0, help="KZT per kWh (default 2.0, a setting)")
    ap.add_argument("--pool-fee", type=float, default=0.02)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    machines = synthetic_fleet()
    fleet = FleetArrays.from_machines(machines)
    days = market_days(date(2026, 10, 1), args.warmup + args.days, {ZONE: FLOOR}, args.volume_scale_mwh, args.seed)
    outages = fleet_outages(args.days, args.seed)
    curves: dict[float, Curve] = {}
    for share in sorted(set(outages)):
        curves[share] = energy_curve(FleetArrays.from_machines(without_share(machines, share)),
                                     extra_powers=[args.connection_mw * 1e6])
    t_curve = time.perf_counter() - t0
    history = [r for d in days[: args.warmup] for r in d.results]
    cfg = BacktestConfig({ZONE: FLOOR}, BidRules(budget_kzt=args.budget_mkzt * 1e6, usable_share=0.9975),
                         pool_fee=args.pool_fee, mining_fee_kzt_per_kwh=args.mining_fee)
    by_day = {d.day: curves[share] for d, share in zip(days[args.warmup:], outages, strict=True)}
    site = BacktestSite("dpc-1", ZONE, curves[0.0] if 0.0 in curves else energy_curve(fleet), args.connection_mw,
                        by_day)
    t1 = time.perf_counter()
    results = run_backtest(days[args.warmup:], history, [site], cfg,
                           progress=lambda n: print(f"\rday {n}/{args.days}", end="", file=sys.stderr))
    print(file=sys.stderr)
    t_run = time.perf_counter() - t1
    first, last = days[args.warmup].day, days[-1].day
    print(table(results, f"{LABEL}\nbacktest {first} .. {last} ({args.days} days, seed {args.seed}); fleet "
                         f"{len(fleet)} machines, {site.curve.fleet_max_w / 1e6:.2f} MW at full; connection "
                         f"{args.connection_mw:g} MW; floor {FLOOR:,.0f} KZT/MWh; prepayment "
                         f"{args.budget_mkzt:g} M KZT/day; mining fee {args.mining_fee:g} KZT/kWh; pool fee "
                         f"{args.pool_fee:.0%}"))  # fmt: skip
    down = [f"{s:.0%}" for s in outages if s > 0]
    print(f"\nfleet down (SYNTHETIC outages, known the day before): {len(down)} of {args.days} days "
          f"({', '.join(down)})")
    print(f"curves: {len(curves)} fleets x {len(next(iter(curves.values())).points) - 1} allocator runs in "
          f"{t_curve:.2f} s; backtest {t_run:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
