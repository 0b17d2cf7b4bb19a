"""Backtest of the day-ahead bid planner against two baselines, side by side, on a SYNTHETIC month.

The market (volumes, clearing prices, hashprice, USD rate) and the fleet's outages come from `planner.synthetic`
and are labelled as such in the output: no archive of the miners' auction is at hand. A warm-up month gives the
planner its history; the backtest month then settles the three strategies (planner.backtest): the planner's bids,
the connection bought flat at one price, and yesterday's use bought at that price.

Run:  .venv/bin/python bench/plan_backtest.py [--days 30] [--warmup 30] [--seed 1] [--budget-mkzt 2.5]
(the same as `kuat plan backtest`)
"""

from __future__ import annotations

import argparse
import sys

from planner.backtest import table
from planner.synthetic import synthetic_backtest


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
    run = synthetic_backtest(args.days, args.warmup, args.seed, args.connection_mw, args.budget_mkzt,
                             args.volume_scale_mwh, args.mining_fee, args.pool_fee,
                             progress=lambda n: print(f"\rday {n}/{args.days}", end="", file=sys.stderr))
    print(file=sys.stderr)
    print(table(run.results, run.header))
    print()
    print(run.footer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
