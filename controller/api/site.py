"""/api/v1/site and /api/v1/gateways: live totals, power and energy by source, minute series, gateway states."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from controller.api.deps import read_fleet, services
from controller.runtime import Services
from controller.services.fleet import EnergyGroup
from kuat.wire import v1

router = APIRouter(prefix="/api/v1", tags=["site"], dependencies=[Depends(read_fleet)])


class SiteTotals(BaseModel):
    """Live totals of one site: power by energy source and by where the figure comes from, states, counts."""

    site: str
    miners: int
    miners_available: int
    pdus: int
    power_w: float
    hashrate_ths: float
    power_w_by_source: dict[str, float]
    power_w_by_figure: dict[str, float]
    states: dict[str, int]


class EnergyRow(BaseModel):
    """kWh of one group and the seconds not integrated; only the grouping columns of `group` are present."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = None
    device_id: str | None = None
    owner: str | None = None
    source: str
    energy_kwh: float
    gap_s: float


class SiteOut(BaseModel):
    sites: list[SiteTotals]
    energy_by_source: list[EnergyRow]


class EnergyOut(BaseModel):
    group: EnergyGroup
    rows: list[EnergyRow]


class SeriesMinute(BaseModel):
    site: str
    minute: datetime
    source: str
    miners: int
    miners_available: int
    power_w: float
    hashrate_ths: float
    energy_kwh: float


class SeriesOut(BaseModel):
    site: str
    minutes: list[SeriesMinute]


class GatewayOut(BaseModel):
    site: str
    gateway: str
    online: bool
    reason: str | None
    last_seen: datetime | None
    changed: datetime | None
    seq: int | None
    last_batch_ts: datetime | None
    agent_version: str | None
    devices: int | None
    lease: v1.LeaseStatus | None


class GatewaysOut(BaseModel):
    gateways: list[GatewayOut]


@router.get("/site", response_model=SiteOut, response_model_exclude_unset=True)
def site_totals(site: str | None = None, svc: Services = Depends(services)) -> dict[str, Any]:
    return {"sites": svc.fleet.site_totals(site), "energy_by_source": svc.fleet.energy("source", site)}


@router.get("/site/energy", response_model=EnergyOut, response_model_exclude_unset=True)
def energy(
    group: Literal["device", "owner", "site", "source"] = "source",
    site: str | None = None,
    since: datetime | None = Query(None, description="ISO 8601; counts from the start of its Astana day"),
    until: datetime | None = Query(None, description="ISO 8601; counts up to the start of its Astana day"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return {"group": group, "rows": svc.fleet.energy(group, site, since, until)}


@router.get("/site/{site}/series", response_model=SeriesOut)
def series(
    site: str, minutes: int = Query(180, ge=1, le=2 * 366 * 24 * 60), svc: Services = Depends(services)
) -> dict[str, Any]:
    return {"site": site, "minutes": svc.fleet.site_series(site, minutes)}


@router.get("/gateways", response_model=GatewaysOut)
def gateways(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"gateways": svc.gateways.listing()}
