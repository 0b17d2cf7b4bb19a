"""Limits: validation names the field and reason; the most restrictive limit wins and says why."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from quota.errors import QuotaInputError
from quota.limits import (
    DaySchedule,
    EmergencyOrder,
    GridContract,
    GridReading,
    HourEnergy,
    QuotaState,
    SiteConfig,
    Source,
    accept_orders,
    accept_schedule,
    effective_limit,
    effective_plan,
    lift_order,
    validate_grid_reading,
    validate_orders,
    validate_site,
)
from quota.timebase import ASTANA, hour_window, local_day_and_hour

DAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # the day before DAY
SITE = SiteConfig("dpc-1", connection_kw=5000, reserved_headroom_kw=200, zone="north-south", zone_share=0.5)


def at_hour(hour: int, minute: int = 0) -> datetime:
    return hour_window(DAY, hour)[0] + timedelta(minutes=minute)


def state_with(kwh: list[float], **kw: object) -> QuotaState:
    return QuotaState(SITE, schedules=(DaySchedule.from_kwh("dpc-1", DAY, kwh),), **kw)  # type: ignore[arg-type]


def issues(exc: pytest.ExceptionInfo[QuotaInputError]) -> dict[str, str]:
    return {i.field: i.reason for i in exc.value.issues}


# ---------------------------------------------------------------- time base


def test_astana_hours_are_utc_plus_5() -> None:
    start, end = hour_window(DAY, 1)
    assert start == datetime(2026, 11, 21, 19, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=1)
    assert local_day_and_hour(datetime(2026, 11, 22, 6, 30, tzinfo=UTC)) == (DAY, 12)


# ---------------------------------------------------------------- validation


def test_schedule_with_wrong_hour_count_names_hours() -> None:
    with pytest.raises(QuotaInputError) as e:
        accept_schedule(QuotaState(SITE), DaySchedule.from_kwh("dpc-1", DAY, [100.0] * 23), NOW)
    assert "24 hours" in issues(e)["hours"] and "gives 23" in issues(e)["hours"]


def test_dst_day_needs_23_hours_in_a_dst_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    st = QuotaState(SITE, tz=berlin)
    spring = date(2026, 3, 29)
    _, plan = accept_schedule(st, DaySchedule.from_kwh("dpc-1", spring, [10.0] * 23), datetime(2026, 3, 1, tzinfo=UTC))
    assert len(plan.hours) == 23
    with pytest.raises(QuotaInputError):
        accept_schedule(st, DaySchedule.from_kwh("dpc-1", spring, [10.0] * 24), datetime(2026, 3, 1, tzinfo=UTC))


def test_negative_and_non_finite_energy_are_named() -> None:
    kwh = [100.0] * 24
    kwh[3], kwh[7] = -1.0, math.nan
    with pytest.raises(QuotaInputError) as e:
        accept_schedule(QuotaState(SITE), DaySchedule.from_kwh("dpc-1", DAY, kwh), NOW)
    found = issues(e)
    assert "negative" in found["hours[3].kwh"]
    assert "finite" in found["hours[7].kwh"]


def test_duplicate_and_out_of_order_hours() -> None:
    hours = [HourEnergy(h, 1.0) for h in range(1, 25)]
    hours[5] = HourEnergy(5, 1.0)  # hour 5 twice
    hours[10], hours[11] = hours[11], hours[10]  # 12 before 11
    with pytest.raises(QuotaInputError) as e:
        accept_schedule(QuotaState(SITE), DaySchedule("dpc-1", DAY, tuple(hours)), NOW)
    found = issues(e)
    assert "twice" in found["hours[5].hour"]
    assert "out of order" in found["hours[11].hour"]


def test_unknown_site_and_past_day() -> None:
    with pytest.raises(QuotaInputError) as e:
        accept_schedule(QuotaState(SITE), DaySchedule.from_kwh("nowhere", DAY, [1.0] * 24),
                        NOW + timedelta(days=3))
    found = issues(e)
    assert "unknown site or zone 'nowhere'" in found["area"]
    assert "already over" in found["day"]


def test_a_rejected_push_changes_nothing() -> None:
    st = state_with([100.0] * 24)
    with pytest.raises(QuotaInputError):
        accept_schedule(st, DaySchedule.from_kwh("dpc-1", DAY, [-5.0] * 24), NOW)
    assert st.schedules[0].hours[0].kwh == 100.0
    assert effective_limit(st, at_hour(1)).limit_w == 100_000.0


def test_order_validation() -> None:
    t = at_hour(3)
    bad = [
        EmergencyOrder("dpc-1", "", t, t - timedelta(hours=1), cap_mw=1.0),  # no reference, end before start
        EmergencyOrder("dpc-1", "KEGOC-2", t, None, cap_mw=1.0, share_pct=30),  # both levels
        EmergencyOrder("dpc-1", "KEGOC-3", t, None, share_pct=130),
        EmergencyOrder("dpc-1", "KEGOC-4", NOW - timedelta(hours=3), NOW - timedelta(hours=1), cap_mw=2.0),  # past
        EmergencyOrder("dpc-1", "KEGOC-5", t.replace(tzinfo=None), None, cap_mw=-2.0),  # naive, negative
    ]
    with pytest.raises(QuotaInputError) as e:
        validate_orders(bad, SITE.areas(), NOW)
    found = issues(e)
    assert "reference number is required" in found["orders[0].reference"]
    assert "out of order" in found["orders[0].end"]
    assert "exactly one" in found["orders[1].cap_mw"]
    assert "0..100" in found["orders[2].share_pct"]
    assert "already over" in found["orders[3].end"]
    assert "timezone-aware" in found["orders[4].start"]
    assert "negative" in found["orders[4].cap_mw"]


def test_overlapping_orders_in_one_push() -> None:
    t = at_hour(3)
    orders = [EmergencyOrder("dpc-1", "A", t, t + timedelta(hours=2), cap_mw=1.0),
              EmergencyOrder("dpc-1", "B", t + timedelta(hours=1), None, cap_mw=2.0)]
    with pytest.raises(QuotaInputError) as e:
        validate_orders(orders, SITE.areas(), NOW)
    assert "overlaps orders[0]" in issues(e)["orders[1].start"]


def test_site_and_grid_validation() -> None:
    with pytest.raises(QuotaInputError) as e:
        validate_site(replace(SITE, connection_kw=-1, tenant_shares={"t1": 0.7, "t2": 0.6}))
    found = issues(e)
    assert "negative" in found["connection_kw"]
    assert "more than the whole" in found["tenant_shares"]
    with pytest.raises(QuotaInputError) as e:
        validate_grid_reading(GridReading(NOW, target_pct=50, target_mw=1))
    assert "exactly one" in issues(e)["target_pct"]
    assert e.value.as_detail()[0]["loc"] == "target_pct"


# ---------------------------------------------------------------- effective limit


def test_schedule_binds_when_lowest() -> None:
    lim = effective_limit(state_with([1200.0] * 24), at_hour(5, 30))
    assert lim.limit_w == 1_200_000.0
    assert lim.binding.source == Source.SCHEDULE
    assert "1200.0 kWh purchased" in lim.explain()


def test_connection_less_headroom_binds_when_lowest() -> None:
    lim = effective_limit(state_with([9000.0] * 24), at_hour(5))
    assert lim.limit_w == 4_800_000.0
    assert lim.binding.source == Source.CONNECTION


def test_no_schedule_means_zero_unless_configured() -> None:
    lim = effective_limit(QuotaState(SITE), at_hour(5))
    assert (lim.limit_w, lim.binding.source) == (0.0, Source.NO_SCHEDULE)
    relaxed = QuotaState(replace(SITE, require_schedule=False))
    assert effective_limit(relaxed, at_hour(5)).binding.source == Source.CONNECTION


def test_zone_schedule_share_and_lower_of_site_and_zone() -> None:
    st = QuotaState(SITE, schedules=(DaySchedule.from_kwh("north-south", DAY, [3000.0] * 24),))
    lim = effective_limit(st, at_hour(2))
    assert lim.limit_w == 1_500_000.0 and lim.binding.source == Source.ZONE_SCHEDULE
    both = replace(st, schedules=(*st.schedules, DaySchedule.from_kwh("dpc-1", DAY, [1000.0] * 24)))
    assert effective_limit(both, at_hour(2)).binding.source == Source.SCHEDULE


def test_emergency_share_of_schedule_then_lifted() -> None:
    st = state_with([2000.0] * 24)
    st, _ = accept_orders(st, [EmergencyOrder("dpc-1", "KEGOC-17/2026", at_hour(4), None, share_pct=30)],
                          at_hour(3))
    lim = effective_limit(st, at_hour(6))
    assert lim.limit_w == pytest.approx(600_000.0)
    assert lim.binding.source == Source.EMERGENCY and lim.binding.reference == "KEGOC-17/2026"
    assert "30 % of the schedule" in lim.explain()
    assert effective_limit(st, at_hour(3, 59)).binding.source == Source.SCHEDULE  # not before its start
    st = lift_order(st, "KEGOC-17/2026", at_hour(8))
    assert effective_limit(st, at_hour(8, 1)).binding.source == Source.SCHEDULE
    with pytest.raises(KeyError):
        lift_order(st, "KEGOC-17/2026", at_hour(9))


def test_zero_order_and_zone_cap() -> None:
    st = state_with([2000.0] * 24, orders=(
        EmergencyOrder("north-south", "Z-1", at_hour(1), at_hour(3), cap_mw=1.0),  # zone cap: half is ours
        EmergencyOrder("dpc-1", "S-0", at_hour(10), at_hour(11), share_pct=0),
    ))
    assert effective_limit(st, at_hour(2)).limit_w == pytest.approx(500_000.0)
    zero = effective_limit(st, at_hour(10, 30))
    assert zero.limit_w == 0.0 and zero.binding.reference == "S-0"
    assert effective_limit(st, at_hour(11)).limit_w == 2_000_000.0  # the window ends at its end


def test_grid_signal_and_stale_signal_safe_curtailment() -> None:
    contract = GridContract(contract_mw=3.0, stale_after_s=240, safe_pct=10)
    t = at_hour(6)
    st = state_with([9000.0] * 24, grid=GridReading(t - timedelta(seconds=30), target_pct=50))
    st = replace(st, site=replace(SITE, grid=contract))
    live = effective_limit(st, t)
    assert live.binding.source == Source.GRID_SIGNAL and live.limit_w == 1_500_000.0
    stale = effective_limit(st, t + timedelta(seconds=240))
    assert stale.binding.source == Source.GRID_STALE and stale.limit_w == pytest.approx(300_000.0)
    assert "stale" in stale.explain() and "10 %" in stale.explain()
    never = effective_limit(replace(st, grid=None), t)
    assert never.binding.source == Source.GRID_STALE and "never received" in never.binding.reason
    mw = effective_limit(replace(st, grid=GridReading(t, target_mw=0.8)), t)
    assert mw.limit_w == 800_000.0


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        effective_limit(state_with([1.0] * 24), datetime(2026, 11, 22, 3, 0))


# ---------------------------------------------------------------- plan


def test_accepted_push_returns_the_effective_plan() -> None:
    base = QuotaState(SITE, orders=(EmergencyOrder("dpc-1", "E-9", at_hour(5, 30), at_hour(6, 30), cap_mw=0.5),))
    kwh = [3000.0] * 24
    kwh[23] = 0.0
    st, plan = accept_schedule(base, DaySchedule.from_kwh("dpc-1", DAY, kwh, reference="KOREM-1"), NOW)
    assert len(st.schedules) == 1 and len(plan.hours) == 24
    h5, h6, h24 = plan.hours[4], plan.hours[5], plan.hours[23]
    # the 0.5 MW order covers half of hours 5 and 6: the caps allow 4800/2 + 500/2 kWh there, less than bought
    assert h5.purchased_kwh == 3000.0 and h5.cap_kwh == pytest.approx(2650.0)
    assert h5.planned_kwh == pytest.approx(2650.0) and h6.planned_kwh == pytest.approx(2650.0)
    assert plan.hours[0].planned_kwh == 3000.0 and h24.planned_kwh == 0.0
    reasons = [s.binding.source for s in plan.segments]
    assert Source.EMERGENCY in reasons and reasons[0] == Source.SCHEDULE
    emergency = next(s for s in plan.segments if s.binding.source == Source.EMERGENCY)
    assert (emergency.start, emergency.end) == (at_hour(5, 30), at_hour(6, 30))
    # a second push for the same day replaces the first
    st2, _ = accept_schedule(st, DaySchedule.from_kwh("dpc-1", DAY, [10.0] * 24), NOW)
    assert len(st2.schedules) == 1 and effective_limit(st2, at_hour(1)).limit_w == 10_000.0


def test_plan_segments_merge_unchanged_hours() -> None:
    plan = effective_plan(state_with([700.0] * 24), DAY)
    assert len(plan.segments) == 24  # each hour's schedule is its own constraint (reason names the hour)
    assert all(s.limit_w == 700_000.0 for s in plan.segments)
    assert plan.segments[0].start == hour_window(DAY, 1, ASTANA)[0]


def test_overlap_with_an_earlier_long_window_is_found() -> None:
    t = at_hour(3)
    orders = [EmergencyOrder("dpc-1", "A", t, t + timedelta(hours=5), cap_mw=1.0),
              EmergencyOrder("dpc-1", "B", t + timedelta(hours=1), t + timedelta(hours=2), cap_mw=2.0),
              EmergencyOrder("dpc-1", "C", t + timedelta(hours=3), t + timedelta(hours=4), cap_mw=2.0),
              EmergencyOrder("north-south", "Z", t, None, cap_mw=9.0)]  # another area: no conflict
    with pytest.raises(QuotaInputError) as e:
        validate_orders(orders, SITE.areas(), NOW)
    assert set(issues(e)) == {"orders[1].start", "orders[2].start"}
    validate_orders(orders[2:], SITE.areas(), NOW)  # C and Z alone are fine


@pytest.mark.parametrize("day", [date.min, date.max])
def test_a_day_at_the_edge_of_the_calendar_is_refused_not_a_crash(day: date) -> None:
    """Found by the contract walk: 0001-01-01 overflowed when its hours were converted to UTC (a 500)."""
    with pytest.raises(QuotaInputError) as e:
        accept_schedule(QuotaState(SITE), DaySchedule.from_kwh("dpc-1", day, [1.0] * 24), NOW)
    assert "not a day a schedule can be for" in issues(e)["day"]
