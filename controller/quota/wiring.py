"""Builds the quota side from the controller's services: the service, its loop and the grid-signal listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from controller import influx
from controller.quota.grid_signal import GridSignalListener, broker_names
from controller.quota.loop import LoopPoint, QuotaLoop
from controller.quota.service import QuotaService

if TYPE_CHECKING:
    from controller.runtime import Services


def attach_quota(services: Services, with_grid_signal: bool = True) -> QuotaService:
    """Create `services.quota` (and `services.grid_signal`); nothing runs until `start_quota`."""
    registry = services.registry
    noncompliant = registry.noncompliant_device_ids if registry is not None else None
    settings = services.settings.quota

    def make_loop(svc: QuotaService) -> QuotaLoop:
        return QuotaLoop(svc, services.live, services.fleet.available, services.commands.send_setpoints_json,
                         noncompliant, settings, command_record=services.commands.get,
                         stale_s=services.settings.device_stale_s)  # fmt: skip

    grid_brokers = settings.grid_brokers or [services.settings.broker]
    quota = QuotaService(services.engine, settings, make_loop, grid_brokers=broker_names(len(grid_brokers)))
    if quota.loop is not None:
        quota.loop.observers.append(loop_observer(services))
    quota.restore_grid_readings()
    services.quota = quota
    services.metrics.counters["kuat_grid_signal_messages_total"] = (
        "Grid-signal messages by broker and outcome (accepted, future, too_old, not_newer, no_ts, invalid...).",
        lambda: list(quota.grid.counted()))
    if with_grid_signal and settings.grid_signal:
        services.grid_signal = GridSignalListener(grid_brokers, services.settings.sites, quota)
    return quota


def loop_observer(services: Services) -> Callable[[str, LoopPoint], None]:
    """Every loop run into /metrics and, when configured, InfluxDB (measurement `quota`, docs/influx-schema.md)."""

    def observe(site: str, point: LoopPoint) -> None:
        services.metrics.record_quota_run(site, point.elapsed_ms / 1000, point.limit.limit_w, point.target_w,
                                          point.power_w)
        if services.influx is not None:
            ts_ms = int(point.ts.timestamp() * 1000)
            row = influx.quota_line(site, point.limit.limit_w, point.target_w, point.power_w,
                                    point.limit.binding.source.value, point.elapsed_ms, ts_ms)
            services.influx.write([row])
            services.metrics.influx_points += 1

    return observe


def start_quota(services: Services) -> None:
    """Start the grid-signal subscription and the loop thread (after ingest: the loop publishes through it)."""
    if services.grid_signal is not None:
        services.grid_signal.start()
    if services.quota is not None and services.quota.loop is not None:
        services.quota.loop.start()
