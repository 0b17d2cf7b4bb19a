"""The national registry's API for data-processing centres (DPCs), version 1: what a site controller submits and what
it reads back. Both sides build on this module and nothing else of the other's.

Versioned on its own: a gateway's wire (kuat/wire) and this API move independently. A site controller maps its
gateways' `MinerSample`s to `Sighting`s; the registry never sees a gateway message.

Submissions (sightings, applications, allowances) carry an idempotency key: the registry applies each key once and
answers a repeat with the first result, so the controller's outbox may resend after a lost answer.
Decisions come back as one change feed per DPC key, followed by cursor (`after` = the last `seq` applied):
every item is the *whole current state* of one subject as that DPC should see it (not a delta), so applying the
newest item of each subject gives the current picture, and replaying an item is harmless.

HTTP binding (registry side, `Authorization: Bearer <dpc key>`; the key is bound to one or more DPC codes):

    POST /api/v1/dpc/{dpc}/sightings      SightingBatch    -> SightingReceipt     (Idempotency-Key header)
    POST /api/v1/dpc/{dpc}/applications   ApplicationBatch -> ApplicationReceipt  (Idempotency-Key header)
    POST /api/v1/dpc/{dpc}/allowances     AllowanceIn      -> AllowanceOut        (Idempotency-Key header)
    GET  /api/v1/dpc/{dpc}/feed?after=N&limit=M            -> FeedPage
    GET  /api/v1/dpc/whoami                                -> DpcBinding

`DpcPort` is the same surface as a Python protocol: the registry implements it in-process (an embedded registry,
one DPC on one machine) and the controller's HTTP transport implements it over the binding above, so the controller
has one client and two transports.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

API_VERSION = "1"
MAX_SIGHTINGS_PER_BATCH = 10_000
MAX_FEED_PAGE = 5_000
MAX_APPLICATIONS_PER_BATCH = 5_000


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---------------------------------------------------------------- statuses


class RegistrationStatus(StrEnum):
    """Where a machine stands in the registry, as seen by one DPC.

    submitted -> included | rejected; included -> suspended -> included; included | suspended -> excluded;
    included at this DPC, then included at another -> moved (for this DPC). Only `included` at this DPC can give the
    right to mine; the rule that decides power is the quota side's (quota/rights.py), not the registry's.
    """

    SUBMITTED = "submitted"
    INCLUDED = "included"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    EXCLUDED = "excluded"
    MOVED = "moved"  # included elsewhere now; `dpc` names where


class LicenceStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class ApplicationKind(StrEnum):
    INCLUSION = "inclusion"  # a machine new to the registry, or back after exclusion, to be included at this DPC
    MOVE = "move"  # a machine included at another DPC arrives here: excluded there, an application here
    EXCLUSION = "exclusion"  # decommissioned, sold, exported, or leaving this DPC


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    INCLUDED = "included"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXCLUDED = "excluded"  # an exclusion application, granted


# ---------------------------------------------------------------- submissions


class Placement(_Msg):
    """Where a machine stands in the DPC and how the site reaches it."""

    hall: str | None = Field(None, max_length=50)
    rack: str | None = Field(None, max_length=50)
    slot: str | None = Field(None, max_length=50)
    gateway: str | None = Field(None, max_length=100)
    ip: str | None = Field(None, max_length=45)
    pdu: str | None = Field(None, max_length=100)
    pdu_outlet: int | None = Field(None, ge=0)


class Sighting(_Msg):
    """One machine as the DPC observed it. `serial` may be missing (firmware that does not tell): the registry still
    learns the MAC, and such a machine can never be included until its serial is known."""

    serial: str | None = Field(None, min_length=1, max_length=100)
    mac: str | None = Field(None, max_length=17, description="lower case, colon separated")
    make: str | None = Field(None, max_length=50)
    model: str | None = Field(None, max_length=100)
    firmware: str | None = Field(None, max_length=200)
    hashing: bool = Field(description="submitting shares now (mining or degraded), whatever the right to")
    state: str = Field(max_length=20, description="the gateway's state: mining, degraded, sleeping, offline...")
    hashrate_ths: float | None = Field(None, ge=0, allow_inf_nan=False)
    power_w: float | None = Field(None, ge=0, allow_inf_nan=False)
    pools: list[str] = Field(default_factory=list, max_length=10, description="stratum URLs configured")
    placement: Placement | None = None
    seen_at: datetime


class SightingBatch(_Msg):
    site: str = Field(min_length=1, max_length=100, description="the controller's site name (a DPC may have several)")
    sightings: list[Sighting] = Field(max_length=MAX_SIGHTINGS_PER_BATCH)
    sent_at: datetime


class SightingConflict(_Msg):
    serial: str | None
    mac: str | None
    other_dpc: str = Field(description="the other DPC that reported the same serial or MAC recently")


class SightingReceipt(_Msg):
    accepted: int
    unknown: list[str] = Field(default_factory=list, description="serials with no registry row yet (no application)")
    conflicts: list[SightingConflict] = Field(default_factory=list)
    replayed: bool = False


class ApplicationIn(_Msg):
    """An application by the DPC operator (for the owner): inclusion, a move in, or an exclusion."""

    kind: ApplicationKind
    serial: str = Field(min_length=1, max_length=100)
    owner_bin: str = Field(min_length=12, max_length=12, description="BIN/IIN of the machine's owner (a tenant's own)")
    mac: str | None = Field(None, max_length=17)
    make: str | None = Field(None, max_length=50)
    model: str | None = Field(None, max_length=100)
    firmware: str | None = Field(None, max_length=200)
    nominal_ths: float | None = Field(None, gt=0, allow_inf_nan=False)
    rated_w: float | None = Field(None, gt=0, allow_inf_nan=False)
    placement: Placement | None = None
    reason: str | None = Field(None, max_length=500, description="why (required for an exclusion)")
    submitted_by: str = Field(min_length=1, max_length=200, description="the operator who applied, at the DPC")
    submitted_at: datetime


class ApplicationBatch(_Msg):
    """Applications applied all or nothing: one bad item (a 422 naming `applications.<i>.<field>`) applies none."""

    applications: list[ApplicationIn] = Field(min_length=1, max_length=MAX_APPLICATIONS_PER_BATCH)


class ApplicationOut(_Msg):
    id: int
    kind: ApplicationKind
    serial: str
    dpc: str
    status: ApplicationStatus
    reason: str | None = None
    submitted_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None


class ApplicationReceipt(_Msg):
    items: list[ApplicationOut]
    replayed: bool = False


class AllowanceIn(_Msg):
    """A time-boxed commissioning allowance: a named machine may hash before inclusion (burn-in), granted by the DPC
    operator, recorded by the registry and visible to regulators."""

    serial: str = Field(min_length=1, max_length=100)
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(min_length=1, max_length=500)
    granted_by: str = Field(min_length=1, max_length=200)


class AllowanceOut(_Msg):
    id: int
    serial: str
    dpc: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    granted_by: str
    revoked_at: datetime | None = None
    replayed: bool = False


# ---------------------------------------------------------------- the decision feed


class HscDecision(_Msg):
    kind: Literal["hsc"] = "hsc"
    serial: str
    mac: str | None = None
    status: RegistrationStatus
    dpc: str | None = Field(description="the DPC where the machine is (or was last) included or applied for")
    registry_number: str | None = None
    owner_bin: str | None = None
    reason: str | None = None
    decided_at: datetime | None = None


class LicenceState(_Msg):
    kind: Literal["licence"] = "licence"
    bin: str
    name: str
    licence_number: str
    subtype: Literal["I", "II"]
    valid_from: date
    valid_to: date = Field(description="last Astana calendar day of validity")
    status: LicenceStatus


class PoolAccreditation(_Msg):
    kind: Literal["pool"] = "pool"
    id: int
    name: str
    endpoints: list[str]
    accreditation_number: str
    valid_from: date
    valid_to: date = Field(description="last Astana calendar day of validity")
    withdrawn: bool = False


class ViolationNotice(_Msg):
    kind: Literal["violation"] = "violation"
    id: int
    violation: str = Field(description="unregistered_mining, unaccredited_pool, duplicate_identity, ...")
    serial: str | None = None
    mac: str | None = None
    status: Literal["open", "closed", "resolved"]
    opened_at: datetime
    closed_at: datetime | None = None
    detail: str | None = None


class AllowanceState(_Msg):
    kind: Literal["allowance"] = "allowance"
    id: int
    serial: str
    starts_at: datetime
    ends_at: datetime
    revoked_at: datetime | None = None


FeedData = Annotated[
    HscDecision | LicenceState | PoolAccreditation | ViolationNotice | AllowanceState, Field(discriminator="kind")
]


class FeedItem(_Msg):
    seq: int = Field(ge=1, description="increasing, not dense: a DPC sees only the items meant for it")
    at: datetime
    data: FeedData


class FeedPage(_Msg):
    items: list[FeedItem]
    next_after: int = Field(description="pass as `after` for the next page (the last seq here, or the same cursor)")
    has_more: bool
    head_seq: int = Field(description="the newest seq of the whole feed when the page was read")


class DpcBinding(_Msg):
    key_name: str
    dpcs: list[str]


# ---------------------------------------------------------------- one surface, two transports


class PortError(Exception):
    """Base of what a DpcPort raises."""


class PortUnavailable(PortError):
    """The registry could not be reached or answered 5xx: try again later, nothing was applied for sure."""


class PortRefused(PortError):
    """The registry refused the submission for good (4xx other than 408/425/429): keep it for an operator."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class DpcPort(Protocol):
    """What the national registry offers a DPC. `dpc` is the DPC's registry code; the caller must be bound to it."""

    def submit_sightings(self, dpc: str, batch: SightingBatch, idempotency_key: str) -> SightingReceipt: ...

    def submit_applications(self, dpc: str, batch: ApplicationBatch, idempotency_key: str) -> ApplicationReceipt: ...

    def submit_allowance(self, dpc: str, allowance: AllowanceIn, idempotency_key: str) -> AllowanceOut: ...

    def feed(self, dpc: str, after: int, limit: int = 1000) -> FeedPage: ...
