from __future__ import annotations

import pytest

from controller.energy import Integrator


def test_trapezoid_between_consecutive_samples() -> None:
    integ = Integrator(max_gap_s=120)
    assert integ.add("m", 0.0, 3000.0) is None  # first sample opens the chain
    interval = integ.add("m", 60.0, 3600.0)
    assert interval is not None and not interval.gap
    assert interval.kwh == pytest.approx((3000 + 3600) / 2 * 60 / 3_600_000)
    assert integ.add("m", 120.0, 3600.0).kwh == pytest.approx(3600 * 60 / 3_600_000)  # type: ignore[union-attr]


def test_long_interval_is_flagged_not_counted() -> None:
    integ = Integrator(max_gap_s=120)
    integ.add("m", 0.0, 3000.0)
    interval = integ.add("m", 600.0, 3000.0)
    assert interval is not None and interval.gap and interval.kwh == 0.0 and interval.seconds == 600.0
    assert integ.add("m", 610.0, 3000.0).kwh > 0  # type: ignore[union-attr]  # the chain goes on after the gap


def test_unknown_power_breaks_the_chain_and_stale_samples_are_ignored() -> None:
    integ = Integrator(max_gap_s=120)
    integ.add("m", 0.0, 3000.0)
    assert integ.add("m", 10.0, None) is None
    assert integ.add("m", 20.0, 3000.0) is None  # no trapezoid across an unknown figure
    assert integ.add("m", 20.0, 3000.0) is None  # duplicate
    assert integ.add("m", 5.0, 3000.0) is None  # out of order
    assert integ.add("m", 30.0, 3000.0).kwh == pytest.approx(3000 * 10 / 3_600_000)  # type: ignore[union-attr]


def test_chains_are_per_key() -> None:
    integ = Integrator(max_gap_s=120)
    integ.add("a", 0.0, 1000.0)
    integ.add("b", 0.0, 2000.0)
    assert integ.add("a", 36.0, 1000.0).kwh == pytest.approx(0.01)  # type: ignore[union-attr]
    assert integ.add("b", 36.0, 2000.0).kwh == pytest.approx(0.02)  # type: ignore[union-attr]
