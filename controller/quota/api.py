"""/api/v1/quota: schedules (JSON or CSV), emergency orders and lifts, the grid contract, site limits, tenant shares,
machine rules, status, history, the ledger (JSON or CSV) and the input log.

Roles (registry.auth): the grid operator's system (`grid`) and operators push schedules, orders and grid contracts;
operators set site limits, tenant shares and machine rules; operators, regulators and the grid read the rest.
Every refusal is a 422 whose `detail` lists `{loc, msg}`: the field and the reason.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.api.deps import services
from controller.quota import schemas as S
from controller.quota.errors import NotUnderQuota
from controller.quota.service import QuotaService, describe_order
from controller.runtime import Services
from kuat import clock
from quota.errors import Issue, QuotaInputError
from registry.auth import require_role
from registry.models import Role
from serverkit.auth import Principal
from serverkit.db import RowId

router = APIRouter(prefix="/api/v1/quota", tags=["quota"])

push_role = require_role(Role.GRID, Role.OPERATOR)
operate = require_role(Role.OPERATOR)
read_quota = require_role(Role.OPERATOR, Role.REGULATOR, Role.GRID)

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
CSV_HELP = "CSV: a header `hour,kwh` (1..24, Astana local hours) and one row per hour; day/area/reference as query."


def quota_of(svc: Services = Depends(services)) -> QuotaService:
    if svc.quota is None:
        raise HTTPException(503, "the quota side is disabled in this controller's settings (quota.enabled)")
    q: QuotaService = svc.quota
    return q


def require_site_scope(who: Principal, q: QuotaService, site: str) -> None:
    """A key scoped to sites or zones (a grid operator's) reaches only those (403 otherwise)."""
    try:
        zone = q.state(site).site.zone
    except NotUnderQuota:  # a site without limits yet: its scope is by name only, the route then says what is wrong
        zone = None
    who.require_site(site, zone)


def push_inputs(site: str, q: QuotaService = Depends(quota_of), who: Principal = Depends(push_role)) -> Principal:
    """Grid or operator keys, and only for a site their scope reaches."""
    require_site_scope(who, q, site)
    return who


def _unprocessable(err: QuotaInputError) -> HTTPException:
    return HTTPException(422, err.as_detail())


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class ScheduleIn(_In):
    day: date = Field(description="Astana-local calendar day")
    hours_kwh: list[float] = Field(description="purchased kWh of hour 1..24 (23/25 on a DST day elsewhere)")
    area: str | None = Field(None, description="the site (default) or its trading zone")
    reference: str | None = Field(None, max_length=200)


class EmergencyIn(_In):
    reference: str = Field(description="the written order's number")
    cap_pct: float | None = Field(None, description="share of the schedule, 0..100 (0 = full stop)")
    cap_mw: float | None = Field(None, description="cap in MW")
    start: datetime | None = Field(None, description="ISO 8601 with offset; default now")
    end: datetime | None = Field(None, description="ISO 8601 with offset; none and no minutes: until lifted")
    minutes: float | None = Field(None, description="duration instead of end")
    area: str | None = Field(None, description="the site (default) or its zone")

    _f = field_validator("cap_pct", "cap_mw", "minutes")(_finite)


class SiteLimitsIn(_In):
    connection_kw: float = Field(gt=0)
    reserved_headroom_kw: float = Field(0.0, ge=0)
    zone: str | None = None
    zone_share: float = Field(1.0, gt=0, le=1)
    require_schedule: bool = True
    lend_unused_share: bool = True

    _f = field_validator("connection_kw", "reserved_headroom_kw", "zone_share")(_finite)


class GridContractIn(_In):
    contract_mw: float = Field(gt=0)
    stale_after_s: float = Field(240.0, gt=0)
    safe_pct: float = Field(0.0, ge=0, le=100)

    _f = field_validator("contract_mw", "stale_after_s", "safe_pct")(_finite)


class TenantIn(_In):
    share_pct: float = Field(ge=0, le=100)

    _f = field_validator("share_pct")(_finite)


class MachineRuleIn(_In):
    protected: bool = False
    priority: int = 0


# ------------------------------------------------------------------------------------------------ schedules


@router.post("/{site}/schedules", status_code=201, response_model=S.ScheduleAccepted,
             openapi_extra={"requestBody": {"content": {
    "application/json": {"schema": ScheduleIn.model_json_schema()},
    "text/csv": {"schema": {"type": "string", "description": CSV_HELP}}}}})  # fmt: skip
async def push_schedule(
    site: str, request: Request,
    day: date | None = Query(None, description="CSV uploads: the Astana day"),
    area: str | None = Query(None, description="CSV uploads: site or zone"),
    reference: str | None = Query(None, description="CSV uploads: the schedule's reference"),
    q: QuotaService = Depends(quota_of), who: Principal = Depends(push_inputs),
) -> dict[str, Any]:  # fmt: skip
    """Push a day-ahead schedule as JSON (`ScheduleIn`) or CSV (`hour,kwh`). Returns its id and effective plan."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in CSV_TYPES:
        if day is None:
            raise HTTPException(422, [{"loc": "day", "msg": "a CSV upload needs ?day=YYYY-MM-DD (Astana day)"}])
        hours = _parse_schedule_csv(body)
        source = "csv"
    else:
        try:
            doc = ScheduleIn.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(422, [{"loc": ".".join(str(p) for p in e["loc"]) or "body", "msg": e["msg"]}
                                      for e in exc.errors()]) from None  # fmt: skip
        day, hours, area, reference, source = doc.day, doc.hours_kwh, doc.area, doc.reference, "api"
    try:
        sid, plan = q.push_schedule(site, day, hours, who.actor, source, area=area, reference=reference)
    except QuotaInputError as err:
        raise _unprocessable(err) from None
    return {"id": sid, "site": site, "area": area or site, "day": day, "source": source, "plan": plan}


def _parse_schedule_csv(body: bytes) -> list[float]:
    """`hour,kwh` rows in hour order; every bad line is named (line numbers count the header as line 1)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, [{"loc": "body", "msg": "the CSV is not UTF-8 text"}]) from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:2] != ["hour", "kwh"]:
        raise HTTPException(422, [{"loc": "line 1", "msg": f"header must be 'hour,kwh' (got {','.join(header)!r})"}])
    issues: list[Issue] = []
    hours: list[tuple[int, float]] = []
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        try:
            hours.append((int(row[0]), float(row[1])))
        except (ValueError, IndexError):
            issues.append(Issue(f"line {n}", f"expected 'hour,kwh' numbers (got {','.join(row)!r})"))
    if issues:
        raise _unprocessable(QuotaInputError(issues))
    expected = list(range(1, len(hours) + 1))
    if [h for h, _ in hours] != expected:
        raise HTTPException(422, [{"loc": "hour", "msg": f"hours must be 1..{len(hours)} in order, each once "
                                                         f"(got {[h for h, _ in hours]})"}])  # fmt: skip
    return [kwh for _, kwh in hours]


@router.get("/{site}/schedules", dependencies=[Depends(read_quota)], response_model=S.SchedulesOut)
def list_schedules(site: str, day: date | None = None, q: QuotaService = Depends(quota_of)) -> dict[str, Any]:
    return {"site": site, "schedules": _or_404(lambda: q.schedules(site, day))}


# ------------------------------------------------------------------------------------------------ emergencies


@router.post("/{site}/emergencies", status_code=201, response_model=S.OrderAccepted)
def push_emergency(site: str, body: EmergencyIn, q: QuotaService = Depends(quota_of),
                   who: Principal = Depends(push_inputs)) -> dict[str, Any]:
    """An emergency order, effective at its start (now by default); the loop acts on it at once."""
    try:
        row = q.push_emergency(site, cap_pct=body.cap_pct, cap_mw=body.cap_mw, start=body.start, end=body.end,
                               minutes=body.minutes, reference=body.reference, actor=who.actor, area=body.area)
    except QuotaInputError as err:
        raise _unprocessable(err) from None
    now = clock.now()
    return {"id": row.id, "site": site, "describe": describe_order(row),
            "status": q.status(site), "plan": _today_plan(q, site, now)}


def _today_plan(q: QuotaService, site: str, now: datetime) -> list[dict[str, Any]]:
    from quota.limits import plan_segments

    segs = plan_segments(q.state(site), now, now + timedelta(hours=24), energy=False)
    return [{"start": s.start, "end": s.end, "limit_w": round(s.limit_w, 1), "source": s.binding.source.value,
             "reason": s.binding.reason, "reference": s.binding.reference} for s in segs]


@router.get("/{site}/emergencies", dependencies=[Depends(read_quota)], response_model=S.OrdersOut)
def list_emergencies(site: str, past_hours: float = Query(24.0, ge=0), q: QuotaService = Depends(quota_of)
                     ) -> dict[str, Any]:
    return {"site": site, "emergencies": _or_404(lambda: q.emergencies(site, past_hours))}


@router.post("/emergencies/{order_id}/lift", response_model=S.OrderLifted)
def lift_emergency(order_id: RowId, q: QuotaService = Depends(quota_of),
                   who: Principal = Depends(push_role)) -> dict[str, Any]:
    order = q.emergency_site(order_id)
    if order is not None:
        require_site_scope(who, q, order)
    try:
        row = q.lift_emergency(order_id, who.actor)
    except QuotaInputError as err:
        raise HTTPException(409, err.as_detail()) from None
    return {"id": row.id, "site": row.site, "describe": describe_order(row), "status": q.status(row.site)}


# ------------------------------------------------------------------------------------------------ site setup


@router.put("/{site}/limits", response_model=S.LimitsOut)
def set_limits(site: str, body: SiteLimitsIn, q: QuotaService = Depends(quota_of),
               who: Principal = Depends(operate)) -> dict[str, Any]:
    """Put a site under quota control (or change its connection, headroom, zone)."""
    try:
        q.set_site_limits(site, **body.model_dump(), actor=who.actor)
    except QuotaInputError as err:
        raise _unprocessable(err) from None
    return q.site_limits(site)


@router.get("/{site}/limits", dependencies=[Depends(read_quota)], response_model=S.LimitsOut)
def get_limits(site: str, q: QuotaService = Depends(quota_of)) -> dict[str, Any]:
    return _or_404(lambda: q.site_limits(site))


@router.delete("/{site}/limits", status_code=204)
def delete_limits(site: str, q: QuotaService = Depends(quota_of), who: Principal = Depends(operate)) -> Response:
    _or_404(lambda: q.delete_site(site, who.actor))
    return Response(status_code=204)


@router.put("/{site}/grid-contract", response_model=S.LimitsOut)
def set_grid_contract(site: str, body: GridContractIn, q: QuotaService = Depends(quota_of),
                      who: Principal = Depends(push_inputs)) -> dict[str, Any]:
    try:
        q.set_grid_contract(site, **body.model_dump(), actor=who.actor)
    except QuotaInputError as err:
        raise _unprocessable(err) from None
    return q.site_limits(site)


@router.delete("/{site}/grid-contract", status_code=204)
def delete_grid_contract(site: str, q: QuotaService = Depends(quota_of),
                         who: Principal = Depends(push_inputs)) -> Response:
    _or_404(lambda: q.delete_grid_contract(site, who.actor))
    return Response(status_code=204)


@router.put("/{site}/tenants/{tenant}", response_model=S.LimitsOut)
def set_tenant(site: str, tenant: str, body: TenantIn, q: QuotaService = Depends(quota_of),
               who: Principal = Depends(operate)) -> dict[str, Any]:
    try:
        q.set_tenant(site, tenant, body.share_pct, who.actor)
    except QuotaInputError as err:
        raise _unprocessable(err) from None
    return q.site_limits(site)


@router.delete("/{site}/tenants/{tenant}", status_code=204)
def delete_tenant(site: str, tenant: str, q: QuotaService = Depends(quota_of),
                  who: Principal = Depends(operate)) -> Response:
    _or_404(lambda: q.delete_tenant(site, tenant, who.actor))
    return Response(status_code=204)


@router.put("/{site}/machines/{device_id}", response_model=S.MachineRuleOut)
def set_machine_rule(site: str, device_id: str, body: MachineRuleIn, q: QuotaService = Depends(quota_of),
                     who: Principal = Depends(operate)) -> dict[str, Any]:
    try:
        row = q.set_machine_rule(site, device_id, protected=body.protected, priority=body.priority,
                                 actor=who.actor)
    except QuotaInputError as err:
        raise _unprocessable(err) from None
    return row.model_dump()


@router.delete("/{site}/machines/{device_id}", status_code=204)
def delete_machine_rule(site: str, device_id: str, q: QuotaService = Depends(quota_of),
                        who: Principal = Depends(operate)) -> Response:
    _or_404(lambda: q.delete_machine_rule(site, device_id, who.actor))
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------------ read side


@router.get("/{site}/status", dependencies=[Depends(read_quota)], response_model=S.StatusOut)
def status(site: str, q: QuotaService = Depends(quota_of)) -> dict[str, Any]:
    if site not in q.sites():
        raise HTTPException(404, f"site {site!r} is not under quota control (no site limits set)")
    return q.status(site)


@router.get("/{site}/history", dependencies=[Depends(read_quota)], response_model=S.HistoryOut)
def history(site: str, minutes: float = Query(60.0, gt=0, le=60 * 24 * 31),
            q: QuotaService = Depends(quota_of)) -> dict[str, Any]:
    if site not in q.sites():
        raise HTTPException(404, f"site {site!r} is not under quota control (no site limits set)")
    since = clock.now() - timedelta(minutes=minutes)
    return {"site": site, "points": q.history(site, since)}


@router.get("/{site}/ledger", dependencies=[Depends(read_quota)], response_model=None,
            responses={200: {"model": S.LedgerOut, "content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "JSON (format=json) or the CSV file (format=csv)"}})
def ledger(
    site: str,
    start: datetime | None = Query(None, description="ISO 8601 with offset; default: 24 h ago"),
    end: datetime | None = Query(None, description="ISO 8601 with offset; default: now"),
    period: Literal["fine", "minute", "hour"] = "hour",
    kind: Literal["site", "tenant", "zone"] = "site",
    entity: str | None = Query(None, description="kind=tenant: one tenant"),
    format: Literal["json", "csv"] = "json",
    q: QuotaService = Depends(quota_of),
) -> S.LedgerOut | Response:
    """Allotted vs used kWh per period, with the excursions in it (kWh, MW x s) and their causes, and the gaps:
    stretches no controller measured (down, restarted, loop stalled), flagged rather than filled."""
    end = end or clock.now()
    start = start or end - timedelta(hours=24)
    try:
        if format == "csv":
            text = _or_404(lambda: q.ledger_csv(site, start, end, period, kind, entity))
            name = f"ledger-{site}-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.csv"
            return Response(text, media_type="text/csv",
                            headers={"content-disposition": f'attachment; filename="{name}"'})
        rows = _or_404(lambda: q.ledger(site, start, end, period, kind, entity))
        return S.LedgerOut.model_validate({"site": site, "start": start, "end": end, "period": period, "kind": kind,
                                           "rows": rows, "excursions": q.excursions(site, start, end),
                                           "gaps": q.ledger_gaps(site, start, end)})
    except (QuotaInputError, ValueError) as err:
        if isinstance(err, QuotaInputError):
            raise _unprocessable(err) from None
        raise HTTPException(422, [{"loc": "start", "msg": str(err)}]) from None


@router.get("/{site}/inputs", dependencies=[Depends(read_quota)], response_model=S.InputsOut)
def inputs(site: str, limit: int = Query(200, ge=1, le=5000), q: QuotaService = Depends(quota_of)
           ) -> dict[str, Any]:
    """Every push, change and refusal for the site, newest first, with who sent it and how."""
    return {"site": site, "inputs": q.input_log(site, limit)}


def _or_404(fn: Any) -> Any:
    """A refusal naming the site is a 404, any other a 422; NotFound and the rest of serverkit's tree go to the
    one mapping (serverkit.errors)."""
    try:
        return fn()
    except QuotaInputError as err:
        if any(i.field == "site" for i in err.issues):
            raise HTTPException(404, str(err)) from None
        raise _unprocessable(err) from None
