"""API models (pydantic, in and out). Table models are in `registry.models`; wire messages in `kuat.wire`.

Field validators raise ValueError with a plain reason: FastAPI turns it into a 422 naming the field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kuat.wire.v1 import MinerSample
from registry.bin import bin_problem
from registry.models import HscStatus, LicenceStatus, Subtype, ViolationKind, ViolationStatus, Zone
from serverkit.db import RowId

LICENCE_YEARS = 3  # Art. 9: a digital-mining licence is valid for three years


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _check_bin(value: str | None) -> str | None:
    if value is not None and (problem := bin_problem(value)):
        raise ValueError(f"invalid BIN/IIN: {problem}")
    return value


def _check_dates(valid_from: date | None, valid_to: date | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise ValueError("valid_to must be after valid_from (dates out of order)")


# ---------------------------------------------------------------- licensees


class LicenseePatch(_In):
    bin: str | None = None
    name: str | None = Field(None, min_length=1, max_length=300)
    licence_number: str | None = Field(None, min_length=1, max_length=100)
    subtype: Subtype | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    status: LicenceStatus | None = None

    @field_validator("bin")
    @classmethod
    def _bin(cls, v: str | None) -> str | None:
        return _check_bin(v)


class LicenseeIn(LicenseePatch):
    bin: str
    name: str = Field(min_length=1, max_length=300)
    licence_number: str = Field(min_length=1, max_length=100)
    subtype: Subtype
    valid_from: date
    valid_to: date | None = None  # default: valid_from + 3 years
    status: LicenceStatus = LicenceStatus.ACTIVE

    @model_validator(mode="after")
    def _validity(self) -> LicenseeIn:
        if self.valid_to is None:
            self.valid_to = add_years(self.valid_from, LICENCE_YEARS)
        _check_dates(self.valid_from, self.valid_to)
        return self


class LicenseeOut(_Out):
    id: int
    bin: str
    name: str
    licence_number: str
    subtype: str
    valid_from: date
    valid_to: date
    status: str
    created_at: datetime
    changed_at: datetime


# ---------------------------------------------------------------- data-processing centres


class DpcPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    code: str | None = Field(None, min_length=2, max_length=20, pattern=r"^[A-Z0-9][A-Z0-9-]*$",
                             description="the national registry's code of this DPC (upper case, digits, dashes)")
    address: str | None = Field(None, min_length=1, max_length=500)
    zone: Zone | None = None
    operator_id: RowId | None = None
    capacity_mw: float | None = Field(None, gt=0, le=10_000)
    residential_zone_evidence: str | None = None


class DpcIn(DpcPatch):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    zone: Zone
    operator_id: RowId
    capacity_mw: float = Field(gt=0, le=10_000)
    residential_zone_evidence: str = ""  # document reference showing the building is outside residential zones


class DpcOut(_Out):
    id: int
    name: str
    code: str | None = None
    address: str
    zone: str
    operator_id: RowId
    capacity_mw: float
    residential_zone_evidence: str
    created_at: datetime
    changed_at: datetime


# ---------------------------------------------------------------- accredited pools


def _check_endpoints(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("give at least one stratum endpoint")
    for endpoint in value:
        if "://" not in endpoint or not endpoint.split("://", 1)[1]:
            raise ValueError(f"{endpoint!r} is not an endpoint URL like stratum+tcp://host:port")
    return value


class PoolPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    endpoints: list[str] | None = None
    accreditation_number: str | None = Field(None, min_length=1, max_length=100)
    valid_from: date | None = None
    valid_to: date | None = None

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, v: list[str] | None) -> list[str] | None:
        return _check_endpoints(v)


class PoolIn(PoolPatch):
    name: str = Field(min_length=1, max_length=200)
    endpoints: list[str]
    accreditation_number: str = Field(min_length=1, max_length=100)
    valid_from: date
    valid_to: date

    @model_validator(mode="after")
    def _validity(self) -> PoolIn:
        _check_dates(self.valid_from, self.valid_to)
        return self


class PoolOut(_Out):
    id: int
    name: str
    endpoints: list[str]
    accreditation_number: str
    valid_from: date
    valid_to: date
    created_at: datetime
    changed_at: datetime


# ---------------------------------------------------------------- HSCs


class HscPatch(_In):
    mac: str | None = Field(None, pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
    make: str | None = Field(None, max_length=50)
    model: str | None = Field(None, max_length=100)
    firmware: str | None = Field(None, max_length=200)
    nominal_ths: float | None = Field(None, gt=0, le=10_000)
    rated_w: float | None = Field(None, gt=0, le=100_000)
    owner_id: RowId | None = None
    dpc_id: RowId | None = None
    hall: str | None = Field(None, max_length=50)
    rack: str | None = Field(None, max_length=50)
    slot: str | None = Field(None, max_length=50)
    pdu: str | None = Field(None, max_length=100)
    pdu_outlet: int | None = Field(None, ge=1, le=1000)
    status: HscStatus | None = None
    registry_number: str | None = Field(None, min_length=1, max_length=100)


class HscIn(HscPatch):
    serial: str = Field(min_length=1, max_length=100)
    status: HscStatus | None = HscStatus.PENDING


class HscOut(_Out):
    id: int
    serial: str
    mac: str | None
    make: str | None
    model: str | None
    firmware: str | None
    nominal_ths: float | None
    rated_w: float | None
    owner_id: RowId | None
    dpc_id: RowId | None
    hall: str | None
    rack: str | None
    slot: str | None
    site: str | None
    gateway: str | None
    device_id: str | None
    ip: str | None
    pdu: str | None
    pdu_outlet: int | None
    pools: list[str]
    status: str
    registry_number: str | None
    first_seen_at: datetime | None
    registered_at: datetime | None
    decommissioned_at: datetime | None
    missing_since: datetime | None
    changed_at: datetime
    last_seen_at: datetime | None
    last_state: str | None


class AuditEventOut(_Out):
    seq: int
    hash: str
    prev_hash: str
    actor: str
    ts: datetime
    entity: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class HscDetail(BaseModel):
    hsc: HscOut
    history: list[AuditEventOut]


class HscPage(BaseModel):
    items: list[HscOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last page")


class ApproveIn(_In):
    owner_id: RowId
    dpc_id: RowId
    registry_number: str | None = Field(None, min_length=1, max_length=100)  # default: KZ-HSC-<id>
    hall: str | None = Field(None, max_length=50)
    rack: str | None = Field(None, max_length=50)
    slot: str | None = Field(None, max_length=50)


class BulkApproveItem(ApproveIn):
    serial: str = Field(min_length=1, max_length=100)


class BulkApproveIn(_In):
    items: list[BulkApproveItem] = Field(min_length=1, max_length=100_000)


# ---------------------------------------------------------------- sightings and compliance


class SightingsIn(_In):
    site: str = Field(min_length=1, max_length=100)
    gateway: str = Field(min_length=1, max_length=100)
    at: datetime
    samples: list[MinerSample]


class SightingResult(BaseModel):
    seen: int = 0
    skipped_no_serial: int = 0
    new_pending: list[str] = Field(default_factory=list)
    moved: list[str] = Field(default_factory=list)
    firmware_changed: list[str] = Field(default_factory=list)
    pools_changed: list[str] = Field(default_factory=list)
    identity_changed: list[str] = Field(default_factory=list)
    reappeared: list[str] = Field(default_factory=list)
    violations_opened: list[dict[str, Any]] = Field(default_factory=list)
    replayed: bool = False  # the same Idempotency-Key was applied before: this is the stored result


class ViolationOut(_Out):
    id: int
    kind: ViolationKind
    subject: str
    subject_id: int
    serial: str | None
    device_id: str | None
    status: ViolationStatus
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    evidence: dict[str, Any]


class ComplianceResult(BaseModel):
    checked_at: datetime
    hscs_checked: int
    opened: int
    resolved: int
    open_by_kind: dict[str, int]


class ImportRow(BaseModel):
    line: int
    serial: str | None
    action: str  # approve / create / update / unchanged / error
    errors: list[dict[str, str]] = Field(default_factory=list)


class ImportReport(BaseModel):
    dry_run: bool
    applied: bool
    rows: list[ImportRow]
    counts: dict[str, int]


class AuditBreakOut(BaseModel):
    """One broken link of the audit chain: where (event seq and/or entity row) and why."""

    reason: str
    seq: int | None = None
    entity: str | None = None
    entity_id: str | None = None


class AuditVerifyOut(BaseModel):
    """GET /registry/audit/verify: the chain recomputed and every audited row compared with its last state."""

    ok: bool
    events: int
    rows_checked: int
    first_broken: AuditBreakOut | None
    problems: list[AuditBreakOut] = Field(description="the first 100 problems found")


class NoncompliantOut(BaseModel):
    """Machines that get no power by policy (the quota engine's input), by agent device id and by serial."""

    device_ids: list[str]
    serials: list[str]


class RegistryHealth(BaseModel):
    status: Literal["ok"]


def streamed(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that streams a file: its media type and what a line (or the file) holds."""
    return {200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": description}}
