"""SQL tables of the quota side: every input (with its provenance), the ledger, excursions and the dispatch log.

Inputs carry who pushed them (`actor`: the API key's role:name, or "mqtt:<topic>"), how (`source`: api / csv /
mqtt / config) and when (`received_at`, the shared kuat clock). Every accepted or refused push also leaves one
append-only `quota_input_log` row with the pushed document, so what the grid operator sent can be shown later even
when it was refused. The tables live beside the controller's history tables and are migrated with them
(controller/migrations, run by `controller.db.init_controller_db`), not by the registry's Alembic tree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


def utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class QuotaSiteLimits(SQLModel, table=True):
    """A site under quota control: connection capacity, reserved headroom, zone membership. No row: not controlled."""

    __tablename__ = "quota_site_limits"
    site: str = Field(primary_key=True, max_length=64)
    connection_kw: float
    reserved_headroom_kw: float = 0.0
    zone: str | None = Field(default=None, max_length=64)
    zone_share: float = 1.0
    require_schedule: bool = True
    lend_unused_share: bool = True
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime


class QuotaGridContract(SQLModel, table=True):
    """The live grid-signal contract of a site: what 100 % means, when a silent signal is stale, the safe level."""

    __tablename__ = "quota_grid_contract"
    site: str = Field(primary_key=True, max_length=64)
    contract_mw: float
    stale_after_s: float = 240.0
    safe_pct: float = 0.0
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime


class QuotaTenantContract(SQLModel, table=True):
    """A subtype-II tenant's share of a site's allotment (tenant = the owner as the controller knows it)."""

    __tablename__ = "quota_tenant_contract"
    __table_args__ = (UniqueConstraint("site", "tenant"),)
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    tenant: str = Field(max_length=128)
    share_pct: float
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime


class QuotaMachineRule(SQLModel, table=True):
    """Per-machine operator rules: protected (never slept or cut) and priority (higher is cut later)."""

    __tablename__ = "quota_machine_rule"
    site: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(primary_key=True, max_length=128)
    protected: bool = False
    priority: int = 0
    actor: str = Field(max_length=200)
    received_at: datetime


class QuotaSchedule(SQLModel, table=True):
    """A day-ahead schedule (kWh per Astana hour) for a site or zone. A later push for the same area and day
    replaces it: the old row stays, with `replaced_by` set."""

    __tablename__ = "quota_schedule"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)  # the site it was pushed through
    area: str = Field(max_length=64)  # the site itself or its zone
    day: date = Field(index=True)
    hours_json: str  # [kWh of hour 1, ..., hour N]
    reference: str | None = Field(default=None, max_length=200)
    replaced_by: int | None = None
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime


class EmergencyOrder(SQLModel, table=True):
    """A system operator's emergency order: a cap in MW or a share of the schedule, for a window or until lifted."""

    __tablename__ = "quota_emergency"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    area: str = Field(max_length=64)
    reference: str = Field(max_length=200)
    start: datetime
    end: datetime | None = None
    cap_mw: float | None = None
    share_pct: float | None = None
    lifted_at: datetime | None = None
    lifted_by: str | None = Field(default=None, max_length=200)
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime


class QuotaGridMessage(SQLModel, table=True):
    """Every grid signal message received (MQTT), valid or not: the evidence of what the grid asked for."""

    __tablename__ = "quota_grid_message"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    ts: datetime | None = None  # the message's own time
    target_pct: float | None = None
    target_mw: float | None = None
    reference: str | None = Field(default=None, max_length=200)
    accepted: bool = True
    error: str | None = None
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime = Field(index=True)


class QuotaInputLog(SQLModel, table=True):
    """Append-only: every push, update, lift and refusal, with the document as received."""

    __tablename__ = "quota_input_log"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32)  # schedule / emergency / lift / site_limits / grid_contract / tenant / rule
    action: str = Field(max_length=16)  # accepted / refused / deleted
    object_id: str | None = Field(default=None, max_length=64)
    detail: str  # JSON: the document, and the reasons when refused
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)
    received_at: datetime


class QuotaLedgerMinute(SQLModel, table=True):
    """Allotted vs consumed per minute for a site (kind=site) or a tenant on it (kind=tenant, entity=tenant)."""

    __tablename__ = "quota_ledger_minute"
    site: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=8)
    entity: str = Field(primary_key=True, max_length=128)
    minute: datetime = Field(primary_key=True, index=True)  # period start (a minute unless configured shorter)
    end: datetime
    allotted_kwh: float
    used_kwh: float
    power_w: float  # mean measured power
    limit_w: float  # lowest effective limit seen in the minute
    target_w: float  # last target of the minute


class QuotaExcursion(SQLModel, table=True):
    """A stretch above an instantaneous cap, or a period above its allotted energy, with its size and cause."""

    __tablename__ = "quota_excursion"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    start: datetime = Field(index=True)
    end: datetime
    peak_over_w: float
    excess_kwh: float
    excess_mw_s: float
    cause: str = Field(max_length=32)
    reason: str = ""
    reference: str | None = Field(default=None, max_length=200)


class QuotaDispatch(SQLModel, table=True):
    """One dispatch whose setpoints changed (renewals of the same setpoints are not logged row by row)."""

    __tablename__ = "quota_dispatch"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    ts: datetime = Field(index=True)
    action: str = Field(max_length=16)
    reason: str
    limit_w: float
    measured_w: float
    budget_w: float
    planned_w: float
    machines: int
    running: int
    changed: int  # setpoints that differ from the previous dispatch
    gateways: int
    commands_json: str  # the setpoint batches' command ids
    elapsed_ms: float


TABLES = [t.__table__ for t in (  # type: ignore[union-attr]
    QuotaSiteLimits, QuotaGridContract, QuotaTenantContract, QuotaMachineRule, QuotaSchedule, EmergencyOrder,
    QuotaGridMessage, QuotaInputLog, QuotaLedgerMinute, QuotaExcursion, QuotaDispatch,
)]
