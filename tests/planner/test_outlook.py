"""Tomorrow's fleet per hour: thermal derating and availability from recorded minutes, faults, hour grouping."""

from __future__ import annotations

import pytest

from kuat.catalog import MODELS, hashrate_at_power
from planner.curve import energy_curve
from planner.outlook import MachineOutlook, Observation, board_factor, derating, hour_fleet, hour_key
from quota.fleet import Machine

S19J = MODELS["S19j Pro"]


def minutes(hour: int, n: int, power_w: float, ratio: float, share: float = 1.0) -> list[Observation]:
    """`n` minutes of hour `hour` hashing at `ratio` of what the model gives at `power_w`."""
    return [Observation(hour, power_w, hashrate_at_power(S19J, power_w) * ratio, share) for _ in range(n)]


def test_derating_is_the_median_observed_over_model_per_hour() -> None:
    obs = minutes(14, 5, 3068, 0.9) + minutes(14, 2, 3068, 0.95) + minutes(3, 6, 2500, 1.0)
    obs += minutes(3, 1, 3068, 0.3)  # a bad reading (outside 0.5..1.2): ignored
    obs += minutes(9, 1, 3068, 0.8)  # too few observations to trust: 1.0
    obs += [Observation(5, 25.0, 0.0, 1.0)] * 10  # asleep: not hashing, says nothing about derating
    factors, available = derating(S19J, obs)
    assert factors[14 - 1] == pytest.approx(0.9)
    assert factors[3 - 1] == pytest.approx(1.0)
    assert factors[9 - 1] == 1.0 and factors[5 - 1] == 1.0
    assert all(available)


def test_hours_it_rarely_answered_are_left_out() -> None:
    obs = minutes(16, 10, 3068, 1.0, share=0.3) + minutes(17, 10, 3068, 1.0, share=0.6)
    _, available = derating(S19J, obs, min_available=0.5)
    assert available[16 - 1] is False and available[17 - 1] is True


def test_board_factor() -> None:
    assert board_factor(2, 3) == pytest.approx(2 / 3)
    assert board_factor(None, 3) == 1.0 and board_factor(2, 0) == 1.0


def test_hour_fleets_carry_the_factors_and_share_curves() -> None:
    m = Machine("a", S19J, presets=(1.0,), sleep=False, outlet_switchable=True)
    hot = tuple(0.9 if 13 <= h <= 16 else 1.0 for h in range(1, 25))
    ok = MachineOutlook(m, hash_by_hour=hot)
    down = MachineOutlook(Machine("b", S19J), out="offline now")
    part = MachineOutlook(Machine("c", S19J, presets=(1.0,)), available_by_hour=tuple(h != 20 for h in range(1, 25)))
    outlooks = [ok, down, part]
    assert len(hour_fleet(outlooks, 3)) == 2 and len(hour_fleet(outlooks, 20)) == 1
    assert hour_fleet(outlooks, 14).ths[0] == pytest.approx(104 * 0.9)
    assert hour_key(outlooks, 13) == hour_key(outlooks, 14) != hour_key(outlooks, 12)
    # the hot hour's curve: the same watts buy 10 % fewer TH/s
    hot_curve = energy_curve(hour_fleet([ok], 14), points=4)
    cool_curve = energy_curve(hour_fleet([ok], 3), points=4)
    assert hot_curve.blocks[0].ths_per_w == pytest.approx(0.9 * cool_curve.blocks[0].ths_per_w, rel=1e-6)
