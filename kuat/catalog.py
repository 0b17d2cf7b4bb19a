"""Mining-machine models: nominal figures and the power/hash-rate curve used by the simulator and the quota engine.

Figures are the public specs from shared/domain/DEVICES.md. The curve is the usual dynamic-power model:
hash rate is proportional to clock frequency f and power to f*V^2 with V rising with f, which fits, for the
S19j Pro, 74.5 TH/s at 1905 W against 96 TH/s at 2850 W (cut 22 % of hash rate, save 33 % of power):

    P(x) = P_base + (P_nom - P_base) * x ** gamma,   x = hash rate / nominal hash rate

with P_base the fans and control board while hashing and gamma about 1.7. Sleep draws `sleep_w` (tens of
watts, not zero); only a PDU outlet cut is 0 W.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    key: str  # catalogue key, e.g. "S19j Pro"
    make: str  # "Antminer", "Whatsminer", "Avalon"
    nominal_ths: float
    nominal_w: float
    boards: int
    chips_per_board: int
    min_ratio: float = 0.5  # deepest underclock the firmware allows, as a share of nominal hash rate
    max_ratio: float = 1.0  # no overclock by default: setpoints never exceed nominal
    gamma: float = 1.7
    base_w: float = 60.0  # fans and control board while hashing
    sleep_w: float = 25.0  # boards (and on LuxOS the PSU) off, control board up

    @property
    def j_per_th(self) -> float:
        return self.nominal_w / self.nominal_ths

    @property
    def min_power_w(self) -> float:
        return power_at_ratio(self, self.min_ratio)

    @property
    def max_power_w(self) -> float:
        return power_at_ratio(self, self.max_ratio)


def power_at_ratio(spec: ModelSpec, ratio: float) -> float:
    """Wall power (W) when hashing at `ratio` of nominal hash rate."""
    return spec.base_w + (spec.nominal_w - spec.base_w) * max(ratio, 0.0) ** spec.gamma


def ratio_at_power(spec: ModelSpec, watts: float) -> float:
    """Inverse of `power_at_ratio`, clamped to the model's [min_ratio, max_ratio]."""
    span = spec.nominal_w - spec.base_w
    if watts <= spec.base_w:
        return spec.min_ratio
    ratio = float(((watts - spec.base_w) / span) ** (1.0 / spec.gamma))
    return min(max(ratio, spec.min_ratio), spec.max_ratio)


def hashrate_at_power(spec: ModelSpec, watts: float) -> float:
    """TH/s a machine of this model delivers under a power target of `watts` (nominal unit)."""
    if watts < spec.min_power_w:
        return 0.0
    return spec.nominal_ths * ratio_at_power(spec, watts)


_MODELS = [
    ModelSpec("S9", "Antminer", 13.5, 1323, 3, 63, base_w=40, sleep_w=15),
    ModelSpec("S17", "Antminer", 56, 2520, 3, 48),
    ModelSpec("S19", "Antminer", 95, 3250, 3, 76),
    ModelSpec("S19 Pro", "Antminer", 110, 3250, 3, 114),
    ModelSpec("S19j Pro", "Antminer", 104, 3068, 3, 126),
    ModelSpec("S19 XP", "Antminer", 140, 3010, 3, 110),
    ModelSpec("S21", "Antminer", 200, 3500, 3, 108),
    ModelSpec("M30S", "Whatsminer", 88, 3344, 3, 148, sleep_w=30),
    ModelSpec("M31S", "Whatsminer", 76.7, 3553, 3, 148, sleep_w=30),
    ModelSpec("M50", "Whatsminer", 118, 3422, 3, 156, sleep_w=30),
    ModelSpec("M60", "Whatsminer", 172, 3420, 3, 160, sleep_w=30),
    ModelSpec("A1246", "Avalon", 90, 3420, 3, 120, sleep_w=35),
]
MODELS: dict[str, ModelSpec] = {m.key: m for m in _MODELS}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


_BY_NORM = {_norm(k): m for k, m in MODELS.items()}


def lookup(model: str | None) -> ModelSpec | None:
    """Find a model by any spelling firmware uses: "Antminer S19j Pro", "S19J PRO", "M31S+", "WhatsMiner M30S".

    Exact match on the normalised name first; then the longest catalogue key the name ends with, so
    "ANTMINER S19J PRO" finds "S19j Pro" and not "S19".
    """
    if not model:
        return None
    n = _norm(model)
    for prefix in ("ANTMINER", "WHATSMINER", "AVALONMINER", "AVALON"):
        if n.startswith(prefix) and len(n) > len(prefix):
            n = n[len(prefix) :]
            break
    if n in _BY_NORM:
        return _BY_NORM[n]
    n = n.rstrip("VX0123456789") if n.startswith("M") and n not in _BY_NORM else n
    candidates = [(len(k), m) for k, m in _BY_NORM.items() if n.startswith(k)]
    return max(candidates, key=lambda c: c[0])[1] if candidates else None
