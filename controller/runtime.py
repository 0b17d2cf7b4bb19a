"""Wiring: builds every service from the settings once, so the MQTT handlers, the API routes and the scheduler jobs
share the same objects (one live state, one rollup book, one command book)."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from controller.db import init_controller_db
from controller.history import RollupBook, RollupWriter, minute_start
from controller.influx import InfluxWriter
from controller.ingest import Ingest
from controller.live import LiveState
from controller.metrics import IngestMetrics
from controller.services.commands import CommandService
from controller.services.fleet import FleetService
from controller.services.gateways import GatewayService
from controller.services.owners import OwnerDirectory
from controller.services.sightings import SightingsBridge
from controller.services.telemetry import TelemetryService
from controller.settings import ControllerSettings, RegistryLinkSettings
from kuat import clock
from serverkit.memory import release_free_memory

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: ControllerSettings
    engine: Engine
    live: LiveState
    book: RollupBook
    metrics: IngestMetrics
    owners: OwnerDirectory
    sightings: SightingsBridge
    telemetry: TelemetryService
    gateways: GatewayService
    commands: CommandService
    fleet: FleetService
    rollups: RollupWriter
    registry: Any | None = None  # registry.service.RegistryService
    influx: InfluxWriter | None = None
    ingest: Ingest | None = None
    quota: Any | None = None  # controller.quota.service.QuotaService
    grid_signal: Any | None = None  # controller.quota.grid_signal.GridSignalListener
    money: Any | None = None  # controller.money.service.MoneyService
    planner: Any | None = None  # controller.planner.service.PlannerService
    registry_link: Any | None = None  # controller.registry_link.client.RegistryLink
    alerts: Any | None = None  # controller.alerts.service.AlertService
    lease: Any | None = None  # controller.lease.keeper.LeaseKeeper (active/standby), None: always active

    def close(self) -> None:
        """Stop ingest, write every pending rollup and flush InfluxDB (shutdown order matters: no data lost)."""
        if self.quota is not None and self.quota.loop is not None:
            self.quota.loop.stop()
        if self.grid_signal is not None:
            self.grid_signal.stop()
        if self.lease is not None:
            self.lease.stop()  # handed over at once: a standby takes over without waiting for the expiry
        if self.ingest is not None:
            self.ingest.stop()
        self.sightings.flush()
        try:
            self.rollups.flush(everything=True)
        except Exception:
            log.exception("final rollup write failed: the last minutes of history are lost")
        if self.influx is not None:
            self.influx.close()


def make_database(url: str) -> Engine:
    """The registry's engine (SQLite WAL / PostgreSQL), its migrations, and the controller's (controller.db)."""
    from registry.db import init_db
    from serverkit.db import make_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    init_db(engine)
    init_controller_db(engine)
    return engine


def make_registry(engine: Engine) -> Any:
    from registry.service import RegistryService
    from serverkit.db import session_factory

    return RegistryService(session_factory(engine))


def owners_from_registry(engine: Engine) -> dict[str, str]:
    """serial -> owner (the licensee's BIN) for every HSC that has an owner."""
    from sqlmodel import col, select

    from registry.models import Hsc, Licensee

    query = select(col(Hsc.serial), col(Licensee.bin)).join(Licensee, col(Hsc.owner_id) == col(Licensee.id))
    with engine.connect() as conn:
        return {serial: bin_ for serial, bin_ in conn.execute(query)}


def build_services(
    settings: ControllerSettings,
    engine: Engine | None = None,
    registry: Any | None = None,
    with_ingest: bool = True,
    with_registry: bool = True,
) -> Services:
    engine = engine if engine is not None else make_database(settings.database_url)
    if registry is None and with_registry:
        registry = make_registry(engine)
    if registry is not None and settings.api_keys:
        from controller.keys import ensure_api_keys

        ensure_api_keys(registry, settings.api_keys)
    metrics = IngestMetrics()
    live, book = LiveState(), RollupBook()
    link = None
    from controller.registry_link.wiring import announce_registry_policy

    announce_registry_policy(settings)
    if isinstance(settings.registry, RegistryLinkSettings):
        from controller.registry_link.wiring import make_link

        link = make_link(settings.registry, engine)
        owners = OwnerDirectory(link.owners)
    else:
        owners = OwnerDirectory((lambda: owners_from_registry(engine)) if registry is not None else None)
    owners.refresh()

    def count_sent(n: int) -> None:
        metrics.sightings_sent += n

    sink = link.offer_sightings if link is not None else registry.record_sightings if registry is not None else None
    sightings = SightingsBridge(sink, count_sent, settings.sightings_heartbeat_s)
    influx = _make_influx(settings, metrics)
    telemetry = TelemetryService(settings, live, book, metrics, owners, sightings, influx)
    gateways = GatewayService(live, settings.gateway_timeout_s)
    commands = CommandService(live)
    fleet = FleetService(settings, live, book, engine, commands)
    rollups = RollupWriter(engine, book, on_flush=metrics.record_flush)
    services = Services(settings, engine, live, book, metrics, owners, sightings, telemetry, gateways, commands,
                        fleet, rollups, registry, influx)  # fmt: skip
    services.registry_link = link
    if link is not None:
        from controller.registry_link.wiring import attach_link_metrics

        attach_link_metrics(services)
    metrics.gauges["kuat_gateways_online"] = lambda: sum(g.online for g in live.gateway_list())
    metrics.gauges["kuat_devices_live"] = lambda: len(live.devices)
    metrics.gauges["kuat_rollup_buckets_pending"] = lambda: len(book.buckets)
    if with_ingest:
        services.ingest = Ingest(settings.broker, settings.sites, telemetry, gateways, commands, metrics,
                                 settings.ingest_queue_max)  # fmt: skip
        commands.publish = services.ingest.publish
    if settings.quota.enabled:
        from controller.quota.wiring import attach_quota

        attach_quota(services, with_grid_signal=with_ingest)
        from controller.registry_link.wiring import attach_power_gate

        attach_power_gate(services)
    if settings.money.enabled:
        from controller.money.service import MoneyService

        services.money = MoneyService(settings, engine, clock.now, lambda: licensee_names(engine))
    if settings.quota.enabled and settings.planner.enabled:
        from controller.planner.wiring import attach_planner

        attach_planner(services)
    from controller.alerts.wiring import attach_alerts

    attach_alerts(services)
    return services


def licensee_names(engine: Engine) -> dict[str, str]:
    """BIN -> name of every licensee in the registry (the money reports' headings)."""
    from sqlmodel import col, select

    from registry.models import Licensee

    with engine.connect() as conn:
        return {b: n for b, n in conn.execute(select(col(Licensee.bin), col(Licensee.name)))}


def _make_influx(settings: ControllerSettings, metrics: IngestMetrics) -> InfluxWriter | None:
    if settings.influx is None:
        return None

    def failed(points: int) -> None:
        metrics.influx_errors += 1

    def retried() -> None:
        metrics.influx_retries += 1

    return InfluxWriter(settings.influx, on_error=failed, on_retry=retried)


def tune_gc_for_ingest() -> None:
    """Fewer cyclic-GC passes. Decoding a 500-miner batch allocates ~20k objects; with the default threshold (700)
    that triggers dozens of collections per batch, each walking the young objects and, often, the whole live
    fleet state, which made decoding 3-5x slower (measured by bench/ingest.py). Telemetry objects hold no
    reference cycles, so reference counting frees them anyway; the collector still runs, just less often."""
    gc.collect()
    gc.freeze()  # what exists at start-up (modules, settings, services) is never collected: stop re-scanning it
    gc.set_threshold(100_000, 50, 100)


# ------------------------------------------------------------ periodic work (scheduler jobs call these)


def flush_rollups(services: Services) -> int:
    if services.lease is not None and not services.lease.holding():
        # a standby ingests the same telemetry as the active, which writes the history: rows merge by addition,
        # so the standby drops its closed minutes instead of doubling them (docs/operations.md, standby)
        services.book.take(minute_start(clock.time()))
        return 0
    try:
        return services.rollups.flush()
    except Exception:
        services.metrics.db_errors += 1
        return 0
    finally:
        release_free_memory()  # the flush's rows and buckets are the controller's largest transient (serverkit.memory)


def check_compliance(services: Services) -> Any:
    """The registry's rules over the whole registry, with each site's measured power from live telemetry."""
    if services.registry is None:
        return None
    measured = {t["site"]: t["power_w"] for t in services.fleet.site_totals()}
    started = time.perf_counter()
    result = services.registry.check_compliance(dpc_power_w=measured)
    log.info("compliance check: %s (%.2f s)", result, time.perf_counter() - started)
    return result


def money_checks(services: Services) -> None:
    """The values table's readiness (warns in the log from the 8th) and the meter-derived energy margins."""
    if services.money is None:
        return
    services.money.check_readiness()
    services.money.update_meter_margins()


def prune_history(services: Services) -> int:
    now, s = clock.now(), services.settings
    return services.rollups.prune(now - timedelta(days=s.retention_days),
                                  now - timedelta(days=s.device_minute_retention_days))  # fmt: skip
