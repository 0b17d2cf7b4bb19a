"""Closed loop on the simulated site (in process, ManualClock): hours end under their purchased energy, an
emergency cut is followed within seconds and recorded as an excursion with its cause."""

from __future__ import annotations

import random
from datetime import date, time
from pathlib import Path

import pytest

from bench.quota_day import Cut, run_day

SMALL = Path(__file__).resolve().parents[2] / "sim" / "sites" / "small.toml"


@pytest.fixture(scope="module")
def three_hours():  # type: ignore[no-untyped-def]
    cut = Cut("KEGOC-TEST-1", time(1, 10), None, share_pct=0.0, lift=time(1, 55))  # full stop, lifted by hand
    return run_day(SMALL, date(2026, 1, 15), hours=3, cuts=[cut], net=random.randint(20, 250),
                   profile=[0.9, 0.6, 0.75] + [0.5] * 21)


def test_no_hour_above_its_purchased_energy(three_hours) -> None:  # type: ignore[no-untyped-def]
    assert len(three_hours.hours) == 3
    for h in three_hours.hours:
        assert h.used_kwh <= h.purchased_kwh, f"hour {h.hour}: {h.used_kwh:.3f} > {h.purchased_kwh:.3f} kWh"


def test_uncut_hours_use_most_of_their_energy(three_hours) -> None:  # type: ignore[no-untyped-def]
    first, _, third = three_hours.hours
    assert first.used_kwh >= 0.97 * first.allowed_kwh
    assert third.used_kwh >= 0.95 * third.allowed_kwh  # it starts by waking machines slept in hour 2
    assert first.hash_thh <= first.bound_thh


def test_emergency_cut_is_followed_and_recorded(three_hours) -> None:  # type: ignore[no-untyped-def]
    cut = three_hours.hours[1]
    assert cut.allowed_kwh < cut.purchased_kwh  # 45 of its 60 minutes at 0
    assert cut.used_kwh <= cut.allowed_kwh
    emergency = [e for e in three_hours.excursions if e.cause == "emergency"]
    assert all(e.reference == "KEGOC-TEST-1" for e in emergency)
    assert all(e.duration_s <= 10.0 for e in emergency)  # reacted at once: a sleep takes a few seconds
    assert sum(e.excess_kwh for e in three_hours.excursions) < 0.05
    assert three_hours.energy_excursions == []
