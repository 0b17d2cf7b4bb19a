"""/api/v1/fleet: live devices (filter, sort, search) and one device with its recent history and commands.

The response models here are the fleet's documented shape (OpenAPI at /docs): one `DeviceOut` for miners and PDUs
alike (the kind-specific fields are null on the other kind), its minute history and its command log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from controller.api.commands import CommandOut
from controller.api.deps import read_fleet, services
from controller.runtime import Services
from controller.services.fleet import SortKey
from kuat.wire import v1

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], dependencies=[Depends(read_fleet)])


class DeviceOut(BaseModel):
    """A live device as the fleet sees it (`available`: fresh, reported available, and its gateway online)."""

    site: str
    gateway: str
    device_id: str
    kind: Literal["miner", "pdu"]
    ip: str
    available: bool
    reported_available: bool
    ts: datetime
    age_s: float
    owner: str
    energy_source: str
    model: str | None
    serial: str | None
    power_w: float | None
    state: str
    # miners
    make: str | None = None
    firmware: str | None = None
    mac: str | None = None
    hostname: str | None = None
    hashrate_ths: float | None = None
    nominal_ths: float | None = None
    power_source: str | None = None
    power_limit_w: float | None = None
    temp_c: float | None = None
    errors: list[str] = []
    pools: list[v1.Pool] = []
    outlet: v1.OutletRef | None = None
    placement: v1.Placement | None = None  # hall/rack/slot from the agent's config
    # PDUs
    family: str | None = None
    energy_kwh: float | None = None
    outlets: list[v1.OutletSample] = []


class DevicePage(BaseModel):
    total: int
    offset: int
    devices: list[DeviceOut]


class HistoryRow(BaseModel):
    """One minute of a device: averages of its samples, maxima, energy and the time not integrated (gap_s)."""

    ts: datetime
    samples: int
    available_samples: int
    power_w: float | None
    power_w_max: float | None
    hashrate_ths: float | None
    temp_c_max: float | None
    energy_kwh: float
    gap_s: float


class DeviceDetail(BaseModel):
    device: DeviceOut
    history: list[HistoryRow]
    commands: list[CommandOut]


@router.get("", response_model=DevicePage)
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


@router.get("/{device_id}", response_model=DeviceDetail)
def one_device(
    device_id: str,
    site: str | None = None,
    minutes: int = Query(180, ge=1, le=2 * 366 * 24 * 60, description="minutes of history"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """404 (serverkit's NotFound) for a device not live; 409 (Conflict) for an id on several sites without ?site=."""
    return svc.fleet.device(device_id, site, minutes)
