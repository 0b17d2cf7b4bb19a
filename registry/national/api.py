"""HTTP routes of the national registry beyond the DPC contract, one router per audience:

- /api/v1/authority/...  (authority keys): licensees (and tenants), DPCs, accredited pools, application decisions,
  suspensions and exclusions; every write records the key's actor in the audit chain;
- /api/v1/national/...   (regulator and authority keys): search across DPCs, streamed exports (JSON Lines, CSV),
  the registry as of a past instant, applications, violation episodes, allowances, chain check;
- /api/v1/audit/...      the audit feed (regulator and authority keys), the signed head; the public key is public;
- /api/v1/public/...     no key: included machines per DPC, and whether a registry number is valid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

from registry.auth import require_role
from registry.contract.v1 import ApplicationOut, ApplicationStatus, RegistrationStatus
from registry.models import Role, Zone
from registry.national import queries
from registry.national.api_dpc import National
from registry.national.models import EpisodeKind
from registry.national.schemas import (
    AllowanceView,
    ApplicationView,
    AuditPage,
    ChainStatus,
    DecisionIn,
    EpisodeOut,
    NumberCheck,
    PublicDpc,
    PublicKeyOut,
    RegistrationOut,
    RegistrationPage,
    SignedHead,
    StatusIn,
    WhoAmI,
)
from registry.national.signing import Signer
from registry.schemas import (
    DpcIn,
    DpcOut,
    DpcPatch,
    LicenseeIn,
    LicenseeOut,
    LicenseePatch,
    PoolIn,
    PoolOut,
    PoolPatch,
    streamed,
)
from serverkit.auth import Principal
from serverkit.errors import InvalidInput
from serverkit.timeutil import system_clock

Authority = Annotated[Principal, Depends(require_role(Role.AUTHORITY))]
Reader = Annotated[Principal, Depends(require_role(Role.AUTHORITY, Role.REGULATOR))]

authority = APIRouter(prefix="/api/v1/authority", tags=["authority"])
national = APIRouter(prefix="/api/v1/national", tags=["regulators"])
audit_feed = APIRouter(prefix="/api/v1/audit", tags=["audit"])
public = APIRouter(prefix="/api/v1/public", tags=["public"])


def signer_of(request: Request) -> Signer:
    signer: Signer = request.app.state.registry_signer
    return signer


SignerDep = Annotated[Signer, Depends(signer_of)]


def install(app: FastAPI, signer: Signer) -> None:
    app.state.registry_signer = signer
    for router in (authority, national, audit_feed, public):
        app.include_router(router)


# ---------------------------------------------------------------- authority


@authority.post("/licensees", response_model=LicenseeOut, status_code=201)
def create_licensee(data: LicenseeIn, svc: National, who: Authority) -> Any:
    """A digital miner's licence: subtype I (operates a DPC) or II (a tenant with its own machines)."""
    return svc.create_reference("licensee", data, who.actor)


@authority.patch("/licensees/{row_id}", response_model=LicenseeOut)
def update_licensee(row_id: int, patch: LicenseePatch, svc: National, who: Authority) -> Any:
    return svc.update_reference("licensee", row_id, patch, who.actor)


@authority.get("/licensees", response_model=list[LicenseeOut])
def list_licensees(svc: National, _: Reader, limit: int = Query(1000, ge=1, le=10_000)) -> Any:
    return svc.reference.list_rows("licensee", limit)


@authority.post("/dpcs", response_model=DpcOut, status_code=201)
def create_dpc(data: DpcIn, svc: National, who: Authority) -> Any:
    if data.code is None:
        raise InvalidInput("code", "a DPC of the national registry needs its code")
    return svc.create_reference("dpc", data, who.actor)


@authority.patch("/dpcs/{row_id}", response_model=DpcOut)
def update_dpc(row_id: int, patch: DpcPatch, svc: National, who: Authority) -> Any:
    return svc.update_reference("dpc", row_id, patch, who.actor)


@authority.get("/dpcs", response_model=list[DpcOut])
def list_dpcs(svc: National, _: Reader, limit: int = Query(1000, ge=1, le=10_000)) -> Any:
    return svc.reference.list_rows("dpc", limit)


@authority.post("/pools", response_model=PoolOut, status_code=201)
def create_pool(data: PoolIn, svc: National, who: Authority) -> Any:
    """An accredited pool and its stratum endpoints: every DPC's feed carries it."""
    return svc.create_reference("pool", data, who.actor)


@authority.patch("/pools/{row_id}", response_model=PoolOut)
def update_pool(row_id: int, patch: PoolPatch, svc: National, who: Authority) -> Any:
    return svc.update_reference("pool", row_id, patch, who.actor)


@authority.get("/pools", response_model=list[PoolOut])
def list_pools(svc: National, _: Reader, limit: int = Query(1000, ge=1, le=10_000)) -> Any:
    return svc.reference.list_rows("pool", limit)


@authority.post("/applications/{application_id}/decision", response_model=ApplicationOut)
def decide(application_id: int, data: DecisionIn, svc: National, who: Authority) -> ApplicationOut:
    """Include (issuing the registry number) or reject with a reason."""
    return svc.decide(application_id, data.decision == "include", data.reason, who.actor, data.registry_number)


@authority.post("/registrations/{serial}/status", response_model=RegistrationOut)
def set_status(serial: str, data: StatusIn, svc: National, who: Authority) -> RegistrationOut:
    svc.set_status(serial, data.action.value, data.reason, who.actor)
    return queries.search(svc, queries.RegFilter(serial=serial), 0, 1).items[0]


# ---------------------------------------------------------------- regulators (and the authority)


def reg_filter(serial: str | None = None, mac: str | None = None,
               dpc: str | None = Query(None, description="DPC code"),
               status: RegistrationStatus | None = None,
               owner_bin: str | None = Query(None, description="owner's BIN/IIN"),
               changed_since: datetime | None = None) -> queries.RegFilter:
    return queries.RegFilter(serial=serial, mac=mac, dpc=dpc, status=status.value if status else None,
                             owner_bin=owner_bin, changed_since=changed_since)


Filter = Annotated[queries.RegFilter, Depends(reg_filter)]


@national.get("/whoami", response_model=WhoAmI)
def whoami(who: Reader) -> WhoAmI:
    return WhoAmI(name=who.name, role=who.role)


@national.get("/hscs", response_model=RegistrationPage)
def search(svc: National, _: Reader, flt: Filter, after_id: int = Query(0, ge=0),
           limit: int = Query(100, ge=1, le=1000)) -> RegistrationPage:
    """Machines across every DPC, by id; follow `next_cursor` (as `after_id`) until it is null."""
    return queries.search(svc, flt, after_id, limit)


@national.get("/export.jsonl", response_class=StreamingResponse,
              responses=streamed("application/x-ndjson", "JSON Lines: a registration a line, keys as in the CSV"))
def export_jsonl(svc: National, _: Reader, flt: Filter,
                 audited: bool = Query(False, description="add each row's audited state (for `kuat registry "
                                                          "verify --export`)")) -> StreamingResponse:
    queries.check_filter(svc, flt)
    return StreamingResponse(queries.iter_export(svc, flt, "jsonl", audited), media_type="application/x-ndjson")


@national.get("/export.csv", response_class=StreamingResponse,
              responses=streamed("text/csv", "the registrations of the filter, one CSV row each (header first)"))
def export_csv(svc: National, _: Reader, flt: Filter) -> StreamingResponse:
    queries.check_filter(svc, flt)
    return StreamingResponse(queries.iter_export(svc, flt, "csv"), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="hsc-national-registry.csv"'})


@national.get("/as-of.jsonl", response_class=StreamingResponse,
              responses=streamed("application/x-ndjson", "JSON Lines: every machine as the chain recorded it at `at`"))
def as_of(svc: National, _: Reader, at: datetime = Query(description="ISO 8601 instant")) -> StreamingResponse:
    """Every machine as the audit chain recorded it at `at` (rebuilt from the chain, not from current rows)."""
    if at.tzinfo is None:
        raise InvalidInput("at", "give a time zone (e.g. 2026-03-02T08:00:00Z)", location="query")
    return StreamingResponse(queries.iter_as_of(svc, at), media_type="application/x-ndjson")


@national.get("/applications", response_model=list[ApplicationView])
def applications(svc: National, _: Reader, status: ApplicationStatus | None = None, dpc: str | None = None,
                 after_id: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)) -> list[ApplicationView]:
    return queries.applications(svc, status.value if status else None, dpc, after_id, limit)


@national.get("/episodes", response_model=list[EpisodeOut])
def episodes(svc: National, _: Reader, dpc: str | None = None, kind: EpisodeKind | None = None,
             open_only: bool = False, serial: str | None = None, after_id: int = Query(0, ge=0),
             limit: int = Query(100, ge=1, le=1000)) -> list[EpisodeOut]:
    """Violation episodes: a machine that hashed without the right, from when to when, energy and peak power."""
    return queries.episodes(svc, dpc, kind.value if kind else None, open_only, serial, after_id, limit)


@national.get("/allowances", response_model=list[AllowanceView])
def allowances(svc: National, _: Reader, dpc: str | None = None) -> list[AllowanceView]:
    return queries.allowances(svc, dpc)


@national.get("/chain/verify", response_model=ChainStatus)
def verify_chain(svc: National, _: Reader) -> ChainStatus:
    """Server-side check: every link, and every audited row against its chain (a row edited in SQL is named)."""
    report = svc.reference.verify_audit()
    return ChainStatus(ok=report.ok, events=report.events, rows_checked=report.rows_checked,
                       first_broken=report.first_broken.as_dict() if report.first_broken else None)


# ---------------------------------------------------------------- the audit feed


@audit_feed.get("/events", response_model=AuditPage)
def events(svc: National, _: Reader, after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10_000)
           ) -> AuditPage:
    return queries.audit_page(svc, after, limit)


@audit_feed.get("/events.jsonl", response_class=StreamingResponse,
                responses=streamed("application/x-ndjson", "JSON Lines: every audit event from seq 1, then the signed "
                                                           "head (SignedHead) as the last line"))
def events_jsonl(svc: National, signer: SignerDep, _: Reader) -> StreamingResponse:
    """Every event from seq 1, then the head they end at, signed: the file `kuat registry verify --feed` checks."""
    seq, head_hash = queries.head(svc)
    signed = signer.sign_head(seq, head_hash, system_clock())

    def lines() -> Any:
        yield from queries.iter_audit_lines(svc, seq)
        yield SignedHead.model_validate(signed).model_dump_json() + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@audit_feed.get("/head", response_model=SignedHead)
def signed_head(svc: National, signer: SignerDep, _: Reader) -> SignedHead:
    seq, head_hash = queries.head(svc)
    return SignedHead.model_validate(signer.sign_head(seq, head_hash, system_clock()))


@audit_feed.get("/public-key", response_model=PublicKeyOut)
def public_key(signer: SignerDep) -> PublicKeyOut:
    """The registry's Ed25519 public key (PEM): anyone may fetch it; pin it once, check every feed with it."""
    return PublicKeyOut(public_key_pem=signer.public_pem())


# ---------------------------------------------------------------- public


@public.get("/dpcs", response_model=list[PublicDpc])
def public_dpcs(svc: National, zone: Zone | None = None) -> list[PublicDpc]:
    rows = queries.public_dpcs(svc)
    return [r for r in rows if zone is None or r.zone == zone.value]


@public.get("/registry-numbers/{number}", response_model=NumberCheck)
def check_number(number: str, svc: National) -> NumberCheck:
    """Whether a registry number was issued and its machine is included now (nothing about owners)."""
    return queries.number_check(svc, number)
