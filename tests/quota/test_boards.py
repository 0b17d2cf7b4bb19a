"""Per-hashboard options (issue 14 part 3): k of B boards at full ratio, power and hash from the model, offered only
to machines whose capabilities say boards can be switched; the budget holds with them in the plan."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kuat.catalog import MODELS, ModelSpec, power_at_ratio
from kuat.wire.v1 import Setpoint, SetpointMode
from quota.allocate import Mode, Policy, allocate
from quota.fleet import FleetArrays, Machine
from tests.properties.test_allocator import PROPERTY, check, fleets, policies

S19J, S9 = MODELS["S19j Pro"], MODELS["S9"]


def test_board_options_are_k_of_b_boards_at_full_ratio_from_the_model() -> None:
    f = FleetArrays.from_machines([Machine("bos", S19J, power_target=True, boards=True, power_factor=1.02,
                                           hash_factor=0.98),
                                   Machine("lux", S19J, power_target=True)])
    power, hash_, on = f.board_options
    assert power.shape == hash_.shape == on.shape == (2, S19J.boards - 1)
    base, full = 1.02 * S19J.base_w, 1.02 * power_at_ratio(S19J, 1.0)
    assert power[0].tolist() == pytest.approx([base + (full - base) * k / 3 for k in (2, 1)])
    assert hash_[0].tolist() == pytest.approx([0.98 * S19J.nominal_ths * k / 3 for k in (2, 1)])
    assert on[0].tolist() == [2, 1]  # highest first, as presets
    assert np.isnan(power[1]).all() and np.isnan(hash_[1]).all() and on[1].tolist() == [0, 0]  # no capability


def test_no_machine_with_boards_gives_no_columns() -> None:
    power, hash_, on = FleetArrays.from_machines([Machine("a", S9), Machine("b", S19J)]).board_options
    assert power.shape == hash_.shape == on.shape == (2, 0)


def narrow(spec: ModelSpec, min_ratio: float) -> ModelSpec:
    """The model as a firmware with a high lowest power target sees it (quota.policies.firmware_spec)."""
    return replace(spec, min_ratio=min_ratio)


def test_boards_fill_the_gap_between_the_lowest_target_and_sleep() -> None:
    """Budget 1,500 W for one S19j Pro whose firmware goes no lower than 90 % (2,575 W): with board control it
    hashes on one board (1,063 W, a third of its hash rate) instead of sleeping; without it, it sleeps."""
    spec = narrow(S19J, 0.9)
    for boards, expected in ((True, Mode.BOARDS), (False, Mode.SLEEP)):
        f = FleetArrays.from_machines([Machine("bos", spec, power_target=True, boards=boards)])
        a = allocate(f, 1500.0)
        assert Mode(int(a.mode[0])) == expected
        assert a.total_power_w <= 1500.0
    f = FleetArrays.from_machines([Machine("bos", spec, power_target=True, boards=True)])
    a = allocate(f, 1500.0)
    assert int(a.boards_on[0]) == 1
    assert a.power_w[0] == pytest.approx(S19J.base_w + (S19J.nominal_w - S19J.base_w) / 3)
    assert a.hash_ths[0] == pytest.approx(S19J.nominal_ths / 3)
    assert a.setpoints(f) == [Setpoint(device_id="bos", mode=SetpointMode.RUN, boards_on=1)]
    two = allocate(f, 2200.0)  # two boards (2,065 W) fit, the lowest target does not
    assert (Mode(int(two.mode[0])), int(two.boards_on[0])) == (Mode.BOARDS, 2)
    full = allocate(f, 4000.0)
    assert Mode(int(full.mode[0])) == Mode.RUN and int(full.boards_on[0]) == 0
    assert full.setpoints(f)[0].boards_on is None


def mixed(n: int, seed: int, boards_share: float = 0.5) -> list[Machine]:
    rng = np.random.default_rng(seed)
    specs = [S19J, MODELS["S21"], MODELS["M30S"], S9, MODELS["S19 XP"]]
    out = []
    for i in range(n):
        spec = specs[int(rng.integers(len(specs)))]
        style = int(rng.integers(3))
        if style == 1 and rng.random() < 0.5:
            spec = narrow(spec, float(rng.uniform(0.55, 0.95)))
        out.append(Machine(f"m{i}", spec, power_target=style == 1, presets=(1.0, 0.75) if style == 0 else (1.0,),
                           boards=bool(rng.random() < boards_share), power_factor=float(rng.uniform(0.95, 1.05)),
                           hash_factor=float(rng.uniform(0.97, 1.03)), outlet_switchable=bool(rng.integers(2))))
    return out


@pytest.mark.parametrize("share", [0.0, 0.03, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.2])
def test_budget_holds_with_board_options(share: float) -> None:
    machines = mixed(300, seed=11)
    f = FleetArrays.from_machines(machines)
    budget = float(f.max_power.sum()) * share
    a = allocate(f, budget)
    if budget >= float(f.sleep_w.sum()):
        assert a.over_budget_w == 0.0 and a.total_power_w <= budget + 1e-6
    assert a.total_ths <= a.bound_ths + 1e-6
    if share >= 0.1:
        assert a.total_ths >= 0.99 * a.bound_ths
    on = a.mode == Mode.BOARDS
    assert (a.boards_on[on] >= 1).all() and (a.boards_on[on] < f.nboards[on]).all() and (a.boards_on[~on] == 0).all()
    power, hash_, count = f.board_options  # a board machine's planned power and hash are its option's, exactly
    for i in np.flatnonzero(on):
        j = int(np.flatnonzero(count[i] == a.boards_on[i])[0])
        assert (a.power_w[i], a.hash_ths[i]) == (pytest.approx(power[i, j]), pytest.approx(hash_[i, j]))


def test_a_machine_without_the_boards_capability_never_gets_a_board_option() -> None:
    """Machines alike but for the capability (no power target, or a high lowest target: where boards pay), and
    the big mixed fleet: board options go only to machines that have them, and are used where they pay."""
    twins = [Machine(f"t{i}", narrow(S19J, 0.9) if i % 4 < 2 else S19J, power_target=i % 4 < 2, boards=i % 2 == 0)
             for i in range(8)]
    machines = twins + mixed(200, seed=3)
    f = FleetArrays.from_machines(twins)
    top = float(f.max_power.sum())
    seen = 0
    for share in np.linspace(0.02, 1.0, 60):
        a = allocate(f, top * float(share))
        on = a.mode == Mode.BOARDS
        seen += int(on.sum())
        assert not (on & ~f.can_boards).any()
        for sp, m in zip(a.setpoints(f), twins, strict=True):
            assert sp.boards_on is None or m.boards, m.id
    assert seen > 0  # the sweep did use board options where they were allowed
    big = FleetArrays.from_machines(machines)
    for share in np.linspace(0.02, 1.0, 12):
        assert not ((allocate(big, float(big.max_power.sum()) * float(share)).mode == Mode.BOARDS)
                    & ~big.can_boards).any()


def test_board_options_never_cost_hash_rate() -> None:
    """The same fleet with and without board control: the plan with it hashes at least as much at every budget
    (a few hundredths of a per cent of heuristic noise allowed)."""
    narrowed = [Machine(f"b{i}", narrow(S19J, 0.7 + 0.04 * i), power_target=True, boards=True) for i in range(6)]
    for machines in (mixed(120, seed=5), narrowed):
        with_b = FleetArrays.from_machines(machines)
        without = FleetArrays.from_machines([replace(m, boards=False) for m in machines])
        top = float(with_b.max_power.sum())
        for share in np.linspace(0.02, 1.0, 40):
            a, b = allocate(with_b, top * float(share)), allocate(without, top * float(share))
            assert a.total_ths >= b.total_ths * (1 - 3e-4)
            assert a.bound_ths >= b.bound_ths - 1e-6


def test_on_the_catalogue_curve_underclocking_beats_boards() -> None:
    """With the catalogue's full range (down to half hash rate, gamma 1.7) k of 3 boards at full ratio are
    dominated by underclocking (one board: more power, less hash than the lowest target), so a Braiins OS machine
    with its full power-target range is never planned on boards: the option matters where targets stop short."""
    f = FleetArrays.from_machines([Machine(f"b{i}", S19J, power_target=True, boards=True) for i in range(4)])
    top = float(f.max_power.sum())
    for share in np.linspace(0.0, 1.0, 41):
        assert not (allocate(f, top * float(share)).mode == Mode.BOARDS).any()


@st.composite
def board_fleets(draw: st.DrawFn) -> list[Machine]:
    """The property tests' fleets (tests/properties/test_allocator.py), where any machine may switch boards and a
    firmware may stop its targets short of the model's range."""
    fleet = draw(fleets())
    out = []
    for m in fleet:
        lowest = draw(st.sampled_from([None, 0.7, 0.9]))
        spec = m.spec if lowest is None or not m.power_target else narrow(m.spec, lowest)
        out.append(replace(m, spec=spec, boards=draw(st.booleans())))
    return out


@PROPERTY
@given(board_fleets(), st.floats(0.0, 1.4), policies())
def test_property_never_above_the_budget_nor_its_bound_with_boards(fleet: list[Machine], share: float,
                                                                   policy: Policy) -> None:
    check(fleet, share, policy)
    f = FleetArrays.from_machines(fleet)
    a = allocate(f, float(f.max_power.sum()) * share, policy)
    assert not ((a.mode == Mode.BOARDS) & ~f.can_boards).any()
