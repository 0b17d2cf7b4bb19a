"""Maximise hash rate under a power budget for one group of machines: a single Lagrange multiplier, then repair.

For a price `lam` (TH/s per W) each machine independently picks the option maximising
``hash - lam * (power - idle_power)``: idle, a preset, or the best continuous point, where the continuous optimum
has marginal hash per W equal to `lam`. Total power falls as `lam` rises, so bisection on `lam` (in log space)
finds the cheapest price whose plan fits. The Lagrangian dual ``lam * E + sum(max(0, value))`` at any `lam` is an
upper bound on every feasible plan (it equals the continuous relaxation over each machine's convex hull at its
minimum), so the same pass yields the bound. The plan at the feasible price then leaves a little slack, which the
repair fills: continuous machines are raised along their curves (a second, fixed-choice bisection), discrete
upgrades (wake the best idle machine, move a preset up) are taken greedily by hash per W while they fit.

Board options (k of B hash boards at full ratio, firmware that switches single boards) are discrete options with
their own power column: a machine with them picks, at each price, the best of its own options (continuous or
presets), its board options and idle. They sit between underclocking and sleep: below the lowest power target a
machine can still hash on one board instead of sleeping.
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
    kind: I64  # -1 idle, 0..K-1 preset index, K continuous, K+1+j board option j
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

    def best(self, lam: float) -> tuple[F64, F64]:
        """Per machine (value, power) of its best choice at price `lam`, idle included."""
        power, hash_, _ = self.point(lam)
        value = hash_ - lam * (power - self.p0) + self.run_pen
        runs = value > self.idle_pen
        return np.where(runs, value, self.idle_pen), np.where(runs, power, self.p0)

    def choose(self, lam: float) -> tuple[BOOL, F64, F64, F64, F64]:
        """(runs, power, hash, ratio, value) at price `lam`."""
        power, hash_, ratio = self.point(lam)
        value = hash_ - lam * (power - self.p0) + self.run_pen
        runs = value > self.idle_pen
        best = np.where(runs, value, self.idle_pen)
        return runs, np.where(runs, power, self.p0), np.where(runs, hash_, 0.0), np.where(runs, ratio, 0.0), best


def _preset_options(ths: F64, k: F64, base: F64, nom: F64, gamma: F64, presets: F64) -> tuple[F64, F64, F64]:
    """(power, hash, ratio) of every preset from the curve (NaN power where a machine has fewer presets)."""
    missing = np.isnan(presets)
    r = np.where(missing, 0.0, presets)
    pp = k[:, None] * (base[:, None] + (nom - base)[:, None] * r ** gamma[:, None])
    return np.where(missing, np.nan, pp), ths[:, None] * r, r


class _Discrete:
    """Machines picking one of a few options or idle: presets (stock firmware), or board options. `pp`, `ph`,
    `ratio`: N x K power, hash and hash ratio of each option (NaN power: no such option)."""

    def __init__(self, pp: F64, ph: F64, ratio: F64, p0: F64, usable: BOOL, idle_ok: BOOL) -> None:
        missing = np.isnan(pp)
        self.ratio = np.where(missing, 0.0, ratio)
        self.pp = np.where(missing, 0.0, pp)
        self.ph = np.where(missing, 0.0, ph)
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

    def best(self, lam: float) -> tuple[F64, F64]:
        """Per machine (value, power) of its best choice at price `lam`, idle included."""
        value = self.ph - lam * (self.pp - self.p0[:, None]) + self.pen
        pick = np.argmax(value, axis=1)
        best = value[self.rows, pick]
        runs = best > self.idle_pen
        return np.where(runs, best, self.idle_pen), np.where(runs, self.pp[self.rows, pick], self.p0)

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
    board_p: F64 | None = None  # N x W power of board options (FleetArrays.board_options; NaN: none)
    board_h: F64 | None = None
    board_r: F64 | None = None  # hash ratio of each board option


class _Options:
    """Every option family of one group, combined per machine: continuous, presets, and board options (which a
    machine has besides its own continuous range or presets)."""

    def __init__(self, g: GroupInput) -> None:
        self.c_idx, self.d_idx = np.flatnonzero(g.cont), np.flatnonzero(~g.cont)
        c, d = self.c_idx, self.d_idx
        usable, idle_ok = ~g.forced_idle, ~g.forced_run | g.forced_idle
        self.cont = _Continuous(g.ths[c], g.k[c], g.base[c], g.nom[c], g.gamma[c], g.rmin[c], g.rmax[c], g.p0[c],
                                usable[c], idle_ok[c])
        self.disc = _Discrete(*_preset_options(g.ths[d], g.k[d], g.base[d], g.nom[d], g.gamma[d], g.presets[d]),
                              g.p0[d], usable[d], idle_ok[d])
        some = g.board_p is not None and g.board_p.shape[1] > 0
        self.b_idx = np.flatnonzero(~np.isnan(g.board_p).all(axis=1)) if some and g.board_p is not None \
            else np.zeros(0, dtype=np.int64)
        self.boards: _Discrete | None = None
        if len(self.b_idx):
            b = self.b_idx
            assert g.board_h is not None and g.board_r is not None and g.board_p is not None
            self.boards = _Discrete(g.board_p[b], g.board_h[b], g.board_r[b], g.p0[b], usable[b], idle_ok[b])
            # Board options are not on the concave side of a machine's other options (k boards at full ratio
            # hash in proportion to their power above the base, the curve does better): the price at which a
            # machine that must run drops from its lowest target to one board can exceed every average hash per
            # W. Above hash / 1 W every choice is its lowest-power one (options less than a watt apart tie).
            self._steep = float(np.max(g.ths[b] * g.rmax[b]))
        self.n = len(g.p0)

    @property
    def lam_max(self) -> float:
        steep = self._steep if self.boards is not None else 0.0
        return max(self.cont.lam_max, self.disc.lam_max, self.boards.lam_max if self.boards else 0.0, steep, 1e-12)

    @property
    def lam_min(self) -> float:
        return min(self.cont.lam_min, self.disc.lam_min, self.boards.lam_min if self.boards else np.inf)

    def totals(self, lam: float) -> tuple[float, float]:
        """(planned power, sum of values) at price `lam`."""
        if self.boards is None:  # the common case, kept lean: no per-machine merge
            pc, vc = self.cont.totals(lam)
            pd, vd = self.disc.totals(lam)
            return pc + pd, vc + vd
        value, power = np.empty(self.n), np.empty(self.n)
        value[self.c_idx], power[self.c_idx] = self.cont.best(lam)
        value[self.d_idx], power[self.d_idx] = self.disc.best(lam)
        vb, pb = self.boards.best(lam)
        take = vb > value[self.b_idx]
        value[self.b_idx] = np.where(take, vb, value[self.b_idx])
        power[self.b_idx] = np.where(take, pb, power[self.b_idx])
        return float(power.sum()), float(value.sum())


def solve_group(g: GroupInput, budget_w: float) -> GroupResult:
    """Plan one group under `budget_w` (total, idle draws included)."""
    opts = _Options(g)
    increment = budget_w - float(g.p0.sum())

    def total(lam: float) -> tuple[float, float]:
        """Planned power and Lagrangian bound at `lam`."""
        power, value = opts.totals(lam)
        return power, lam * increment + value

    lam_hi = opts.lam_max * 1.01
    p_top, bound = total(0.0)
    lam = 0.0
    if p_top > budget_w:
        p_floor, b = total(lam_hi)
        bound, lam = min(bound, b), lam_hi
        if p_floor <= budget_w:
            lo = max(min(opts.lam_min, lam_hi) * 0.25, lam_hi * 1e-12)
            lam, b = _bisect(total, lo, lam_hi, budget_w)
            bound = min(bound, b)
    return _repair(g, opts, lam, budget_w, bound)


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


def _repair(g: GroupInput, opts: _Options, lam: float, budget_w: float, bound: float) -> GroupResult:
    cont, c_idx = opts.cont, opts.c_idx
    n = len(g.p0)
    kind = np.full(n, -1, dtype=np.int64)
    power, hash_, ratio, value = g.p0.copy(), np.zeros(n), np.zeros(n), np.zeros(n)
    runs_c, pc, hc, rc, vc = cont.choose(lam)
    kd, pd, hd, rd, vd = opts.disc.choose(lam)
    width = g.presets.shape[1]
    kind[c_idx] = np.where(runs_c, width, -1)
    kind[opts.d_idx] = kd
    power[c_idx], hash_[c_idx], ratio[c_idx], value[c_idx] = pc, hc, rc, vc
    power[opts.d_idx], hash_[opts.d_idx], ratio[opts.d_idx], value[opts.d_idx] = pd, hd, rd, vd
    if opts.boards is not None:
        _take_boards(opts, lam, width, kind, power, hash_, ratio, value)
    over = max(0.0, float(power.sum()) - budget_w)
    if over == 0.0 and lam > 0:
        on_curve = kind[c_idx] == width
        headroom = bool(np.any(on_curve & (ratio[c_idx] < cont.rmax)))
        _upgrade_discrete(g, opts, width, budget_w, kind, power, hash_, ratio,
                          min_gain=lam * 0.999 if headroom else 0.0)
        _fill_continuous(cont, c_idx, kind == width, lam, budget_w, power, hash_, ratio)
    return GroupResult(kind, power, hash_, ratio, max(bound, float(hash_.sum())), over, lam)


def _take_boards(opts: _Options, lam: float, width: int, kind: I64, power: F64, hash_: F64, ratio: F64,
                 value: F64) -> None:
    """Where a board option is worth more at `lam` than the machine's own best choice, it takes it."""
    assert opts.boards is not None
    b = opts.b_idx
    kb, pb, hb, rb, vb = opts.boards.choose(lam)
    take = (kb >= 0) & (vb > value[b])
    sel = b[take]
    kind[sel], power[sel], hash_[sel], ratio[sel], value[sel] = width + 1 + kb[take], pb[take], hb[take], \
        rb[take], vb[take]


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


def _upgrade_discrete(g: GroupInput, opts: _Options, width: int, budget_w: float, kind: I64, power: F64,
                      hash_: F64, ratio: F64, min_gain: float) -> None:
    """Greedy by hash per W: wake idle machines at their smallest running option, move presets or boards up, a
    machine on boards onto its curve. Only upgrades worth at least `min_gain` TH/s per W (what raising continuous
    machines would give) are taken."""
    slack = budget_w - float(power.sum())
    cand_idx, cand_kind, cand_dp, cand_dh, cand_r = _candidates(g, opts, width, kind, power, hash_)
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
        ratio[i] = cand_r[j]


def _candidates(g: GroupInput, opts: _Options, width: int, kind: I64, power: F64,
                hash_: F64) -> tuple[I64, I64, F64, F64, F64]:
    """Upgrades: (machine, new kind, extra power, extra hash, new ratio)."""
    cont, disc, c_idx, d_idx = opts.cont, opts.disc, opts.c_idx, opts.d_idx
    low = (kind[c_idx] == -1) | (kind[c_idx] > width)  # idle, or on boards: onto the curve's low end
    c_ok = low & ~g.forced_idle[c_idx] & (cont.pmin > power[c_idx]) & (cont.hmin > hash_[c_idx])
    ci = c_idx[c_ok]
    idx, kinds, rs = [ci], [np.full(len(ci), width)], [cont.rmin[c_ok]]
    dps, dhs = [cont.pmin[c_ok] - power[ci]], [cont.hmin[c_ok] - hash_[ci]]
    families = [(disc, d_idx, 0)]
    if opts.boards is not None:
        families.append((opts.boards, opts.b_idx, width + 1))
    for fam, at, first in families:
        for j in range(fam.pp.shape[1]):
            ok = np.isfinite(fam.pen[:, j]) & (fam.ph[:, j] > hash_[at]) & (fam.pp[:, j] > power[at])
            di = at[ok]
            idx.append(di)
            kinds.append(np.full(len(di), first + j))
            rs.append(fam.ratio[ok, j])
            dps.append(fam.pp[ok, j] - power[di])
            dhs.append(fam.ph[ok, j] - hash_[di])
    return (np.concatenate(idx).astype(np.int64), np.concatenate(kinds).astype(np.int64),
            np.concatenate(dps), np.concatenate(dhs), np.concatenate(rs))
