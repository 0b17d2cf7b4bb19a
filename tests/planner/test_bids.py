"""Bids against every constraint: value, floor, connection, the system operator's volume, prepayment, step count,
the pay-as-bid shading rule, and what each constraint cost.

The fleet: 1,000 S21 and 1,000 S19j Pro on/off (stock, switched outlets). By hand (kuat/catalog.py figures), at
50 USD/PH/day and 500 KZT/USD, no pool or mining fee:
  S21 block      3.5 MWh, 200/3500 TH/s per W  -> 200/3500 x 1e6 x 50/24000 x 500 = 59,523.8 KZT/MWh
  S19j Pro block 3.068 MWh, 104/3068 TH/s per W -> 104/3068 x 1e6 x 50/24000 x 500 = 35,310.8 KZT/MWh
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kuat.catalog import MODELS
from planner.bids import BidRules, SiteHour, plan_bids
from planner.curve import energy_curve
from planner.economics import Economics
from planner.errors import PlannerInputError
from planner.market import ZoneHourResult, ZoneOutlook, zone_outlook
from quota.fleet import FleetArrays, Machine

V_S21 = 200 / 3500 * 1e6 * 50 / 24000 * 500
V_S19J = 104 / 3068 * 1e6 * 50 / 24000 * 500
ECON = Economics(hashprice_usd_per_ph_day=50.0, usd_kzt=500.0)
FLOOR = 20_000.0


@pytest.fixture(scope="module")
def curve() -> object:
    machines = [Machine(f"a{i}", MODELS["S21"], presets=(1.0,), sleep=False, outlet_switchable=True)
                for i in range(1000)]
    machines += [Machine(f"b{i}", MODELS["S19j Pro"], presets=(1.0,), sleep=False, outlet_switchable=True)
                 for i in range(1000)]  # fmt: skip
    return energy_curve(FleetArrays.from_machines(machines), points=12, extra_powers=[3.5e6])


def hours(curve: object, connection_mwh: float = 10.0, site: str = "dpc-1") -> list[SiteHour]:
    return [SiteHour(site, "north-south", h, curve, connection_mwh) for h in range(1, 25)]  # type: ignore[arg-type]


def outlook(**kw: object) -> dict[str, ZoneOutlook]:
    return {"north-south": ZoneOutlook("north-south", FLOOR, "test floor", **kw)}  # type: ignore[arg-type]


def every_constraint_holds(plan: object, connection_mwh: float, volume: float | None = None,
                           budget: float | None = None, max_steps: int = 5) -> None:
    total = 0.0
    for h in plan.hours:  # type: ignore[attr-defined]
        assert len(h.steps) <= max_steps
        assert sum(s.mwh for s in h.steps) <= connection_mwh + 1e-9
        if volume is not None:
            assert sum(s.mwh for s in h.steps) <= volume + 1e-9
        prices = [s.price_kzt_per_mwh for s in h.steps]
        assert prices == sorted(prices, reverse=True), "a lower step never outbids a higher one"
        for s in h.steps:
            assert s.price_kzt_per_mwh >= FLOOR, "never below the zone's floor"
            assert s.price_kzt_per_mwh <= s.value_kzt_per_mwh + 1e-6, "never above the value of what it buys"
            assert s.value_kzt_per_mwh <= s.avg_value_kzt_per_mwh + 1e-6
            total += s.cost_kzt
    if budget is not None:
        assert total <= budget + 1e-6, "the day's bids fit the prepayment"


def test_two_steps_priced_by_the_no_history_shade(curve: object) -> None:
    plan = plan_bids(hours(curve), outlook(), ECON, BidRules(shade=0.5))
    every_constraint_holds(plan, 10.0)
    h = plan.hours[0]
    assert [round(s.mwh, 3) for s in h.steps] == [3.5, 3.068]
    assert h.steps[0].value_kzt_per_mwh == pytest.approx(V_S21, rel=1e-5)
    assert h.steps[1].value_kzt_per_mwh == pytest.approx(V_S19J, rel=1e-5)
    # floor + 0.5 x (value - floor), rounded down to the tenge
    assert h.steps[0].price_kzt_per_mwh == int(FLOOR + 0.5 * (V_S21 - FLOOR))
    assert h.steps[1].price_kzt_per_mwh == int(FLOOR + 0.5 * (V_S19J - FLOOR))
    assert h.limits.binding == "fleet"
    assert h.steps[0].sites == (("dpc-1", pytest.approx(3.5)),)
    s = plan.summary
    assert s.bid_mwh == pytest.approx(24 * 6.568, abs=0.03)
    assert s.expected_avg_ths == pytest.approx(304_000, rel=1e-3)  # everything won: the whole fleet all day
    assert s.expected_margin_kzt == pytest.approx(
        24 * (3.5 * (V_S21 - h.steps[0].price_kzt_per_mwh) + 3.068 * (V_S19J - h.steps[1].price_kzt_per_mwh)),
        rel=1e-4)


def test_floor_above_a_block_value_drops_it(curve: object) -> None:
    plan = plan_bids(hours(curve), {"north-south": ZoneOutlook("north-south", 40_000.0)}, ECON, BidRules())
    for h in plan.hours:
        assert [round(s.mwh, 3) for s in h.steps] == [3.5]
        assert h.steps[0].price_kzt_per_mwh >= 40_000
        assert h.limits.binding == "floor"
    assert plan.constraint_costs["floor"] > 0  # below the floor the S19j Pro block would pay


def test_connection_caps_each_hour(curve: object) -> None:
    plan = plan_bids(hours(curve, connection_mwh=5.0), outlook(), ECON, BidRules())
    every_constraint_holds(plan, 5.0)
    assert [round(s.mwh, 3) for s in plan.hours[0].steps] == [3.5, 1.5]
    assert plan.hours[0].limits.binding == "connection"
    # lifting the connection would add the rest of the S19j Pro block: 1.568 MWh x (value - price) each hour
    gain = 24 * 1.568 * (V_S19J - int(FLOOR + 0.5 * (V_S19J - FLOOR)))
    assert plan.constraint_costs["connection"] == pytest.approx(gain, rel=2e-3)


def test_expected_volume_of_the_system_operator(curve: object) -> None:
    vols = tuple(4.0 if h < 12 else None for h in range(24))
    plan = plan_bids(hours(curve), outlook(expected_volume_mwh=vols), ECON, BidRules())
    for h in plan.hours:
        bid = sum(s.mwh for s in h.steps)
        if h.hour <= 12:
            assert bid <= 4.0 + 1e-9 and h.limits.binding == "volume"
        else:
            assert bid == pytest.approx(6.568, abs=0.002)
    assert plan.constraint_costs["volume"] > 0


def test_volume_quantile_from_published_history() -> None:
    from datetime import date, timedelta

    day = date(2026, 11, 23)
    history = [ZoneHourResult(day - timedelta(days=d), "west", h, offered_mwh=10.0 * d, sold_mwh=1.0)
               for d in range(1, 6) for h in range(1, 25)]  # offered 10, 20, 30, 40, 50 MWh  # fmt: skip
    out = zone_outlook("west", 15_000, history, before=day, days=30, volume_quantile=0.5)
    assert out.expected_volume_mwh[0] == 30.0 and out.history_days == 5
    assert zone_outlook("west", 15_000, history, before=day, volume_quantile=0.25).expected_volume_mwh[5] == 20.0
    # sold < offered: not rationed, every bid at or above the floor won, the clearing price was the floor
    assert out.clearing_history[0] == (15_000.0,) * 5
    assert out.win_probability(1, 15_000) == 1.0 and out.win_probability(1, 14_999) == 0.0


def test_prepayment_cuts_the_least_margin_per_tenge_first(curve: object) -> None:
    free = plan_bids(hours(curve), outlook(), ECON, BidRules())
    budget = free.summary.prepayment_kzt * 0.8
    plan = plan_bids(hours(curve), outlook(), ECON, BidRules(budget_kzt=budget))
    every_constraint_holds(plan, 10.0, budget=budget)
    assert plan.summary.prepayment_kzt == pytest.approx(budget, rel=1e-3)
    # the S19j Pro steps earn less per tenge prepaid than the S21's: they go first, every S21 step stays
    assert all(h.steps and round(h.steps[0].mwh, 3) == 3.5 for h in plan.hours)
    s19 = sum(s.mwh for h in plan.hours for s in h.steps[1:])
    # by hand, per hour: S21 step 3.5 x 39,761 = 139,167; S19j Pro step 3.068 x 27,655 = 84,846; 80 % of their
    # sum leaves 40,043 for the S19j Pro steps: 1.448 MWh of 3.068 on average
    assert s19 == pytest.approx(24 * 1.448, rel=2e-3)
    assert any(h.limits.binding == "prepayment" for h in plan.hours)
    assert plan.constraint_costs["prepayment"] > 0
    assert plan.constraint_costs["connection"] == 0.0


def test_best_response_to_the_clearing_history(curve: object) -> None:
    """Clearing prices of the last 10 days: 7 at the floor, 3 rationed at 45,000. S21 step (worth 59,524):
    at the floor it wins 7 days in 10: 0.7 x 39,524 = 27,667 per MWh > at 45,000: 1.0 x 14,524. S19j Pro step
    (worth 35,311): 45,000 is above its value, so only the floor remains."""
    hist = ((FLOOR,) * 7 + (45_000.0,) * 3,) * 24
    plan = plan_bids(hours(curve), outlook(clearing_history=hist), ECON, BidRules())
    every_constraint_holds(plan, 10.0)
    s1, s2 = plan.hours[0].steps
    assert (s1.price_kzt_per_mwh, s1.win_probability) == (FLOOR, 0.7)
    assert (s2.price_kzt_per_mwh, s2.win_probability) == (FLOOR, 0.7)
    # 7 days rationed at 45,000: now 45,000 pays more for the S21 step (14,524 > 0.3 x 39,524 = 11,857)
    hist = ((FLOOR,) * 3 + (45_000.0,) * 7,) * 24
    plan = plan_bids(hours(curve), outlook(clearing_history=hist), ECON, BidRules())
    s1, s2 = plan.hours[0].steps
    assert (s1.price_kzt_per_mwh, s1.win_probability) == (45_000.0, 1.0)
    assert (s2.price_kzt_per_mwh, s2.win_probability) == (FLOOR, 0.3)
    assert "best response to 10 days" in s1.price_rule


def test_one_step_is_priced_under_its_least_valuable_mwh(curve: object) -> None:
    """With 3 days of 10 at the floor and 7 rationed at 45,000: two steps bid the S21 block at 45,000 (always wins,
    3.5 x 14,524 = 50,833) and the S19j Pro block at the floor (0.3 x 3.068 x 15,311 = 14,092). One step is capped
    by the S19j Pro's value (45,000 is above it), so it bids the floor for all: 0.3 x 6.568 x (48,214 - 20,000)
    = 55,592. The step limit costs 9,333 KZT an hour."""
    hist = ((FLOOR,) * 3 + (45_000.0,) * 7,) * 24
    plan = plan_bids(hours(curve), outlook(clearing_history=hist), ECON, BidRules(max_steps=1))
    every_constraint_holds(plan, 10.0, max_steps=1)
    (s,) = plan.hours[0].steps
    assert s.mwh == pytest.approx(6.568, abs=0.002)
    assert s.value_kzt_per_mwh == pytest.approx(V_S19J, rel=1e-5)
    assert s.price_kzt_per_mwh == FLOOR
    assert plan.constraint_costs["steps"] == pytest.approx(24 * 9_333, rel=1e-3)


def test_fees_and_usable_share_lower_the_value(curve: object) -> None:
    econ = replace(ECON, pool_fee=0.02, mining_fee_kzt_per_kwh=2.0)
    plan = plan_bids(hours(curve), outlook(), econ, BidRules(usable_share=0.9975))
    s1 = plan.hours[0].steps[0]
    # per bought MWh: 0.9975 used MWh, each worth 0.98 x V_S21 less the 2,000 KZT fee
    assert s1.value_kzt_per_mwh == pytest.approx(0.9975 * (0.98 * V_S21 - 2000), rel=1e-5)
    assert s1.mwh == pytest.approx(3.5 / 0.9975, abs=0.001)


def test_several_sites_of_a_zone_merge_by_value(curve: object) -> None:
    small = energy_curve(FleetArrays.from_machines(
        [Machine(f"c{i}", MODELS["S19 XP"], presets=(1.0,), sleep=False, outlet_switchable=True) for i in range(100)]))
    site_hours = hours(curve) + [SiteHour("dpc-2", "north-south", h, small, 1.0) for h in range(1, 25)]
    plan = plan_bids(site_hours, outlook(), ECON, BidRules(max_steps=3))
    # S19 XP (140/3010 TH/s per W) sits between the S21 and the S19j Pro; with 3 steps each model is a step
    steps = plan.hours[0].steps
    assert [dict(s.sites).keys() for s in steps] == [{"dpc-1"}, {"dpc-2"}, {"dpc-1"}]
    assert steps[1].mwh == pytest.approx(0.301, abs=0.001)


def test_unknown_zone_is_refused(curve: object) -> None:
    with pytest.raises(PlannerInputError) as err:
        plan_bids([SiteHour("dpc-1", "west", 1, curve, 1.0)], outlook(), ECON, BidRules())  # type: ignore[arg-type]
    assert err.value.issues[0].field == "zone"
    with pytest.raises(PlannerInputError):
        plan_bids(hours(curve), outlook(), ECON, BidRules(max_steps=0, budget_kzt=-1))
