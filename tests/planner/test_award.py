"""A zone-hour's award split between sites: steps filled from the highest price, the last one in part, shared by
what each site was bid; beyond the bid by bid share or zone share; the register's cost wins when it has one."""

from __future__ import annotations

import pytest

from planner.award import HourAward, SiteAward, split_award
from planner.bids import Step
from planner.errors import PlannerInputError


def step(n: int, mwh: float, price: float, sites: tuple[tuple[str, float], ...]) -> Step:
    return Step("north-south", 5, n, mwh, price, price + 1000, price + 2000, mwh * 1e5, 1.0, "test", sites)


STEPS = [step(1, 3.0, 40_000, (("a", 2.0), ("b", 1.0))), step(2, 2.0, 30_000, (("b", 2.0),))]


def by_site(awards: list[SiteAward]) -> dict[str, tuple[float, float]]:
    return {a.site: (round(a.mwh, 6), round(a.cost_kzt, 3)) for a in awards}


def test_partial_award_fills_the_top_step_first() -> None:
    # 4 MWh of 5: step 1 whole (a 2, b 1 at 40,000), 1 MWh of step 2 (b at 30,000)
    got = by_site(split_award(HourAward("north-south", 5, 4.0), STEPS))
    assert got == {"a": (2.0, 80_000.0), "b": (2.0, 70_000.0)}


def test_part_of_a_shared_step_is_shared_as_bid() -> None:
    got = by_site(split_award(HourAward("north-south", 5, 1.5), STEPS))
    assert got == {"a": (1.0, 40_000.0), "b": (0.5, 20_000.0)}


def test_registers_cost_wins_and_is_shared_by_energy() -> None:
    got = by_site(split_award(HourAward("north-south", 5, 5.0, paid_kzt=150_000.0), STEPS))
    assert got == {"a": (2.0, 60_000.0), "b": (3.0, 90_000.0)}


def test_nothing_won_and_other_hours_ignored() -> None:
    assert split_award(HourAward("north-south", 6, 0.0), STEPS) == []
    assert split_award(HourAward("west", 5, 0.0), STEPS) == []


def test_more_than_bid_goes_by_bid_share_or_zone_share() -> None:
    awards = split_award(HourAward("north-south", 5, 6.0), STEPS)
    got = by_site(awards)
    assert got["a"][0] == pytest.approx(2.0 + 1.0 * 2 / 5) and got["b"][0] == pytest.approx(3.0 + 1.0 * 3 / 5)
    assert "beyond the bid" in awards[0].note
    no_bid = by_site(split_award(HourAward("west", 2, 2.0), [], fallback_shares={"w1": 0.25, "w2": 0.75}))
    assert no_bid == {"w1": (0.5, 0.0), "w2": (1.5, 0.0)}
    with pytest.raises(PlannerInputError):
        split_award(HourAward("west", 2, 2.0), [])
    with pytest.raises(PlannerInputError):
        split_award(HourAward("west", 2, -1.0), [])
