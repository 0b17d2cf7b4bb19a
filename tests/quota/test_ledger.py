"""Ledger and excursions, checked against sums done by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quota.ledger import (
    Allotment,
    CapWindow,
    EnergyDelta,
    PowerSample,
    combine,
    energy_excursions,
    energy_kwh,
    excursions,
    ledger_rows,
    ledger_rows_from_deltas,
    tenant_allotments,
)

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def s(sec: float, watts: float) -> PowerSample:
    return PowerSample(T0 + timedelta(seconds=sec), watts)


def cap(a: float, b: float, watts: float, cause: str = "emergency", ref: str | None = "E-1") -> CapWindow:
    return CapWindow(T0 + timedelta(seconds=a), T0 + timedelta(seconds=b), watts, cause, f"{cause} cap", ref)


def test_excursion_with_ramps_by_hand() -> None:
    # 800 -> 1200 W over 10 s, flat 10 s, back to 800 W over 10 s, against a 1000 W cap:
    # triangles of 200 W x 5 s / 2 on each side and a 200 W x 10 s block = 500 + 2000 + 500 = 3000 W s
    found = excursions([s(0, 800), s(10, 1200), s(20, 1200), s(30, 800)], [cap(0, 100, 1000)])
    assert len(found) == 1
    e = found[0]
    assert e.start == T0 + timedelta(seconds=5) and e.end == T0 + timedelta(seconds=25)
    assert e.duration_s == pytest.approx(20)
    assert e.peak_over_w == pytest.approx(200)
    assert e.excess_kwh == pytest.approx(3000 / 3.6e6)
    assert e.excess_mw_s == pytest.approx(0.003)
    assert (e.cause, e.reference) == ("emergency", "E-1")


def test_excursion_follows_the_cap_in_force_and_its_cause() -> None:
    # flat 900 W; the grid cap of 1000 W is replaced at 15 s by a 500 W emergency cap: 400 W x 15 s = 6000 W s
    found = excursions([s(0, 900), s(30, 900)], [cap(0, 15, 1000, "grid_signal", None), cap(15, 60, 500)])
    assert len(found) == 1
    assert found[0].cause == "emergency" and found[0].start == T0 + timedelta(seconds=15)
    assert found[0].excess_kwh == pytest.approx(6000 / 3.6e6)


def test_two_excursions_and_none_where_no_cap() -> None:
    samples = [s(0, 1500), s(10, 1500), s(11, 500), s(20, 500), s(21, 1500), s(30, 1500), s(40, 9000)]
    found = excursions(samples, [cap(0, 30, 1000)])
    assert len(found) == 2
    assert found[0].excess_kwh == pytest.approx((500 * 10 + 500 * 0.5 / 2) / 3.6e6)
    assert found[1].excess_kwh == pytest.approx((500 * 0.5 / 2 + 500 * 9) / 3.6e6)
    assert excursions(samples, []) == []


def test_hourly_and_minute_rows() -> None:
    samples = [s(m * 60, 60_000) for m in range(121)]  # 60 kW flat for two hours
    h1, h2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    hours = [Allotment(T0, h1, 50.0), Allotment(h1, h2, 70.0)]
    rows = ledger_rows("site", "dpc-1", samples, hours, T0, T0 + timedelta(hours=2), period_s=3600)
    assert [(r.allotted_kwh, round(r.consumed_kwh, 9), round(r.over_kwh, 9)) for r in rows] == [
        (50.0, 60.0, 10.0), (70.0, 60.0, 0.0)]
    minutes = ledger_rows("site", "dpc-1", samples, hours, T0, T0 + timedelta(hours=2))
    assert len(minutes) == 120
    assert minutes[0].consumed_kwh == pytest.approx(1.0) and minutes[0].allotted_kwh == pytest.approx(50 / 60)
    over = energy_excursions(rows)
    assert len(over) == 1 and over[0].excess_kwh == pytest.approx(10.0)
    assert "60.000 kWh against 50.000" in over[0].reason


def test_rows_from_meter_deltas_tenants_and_zones() -> None:
    deltas = [EnergyDelta(T0, T0 + timedelta(seconds=120), 2.0)]
    allot = [Allotment(T0, T0 + timedelta(hours=1), 60.0)]
    rows = ledger_rows_from_deltas("site", "a", deltas, allot, T0, T0 + timedelta(minutes=3))
    assert [round(r.consumed_kwh, 9) for r in rows] == [1.0, 1.0, 0.0]
    tenant = tenant_allotments(allot, 0.25)
    assert tenant[0].kwh == 15.0
    other = ledger_rows_from_deltas("site", "b", deltas, allot, T0, T0 + timedelta(minutes=3))
    zone = combine("zone", "north", rows + other)
    assert len(zone) == 3 and zone[0].consumed_kwh == pytest.approx(2.0) and zone[0].allotted_kwh == pytest.approx(2.0)


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="not a finite"):
        energy_kwh([s(0, 10), s(10, float("nan"))], T0, T0 + timedelta(seconds=10))
    with pytest.raises(ValueError, match="not valid"):
        ledger_rows_from_deltas("site", "a", [EnergyDelta(T0, T0, -1.0)], [], T0, T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="share"):
        tenant_allotments([], 1.5)
