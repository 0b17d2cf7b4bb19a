"""The telemetry service into live state, energy by source/owner/site and SQL minute rollups (real SQLite)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller import history
from controller.runtime import Services, build_services
from controller.settings import EnergySource
from kuat.wire import v1
from tests.controller.conftest import BOTH_DATABASES, make_settings, sqlite_or_postgres
from tests.controller.wire import T0, batch, every, miner, pdu


@pytest.fixture(params=BOTH_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Rollup upserts and site recomputation are dialect-specific SQL: run them on both databases."""
    return sqlite_or_postgres(request, tmp_path)


def feed(svc: Services, miners_power: dict[int, float], seconds: int, step: int = 10, seq0: int = 1) -> int:
    seq = seq0
    for ts in every(step, seconds // step + 1):
        svc.telemetry.ingest(batch(seq, ts, [miner(i, p) for i, p in miners_power.items()], [pdu(1)]))
        seq += 1
    return seq


def test_energy_by_source_and_site_from_rollups(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url=database_url,
        meters={"kz1": {"default": "grid", "devices": {miner(2).device_id: "renewables"}}},
    )
    svc = build_services(settings, with_ingest=False)
    try:
        feed(svc, {1: 3000.0, 2: 1500.0}, seconds=180)
        assert svc.rollups.flush(everything=True) > 0
        by_source = {r["source"]: r["energy_kwh"] for r in svc.fleet.energy("source")}
        assert by_source[EnergySource.GRID] == pytest.approx(3000 * 180 / 3.6e6)
        assert by_source[EnergySource.RENEWABLES] == pytest.approx(1500 * 180 / 3.6e6)
        by_owner = svc.fleet.energy("owner")
        assert {r["owner"] for r in by_owner} == {"unassigned"}  # no HSC has an owner in the registry yet
        per_device = {(r["device_id"], r["source"]): r["energy_kwh"] for r in svc.fleet.energy("device")}
        assert per_device[(miner(1).device_id, "grid")] == pytest.approx(0.15)
        assert (pdu(1).device_id, "grid") in per_device  # PDUs are integrated per device ...
        assert sum(r["energy_kwh"] for r in svc.fleet.energy("site")) == pytest.approx(0.225)  # ... not in totals
        series = svc.fleet.site_series("kz1", minutes=10**7)
        grid_rows = [r for r in series if r["source"] == "grid"]
        assert [r["miners"] for r in grid_rows] == [1, 1, 1, 1]  # 12:00, 12:01, 12:02 and the 12:03:00 sample
        assert grid_rows[0]["power_w"] == pytest.approx(3000.0)
        assert grid_rows[0]["hashrate_ths"] == pytest.approx(100.0)
    finally:
        svc.close()


def test_pending_minutes_count_before_they_are_written(services: Services) -> None:
    feed(services, {1: 3600.0}, seconds=60)
    assert services.fleet.energy("site")[0]["energy_kwh"] == pytest.approx(0.06)
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(history.device_minute)).scalar() == 0


def test_gap_is_flagged_not_counted(services: Services) -> None:
    svc = services
    svc.telemetry.ingest(batch(1, T0, [miner(1, 3000.0)]))
    svc.telemetry.ingest(batch(2, T0 + timedelta(minutes=30), [miner(1, 3000.0)]))
    rows = svc.fleet.energy("device")
    assert rows[0]["energy_kwh"] == 0.0 and rows[0]["gap_s"] == pytest.approx(1800.0)
    assert svc.metrics.energy_gaps == 1


def test_duplicate_batch_is_dropped_and_historical_never_overwrites_live(services: Services) -> None:
    svc = services
    live = batch(10, T0 + timedelta(minutes=5), [miner(1, 3000.0, state=v1.MinerState.MINING)])
    assert svc.telemetry.ingest(live)
    assert not svc.telemetry.ingest(live)  # a QoS 1 redelivery
    assert svc.metrics.rejected["duplicate"] == 1
    old = batch(7, T0, [miner(1, 20.0, state=v1.MinerState.SLEEPING)], historical=True)
    assert svc.telemetry.ingest(old)
    d = svc.live.find(miner(1).device_id)[0]
    assert d.sample.power_w == 3000.0 and d.ts == live.ts  # live state kept the newer sample
    assert svc.metrics.historical_samples_total == 1 and svc.metrics.samples_total == 1
    svc.rollups.flush(everything=True)
    minutes = {r["minute"].replace(tzinfo=None) for r in history.device_history(
        svc.engine, "kz1", miner(1).device_id, T0 - timedelta(hours=1))}
    assert T0.replace(tzinfo=None) in minutes  # the historical sample went to history


def test_late_samples_merge_into_written_minutes(services: Services) -> None:
    svc = services
    svc.telemetry.ingest(batch(1, T0, [miner(1, 3000.0)]))
    svc.telemetry.ingest(batch(2, T0 + timedelta(seconds=20), [miner(1, 3000.0)]))
    svc.rollups.flush(everything=True)
    svc.telemetry.ingest(batch(3, T0 + timedelta(seconds=40), [miner(1, 6000.0, temp_c=80.0)]))
    svc.rollups.flush(everything=True)
    rows = history.device_history(svc.engine, "kz1", miner(1).device_id, T0 - timedelta(hours=1))
    assert len(rows) == 1
    row = rows[0]
    assert row["samples"] == 3 and row["power_w_sum"] == 12000.0 and row["power_w_max"] == 6000.0
    assert row["temp_c_max"] == 80.0
    assert row["energy_kwh"] == pytest.approx((3000 * 20 + 4500 * 20) / 3.6e6)
    site_rows = svc.fleet.site_series("kz1", minutes=10**7)
    assert site_rows[0]["power_w"] == pytest.approx(4000.0) and site_rows[0]["miners"] == 1


def test_failed_write_keeps_the_buckets(services: Services, tmp_path: Path) -> None:
    svc = services
    svc.telemetry.ingest(batch(1, T0, [miner(1)]))
    with svc.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE device_minute")
    with pytest.raises(Exception, match="device_minute"):
        svc.rollups.flush(everything=True)
    assert len(svc.book.buckets) == 1  # nothing lost
    history.create_tables(svc.engine)
    assert svc.rollups.flush(everything=True) == 1


def test_retention_prunes_old_rollups(services: Services) -> None:
    svc = services
    svc.telemetry.ingest(batch(1, T0, [miner(1)]))
    svc.rollups.flush(everything=True)
    assert svc.rollups.prune(T0 - timedelta(days=1)) == 0
    assert svc.rollups.prune(T0 + timedelta(days=1)) == 1


def test_site_totals_by_source_and_availability(services: Services) -> None:
    svc = services
    svc.telemetry.ingest(batch(1, T0, [miner(1, 3000.0), miner(2, None, available=False,
                                                             state=v1.MinerState.OFFLINE)]))
    totals = svc.fleet.site_totals()[0]
    assert totals["miners"] == 2 and totals["miners_available"] == 1
    assert totals["power_w_by_source"]["grid"] == 3000.0 and totals["states"] == {"mining": 1, "offline": 1}


def test_energy_per_owner_follows_the_registry(services: Services) -> None:
    from datetime import date

    from registry.schemas import ApproveIn, DpcIn, LicenseeIn

    svc = services
    registry = svc.registry
    assert registry is not None
    svc.telemetry.ingest(batch(1, T0, [miner(1), miner(2)]))
    svc.sightings.flush()  # both become pending registrations
    host = registry.create_licensee(LicenseeIn(bin="180340021791", name="Host LLP", licence_number="DM-1",
                                               subtype="I", valid_from=date(2025, 1, 10)), "operator:test")  # fmt: skip
    dpc = registry.create_dpc(DpcIn(name="kz1", address="Ekibastuz", zone="North", operator_id=host.id,
                                    capacity_mw=1), "operator:test")  # fmt: skip
    registry.approve("SN000001", ApproveIn(owner_id=host.id, dpc_id=dpc.id), "operator:test")
    assert svc.owners.refresh() == 1
    svc.telemetry.ingest(batch(2, T0 + timedelta(seconds=60), [miner(1), miner(2)]))
    by_owner = {r["owner"]: r["energy_kwh"] for r in svc.fleet.energy("owner")}
    assert by_owner == {"180340021791": pytest.approx(0.05), "unassigned": pytest.approx(0.05)}
    assert svc.live.find(miner(1).device_id)[0].owner == "180340021791"


def test_a_restarted_seq_with_new_data_is_not_a_duplicate(services: Services) -> None:
    svc = services
    assert svc.telemetry.ingest(batch(1, T0, [miner(1)]))
    assert svc.telemetry.ingest(batch(2, T0 + timedelta(seconds=10), [miner(1)]))
    # the agent's store was wiped: seq starts again at 1, with new data
    assert svc.telemetry.ingest(batch(1, T0 + timedelta(seconds=20), [miner(1)]))
    assert not svc.telemetry.ingest(batch(1, T0 + timedelta(seconds=20), [miner(1)]))  # a real redelivery
    assert svc.metrics.samples_total == 3 and svc.metrics.rejected["duplicate"] == 1


def test_energy_outlives_device_minutes_and_counts_whole_days(services: Services) -> None:
    svc = services
    feed(svc, {1: 3600.0}, seconds=60)  # 0.06 kWh on T0's day
    next_day = T0 + timedelta(days=1)
    svc.telemetry.ingest(batch(100, next_day, [miner(1, 3600.0)]))
    svc.telemetry.ingest(batch(101, next_day + timedelta(seconds=30), [miner(1, 3600.0)]))  # 0.03 kWh
    svc.rollups.flush(everything=True)
    # minute rows are short-lived, the day ledger is kept as long as site totals
    assert svc.rollups.prune(T0 - timedelta(days=1), device_minutes_older_than=T0 + timedelta(days=10)) == 5
    assert svc.fleet.energy("site")[0]["energy_kwh"] == pytest.approx(0.09)
    assert svc.fleet.energy("site")[0]["gap_s"] == pytest.approx(86340.0)  # T0+60 s -> next day: flagged
    first_day = svc.fleet.energy("site", since=T0, until=next_day)
    assert first_day[0]["energy_kwh"] == pytest.approx(0.06)
    assert svc.fleet.energy("site", since=next_day)[0]["energy_kwh"] == pytest.approx(0.03)
    svc.rollups.prune(T0 + timedelta(days=1))
    assert svc.fleet.energy("site")[0]["energy_kwh"] == pytest.approx(0.03)


def test_a_flush_builds_its_rows_a_chunk_at_a_time() -> None:
    """A flush holds at most one chunk of row dicts (bench/soak.py: one list of every bucket's row was hundreds of
    MB at 100,000 machines), and every bucket still becomes exactly one row."""
    taken = {("kz1", f"m{i}", 60 * (i % 3)): history.Bucket("miner", "gw", "host", "grid", samples=i)
             for i in range(25)}  # fmt: skip
    chunks = list(history._row_chunks(taken, size=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    rows = [r for c in chunks for r in c]
    assert sorted(r["samples"] for r in rows) == list(range(25))
    assert {(r["device_id"], r["minute"].timestamp()) for r in rows} == {(k[1], float(k[2])) for k in taken}
