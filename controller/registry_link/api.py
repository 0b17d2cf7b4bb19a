"""/api/v1/registry-link: why each machine has or has no power, the link's state, commissioning allowances and
applications to the national registry.

    GET  /api/v1/registry-link/status              the feed cursor, last sync, trusted until, the outbox
    GET  /api/v1/registry-link/power               every live miner: powered or dark, the reason, in words
    GET  /api/v1/registry-link/power/{device_id}   one machine
    POST /api/v1/registry-link/allowances          an operator grants a time-boxed commissioning allowance
    GET  /api/v1/registry-link/allowances          every allowance granted here
    POST /api/v1/registry-link/applications        inclusion / move / exclusion applications (to the outbox)

Operators and regulators read; only operators grant and apply. Grid keys read none of it (registry data).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from controller.api.deps import services
from controller.live import DeviceLive
from controller.registry_link.client import RegistryLink
from controller.registry_link.models import CommissioningAllowance
from controller.runtime import Services
from kuat import clock
from kuat.wire import v1
from registry.auth import require_role
from registry.contract import v1 as c
from registry.models import Role
from serverkit.auth import Principal
from serverkit.errors import InvalidInput, NotFound, Unavailable
from serverkit.timeutil import utc

read_link = require_role(Role.OPERATOR, Role.REGULATOR)
operate = require_role(Role.OPERATOR)
router = APIRouter(prefix="/api/v1/registry-link", tags=["registry link"])


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutboxOut(_Out):
    pending: int
    refused: int
    sent: int
    oldest_pending_at: datetime | None


class LinkStatusOut(_Out):
    dpc: str
    mode: str
    after: int = Field(description="the feed cursor: the last seq applied")
    head_seq: int
    synced_at: datetime | None = Field(description="last time the feed was read to its head")
    trusted_until: datetime | None = Field(description="after this, without a new read, every machine goes dark")
    last_error: str | None
    reachable: bool
    outbox: OutboxOut


class MachinePowerOut(_Out):
    device_id: str
    site: str
    serial: str | None
    powered: bool
    reason: str = Field(description="included, allowance | pending, rejected, suspended, excluded, moved, no_serial, "
                                    "no_pools, unknown, no_licence, licence_expired, pool_unaccredited, stale")
    detail: str
    decided_at: datetime


class AllowanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    device_id: str | None = Field(None, description="a live machine (its serial is taken from telemetry)")
    serial: str | None = Field(None, min_length=1, max_length=100)
    hours: float = Field(gt=0, description="from now")
    reason: str = Field(min_length=1, max_length=500)


class AllowanceView(_Out):
    id: int
    serial: str
    device_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    granted_by: str
    created_at: datetime
    revoked_at: datetime | None
    registry_id: int | None = Field(description="the registry's id once it recorded the allowance")
    submission: str = Field(description="the outbox key of its submission to the registry")


class ApplicationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    kind: c.ApplicationKind
    serial: str | None = Field(None, min_length=1, max_length=100)
    device_id: str | None = Field(None, description="a live machine: serial, MAC, model, firmware, place from it")
    owner_bin: str = Field(min_length=12, max_length=12)
    nominal_ths: float | None = Field(None, gt=0)
    rated_w: float | None = Field(None, gt=0)
    reason: str | None = Field(None, max_length=500)


class ApplicationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applications: list[ApplicationRequest] = Field(min_length=1, max_length=c.MAX_APPLICATIONS_PER_BATCH)


class SubmissionOut(_Out):
    submission: str = Field(description="the outbox key; the registry applies it once, whenever it is reached")
    count: int


def link_of(svc: Services = Depends(services)) -> RegistryLink:
    if svc.registry_link is None:
        raise Unavailable("registry link", "not configured (settings: registry)")
    link: RegistryLink = svc.registry_link
    return link


def power_of(link: RegistryLink, device_id: str, site: str, sample: v1.MinerSample) -> MachinePowerOut:
    known = link.gate.check(device_id, sample)
    return MachinePowerOut(device_id=device_id, site=site, serial=sample.serial, powered=known.right.powered,
                           reason=known.right.reason.value, detail=known.right.detail, decided_at=known.at)


@router.get("/status", response_model=LinkStatusOut, dependencies=[Depends(read_link)])
def status(link: RegistryLink = Depends(link_of)) -> LinkStatusOut:
    s = link.status()
    o = s.outbox
    return LinkStatusOut(dpc=s.dpc, mode=s.mode, after=s.after, head_seq=s.head_seq, synced_at=s.synced_at,
                         trusted_until=s.trusted_until, last_error=s.last_error, reachable=s.reachable,
                         outbox=OutboxOut(pending=o.pending, refused=o.refused, sent=o.sent,
                                          oldest_pending_at=o.oldest_pending_at))  # fmt: skip


@router.get("/power", response_model=list[MachinePowerOut], dependencies=[Depends(read_link)])
def power(site: str | None = None, dark_only: bool = False, svc: Services = Depends(services),
          link: RegistryLink = Depends(link_of)) -> list[MachinePowerOut]:
    out = []
    for d in svc.live.device_list():
        if d.kind != "miner" or not isinstance(d.sample, v1.MinerSample) or (site is not None and d.site != site):
            continue
        row = power_of(link, d.device_id, d.site, d.sample)
        if not (dark_only and row.powered):
            out.append(row)
    return sorted(out, key=lambda r: (r.site, r.device_id))


@router.get("/power/{device_id}", response_model=MachinePowerOut, dependencies=[Depends(read_link)])
def machine_power(device_id: str, svc: Services = Depends(services), link: RegistryLink = Depends(link_of)
                  ) -> MachinePowerOut:
    d = _miner(svc, device_id)
    assert isinstance(d.sample, v1.MinerSample)
    return power_of(link, d.device_id, d.site, d.sample)


def _miner(svc: Services, device_id: str) -> DeviceLive:
    for d in svc.live.device_list():
        if d.device_id == device_id and d.kind == "miner" and isinstance(d.sample, v1.MinerSample):
            return d
    raise NotFound("live miner", device_id)


@router.post("/allowances", status_code=201, response_model=AllowanceView)
def grant_allowance(body: AllowanceRequest, svc: Services = Depends(services), link: RegistryLink = Depends(link_of),
                    who: Principal = Depends(operate)) -> AllowanceView:
    serial, device_id = _serial_of(svc, body.serial, body.device_id, "")
    now = utc(clock.now())
    row = link.grant_allowance(serial, device_id, now, now + timedelta(hours=body.hours), body.reason, who.actor)
    return _allowance_view(row)


@router.get("/allowances", response_model=list[AllowanceView], dependencies=[Depends(read_link)])
def list_allowances(link: RegistryLink = Depends(link_of)) -> list[AllowanceView]:
    with Session(link.engine) as s:
        rows = s.execute(select(CommissioningAllowance).order_by(col(CommissioningAllowance.id).desc())).scalars()
        return [_allowance_view(r) for r in rows]


@router.post("/applications", status_code=202, response_model=SubmissionOut)
def apply(body: ApplicationsIn, svc: Services = Depends(services), link: RegistryLink = Depends(link_of),
          who: Principal = Depends(operate)) -> SubmissionOut:
    now, items, bad = utc(clock.now()), [], []
    for i, a in enumerate(body.applications):
        try:
            serial, device_id = _serial_of(svc, a.serial, a.device_id, f"applications.{i}.")
        except InvalidInput as exc:
            bad.append(exc)
            continue
        sample = _sample(svc, device_id)
        if a.kind == c.ApplicationKind.EXCLUSION and not a.reason:
            bad.append(InvalidInput(f"applications.{i}.reason", "an exclusion needs its reason"))
            continue
        outlet = sample.outlet if sample else None
        placement = c.Placement(ip=sample.ip, pdu=outlet.pdu if outlet else None,
                                pdu_outlet=outlet.outlet if outlet else None) if sample else None  # fmt: skip
        items.append(c.ApplicationIn(kind=a.kind, serial=serial, owner_bin=a.owner_bin,
                                     mac=sample.mac if sample else None, make=sample.make if sample else None,
                                     model=sample.model if sample else None,
                                     firmware=(sample.firmware or "")[:200] or None if sample else None,
                                     nominal_ths=a.nominal_ths or (sample.nominal_ths if sample else None),
                                     rated_w=a.rated_w, placement=placement, reason=a.reason,
                                     submitted_by=who.actor, submitted_at=now))  # fmt: skip
    if bad:
        raise _all_of(bad)
    return SubmissionOut(submission=link.apply(items), count=len(items))


class _Many(InvalidInput):
    """Every bad field of one payload in one 422."""

    def __init__(self, errors: list[InvalidInput]) -> None:
        super().__init__(errors[0].field, errors[0].reason)
        self.errors = errors

    def body(self) -> dict[str, object]:
        return {"detail": [e.body()["detail"][0] for e in self.errors]}


def _all_of(errors: list[InvalidInput]) -> InvalidInput:
    return errors[0] if len(errors) == 1 else _Many(errors)


def _sample(svc: Services, device_id: str | None) -> v1.MinerSample | None:
    if device_id is None:
        return None
    for d in svc.live.device_list():
        if d.device_id == device_id and isinstance(d.sample, v1.MinerSample):
            return d.sample
    return None


def _serial_of(svc: Services, serial: str | None, device_id: str | None, prefix: str) -> tuple[str, str | None]:
    if device_id is not None:
        sample = _sample(svc, device_id)
        if sample is None:
            raise InvalidInput(f"{prefix}device_id", f"no live miner {device_id!r}")
        if sample.serial is None:
            raise InvalidInput(f"{prefix}device_id", f"{device_id} reports no serial: it cannot be named")
        if serial is not None and serial != sample.serial:
            raise InvalidInput(f"{prefix}serial", f"{device_id} reports serial {sample.serial}, not {serial}")
        return sample.serial, device_id
    if serial is None:
        raise InvalidInput(f"{prefix}serial", "give serial or device_id")
    return serial, None


def _allowance_view(r: CommissioningAllowance) -> AllowanceView:
    assert r.id is not None
    return AllowanceView(id=r.id, serial=r.serial, device_id=r.device_id, starts_at=utc(r.starts_at),
                         ends_at=utc(r.ends_at), reason=r.reason, granted_by=r.granted_by,
                         created_at=utc(r.created_at), revoked_at=utc(r.revoked_at) if r.revoked_at else None,
                         registry_id=r.registry_id, submission=r.outbox_key)  # fmt: skip


def install(app: FastAPI) -> None:
    app.include_router(router)
