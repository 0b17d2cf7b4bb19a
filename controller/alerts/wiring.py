"""Builds the alert service from the controller's services, its scheduler jobs and its /metrics figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller.alerts.facts import FactsCollector
from controller.alerts.service import AlertService

if TYPE_CHECKING:
    from controller.runtime import Services


def attach_alerts(services: Services) -> AlertService | None:
    """Create `services.alerts` when alerts are enabled (after the quota and money sides: it reads them)."""
    settings = services.settings.alerts
    if not settings.enabled:
        return None
    collector = FactsCollector(services, meter_ttl_s=settings.facts_cache_s)
    alerts = AlertService(services.engine, settings, collector.collect)
    services.alerts = alerts
    c = alerts.counters
    services.metrics.gauges.update({
        "kuat_alerts_firing": lambda: c.firing,
        "kuat_alerts_pending": lambda: c.pending,
        "kuat_alert_deliveries_queued": lambda: c.queued,
        "kuat_alert_deliveries_failed": lambda: c.failed_total,
        "kuat_alert_evaluations": lambda: c.evaluations,
        "kuat_alert_evaluation_seconds": lambda: c.facts_s + c.rules_s,
    })  # fmt: skip
    return alerts


def alert_jobs(services: Services) -> list[tuple[str, float, Callable[[], Any]]]:
    alerts = getattr(services, "alerts", None)
    if alerts is None:
        return []
    s = services.settings.alerts
    return [("alerts_evaluate", s.evaluate_s, alerts.evaluate), ("alerts_deliver", s.deliver_s, alerts.deliver)]
