"""The dashboard's JSON as typed models: what static/app.js reads, documented in OpenAPI like every other route.

The snapshot reuses the quota API's models for the parts it copies from `QuotaService.status` (schedule, orders,
tenants, ledger rows); the device page extends the fleet API's `DeviceOut` with the registry's view of the machine.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from controller.api.commands import CommandOut
from controller.api.fleet import DeviceOut
from controller.quota.schemas import HourView, LedgerRow, OrderBrief, PowerPoint, ScheduleHour, TenantView


class GatewayBrief(BaseModel):
    id: str
    online: bool
    reason: str


class SiteView(BaseModel):
    name: str | None
    power_w: float | None
    limit_w: float | None
    target_w: float | None
    hashrate_ths: float | None
    efficiency_jth: float | None
    hour: HourView
    states: dict[str, int]
    miners: int
    miners_available: int
    limit_reason: str | None
    gateways: list[GatewayBrief]
    quota: bool


class QuotaView(BaseModel):
    schedule: list[ScheduleHour]
    emergencies: list[OrderBrief]
    tenants: list[TenantView]
    ledger: list[LedgerRow]


class SnapshotOut(BaseModel):
    """Everything the Site and Quota tabs draw (also the `snapshot` event of the stream)."""

    ts: datetime
    site: SiteView
    history: list[PowerPoint]
    quota: QuotaView


class FleetRow(BaseModel):
    """One miner, flat, for the Fleet table; `registration` is the registry's status (or unregistered / no serial)."""

    device_id: str
    site: str
    gateway: str
    serial: str | None
    ip: str
    mac: str | None
    hall: str | None = None  # placement from the agent's config (docs/dashboard.md, rack view)
    rack: str | None
    slot: int | None = None
    model: str | None
    firmware: str | None
    state: str | None
    hashrate_ths: float | None
    power_w: float | None
    power_source: str | None
    temp_c: float | None
    pool: str | None
    owner: str
    registration: str
    power_right: str | None = Field(None, description="why the machine has or has no power (quota.rights reason; "
                                                      "no_registry without a registry: section); None for none_lab")
    power_why: str | None = None


class DashboardDevice(DeviceOut):
    hall: str | None = None
    rack: str | None
    slot: int | None = None
    pool: str | None
    registration: str


class DevicePoint(BaseModel):
    ts: datetime
    power_w: float | None
    hashrate_ths: float | None
    temp_c_max: float | None


class DevicePageOut(BaseModel):
    device: DashboardDevice
    history: list[DevicePoint]
    commands: list[CommandOut]


class OwnerBrief(BaseModel):
    id: int
    name: str
    licence: str
    subtype: str


class DpcBrief(BaseModel):
    id: int
    name: str


class PendingHsc(BaseModel):
    serial: str
    model: str | None
    mac: str | None
    firmware: str | None
    location: str
    pools: list[str]
    first_seen: datetime | None


class ViolationBrief(BaseModel):
    id: int
    kind: str
    subject: str
    device_id: str | None
    first_seen: datetime
    last_seen: datetime | None
    status: str
    evidence: str


class RegistryPageOut(BaseModel):
    owners: list[OwnerBrief]
    dpcs: list[DpcBrief]
    pending: list[PendingHsc]
    violations: list[ViolationBrief]


class ApprovedOut(BaseModel):
    approved: int
    serials: list[str]


class EmergencyEntered(BaseModel):
    id: int | None
    reference: str
    site: str
