"""The value-of-energy curve against the allocator's own bound on small fleets, computed by hand.

The catalogue figures used by hand come from kuat/catalog.py (DEVICES.md's table): S21 200 TH/s at 3500 W,
S19j Pro 104 TH/s at 3068 W, base 60 W, gamma 1.7, deepest underclock 0.5 of nominal.
"""

from __future__ import annotations

import math

import pytest

from kuat.catalog import MODELS
from planner.curve import energy_curve, fleet_floor_w, fleet_max_w, marginal_ths_per_w, planning_policy
from planner.economics import Economics, hashprice_from_network
from planner.errors import PlannerInputError
from quota.fleet import FleetArrays, Machine

S21, S19J = MODELS["S21"], MODELS["S19j Pro"]


def on_off(id_: str, spec: object, owner: str = "host", **kw: object) -> Machine:
    """Stock firmware with only full power, on a switched outlet and no sleep: idle draws 0 W."""
    return Machine(id_, spec, owner=owner, presets=(1.0,), sleep=False, outlet_switchable=True, **kw)  # type: ignore[arg-type]


def continuous(id_: str, spec: object) -> Machine:
    return Machine(id_, spec, power_target=True, sleep=False, outlet_switchable=True)  # type: ignore[arg-type]


def h_on_off(p: float) -> float:
    """By hand: fill in order of TH/s per W: the S21 (200/3500) first, then the S19j Pro (104/3068)."""
    if p <= 3500:
        return p * 200 / 3500
    return 200 + min(p - 3500, 3068) * 104 / 3068


def test_on_off_fleet_curve_is_the_fill_by_efficiency_bound() -> None:
    fleet = FleetArrays.from_machines([on_off("a", S21), on_off("b", S19J)])
    curve = energy_curve(fleet, points=12, extra_powers=[3500.0])
    assert fleet_max_w(fleet) == pytest.approx(3500 + 3068)
    for pt in curve.points[1:]:
        assert pt.bound_ths == pytest.approx(h_on_off(pt.power_w), rel=1e-6), pt
        assert pt.plan_ths <= pt.bound_ths + 1e-9
    # two blocks: the S21's 3.5 kWh at 200/3500 TH/s per W, the S19j Pro's 3.068 kWh at 104/3068
    assert [round(b.mwh, 6) for b in curve.blocks] == [0.0035, 0.003068]
    assert curve.blocks[0].ths_per_w == pytest.approx(200 / 3500, rel=1e-6)
    assert curve.blocks[1].ths_per_w == pytest.approx(104 / 3068, rel=1e-6)
    assert curve.ths_at(0.0035 + 0.001534) == pytest.approx(200 + 52, rel=1e-6)  # half the S19j Pro's block
    assert marginal_ths_per_w(curve, 0.004) == pytest.approx(104 / 3068, rel=1e-6)


def h_continuous(p: float) -> float:
    """One S19j Pro on a continuous power target, idle at 0 W. Its hull from the origin: H/P is highest at the
    deepest underclock x = 0.5 (the tangent from the origin touches at x = 0.124, below the range), so the hull is
    the chord to P(0.5) = 60 + 3008 x 0.5**1.7, then the curve H = 104 x ((P - 60) / 3008)**(1/1.7)."""
    p_min = 60 + 3008 * 0.5**1.7
    if p <= p_min:
        return p * 52 / p_min
    return 104 * ((p - 60) / 3008) ** (1 / 1.7)


def lam_continuous(p: float) -> float:
    """dH/dP on the curve part: 104 / (3008 x 1.7 x x**0.7) with x = ((P - 60) / 3008)**(1/1.7)."""
    x = ((p - 60) / 3008) ** (1 / 1.7)
    return 104 / (3008 * 1.7 * x**0.7)


def test_continuous_machine_curve_and_the_lagrange_price_is_the_marginal() -> None:
    fleet = FleetArrays.from_machines([continuous("a", S19J)])
    curve = energy_curve(fleet, points=24)
    p_min = 60 + 3008 * 0.5**1.7
    for pt in curve.points[1:]:
        assert pt.bound_ths == pytest.approx(h_continuous(pt.power_w), rel=1e-6), pt
        if pt.power_w > p_min * 1.01 and pt.power_w < 3068 * 0.999:
            # the solver's multiplier is the marginal hash rate per watt of the fleet at that power
            assert pt.price_ths_per_w == pytest.approx(lam_continuous(pt.power_w), rel=1e-4), pt
    slopes = [b.ths_per_w for b in curve.blocks]
    assert slopes == sorted(slopes, reverse=True), "the curve is concave: each block adds less per watt"
    assert curve.blocks[0].ths_per_w == pytest.approx(52 / p_min, rel=1e-6)


def test_two_continuous_machines_share_the_power_equally() -> None:
    fleet = FleetArrays.from_machines([continuous("a", S19J), continuous("b", S19J)])
    curve = energy_curve(fleet, points=16)
    p_min = 60 + 3008 * 0.5**1.7
    for pt in curve.points[1:]:
        if pt.power_w >= 2 * p_min:  # both on their curve: by symmetry each at P / 2
            assert pt.bound_ths == pytest.approx(2 * h_continuous(pt.power_w / 2), rel=1e-6)
        else:  # on the chord: the hull of two machines mixes "idle" and "deepest underclock"
            assert pt.bound_ths == pytest.approx(pt.power_w * 52 / p_min, rel=1e-6)


def test_tenant_share_without_lending_bounds_each_pool() -> None:
    """A tenant holding 30 % owns the S21; the host the S19j Pro. Without lending, each pool fills its own share."""
    fleet = FleetArrays.from_machines([on_off("a", S21, owner="tenant"), on_off("b", S19J)])
    policy = planning_policy({"tenant": 0.3}, lend_unused_share=False)
    curve = energy_curve(fleet, policy, points=10)
    for pt in curve.points[1:]:
        p = pt.power_w
        by_hand = min(0.3 * p, 3500) * 200 / 3500 + min(0.7 * p, 3068) * 104 / 3068
        assert pt.bound_ths == pytest.approx(by_hand, rel=1e-6)


def test_connection_limit_non_compliant_and_protected_machines() -> None:
    fleet = FleetArrays.from_machines([on_off("a", S21), on_off("b", S19J, compliant=False),
                                       Machine("c", S19J, protected=True)])  # fmt: skip
    # the non-compliant S19j Pro idles (its outlet is cut: 0 W); the protected one always runs at its lowest
    # option, which on stock firmware with the one preset 1.0 is full power
    assert fleet_max_w(fleet) == pytest.approx(3500 + 3068)
    assert fleet_floor_w(fleet) == pytest.approx(3068)
    curve = energy_curve(fleet, max_w=5000, points=8)
    assert curve.max_mwh == pytest.approx(0.005)
    assert all(pt.power_w <= 5000 + 1e-9 for pt in curve.points)
    # by hand at 5000 W: the protected machine stock-runs at full (presets 1.0) = 3068 W, 104 TH/s; the S21 cannot
    # fit whole, the relaxation takes 1932 W of it at 200/3500: 104 + 110.4
    assert curve.points[-1].bound_ths == pytest.approx(104 + 1932 * 200 / 3500, rel=1e-6)


def test_value_per_mwh_matches_the_break_even_of_quota_md() -> None:
    """QUOTA.md: at 50 USD/PH/day a 17.5 J/TH machine breaks even at about 119 USD/MWh."""
    econ = Economics(hashprice_usd_per_ph_day=50.0, usd_kzt=1.0)
    assert econ.break_even_usd_per_mwh(17.5) == pytest.approx(119.05, abs=0.01)
    assert econ.value_kzt_per_mwh(1 / 17.5) == pytest.approx(119.05, abs=0.01)
    fees = Economics(50.0, usd_kzt=500.0, pool_fee=0.02, mining_fee_kzt_per_kwh=2.0)
    # 1/17.5 TH/s per W x 1e6 W x 50/1000/24 USD per TH/s-h x 500 KZT x 0.98 - 2 KZT/kWh x 1000
    assert fees.value_kzt_per_mwh(1 / 17.5) == pytest.approx(1e6 / 17.5 * 50 / 24000 * 500 * 0.98 - 2000)


def test_hashprice_from_difficulty_reward_and_price() -> None:
    # by hand: H = 1.2e14 x 2**32 / 600 = 8.59e20 H/s; 144 x 3.155 BTC x 100,000 USD x 1e15 / H = 52.89 USD/PH/day
    hp = hashprice_from_network(1.2e14, 3.125, 0.03, 100_000)
    assert hp == pytest.approx(144 * 3.155 * 1e5 * 1e15 / (1.2e14 * 2**32 / 600))
    assert hp == pytest.approx(52.89, abs=0.01)
    with pytest.raises(PlannerInputError) as err:
        hashprice_from_network(0, 3.125, -1, math.nan)
    assert {i.field for i in err.value.issues} == {"difficulty", "fees_btc_per_block", "btc_usd"}
