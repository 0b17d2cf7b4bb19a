"""What the quota API answers, as typed models (OpenAPI at /docs): what a grid operator or a regulator reads back.

These describe the dicts `QuotaService` builds (status, schedules, orders, limits, ledger, input log); the routes in
controller/quota/api.py declare them as `response_model`, so a reply that drifts from its documented shape is a 500
in the tests rather than a surprise for a client. The dashboard's snapshot reuses the status parts.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Segment(BaseModel):
    """A stretch of time with one limit and the input that binds it."""

    start: datetime
    end: datetime
    limit_w: float
    source: str
    reason: str
    reference: str | None


class PlanHour(BaseModel):
    hour: int
    start: datetime
    end: datetime
    purchased_kwh: float | None
    cap_kwh: float
    planned_kwh: float


class Plan(BaseModel):
    """The day's limit segments and, per hour, purchased / allowed / planned kWh."""

    day: date
    segments: list[Segment]
    hours: list[PlanHour]


class ScheduleAccepted(BaseModel):
    id: int
    site: str
    area: str
    day: date
    source: str
    plan: Plan


class ScheduleOut(BaseModel):
    id: int
    site: str
    area: str
    day: date
    hours_kwh: list[float]
    reference: str | None
    replaced_by: int | None
    actor: str
    source: str
    received_at: datetime


class SchedulesOut(BaseModel):
    site: str
    schedules: list[ScheduleOut]


class Constraint(BaseModel):
    source: str
    limit_w: float
    reason: str
    reference: str | None


class LoopView(BaseModel):
    ts: datetime
    action: str
    reason: str
    correction: float
    machines: int
    elapsed_ms: float


class HourView(BaseModel):
    start: datetime | None = None
    purchased_kwh: float | None = None
    used_kwh: float | None = None


class TenantView(BaseModel):
    tenant: str
    share_pct: float
    allotted_w: float
    used_w: float
    name: str | None = Field(None, description="the licensee's name (dashboard snapshot only)")


class OrderBrief(BaseModel):
    id: int
    reference: str
    describe: str
    active: bool
    start: datetime
    end: datetime | None


class ScheduleHour(BaseModel):
    hour: int
    start: datetime
    kwh: float | None
    current: bool


class GridView(BaseModel):
    contract_mw: float
    stale_after_s: float
    safe_pct: float
    last_received: datetime | None
    target_pct: float | None
    target_mw: float | None
    stale: bool


class StatusOut(BaseModel):
    """What applies now and why, what the loop asks for and what the site draws."""

    site: str
    configured: bool
    at: datetime
    effective_limit_w: float | None
    limit_reason: str
    limit_source: str | None
    limit_reference: str | None
    constraints: list[Constraint]
    target_w: float | None
    measured_w: float | None
    loop: LoopView | None
    hour: HourView
    tenants: list[TenantView]
    emergencies: list[OrderBrief]
    schedule: list[ScheduleHour]
    grid: GridView | None


class OrderOut(OrderBrief):
    area: str
    cap_mw: float | None
    share_pct: float | None
    lifted_at: datetime | None
    lifted_by: str | None
    actor: str
    source: str


class OrderAccepted(BaseModel):
    id: int
    site: str
    describe: str
    status: StatusOut
    plan: list[Segment]


class OrderLifted(BaseModel):
    id: int
    site: str
    describe: str
    status: StatusOut


class OrdersOut(BaseModel):
    site: str
    emergencies: list[OrderOut]


class GridContractOut(BaseModel):
    site: str
    contract_mw: float
    stale_after_s: float
    safe_pct: float
    actor: str
    source: str
    received_at: datetime


class LimitsOut(BaseModel):
    """A site's limits, tenant shares (%) and grid contract."""

    site: str
    connection_kw: float
    reserved_headroom_kw: float
    zone: str | None
    zone_share: float
    require_schedule: bool
    lend_unused_share: bool
    actor: str
    source: str
    received_at: datetime
    tenants: dict[str, float]
    grid_contract: GridContractOut | None


class MachineRuleOut(BaseModel):
    site: str
    device_id: str
    protected: bool
    priority: int
    actor: str
    received_at: datetime


class PowerPoint(BaseModel):
    ts: datetime
    power_w: float | None
    limit_w: float | None
    target_w: float | None


class HistoryOut(BaseModel):
    site: str
    points: list[PowerPoint]


class LedgerRow(BaseModel):
    """Allotted vs used kWh of one period; `hour` (period=hour) or `minute` (fine, minute) is its start."""

    model_config = ConfigDict(extra="forbid")

    hour: datetime | None = None
    minute: datetime | None = None
    period_end: datetime
    kind: str
    entity: str
    allotted_kwh: float
    used_kwh: float
    over_kwh: float
    excursion_kwh: float
    excursion_mw_s: float
    causes: list[str]


class ExcursionOut(BaseModel):
    id: int
    site: str
    start: datetime
    end: datetime
    peak_over_w: float
    excess_kwh: float
    excess_mw_s: float
    cause: str
    reason: str
    reference: str | None


class LedgerGapOut(BaseModel):
    """A stretch no controller measured (down, restarted, loop stalled): flagged, never filled."""

    start: datetime
    end: datetime
    reason: str
    detected_at: datetime


class LedgerOut(BaseModel):
    site: str
    start: datetime
    end: datetime
    period: str
    kind: str
    rows: list[LedgerRow]
    excursions: list[ExcursionOut]
    gaps: list[LedgerGapOut] = []


class InputOut(BaseModel):
    """One push, change or refusal: the document as received (`detail`, any JSON), who sent it and how."""

    id: int
    site: str
    kind: str
    action: str
    object_id: str | None
    detail: dict[str, Any]
    actor: str
    source: str
    received_at: datetime


class InputsOut(BaseModel):
    site: str
    inputs: list[InputOut]
