"""The APScheduler jobs on real services: rollups written, silent gateways offline, sightings handed over,
compliance checked; a failing job is logged and the others go on."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller import history
from controller.runtime import build_services
from controller.scheduler import jobs, make_scheduler
from tests.controller.conftest import make_settings
from tests.controller.test_ingest_mqtt import wait_for
from tests.controller.wire import T0, batch, miner


def test_jobs_run_on_schedule(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, rollup_flush_s=0.2, gateway_timeout_s=0.3, sightings_flush_s=0.2,
                             compliance_check_s=0.3)  # fmt: skip
    svc = build_services(settings, with_ingest=False)
    assert {name for name, _, _ in jobs(svc)} == {"rollup_flush", "gateway_timeouts", "registry_sightings",
                                                  "owner_refresh", "compliance_check", "retention", "money_checks",
                                                  "alerts_evaluate", "alerts_deliver"}
    svc.telemetry.ingest(batch(1, T0, [miner(1), miner(2)]))
    svc.telemetry.ingest(batch(2, T0 + timedelta(seconds=10), [miner(1), miner(2)]))
    scheduler = make_scheduler(svc)
    scheduler.start()
    try:
        def rows() -> int:
            with svc.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(history.device_minute)).scalar() or 0)

        wait_for(lambda: rows() == 2, what="the rollup job")
        wait_for(lambda: svc.metrics.sightings_sent == 2, what="the sightings job")
        wait_for(lambda: not svc.gateways.is_online("kz1", "gw1"), what="the gateway timeout job")
        with caplog.at_level(logging.INFO, logger="controller.runtime"):
            wait_for(lambda: "hscs_checked=2" in caplog.text, what="the compliance job over both machines")
        with caplog.at_level(logging.ERROR, logger="controller.scheduler"):
            svc.engine.dispose()
            with svc.engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE site_minute")
            svc.telemetry.ingest(batch(3, T0 + timedelta(minutes=1), [miner(1)]))
            wait_for(lambda: svc.metrics.db_errors > 0, what="a failing rollup write")
        assert svc.book.buckets  # kept for the next try
        assert scheduler.running
    finally:
        scheduler.shutdown(wait=True)
        history.create_tables(svc.engine)
        svc.close()
