"""The fleet as the allocator sees it: one `Machine` per miner, turned into numpy columns once per dispatch.

A machine's curve is the catalogue's (kuat.catalog): hash = nominal * x, power = base + (nom - base) * x**gamma
for x in [min_ratio, max_ratio], scaled by the machine's observed factors (measured W / model W at the same
state; measured TH/s / model TH/s). Asleep it draws `sleep_w` and hashes nothing; with its outlet cut it draws 0.

Firmware that switches single hash boards (`boards`: Braiins OS, where the capability matrix verified it) has one
more kind of option: k of its B boards hashing at full ratio, the others off. The control board and fans stay
(`base`); each live board carries its share of the hashing power: power = base + (P(1) - base) x k / B, hash =
TH/s x k / B (the simulator's physics, checked on the wire by tests/agent/test_braiins_sim.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property

import numpy as np
import numpy.typing as npt

from kuat.catalog import ModelSpec, power_at_ratio

F64 = npt.NDArray[np.float64]
BOOL = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


class Now(IntEnum):
    """What the machine is doing now (from telemetry)."""

    RUNNING = 0
    SLEEPING = 1
    OFF = 2  # outlet cut, or unreachable and drawing nothing


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    spec: ModelSpec
    owner: str = "host"  # the HSC's owner: the host (subtype I) or a subtype-II tenant
    power_target: bool = False  # firmware takes a continuous power target in [min_w, max_w]
    presets: tuple[float, ...] = (1.0,)  # hash-rate ratios the firmware can select (stock Antminer: 1.0, 0.75)
    sleep: bool = True  # firmware can sleep / wake
    outlet_switchable: bool = False  # sits on a switched PDU outlet we may cut
    power_factor: float = 1.0  # observed W / model W at the same state
    hash_factor: float = 1.0  # observed TH/s / model TH/s
    protected: bool = False  # never slept or cut (it may still be underclocked)
    priority: int = 0  # higher is cut later
    compliant: bool = True  # False: registry violation -> zero hash rate
    now: Now = Now.RUNNING
    since_change_s: float = math.inf  # seconds since it last went on or off
    current_power_w: float | None = None  # power target now in force, if any
    reboots_on_power_change: bool = False  # Whatsminer: a new limit costs minutes of zero hash
    boards: bool = False  # firmware switches single hash boards (Capabilities.boards); spec.boards of them

    def power_w(self, ratio: float) -> float:
        return self.power_factor * power_at_ratio(self.spec, ratio)


@dataclass
class FleetArrays:
    """Column form of a fleet (built once; the allocator never loops over machines in Python)."""

    ids: list[str]
    owners: list[str]  # owner name per code
    owner: I64
    ths: F64  # nominal TH/s x hash factor
    k: F64  # power factor
    base: F64
    nom: F64
    gamma: F64
    rmin: F64
    rmax: F64
    sleep_w: F64
    cont: BOOL
    presets: F64  # N x K ratios, NaN where a machine has fewer presets
    can_sleep: BOOL
    can_off: BOOL
    protected: BOOL
    priority: I64
    compliant: BOOL
    now: I64
    since_change: F64
    current_w: F64  # NaN: no power target in force
    reboots: BOOL
    nboards: I64  # hash boards of the model
    can_boards: BOOL  # single boards can be switched off

    def __len__(self) -> int:
        return len(self.ids)

    def power(self, x: F64) -> F64:
        return np.asarray(self.k * (self.base + (self.nom - self.base) * np.power(x, self.gamma)), dtype=np.float64)

    def power_matrix(self) -> F64:
        """Power of every preset (N x K; NaN where a machine has fewer presets)."""
        k, base, span, gamma = (a[:, None] for a in (self.k, self.base, self.nom - self.base, self.gamma))
        return np.asarray(k * (base + span * np.power(self.presets, gamma)), dtype=np.float64)

    @cached_property
    def board_options(self) -> tuple[F64, F64, I64]:
        """Options of k boards of B at full ratio, k = B-1 down to 1 (N x W columns, highest first as presets;
        NaN power and hash where a machine has fewer boards or cannot switch them): power, hash and the number of
        boards on (0 where unused)."""
        usable = self.can_boards & (self.nboards >= 2)
        width = int(self.nboards[usable].max() - 1) if usable.any() else 0
        on = np.arange(width, 0, -1, dtype=np.int64)[None, :]
        valid = usable[:, None] & (on < self.nboards[:, None])
        share = on / np.maximum(self.nboards, 1)[:, None]
        top = np.minimum(self.rmax, 1.0)
        full = self.power(top)
        base = self.k * self.base
        power = np.where(valid, base[:, None] + (full - base)[:, None] * share, np.nan)
        hash_ = np.where(valid, (self.ths * top)[:, None] * share, np.nan)
        return power, hash_, np.where(valid, on, 0).astype(np.int64)

    @cached_property
    def max_power(self) -> F64:
        """Power at the best running option (full continuous target or the highest preset)."""
        top = np.where(self.cont, self.rmax, np.nanmax(np.where(np.isnan(self.presets), -1.0, self.presets), axis=1))
        return self.power(top)

    @cached_property
    def min_run_power(self) -> F64:
        """Power at the lowest running option (deepest underclock, the lowest preset, or the fewest boards)."""
        low = np.where(self.cont, self.rmin, np.nanmin(np.where(np.isnan(self.presets), np.inf, self.presets), axis=1))
        boards = self.board_options[0]
        if not boards.shape[1]:
            return self.power(low)
        return np.asarray(np.minimum(self.power(low), np.where(np.isnan(boards), np.inf, boards).min(axis=1)),
                          dtype=np.float64)

    @classmethod
    def from_machines(cls, machines: Sequence[Machine]) -> FleetArrays:
        owners = sorted({m.owner for m in machines})
        code = {o: i for i, o in enumerate(owners)}
        width = max((len(m.presets) for m in machines), default=1)
        presets = np.full((len(machines), width), np.nan)
        for i, m in enumerate(machines):
            presets[i, : len(m.presets)] = sorted(m.presets, reverse=True)

        def col(values: list[float]) -> F64:
            return np.asarray(values, dtype=np.float64)

        def flag(values: list[bool]) -> BOOL:
            return np.asarray(values, dtype=np.bool_)

        ms = list(machines)
        return cls(
            ids=[m.id for m in ms],
            owners=owners,
            owner=np.asarray([code[m.owner] for m in ms], dtype=np.int64),
            ths=col([m.spec.nominal_ths * m.hash_factor for m in ms]),
            k=col([m.power_factor for m in ms]),
            base=col([m.spec.base_w for m in ms]),
            nom=col([m.spec.nominal_w for m in ms]),
            gamma=col([m.spec.gamma for m in ms]),
            rmin=col([m.spec.min_ratio for m in ms]),
            rmax=col([m.spec.max_ratio for m in ms]),
            sleep_w=col([m.spec.sleep_w for m in ms]),
            cont=flag([m.power_target for m in ms]),
            presets=presets,
            can_sleep=flag([m.sleep for m in ms]),
            can_off=flag([m.outlet_switchable for m in ms]),
            protected=flag([m.protected for m in ms]),
            priority=np.asarray([m.priority for m in ms], dtype=np.int64),
            compliant=flag([m.compliant for m in ms]),
            now=np.asarray([int(m.now) for m in ms], dtype=np.int64),
            since_change=col([m.since_change_s for m in ms]),
            current_w=col([math.nan if m.current_power_w is None else m.current_power_w for m in ms]),
            reboots=flag([m.reboots_on_power_change for m in ms]),
            nboards=np.asarray([m.spec.boards for m in ms], dtype=np.int64),
            can_boards=flag([m.boards for m in ms]),
        )


def check_machines(machines: Sequence[Machine]) -> list[str]:
    """Problems with machine data that would make a plan wrong (duplicate ids, bad factors, bad presets)."""
    problems: list[str] = []
    seen: set[str] = set()
    for m in machines:
        if m.id in seen:
            problems.append(f"{m.id}: duplicate machine id")
        seen.add(m.id)
        for name in ("power_factor", "hash_factor"):
            v = getattr(m, name)
            if not (math.isfinite(v) and 0.5 <= v <= 2.0):
                problems.append(f"{m.id}: {name} {v!r} outside 0.5..2 (bad measurement?)")
        if not m.power_target and not m.presets:
            problems.append(f"{m.id}: no power target and no presets: it cannot run")
        if any(not (0 < r <= m.spec.max_ratio) for r in m.presets):
            problems.append(f"{m.id}: presets must be ratios in (0, {m.spec.max_ratio}]")
    return problems
