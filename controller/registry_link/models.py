"""The controller's tables for its registry link: the outbox of submissions, the mirror of the registry's decisions
(one row per subject, the newest whole state the feed gave), the feed cursor, and the commissioning allowances its
operators granted (audited here, submitted to the registry through the outbox).

They are the controller's (migration 0005_registry_link), never the registry's: with an embedded registry both
share a database but not these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class RegistryOutbox(SQLModel, table=True):
    """One submission to the registry, kept until the registry answered it (applied or refused for good).

    `idempotency_key` is sent with every attempt: a resend after a lost answer is applied once by the registry."""

    __tablename__ = "registry_outbox"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # sightings / applications / allowance
    dpc: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=100, unique=True)
    payload: str  # the contract model as JSON
    created_at: datetime = Field(index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    sent_at: datetime | None = Field(default=None, index=True)  # answered by the registry (applied)
    refused_status: int | None = None  # answered 4xx for good: kept for an operator
    last_error: str | None = Field(default=None, max_length=500)
    result: str | None = None  # the registry's receipt as JSON


class RegistryMirror(SQLModel, table=True):
    """The newest state of one subject (hsc serial, licence BIN, pool id, violation id, allowance id) from the feed."""

    __tablename__ = "registry_mirror"
    __table_args__ = (UniqueConstraint("dpc", "kind", "subject"),)
    id: int | None = Field(default=None, primary_key=True)
    dpc: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=20)  # hsc / licence / pool / violation / allowance
    subject: str = Field(max_length=100)
    seq: int
    data: str  # the feed item's data as JSON
    at: datetime


class RegistryCursor(SQLModel, table=True):
    """How far the feed of one DPC was applied, and when it was last read to its head."""

    __tablename__ = "registry_cursor"
    dpc: str = Field(primary_key=True, max_length=64)
    after: int = 0
    head_seq: int = 0
    synced_at: datetime | None = None  # the last time the feed was read to its head (trusted from then)
    last_error: str | None = Field(default=None, max_length=500)


class CommissioningAllowance(SQLModel, table=True):
    """A time-boxed allowance an operator granted to a named machine (burn-in before inclusion)."""

    __tablename__ = "commissioning_allowance"
    id: int | None = Field(default=None, primary_key=True)
    dpc: str = Field(max_length=64)
    serial: str = Field(max_length=100, index=True)
    device_id: str | None = Field(default=None, max_length=100)
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(max_length=500)
    granted_by: str = Field(max_length=200)  # the API key's actor
    created_at: datetime
    revoked_at: datetime | None = None
    outbox_key: str = Field(max_length=100)  # the submission to the registry
    registry_id: int | None = None  # the registry's id once it answered


TABLES = [t.__table__ for t in (RegistryOutbox, RegistryMirror, RegistryCursor,  # type: ignore[union-attr]
                                CommissioningAllowance)]
