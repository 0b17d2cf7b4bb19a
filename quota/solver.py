"""Maximise hash rate under a power budget for one group of machines: a single Lagrange multiplier, then repair.

For a price `lam` (TH/s per W) each machine independently picks the option maximising
``hash - lam * (power - idle_power)``: idle, a preset, or the best continuous point, where the continuous optimum
has marginal hash per W equal to `lam`. Total power falls as `lam` rises, so bisection on `lam` (in log space)
finds the cheapest price whose plan fits. The Lagrangian dual ``lam * E + sum(max(0, value))`` at any `lam` is an
upper bound on every feasible plan (it equals the continuous relaxation over each machine's convex hull at its
minimum), so the same pass yields the bound. The plan at the feasible price then leaves a little slack, which the
repair fills: continuous machines are raised along their curves (a second, fixed-choice bisection), discrete
upgrades (wake the best idle machine, move a preset up) are taken greedily by hash per W while they fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quota.fleet import BOOL, F64, I64

NEG = -np.inf
BISECT_STEPS = 26  # log-space steps over the fleet's price range: resolution ~1e-7 relative
FILL_STEPS = 30


@dataclass
class GroupResult:
    kind: I64  # -1 idle, 0..K-1 preset index, K continuous
    power: F64
    hash: F64
    ratio: F64  # hash ratio when running, 0 when idle
    bound_ths: float  # Lagrangian upper bound for this group and budget
    over_w: float  # > 0: even the floor (forced machines, idle draws) exceeds the budget
    price: float = 0.0  # the multiplier found: TH/s a watt is worth at the margin in this group


class _Continuous:
    """Machines with a continuous power target: closed-form optimum for a price."""

    def __init__(self, ths: F64, k: F64, base: F64, nom: F64, gamma: F64, rmin: F64, rmax: F64, p0: F64,
                 usable: BOOL, idle_ok: BOOL) -> None:
        span = k * (nom - base)
        self.ths, self.kb, self.span, self.gamma = ths, k * base, span, gamma
        self.rmin, self.rmax, self.p0 = rmin, rmax, p0
        self.exp = 1.0 / (gamma - 1.0)
        self.uniform = bool(np.all(gamma == gamma[0])) if len(gamma) else True
        self.g0 = float(gamma[0]) if len(gamma) else 2.0  # the common gamma when uniform (scalar powers: fast)
        self.a = (ths / (span * gamma)) ** self.exp  # x(lam) = a * lam ** -exp
        self.a_pow = span * self.a**gamma  # span * x**gamma = a_pow * s**gamma when x = a * s
        self.pmin = self.kb + span * rmin**gamma
        self.pmax = self.kb + span * rmax**gamma
        self.hmin, self.hmax = ths * rmin, ths * rmax
        self.run_pen = np.where(usable, 0.0, NEG)
        self.idle_pen = np.where(idle_ok, 0.0, NEG)
        steep = ths / (span * gamma * rmin ** (gamma - 1.0))
        avg = self.hmin / np.maximum(self.pmin - p0, 1e-9)
        self.lam_max = float(np.max(np.maximum(steep, avg), initial=0.0))
        flat = ths / (span * gamma * rmax ** (gamma - 1.0))  # below this price every runner is at full
        self.lam_min = float(np.min(np.where(usable, flat, np.inf), initial=np.inf))

    def point(self, lam: float) -> tuple[F64, F64, F64]:
        """Each machine's optimum (power, hash, ratio) at price `lam` if it runs; power is monotone in the ratio,
        so clipping the power to [pmin, pmax] is clipping the ratio."""
        if lam <= 0:
            return self.pmax, self.hmax, self.rmax
        s = lam ** (-1.0 / (self.g0 - 1.0)) if self.uniform else np.power(lam, -self.exp)
        ratio = np.minimum(np.maximum(self.a * s, self.rmin), self.rmax)
        sg = s**self.g0 if self.uniform else np.power(s, self.gamma)
        power = np.minimum(np.maximum(self.kb + self.a_pow * sg, self.pmin), self.pmax)
        return power, self.ths * ratio, ratio

    def totals(self, lam: float) -> tuple[float, float]:
        """(planned power, sum of values) at price `lam`: the bisection's inner loop, kept lean."""
        power, hash_, _ = self.point(lam)
        value = hash_ - lam * (power - self.p0) + self.run_pen
        runs = value > self.idle_pen
        return float(np.where(runs, power, self.p0).sum()), float(np.where(runs, value, self.idle_pen).sum())

    def choose(self, lam: float) -> tuple[BOOL, F64, F64, F64, F64]:
        """(runs, power, hash, ratio, value) at price `lam`."""
        power, hash_, ratio = self.point(lam)
        value = hash_ - lam * (power - self.p0) + self.run_pen
        runs = value > self.idle_pen
        best = np.where(runs, value, self.idle_pen)
        return runs, np.where(runs, power, self.p0), np.where(runs, hash_, 0.0), np.where(runs, ratio, 0.0), best


class _Discrete:
    """Machines with presets only (stock firmware): pick the best preset or idle."""

    def __init__(self, ths: F64, k: F64, base: F64, nom: F64, gamma: F64, presets: F64, p0: F64,
                 usable: BOOL, idle_ok: BOOL) -> None:
        missing = np.isnan(presets)
        r = np.where(missing, 0.0, presets)
        self.ratio = r
        self.pp = k[:, None] * (base[:, None] + (nom - base)[:, None] * r ** gamma[:, None])
        self.ph = ths[:, None] * r
        self.p0 = p0
        self.pen = np.where(missing | ~usable[:, None], NEG, 0.0)
        self.idle_pen = np.where(idle_ok, 0.0, NEG)
        avg = np.where(missing, 0.0, self.ph / np.maximum(self.pp - p0[:, None], 1e-9))
        self.lam_max = float(np.max(avg, initial=0.0))
        # below this price every machine prefers its top preset (column 0: presets are sorted high to low)
        top_gain = (self.ph[:, :1] - self.ph) / np.maximum(self.pp[:, :1] - self.pp, 1e-9)
        top_gain[:, 0] = avg[:, 0]
        self.lam_min = float(np.min(np.where(missing | ~usable[:, None], np.inf, top_gain), initial=np.inf))
        self.rows = np.arange(len(p0))

    def totals(self, lam: float) -> tuple[float, float]:
        value = self.ph - lam * (self.pp - self.p0[:, None]) + self.pen
        pick = np.argmax(value, axis=1)
        best = value[self.rows, pick]
        runs = best > self.idle_pen
        power = np.where(runs, self.pp[self.rows, pick], self.p0)
        return float(power.sum()), float(np.where(runs, best, self.idle_pen).sum())

    def choose(self, lam: float) -> tuple[I64, F64, F64, F64, F64]:
        """(preset index or -1, power, hash, ratio, value) at price `lam`."""
        value = self.ph - lam * (self.pp - self.p0[:, None]) + self.pen
        pick = np.argmax(value, axis=1)
        best = value[self.rows, pick]
        runs = best > self.idle_pen
        kind = np.where(runs, pick, -1)
        power = np.where(runs, self.pp[self.rows, pick], self.p0)
        hash_ = np.where(runs, self.ph[self.rows, pick], 0.0)
        ratio = np.where(runs, self.ratio[self.rows, pick], 0.0)
        return kind, power, hash_, ratio, np.where(runs, best, self.idle_pen)


@dataclass
class GroupInput:
    ths: F64
    k: F64
    base: F64
    nom: F64
    gamma: F64
    rmin: F64
    rmax: F64
    cont: BOOL
    presets: F64
    p0: F64  # idle draw (sleep or 0 for outlet off)
    forced_run: BOOL
    forced_idle: BOOL


def solve_group(g: GroupInput, budget_w: float) -> GroupResult:
    """Plan one group under `budget_w` (total, idle draws included)."""
    c_idx, d_idx = np.flatnonzero(g.cont), np.flatnonzero(~g.cont)
    usable, idle_ok = ~g.forced_idle, ~g.forced_run | g.forced_idle
    cont = _Continuous(g.ths[c_idx], g.k[c_idx], g.base[c_idx], g.nom[c_idx], g.gamma[c_idx], g.rmin[c_idx],
                       g.rmax[c_idx], g.p0[c_idx], usable[c_idx], idle_ok[c_idx])
    disc = _Discrete(g.ths[d_idx], g.k[d_idx], g.base[d_idx], g.nom[d_idx], g.gamma[d_idx], g.presets[d_idx],
                     g.p0[d_idx], usable[d_idx], idle_ok[d_idx])
    increment = budget_w - float(g.p0.sum())

    def total(lam: float) -> tuple[float, float]:
        """Planned power and Lagrangian bound at `lam`."""
        pc, vc = cont.totals(lam)
        pd, vd = disc.totals(lam)
        return pc + pd, lam * increment + vc + vd

    lam_hi = max(cont.lam_max, disc.lam_max, 1e-12) * 1.01
    p_top, bound = total(0.0)
    lam = 0.0
    if p_top > budget_w:
        p_floor, b = total(lam_hi)
        bound, lam = min(bound, b), lam_hi
        if p_floor <= budget_w:
            lo = max(min(cont.lam_min, disc.lam_min, lam_hi) * 0.25, lam_hi * 1e-12)
            lam, b = _bisect(total, lo, lam_hi, budget_w)
            bound = min(bound, b)
    return _repair(g, cont, disc, c_idx, d_idx, lam, budget_w, bound)


def _bisect(total: Callable[[float], tuple[float, float]], lo: float, hi: float,
            budget_w: float) -> tuple[float, float]:
    """Cheapest price whose plan fits (log-space bisection); also the lowest dual value seen."""
    bound = math.inf
    for _ in range(BISECT_STEPS):
        mid = math.sqrt(lo * hi)
        p, b = total(mid)
        bound = min(bound, b)
        if p <= budget_w:
            hi = mid
        else:
            lo = mid
    return hi, bound


def _repair(g: GroupInput, cont: _Continuous, disc: _Discrete, c_idx: I64, d_idx: I64, lam: float,
            budget_w: float, bound: float) -> GroupResult:
    n = len(g.p0)
    kind = np.full(n, -1, dtype=np.int64)
    power, hash_, ratio = g.p0.copy(), np.zeros(n), np.zeros(n)
    runs_c, pc, hc, rc, _ = cont.choose(lam)
    kd, pd, hd, rd, _ = disc.choose(lam)
    width = g.presets.shape[1]
    kind[c_idx] = np.where(runs_c, width, -1)
    kind[d_idx] = kd
    power[c_idx], hash_[c_idx], ratio[c_idx] = pc, hc, rc
    power[d_idx], hash_[d_idx], ratio[d_idx] = pd, hd, rd
    over = max(0.0, float(power.sum()) - budget_w)
    if over == 0.0 and lam > 0:
        headroom = bool(np.any(runs_c & (rc < cont.rmax)))
        _upgrade_discrete(g, cont, disc, c_idx, d_idx, width, budget_w, kind, power, hash_, ratio,
                          min_gain=lam * 0.999 if headroom else 0.0)
        _fill_continuous(cont, c_idx, kind == width, lam, budget_w, power, hash_, ratio)
    return GroupResult(kind, power, hash_, ratio, max(bound, float(hash_.sum())), over, lam)


def _fill_continuous(cont: _Continuous, c_idx: I64, running: BOOL, lam: float, budget_w: float,
                     power: F64, hash_: F64, ratio: F64) -> None:
    """Raise running continuous machines along their curves (choices fixed) to use the slack exactly."""
    on = running[c_idx]
    if not on.any():
        return
    sel = c_idx[on]
    now_p, now_h, now_r = power[sel], hash_[sel], ratio[sel]
    fixed = float(power.sum() - now_p.sum())
    sub = _Continuous.__new__(_Continuous)
    for name in ("ths", "kb", "gamma", "rmin", "rmax", "exp", "a", "a_pow", "pmin", "pmax", "hmax"):
        setattr(sub, name, getattr(cont, name)[on])
    sub.uniform, sub.g0 = cont.uniform, cont.g0

    def at(price: float) -> tuple[F64, F64, F64]:
        p, h, r = sub.point(price)
        return np.maximum(p, now_p), np.maximum(h, now_h), np.maximum(r, now_r)

    p, h, r = at(0.0)
    if fixed + float(p.sum()) > budget_w:
        lo, hi = lam, lam
        while fixed + float(at(lo)[0].sum()) <= budget_w and lo > lam * 1e-9:
            hi, lo = lo, lo / 8
        for _ in range(FILL_STEPS):
            mid = math.sqrt(lo * hi)
            if fixed + float(at(mid)[0].sum()) <= budget_w:
                hi = mid
            else:
                lo = mid
        p, h, r = at(hi)
    power[sel], hash_[sel], ratio[sel] = p, h, r


def _upgrade_discrete(g: GroupInput, cont: _Continuous, disc: _Discrete, c_idx: I64, d_idx: I64, width: int,
                      budget_w: float, kind: I64, power: F64, hash_: F64, ratio: F64, min_gain: float) -> None:
    """Greedy by hash per W: wake idle machines at their smallest running option, move presets up. Only upgrades
    worth at least `min_gain` TH/s per W (what raising continuous machines would give) are taken."""
    slack = budget_w - float(power.sum())
    cand_idx, cand_kind, cand_dp, cand_dh = _candidates(g, cont, disc, c_idx, d_idx, width, kind, power, hash_)
    gain = cand_dh / np.maximum(cand_dp, 1e-9)
    order = np.argsort(-gain, kind="stable")
    order = order[gain[order] >= min_gain]
    taken = np.zeros(len(cand_idx), dtype=np.bool_)
    for _ in range(6):
        free = order[~taken[order]]
        free = free[cand_dp[free] <= slack]
        if len(free) == 0:
            break
        fits = np.cumsum(cand_dp[free]) <= slack
        pick = free[fits] if fits.any() else free[:1]
        taken[pick] = True
        slack -= float(cand_dp[pick].sum())
    _, seen = np.unique(cand_idx[taken], return_index=True)  # one upgrade per machine (slack counted for all)
    for j in np.flatnonzero(taken)[seen]:
        i = int(cand_idx[j])
        kind[i] = cand_kind[j]
        power[i] += cand_dp[j]
        hash_[i] += cand_dh[j]
        if cand_kind[j] == width:
            ratio[i] = cont.rmin[np.searchsorted(c_idx, i)]
        else:
            ratio[i] = disc.ratio[np.searchsorted(d_idx, i), cand_kind[j]]


def _candidates(g: GroupInput, cont: _Continuous, disc: _Discrete, c_idx: I64, d_idx: I64, width: int,
                kind: I64, power: F64, hash_: F64) -> tuple[I64, I64, F64, F64]:
    c_ok = (kind[c_idx] == -1) & ~g.forced_idle[c_idx]
    ci = c_idx[c_ok]
    idx, kinds = [ci], [np.full(len(ci), width)]
    dps, dhs = [cont.pmin[c_ok] - g.p0[ci]], [cont.hmin[c_ok]]
    for j in range(disc.pp.shape[1]):
        ok = np.isfinite(disc.pen[:, j]) & (disc.ph[:, j] > hash_[d_idx]) & (disc.pp[:, j] > power[d_idx])
        di = d_idx[ok]
        idx.append(di)
        kinds.append(np.full(len(di), j))
        dps.append(disc.pp[ok, j] - power[di])
        dhs.append(disc.ph[ok, j] - hash_[di])
    return (np.concatenate(idx).astype(np.int64), np.concatenate(kinds).astype(np.int64),
            np.concatenate(dps), np.concatenate(dhs))
