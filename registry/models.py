"""Table models (SQLModel, table=True). API models live in `registry.schemas`, wire messages in `kuat.wire`.

Datetimes are aware UTC (SQLModel's UTCDateTime columns), so SQLite and PostgreSQL give back exactly what was
written and the audit chain hashes the same text on both.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from serverkit.keys import ApiKeyBase


class Subtype(StrEnum):
    I = "I"  # owns or lawfully holds a DPC  # noqa: E741
    II = "II"  # tenant: own machines in someone else's DPC


class LicenceStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Zone(StrEnum):
    NORTH = "North"
    SOUTH = "South"
    WEST = "West"


class HscStatus(StrEnum):
    PENDING = "pending"
    REGISTERED = "registered"
    SUSPENDED = "suspended"
    DECOMMISSIONED = "decommissioned"


class ViolationKind(StrEnum):
    UNREGISTERED = "unregistered_mining"  # mining, not registered
    UNACCREDITED_POOL = "unaccredited_pool"  # pointed at a pool that is not accredited (or no longer)
    LICENCE = "owner_licence"  # owner missing, or the owner's licence expired / not active
    DPC_CAPACITY = "dpc_over_capacity"  # a DPC drawing above its grid connection capacity
    MISSING = "missing"  # a registered machine not seen for longer than N days


class ViolationStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Role(StrEnum):
    OPERATOR = "operator"  # read/write registry
    REGULATOR = "regulator"  # read-only registry and compliance
    GRID = "grid"  # quota side
    AGENT = "agent"  # gateways: MQTT credentials, sighting submissions
    TENANT = "tenant"  # a licensee's own key: its own money reports only (controller/money/access.py)
    AUTHORITY = "authority"  # the authorized body: decides applications, issues numbers, keeps licences and pools
    DPC = "dpc"  # a site controller: submits for the DPCs its key is bound to (Scope.dpcs), reads their feed


class Licensee(SQLModel, table=True):
    """A digital miner (Art. 1.7): licensed for 3 years, subtype I (owns a DPC) or II (tenant)."""

    id: int | None = Field(default=None, primary_key=True)
    bin: str = Field(max_length=12, unique=True, index=True)
    name: str = Field(max_length=300)
    licence_number: str = Field(max_length=100, unique=True)
    subtype: str = Field(max_length=2)
    valid_from: date
    valid_to: date
    status: str = Field(default=LicenceStatus.ACTIVE.value, max_length=20)
    created_at: datetime
    changed_at: datetime


class Dpc(SQLModel, table=True):
    """A data-processing centre for digital mining (Art. 1.9)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    code: str | None = Field(default=None, max_length=20, unique=True)  # the national registry's DPC code
    address: str = Field(max_length=500)
    zone: str = Field(max_length=10, index=True)
    operator_id: int = Field(foreign_key="licensee.id", index=True)
    capacity_mw: float
    residential_zone_evidence: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime
    changed_at: datetime


class AccreditedPool(SQLModel, table=True):
    """An accredited digital-mining pool (Art. 1.10, 10) and the stratum endpoints it serves."""

    __tablename__ = "accredited_pool"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    endpoints: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accreditation_number: str = Field(max_length=100, unique=True)
    valid_from: date
    valid_to: date
    created_at: datetime
    changed_at: datetime


class Hsc(SQLModel, table=True):
    """A hardware-software complex: one mining machine with its firmware."""

    __table_args__ = (
        Index("ix_hsc_changed", "changed_at", "id"),
        Index("ix_hsc_status_changed", "status", "changed_at", "id"),
        Index("ix_hsc_owner_changed", "owner_id", "changed_at", "id"),
        Index("ix_hsc_dpc_changed", "dpc_id", "changed_at", "id"),
        Index("ix_hsc_model_changed", "model", "changed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=100, unique=True)
    mac: str | None = Field(default=None, max_length=17)
    make: str | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=200)
    nominal_ths: float | None = None
    rated_w: float | None = None
    owner_id: int | None = Field(default=None, foreign_key="licensee.id")
    dpc_id: int | None = Field(default=None, foreign_key="dpc.id")
    hall: str | None = Field(default=None, max_length=50)
    rack: str | None = Field(default=None, max_length=50)
    slot: str | None = Field(default=None, max_length=50)
    site: str | None = Field(default=None, max_length=100)
    gateway: str | None = Field(default=None, max_length=100)
    device_id: str | None = Field(default=None, max_length=100, index=True)
    ip: str | None = Field(default=None, max_length=45)
    pdu: str | None = Field(default=None, max_length=100)
    pdu_outlet: int | None = None
    pools: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # endpoints in use
    status: str = Field(default=HscStatus.PENDING.value, max_length=20)
    registry_number: str | None = Field(default=None, max_length=100, unique=True)
    first_seen_at: datetime | None = None
    registered_at: datetime | None = None
    decommissioned_at: datetime | None = None
    missing_since: datetime | None = None
    changed_at: datetime
    # Heartbeat columns: refreshed by every sighting, deliberately outside the audit chain (see AUDIT_EXCLUDED).
    last_seen_at: datetime | None = None
    last_state: str | None = Field(default=None, max_length=20)
    last_power_w: float | None = None


# Columns of audited tables that change on every telemetry cycle: kept out of audit snapshots.
AUDIT_EXCLUDED: dict[str, frozenset[str]] = {
    "hsc": frozenset({"last_seen_at", "last_state", "last_power_w"}),
}


class AuditEvent(SQLModel, table=True):
    """One append-only change: hash = sha256(canonical JSON of seq, prev_hash, actor, ts, entity, ... after)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id", "seq"),)

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    actor: str = Field(max_length=200)
    ts: datetime
    entity: str = Field(max_length=50)
    entity_id: str = Field(max_length=100)
    action: str = Field(max_length=50)
    before: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # canonical JSON
    after: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditHead(SQLModel, table=True):
    """The chain's head (one row): serialises writers (row lock) and lets verification notice a cut tail."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)


class Violation(SQLModel, table=True):
    __table_args__ = (Index("ix_violation_open", "status", "kind", "subject", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    subject: str = Field(max_length=20)  # "hsc" or "dpc"
    subject_id: int
    serial: str | None = Field(default=None, max_length=100)
    device_id: str | None = Field(default=None, max_length=100)
    status: str = Field(default=ViolationStatus.OPEN.value, max_length=20)
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ApiKey(ApiKeyBase, table=True):
    """The registry's API keys, hashed at rest (serverkit.keys): `prefix` finds the row, `scope` narrows the role."""

    __tablename__ = "api_key"


class IdempotencyRecord(SQLModel, table=True):
    """A request already applied, keyed by its Idempotency-Key: a repeat gets the stored answer back."""

    __tablename__ = "idempotency_record"

    key: str = Field(primary_key=True, max_length=100)
    endpoint: str = Field(max_length=200)
    status_code: int
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime


class OutboxItem(SQLModel, table=True):
    """A submission waiting for a remote registry (controller side). Deleted never; `sent_at` marks delivery."""

    __tablename__ = "outbox_item"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=100, unique=True)
    path: str = Field(max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime
    sent_at: datetime | None = None
    failed_at: datetime | None = None  # the remote refused it (4xx): kept for an operator, not retried
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
