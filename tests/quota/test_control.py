"""Closed loop: the hour's energy pace, the three bands, machines that did not follow."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from quota.allocate import Mode
from quota.control import (
    Action,
    Bands,
    LoopState,
    Planned,
    PowerReading,
    band_step,
    dispatch_limit,
    energy_pace,
    site_power,
    stragglers,
)
from quota.limits import DaySchedule, EmergencyOrder, QuotaState, SiteConfig, Source
from quota.timebase import hour_window

H0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)


def test_energy_pace_by_hand() -> None:
    # 1000 kWh bought, 400 used at half past; 1200 kW for the 30 s lag; 1 % margin:
    # (1000 - 400 - 10 - 1200 * 30 / 3600) kWh over 1770 s
    p = energy_pace(1000, 400, H0 + timedelta(minutes=30), H1, current_w=1_200_000, lag_s=30, uncertainty=0.01)
    assert p.margin_kwh == pytest.approx(10.0)
    assert p.pace_w == pytest.approx(580 * 3600 / 1770 * 1000)
    assert p.constraint.source == Source.ENERGY_BUDGET and "400.0 of 1000.0 kWh" in p.constraint.reason


def test_energy_pace_never_negative_and_last_seconds() -> None:
    assert energy_pace(100, 120, H0 + timedelta(minutes=50), H1, current_w=50_000).pace_w == 0.0
    # the last seconds: what is left over what remains (49 kWh in 10 s does not limit anything)
    end = energy_pace(100, 50, H1 - timedelta(seconds=10), H1, current_w=100_000, lag_s=30)
    assert end.pace_w == pytest.approx(49_000 * 3600 / 10)
    tight = energy_pace(100, 98.9, H1 - timedelta(seconds=10), H1, current_w=600_000, lag_s=30)
    assert tight.pace_w == pytest.approx(100 * 3600 / 10)  # 0.1 kWh left after the margin: 36 kW, not zero
    # just over two lags left: the lag term is used and stays finite and positive
    near = energy_pace(100, 95, H1 - timedelta(seconds=61), H1, current_w=200_000, lag_s=30)
    assert near.pace_w == pytest.approx((4000 - 200_000 * 30 / 3600) * 3600 / 31)


def test_following_the_pace_ends_the_hour_at_or_under_its_energy() -> None:
    bought, used, t, power = 1000.0, 0.0, H0, 1_500_000.0
    while t < H1:
        p = energy_pace(bought, used, t, H1, current_w=power, lag_s=30, uncertainty=0.01)
        new = p.pace_w
        for _ in range(30):  # the plant follows after 30 s
            used += power / 3.6e6
            t += timedelta(seconds=1)
            if t >= H1:
                break
        power = min(new, 1_500_000.0)
        while t < H1 and (t - H0).total_seconds() % 60:
            used += power / 3.6e6
            t += timedelta(seconds=1)
    assert used <= bought
    assert used >= 0.98 * bought


def test_three_bands_learn_the_model_error_and_settle() -> None:
    bands = Bands()
    state = LoopState()
    limit = 1_000_000.0
    actions = []
    measured = 0.0
    for _ in range(40):
        planned = state.budget_w or limit
        measured = 1.06 * planned  # the model underestimates site power by 6 %
        d = band_step(bands, state, limit, measured, planned, settled=True)
        state = d.state
        actions.append(d.action)
        measured = 1.06 * d.budget_w
    assert measured <= limit * bands.cap_threshold
    assert measured >= limit * bands.uncap_threshold
    assert state.correction == pytest.approx(1.06, rel=0.01)
    assert set(actions[-10:]) == {Action.HOLD}  # settled, no oscillation


def test_a_cut_lands_under_the_cap_despite_model_error_and_stays_there() -> None:
    """The machines a cut moves land ~1.5 % above the model (presets, per-unit spread): a cut aimed at the target
    (99 %) would land over the cap; aimed at 98 % it lands under it, and the settled loop holds there."""
    bands = Bands()
    limit, error = 500_000.0, 1.015
    d = band_step(bands, LoopState(1.0, 1_000_000.0), limit, 1_000_000.0, 1_000_000.0, settled=False)
    assert d.action == Action.CAP
    state, trace = d.state, [error * d.budget_w]
    for _ in range(12):
        d = band_step(bands, state, limit, trace[-1], state.budget_w or 0.0, settled=True)
        state = d.state
        trace.append(error * d.budget_w)
    assert max(trace) <= limit * bands.cap_threshold  # never back over the cap
    assert min(trace) >= limit * bands.uncap_threshold  # and not cut deeper than the bands


def test_over_threshold_cuts_at_once_and_low_power_uncaps() -> None:
    bands = Bands()
    state = LoopState(correction=1.0, budget_w=1_000_000.0)
    cut = band_step(bands, state, 800_000.0, measured_w=1_000_000.0, planned_w=1_000_000.0, settled=False)
    assert cut.action == Action.CAP and cut.budget_w <= 800_000.0 * bands.cap_target
    up = band_step(bands, LoopState(1.0, 500_000.0), 1_000_000.0, 500_000.0, 500_000.0, settled=True)
    assert up.action == Action.UNCAP and up.budget_w == pytest.approx(990_000.0)
    hold = band_step(bands, LoopState(1.0, 985_000.0), 1_000_000.0, 985_000.0, 985_000.0, settled=False)
    assert hold.action == Action.HOLD and hold.budget_w == 985_000.0  # not settled: measurements are old
    steady = band_step(bands, LoopState(1.0, 980_000.0), 1_000_000.0, 980_000.0, 980_000.0, settled=True)
    assert steady.action == Action.HOLD and steady.budget_w == 980_000.0  # inside the bands: no change, no churn
    with pytest.raises(ValueError):
        Bands(uncap_threshold=0.99, cap_target=0.98).check()


def test_stragglers_resent_then_cut() -> None:
    planned = {
        "sleepy": Planned(Mode.SLEEP, 25.0, since_s=300, outlet_switchable=True),
        "young": Planned(Mode.SLEEP, 25.0, since_s=10),
        "good": Planned(Mode.POWER_TARGET, 2500.0, since_s=300),
    }
    measured = {"sleepy": 3100.0, "young": 3100.0, "good": 2550.0}
    first = stragglers(planned, measured, {})
    assert [(r.device_id, r.mode) for r in first.redispatch] == [("sleepy", Mode.SLEEP)]
    later = stragglers(planned, measured, {"sleepy": 3, "good": 2})
    assert [(r.device_id, r.mode) for r in later.redispatch] == [("sleepy", Mode.OUTLET_OFF)]
    assert "good" not in later.attempts  # it follows now: its count is cleared


def test_site_power_uncertainty() -> None:
    sp = site_power([PowerReading("a", 1000, "pdu"), PowerReading("b", 1000, "estimated"),
                     PowerReading("c", None, "none")])
    assert sp.watts == 2000 and sp.missing == 1
    # one reading of each: no better than its maximum error (1 % and 10 %, on half the power each)
    assert sp.uncertainty == pytest.approx(0.055) and sp.estimated_share == 0.5
    # 1,000 outlet meters: their independent errors mostly cancel; the shared calibration bias (0.2 %) remains
    fleet = site_power([PowerReading(f"m{i}", 3000.0, "pdu") for i in range(1000)])
    expected = 0.002 + 2 * math.sqrt((0.01**2 - 0.002**2) / 3) / math.sqrt(1000)
    assert fleet.uncertainty == pytest.approx(expected) and 0.0023 < fleet.uncertainty < 0.0025
    # summed per source (what the loop does for 100,000 machines): the same figure, given the sum of squares
    summed = site_power([PowerReading("all-pdu", 3e6, "pdu", power_sq=1000 * 3000.0**2)])
    assert summed.uncertainty == pytest.approx(fleet.uncertainty)
    # firmware figures share the model's bias: they do not average out
    reported = site_power([PowerReading(f"m{i}", 3000.0, "reported") for i in range(1000)])
    assert reported.uncertainty == pytest.approx(0.03)


def test_dispatch_limit_paces_the_hour_and_looks_ahead() -> None:
    day = H0.date()
    kwh = [1000.0] * 24
    kwh[1] = 500.0
    state = QuotaState(SiteConfig("s", connection_kw=5000), schedules=(DaySchedule.from_kwh("s", day, kwh),))
    start, end = hour_window(day, 1)
    behind = dispatch_limit(state, start + timedelta(minutes=30), used_kwh=300, current_w=600_000)
    assert behind.binding.source == Source.ENERGY_BUDGET
    assert behind.limit_w > 1_000_000  # catching up: above the hour's average, the schedule average is not a cap
    edge = dispatch_limit(state, end - timedelta(seconds=10), used_kwh=985, current_w=1_000_000)
    assert edge.binding.source == Source.SCHEDULE and edge.limit_w == 500_000  # acts in hour 2: its limit now
    soon = EmergencyOrder("s", "E-1", start + timedelta(minutes=10, seconds=20), None, cap_mw=0.2)
    ordered = QuotaState(state.site, state.schedules, orders=(soon,))
    early = dispatch_limit(ordered, start + timedelta(minutes=10), used_kwh=160, current_w=1_000_000)
    assert early.binding.reference == "E-1" and early.limit_w == 200_000


def _mixed_plant(budget_w: float) -> float:
    """A site whose model error depends on the mix the budget buys (presets of different firmware): up to 98.5 %
    of 20 kW the machines land 1.3 % under the model, above it on the model (the e2e test's numbers: a cut
    planned at 19.7 kW landed at 19.45 kW, the raise planned at 20.0 kW at 20.0 kW)."""
    return budget_w * (0.987 if budget_w < 19_700.0 else 0.9995)


def test_a_raise_after_a_cut_is_held_under_what_overshot_and_the_loop_settles() -> None:
    bands, limit = Bands(), 20_000.0
    state, measured = LoopState(correction=0.987, budget_w=19_000.0), _mixed_plant(19_000.0)
    trace, actions = [], []
    for _ in range(30):
        d = band_step(bands, state, limit, measured, state.budget_w or 0.0, settled=True)
        state, measured = d.state, _mixed_plant(d.budget_w)
        trace.append(measured)
        actions.append(d.action)
    assert actions[0] == Action.UNCAP and trace[0] > limit * bands.cap_threshold  # the first raise overshoots
    assert Action.CAP in actions[:3]
    assert all(a == Action.HOLD for a in actions[-20:])  # then no cap-raise cycle (each one rebooting Whatsminers)
    assert limit * bands.uncap_threshold <= trace[-1] <= limit * bands.cap_threshold
    assert state.ceiling is not None and state.ceiling_limit_w == limit


def test_the_ceiling_is_relearnt_when_the_plant_changes_and_forgotten_with_the_limit() -> None:
    bands, limit = Bands(), 20_000.0
    at_ceiling = LoopState(correction=1.0, budget_w=18_000.0, ceiling=0.9, ceiling_limit_w=limit)
    # at its ceiling and still under the raise threshold (machines were added, say): raised by the secant
    d = band_step(bands, at_ceiling, limit, 17_000.0, 18_000.0, settled=False)
    assert d.action == Action.UNCAP
    assert d.budget_w == pytest.approx(min(18_000.0 * 19_800.0 / 17_000.0, limit * bands.cap_target))
    below = LoopState(correction=1.0, budget_w=17_000.0, ceiling=0.9, ceiling_limit_w=limit)
    d = band_step(bands, below, limit, 17_000.0, 17_000.0, settled=False)
    assert d.budget_w == pytest.approx(18_000.0)  # under the ceiling: raised to it, not to the target
    # a limit 2 % away keeps it (an energy pace moves a little every cycle), scaled; 10 % away forgets it
    d = band_step(bands, below, limit * 1.02, 17_000.0, 17_000.0, settled=False)
    assert d.budget_w == pytest.approx(0.9 * limit * 1.02)
    d = band_step(bands, below, limit * 1.10, 17_000.0, 17_000.0, settled=False)
    assert d.budget_w == pytest.approx(limit * 1.10 * bands.cap_target) and d.state.ceiling is None
