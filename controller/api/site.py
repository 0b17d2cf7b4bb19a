"""/api/v1/site and /api/v1/gateways: live totals, power and energy by source, minute series, gateway states."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from controller.api.deps import read_fleet, services
from controller.runtime import Services

router = APIRouter(prefix="/api/v1", tags=["site"], dependencies=[Depends(read_fleet)])


@router.get("/site")
def site_totals(site: str | None = None, svc: Services = Depends(services)) -> dict[str, Any]:
    return {"sites": svc.fleet.site_totals(site), "energy_by_source": svc.fleet.energy("source", site)}


@router.get("/site/energy")
def energy(
    group: Literal["device", "owner", "site", "source"] = "source",
    site: str | None = None,
    since: datetime | None = Query(None, description="ISO 8601; counts from the start of its Astana day"),
    until: datetime | None = Query(None, description="ISO 8601; counts up to the start of its Astana day"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return {"group": group, "rows": svc.fleet.energy(group, site, since, until)}


@router.get("/site/{site}/series")
def series(
    site: str, minutes: int = Query(180, ge=1, le=2 * 366 * 24 * 60), svc: Services = Depends(services)
) -> dict[str, Any]:
    return {"site": site, "minutes": svc.fleet.site_series(site, minutes)}


@router.get("/gateways")
def gateways(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"gateways": svc.gateways.listing()}
