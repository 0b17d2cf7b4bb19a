"""/api/v1/fleet: live devices (filter, sort, search) and one device with its recent history and commands."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from controller.api.deps import read_fleet, services
from controller.runtime import Services
from controller.services.fleet import SortKey

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], dependencies=[Depends(read_fleet)])

@router.get("")
def list_devices(
    site: str | None = None,
    gateway: str | None = None,
    kind: Literal["miner", "pdu"] | None = None,
    state: str | None = Query(None, description="mining, sleeping, degraded, rebooting, offline (PDUs: online)"),
    q: str | None = Query(None, description="search id, IP, serial, model, MAC, hostname, owner"),
    sort: SortKey = "device_id",
    desc: bool = False,
    limit: int = Query(500, ge=1, le=10_000),
    offset: int = Query(0, ge=0),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return svc.fleet.devices(site, gateway, kind, state, q, sort, desc, limit, offset)


@router.get("/{device_id}")
def one_device(
    device_id: str,
    site: str | None = None,
    minutes: int = Query(180, ge=1, le=2 * 366 * 24 * 60, description="minutes of history"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return svc.fleet.device(device_id, site, minutes)  # NotFound 404, Conflict 409 (serverkit.errors)
