"""The fleet's demand curve for one hour: how much hash rate each amount of energy buys, and what each MWh adds.

The curve is the quota allocator's own relaxation bound (`quota.allocate.allocate(...).bound_ths`, the Lagrangian
dual of `quota.solver`), evaluated at a grid of site powers from 0 to what the fleet can draw. That bound is "fill
the cap in order of marginal TH/s per W" over every machine's convex hull, with the allocator's hard rules in force
(non-compliant machines at zero, protected machines running, tenants' shares of the budget), and it is concave in
the power, so its slopes fall: the first MWh runs the best machines at their best points, the last MWh the worst.
An hour holds the site at one power in steady state, so the planning policy has no churn or ramp rules (min on/off,
wake limits, reboot hysteresis): they shape minutes, not the hour's energy. Priorities are an operator's cut order,
not a difference in what a machine earns: the planner flattens them.

A block of the curve is one segment of the upper concave hull of the sampled points, anchored at (0 W, 0 TH/s): its
slope is the hash rate per watt the block adds, and so its value per MWh (planner.economics). Machines that cannot
be switched off still draw their sleep power; the anchor at zero spreads that floor over the first block, so the
first block's value already pays for the idle draws. Sampling a concave function and taking chords under-states it
between samples: the curve never promises more hash per watt than the bound.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from quota.allocate import Policy, allocate
from quota.fleet import FleetArrays, Now

DEFAULT_POINTS = 48
SAME_SLOPE = 1e-5  # blocks whose TH/s per W differ by less than this (relative) are one block


@dataclass(frozen=True, slots=True)
class CurvePoint:
    power_w: float
    bound_ths: float  # the allocator's relaxation bound at this site power
    plan_ths: float  # what the allocator's plan reaches at this power (<= bound)
    price_ths_per_w: float  # the solver's Lagrange multiplier: marginal TH/s per W at this power (hungriest pool)


@dataclass(frozen=True, slots=True)
class Block:
    """One segment of the concave curve: `mwh` more energy in the hour adds `ths` TH/s on average over the hour."""

    start_mwh: float
    mwh: float
    ths: float

    @property
    def end_mwh(self) -> float:
        return self.start_mwh + self.mwh

    @property
    def ths_per_w(self) -> float:
        return self.ths / (self.mwh * 1e6) if self.mwh > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Curve:
    """One hour's curve: sampled points, hull blocks, what the fleet can draw and the floor it draws idle."""

    points: tuple[CurvePoint, ...]
    blocks: tuple[Block, ...]
    fleet_max_w: float  # everything that may run, at full
    floor_w: float  # idle draws of machines that cannot be switched off (and protected machines' minimum)
    machines: int

    def ths_at(self, mwh: float) -> float:
        """Hash rate (TH/s, the hour's average) that `mwh` of energy buys along the hull (linear inside a block)."""
        total = 0.0
        for b in self.blocks:
            if mwh <= b.start_mwh:
                break
            total += b.ths * min(1.0, (mwh - b.start_mwh) / b.mwh)
        return total

    @property
    def max_mwh(self) -> float:
        return self.blocks[-1].end_mwh if self.blocks else 0.0


def planning_fleet(fleet: FleetArrays) -> FleetArrays:
    """The fleet as it would run in steady state for a whole hour: every machine free to run or idle (no min on/off
    lock, no pinned limit, no reboot hysteresis), priorities flattened. Compliance, protection, capabilities, owners
    and observed factors stay as they are."""
    n = len(fleet)
    return replace(fleet, now=np.full(n, int(Now.RUNNING), dtype=np.int64), since_change=np.full(n, math.inf),
                   current_w=np.full(n, math.nan), reboots=np.zeros(n, dtype=np.bool_),
                   priority=np.zeros(n, dtype=np.int64))  # fmt: skip


def planning_policy(tenant_shares: dict[str, float] | None = None, lend_unused_share: bool = True) -> Policy:
    return Policy(min_on_s=0.0, min_off_s=0.0, max_wakes=None, max_wake_w=None, hysteresis_w=0.0,
                  tenant_shares=dict(tenant_shares or {}), lend_unused_share=lend_unused_share,
                  cut_outlets_below_floor=True)  # fmt: skip


def fleet_max_w(fleet: FleetArrays) -> float:
    """What the fleet draws with every machine that may run at full (non-compliant machines idle)."""
    idle = np.where(fleet.can_off & ~fleet.compliant, 0.0, fleet.sleep_w)
    return float(np.where(fleet.compliant, fleet.max_power, idle).sum())


def fleet_floor_w(fleet: FleetArrays) -> float:
    """What the fleet draws at least: sleep power of machines without a switchable outlet, protected machines at
    their lowest running point (they are never slept)."""
    idle = np.where(fleet.can_off, 0.0, fleet.sleep_w)
    forced = fleet.protected & fleet.compliant
    return float(np.where(forced, fleet.min_run_power, idle).sum())


def energy_curve(fleet: FleetArrays, policy: Policy | None = None, max_w: float | None = None,
                 points: int = DEFAULT_POINTS, extra_powers: Sequence[float] = ()) -> Curve:
    """Sample the allocator's bound on `points` powers between the floor and min(fleet max, `max_w`), and at
    `extra_powers` inside that range (the connection limit, so the curve has a vertex exactly there)."""
    fleet = planning_fleet(fleet)
    policy = policy or planning_policy()
    top = fleet_max_w(fleet) if max_w is None else min(max_w, fleet_max_w(fleet))
    floor = fleet_floor_w(fleet)
    sampled = [CurvePoint(0.0, 0.0, 0.0, 0.0)]
    if len(fleet) and top > floor:
        grid = {floor + (top - floor) * i / points for i in range(1, points + 1)}
        grid |= {p for p in extra_powers if floor < p < top}
        for p in sorted(grid):
            plan = allocate(fleet, p, policy)
            running = plan.hash_ths > 0
            price = float(plan.price[running].max()) if running.any() else 0.0
            sampled.append(CurvePoint(p, max(plan.bound_ths, plan.total_ths), plan.total_ths, price))
    return Curve(tuple(sampled), hull_blocks(sampled), fleet_max_w(fleet), floor, len(fleet))


def hull_blocks(points: Sequence[CurvePoint]) -> tuple[Block, ...]:
    """Upper concave hull of (power, bound) from the origin, as blocks of falling slope (MWh of one hour)."""
    hull: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda q: q.power_w):
        xy = (p.power_w, p.bound_ths)
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], xy) >= 0:
            hull.pop()
        hull.append(xy)
    # keep only the rising part: past the last sample nothing more can be drawn, and a flat tail buys nothing
    blocks: list[Block] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(hull):
        if not (x1 > x0 and y1 > y0):
            continue
        b = Block(x0 / 1e6, (x1 - x0) / 1e6, y1 - y0)
        if blocks and math.isclose(blocks[-1].ths_per_w, b.ths_per_w, rel_tol=SAME_SLOPE):
            last = blocks.pop()  # the bound is a bisection's: samples on one line wobble by ~1e-7
            b = Block(last.start_mwh, last.mwh + b.mwh, last.ths + b.ths)
        blocks.append(b)
    return tuple(blocks)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """> 0: o -> a -> b turns left (a lies under the chord o-b, so it is not on the upper hull)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def marginal_ths_per_w(curve: Curve, mwh: float) -> float:
    """The hull's slope at `mwh` (the block it falls in; 0 past the end)."""
    for b in curve.blocks:
        if b.start_mwh <= mwh < b.end_mwh:
            return b.ths_per_w
    return 0.0
