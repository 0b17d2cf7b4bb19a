"""What one hour's value-of-energy curve costs: `planner.curve.energy_curve` (48 allocator runs) on the catalogue-mix
fleet of bench/allocation.py, for several fleet sizes; wall and CPU seconds, and the blocks it found.

A day costs one curve per distinct hour fleet (hours alike to 1 % share one), so a site whose derating differs in
every hour pays 24 of these. Run:  .venv/bin/python bench/plan_curve.py [--machines 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import time

from bench.allocation import build_fleet
from planner.curve import energy_curve
from quota.fleet import FleetArrays


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", default="1000,10000", help="comma-separated fleet sizes (default 1000,10000)")
    ap.add_argument("--points", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"{'machines':>9} {'MW':>8} {'runs':>5} {'wall s':>8} {'CPU s':>8} {'blocks':>6} {'s per run':>9}")
    for n in (int(x) for x in args.machines.split(",")):
        fleet = FleetArrays.from_machines(build_fleet(n, args.seed))
        w0, c0 = time.perf_counter(), time.process_time()
        curve = energy_curve(fleet, points=args.points)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        runs = len(curve.points) - 1
        print(f"{n:>9,} {curve.fleet_max_w / 1e6:>8.2f} {runs:>5} {wall:>8.2f} {cpu:>8.2f} {len(curve.blocks):>6} "
              f"{wall / runs:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
