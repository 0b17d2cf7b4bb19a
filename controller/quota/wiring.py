"""Builds the quota side from the controller's services: the service, its loop and the grid-signal listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from controller import influx
from controller.lease.keeper import LeaseKeeper
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

    lease = services.lease = make_lease(services)

    def make_loop(svc: QuotaService) -> QuotaLoop:
        return QuotaLoop(svc, services.live, services.fleet.available, services.commands.send_setpoints_json,
                         noncompliant, settings, command_record=services.commands.get,
                         stale_s=services.settings.device_stale_s, fence=lease)  # fmt: skip

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


def make_lease(services: Services) -> LeaseKeeper | None:
    """The active/standby lease when `lease.enabled` (docs/operations.md); on taking it over, the loop runs every
    site at once."""
    cfg = services.settings.lease
    if not cfg.enabled:
        return None
    lease = LeaseKeeper(services.engine, cfg.name, ttl_s=cfg.ttl_s, renew_s=cfg.renew_s)
    services.metrics.gauges["kuat_lease_active"] = lambda: float(lease.holding())
    services.metrics.gauges["kuat_lease_epoch"] = lambda: float(lease.epoch() or 0)
    return lease


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
    """Start the grid-signal subscription, the lease and the loop thread (after ingest: the loop publishes through
    it). A takeover runs every site at once."""
    if services.grid_signal is not None:
        services.grid_signal.start()
    loop = services.quota.loop if services.quota is not None else None
    if services.lease is not None:
        if loop is not None:
            services.lease.on_change.append(lambda epoch: _run_all_now(loop) if epoch is not None else None)
        services.lease.start()
    if loop is not None:
        loop.start()


def _run_all_now(loop: QuotaLoop) -> None:
    for site in loop.service.sites():
        loop.kick(site)
