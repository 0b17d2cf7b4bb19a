"""Builds the planner from the controller's services (it needs the quota side: schedules, limits, the ledger)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from controller.planner.service import PlannerService

if TYPE_CHECKING:
    from controller.runtime import Services


def dark_devices(services: Services) -> Callable[[], set[str]] | None:
    """The machines the planner must not count on: the national registry's "no power" answers (the power gate:
    not registered, excluded, licence ended, ...) and the site registry's violations. With no `registry:` section
    at all every machine: the quota loop gives none the right to power (fail closed), so none may be bid for."""
    registry, link = services.registry, services.registry_link
    if link is None and services.settings.registry is None:
        return lambda: {device_id for _, device_id in list(services.live.devices)}
    if registry is None and link is None:
        return None

    def dark() -> set[str]:
        out = set(registry.noncompliant_device_ids()) if registry is not None else set()
        if link is not None:
            out |= link.gate.dark_ids()
        return out

    return dark


def attach_planner(services: Services) -> PlannerService | None:
    """Create `services.planner` when the planner and the quota side are enabled."""
    settings = services.settings
    if not settings.planner.enabled or services.quota is None:
        return None
    planner = PlannerService(services.engine, settings.planner, services.quota, services.live,
                             services.fleet.available, dark_devices(services),
                             settings.quota.energy_margin, settings.money.fee_rate_sets)  # fmt: skip
    services.planner = planner
    return planner
