"""Board options: how often the allocator plans machines on k of B hash boards, and what that gains.

For a few fleets it sweeps budgets from 1 to 100 % of the fleet's full power and plans each twice, with and without
board control (`Machine.boards`), printing how many machine plans used boards, the largest hash-rate gain and the
smallest (negative would be a loss), and the CPU per allocate. The fleets: six S19j Pro whose power targets stop
at 90 % or 70 % of their hash rate (a firmware minimum or a learnt floor), six without a power target, six with
the catalogue's full range, and a mixed fleet where half the machines can switch boards. Figures in
docs/decisions.md (Per-hashboard control).

Run:  .venv/bin/python bench/quota_boards.py [--budgets 200] [--mixed 300]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from kuat.catalog import MODELS, ModelSpec
from quota.allocate import Mode, allocate
from quota.fleet import FleetArrays, Machine

S19J = MODELS["S19j Pro"]


def narrow(spec: ModelSpec, min_ratio: float) -> ModelSpec:
    return replace(spec, min_ratio=min_ratio)


def mixed(n: int, seed: int) -> list[Machine]:
    rng = np.random.default_rng(seed)
    specs = [S19J, MODELS["S21"], MODELS["M30S"], MODELS["S9"], MODELS["S19 XP"]]
    out = []
    for i in range(n):
        spec = specs[int(rng.integers(len(specs)))]
        style = int(rng.integers(3))
        if style == 1 and rng.random() < 0.5:
            spec = narrow(spec, float(rng.uniform(0.55, 0.95)))
        out.append(Machine(f"m{i}", spec, power_target=style == 1, presets=(1.0, 0.75) if style == 0 else (1.0,),
                           boards=bool(rng.random() < 0.5), power_factor=float(rng.uniform(0.95, 1.05)),
                           hash_factor=float(rng.uniform(0.97, 1.03)), outlet_switchable=bool(rng.integers(2))))
    return out


def sweep(label: str, machines: list[Machine], budgets: int) -> None:
    able = FleetArrays.from_machines(machines)
    unable = FleetArrays.from_machines([replace(m, boards=False) for m in machines])
    top = float(able.max_power.sum())
    used, gains, cpu = 0, [], 0.0
    for share in np.linspace(0.01, 1.0, budgets):
        start = time.process_time()
        a = allocate(able, top * float(share))
        cpu += time.process_time() - start
        b = allocate(unable, top * float(share))
        used += int((a.mode == Mode.BOARDS).sum())
        gains.append(a.total_ths - b.total_ths)
    print(f"{label:<34} {top / 1e3:8.1f} kW  on boards {used:4d}  gain max {max(gains):7.2f} TH/s  "
          f"min {min(gains):8.4f} TH/s  {cpu / budgets * 1e3:6.1f} ms/allocate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=200)
    parser.add_argument("--mixed", type=int, default=300)
    args = parser.parse_args()
    six = range(6)
    sweep("6 S19j Pro, targets stop at 90 %", [Machine(f"b{i}", narrow(S19J, 0.9), power_target=True, boards=True)
                                               for i in six], args.budgets)  # fmt: skip
    sweep("6 S19j Pro, targets stop at 70 %", [Machine(f"b{i}", narrow(S19J, 0.7), power_target=True, boards=True)
                                               for i in six], args.budgets)  # fmt: skip
    sweep("6 S19j Pro, no power target", [Machine(f"b{i}", S19J, boards=True) for i in six], args.budgets)
    sweep("6 S19j Pro, full target range", [Machine(f"b{i}", S19J, power_target=True, boards=True) for i in six],
          args.budgets)
    sweep(f"{args.mixed} mixed, half with boards", mixed(args.mixed, seed=11), args.budgets)


if __name__ == "__main__":
    main()
