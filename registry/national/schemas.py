"""API models of the national registry's authority, regulator and public routes (the DPC side is the contract's)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DecisionIn(_In):
    decision: Literal["include", "reject"]
    reason: str | None = Field(None, max_length=500, description="required for a rejection")
    registry_number: str | None = Field(None, min_length=3, max_length=100,
                                        description="the number the authority issues (default KZ-HSC-<year>-<id>)")


class StatusAction(StrEnum):
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    EXCLUDE = "exclude"


class StatusIn(_In):
    action: StatusAction
    reason: str = Field(min_length=1, max_length=500)


class RegistrationOut(BaseModel):
    id: int
    serial: str
    mac: str | None
    make: str | None
    model: str | None
    owner_bin: str
    owner_name: str
    dpc: str
    status: str
    registry_number: str | None
    reason: str | None
    decided_at: datetime | None
    decided_by: str | None
    changed_at: datetime
    last_seen_at: datetime | None = None
    last_seen_dpc: str | None = None
    hashing: bool | None = None


class RegistrationPage(BaseModel):
    items: list[RegistrationOut]
    next_cursor: int | None = Field(description="pass as `after_id` for the next page; null at the end")


class ApplicationView(BaseModel):
    id: int
    kind: str
    serial: str
    dpc: str
    owner_bin: str
    owner_name: str
    status: str
    reason: str | None
    submitted_by: str
    submitted_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    details: dict[str, Any]


class EpisodeOut(BaseModel):
    id: int
    kind: str
    dpc: str
    identity: str
    serial: str | None
    mac: str | None
    detail: str | None
    other_dpc: str | None
    started_at: datetime
    last_hashing_at: datetime
    ended_at: datetime | None
    duration_s: float
    energy_wh: float
    max_power_w: float | None


class AllowanceView(BaseModel):
    id: int
    serial: str
    dpc: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    granted_by: str
    revoked_at: datetime | None


class AuditEventLine(BaseModel):
    """One audit event as the feed carries it: `before`/`after` are the canonical JSON texts the hash covers."""

    type: Literal["event"] = "event"
    seq: int
    prev_hash: str
    hash: str
    actor: str
    ts: datetime
    entity: str
    entity_id: str
    action: str
    before: str | None
    after: str | None


class AuditPage(BaseModel):
    items: list[AuditEventLine]
    next_after: int
    has_more: bool


class SignedHead(BaseModel):
    type: Literal["head"] = "head"
    registry: str
    seq: int
    hash: str
    signed_at: str
    signature: str = Field(description="Ed25519 over canonical JSON {registry, seq, hash, signed_at}, base64")


class PublicKeyOut(BaseModel):
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key_pem: str


class ChainStatus(BaseModel):
    ok: bool
    events: int
    rows_checked: int
    first_broken: dict[str, Any] | None


class PublicDpc(BaseModel):
    code: str
    name: str
    zone: str
    included: int = Field(description="machines included at this DPC now")


class NumberCheck(BaseModel):
    registry_number: str
    valid: bool = Field(description="issued, and the machine is included now")
    status: str | None = None
    dpc: str | None = None


class WhoAmI(BaseModel):
    name: str
    role: str
