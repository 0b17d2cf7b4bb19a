"""Builds the planner from the controller's services (it needs the quota side: schedules, limits, the ledger)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.planner.service import PlannerService

if TYPE_CHECKING:
    from controller.runtime import Services


def attach_planner(services: Services) -> PlannerService | None:
    """Create `services.planner` when the planner and the quota side are enabled."""
    settings = services.settings
    if not settings.planner.enabled or services.quota is None:
        return None
    registry = services.registry
    planner = PlannerService(services.engine, settings.planner, services.quota, services.live,
                             services.fleet.available,
                             registry.noncompliant_device_ids if registry is not None else None,
                             settings.quota.energy_margin, settings.money.fee_rate_sets)  # fmt: skip
    services.planner = planner
    return planner
