"""APScheduler (3.x, background thread) jobs: rollup flush, gateway timeouts, registry sightings, owner map,
compliance checks, retention. Each job catches and logs its own errors (APScheduler would only log them); the
database being unreachable is said once per outage and job (serverkit.db.Outage), not with a traceback a run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from controller import runtime
from controller.runtime import Services
from serverkit.db import Outage, unavailable

log = logging.getLogger(__name__)


def _guarded(name: str, job: Callable[[], Any]) -> Callable[[], None]:
    outage = Outage(f"scheduled job {name}", log)

    def run() -> None:
        try:
            job()
        except Exception as exc:
            if unavailable(exc):
                outage.failed(exc, "its run")
            else:
                log.exception("scheduled job %s failed", name)
        else:
            outage.ok()

    run.__name__ = name
    return run


def jobs(services: Services) -> list[tuple[str, float, Callable[[], Any]]]:
    """(name, every seconds, function) for every periodic task."""
    from controller.alerts.wiring import alert_jobs

    s = services.settings
    return [
        ("rollup_flush", s.rollup_flush_s, lambda: runtime.flush_rollups(services)),
        ("gateway_timeouts", min(10.0, s.gateway_timeout_s / 3), services.gateways.check_timeouts),
        ("registry_sightings", s.sightings_flush_s, services.sightings.flush),
        ("owner_refresh", 60.0, services.owners.refresh),
        ("compliance_check", s.compliance_check_s, lambda: runtime.check_compliance(services)),
        ("retention", 24 * 3600.0, lambda: runtime.prune_history(services)),
        ("money_checks", s.money.readiness_check_s, lambda: runtime.money_checks(services)),
        *([("registry_link", services.registry_link.settings.sync_s, services.registry_link.sync)]
          if services.registry_link is not None else []),
        *alert_jobs(services),
    ]


def make_scheduler(services: Services) -> BackgroundScheduler:
    # APScheduler logs every run of every job at INFO ("executed successfully" every few seconds); our jobs log
    # what they did themselves, and failures still come through at WARNING/ERROR.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for name, every_s, fn in jobs(services):
        scheduler.add_job(_guarded(name, fn), "interval", seconds=every_s, id=name, name=name)
        log.info("scheduled %s every %g s", name, every_s)
    return scheduler
