"""The ops dashboard: the page under /ui (plain files, no CDN) and the JSON routes its app.js calls.

    GET  /ui                              index.html (static files under /ui/static)
    GET  /api/v1/dashboard/snapshot       site totals, limit and why, power history, quota (see views.snapshot)
    GET  /api/v1/dashboard/stream         Server-Sent Events: "snapshot" every ~2 s (?key=: EventSource has no headers)
    GET  /api/v1/dashboard/fleet          every miner, one flat row each
    GET  /api/v1/dashboard/device/{id}    one miner: row, minute history, command log
    GET  /api/v1/dashboard/registry       owners, pending registrations, open violations
    POST /api/v1/dashboard/approve        {"serials": [...], "owner_id": N, "dpc_id": N?}: approve, all or nothing
    POST /api/v1/dashboard/emergency      {"reference", "cap_pct" | "cap_mw", "minutes"?}: an emergency order now
    GET  /api/v1/dashboard/ledger.csv     the quota ledger of the last 24 h (?key= accepted, for a plain link)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.api.deps import operate, read_fleet, services
from controller.dashboard import ops, views
from controller.runtime import Services
from kuat import clock
from quota.errors import QuotaInputError
from registry.auth import authenticate, require_role
from registry.models import Role
from serverkit.auth import Principal, token_from

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
STREAM_INTERVAL_S = 2.0
STREAM_MAX_S = 60.0  # a stream ends after this (the browser reconnects): a controller shutdown never waits long

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


def install(app: FastAPI) -> None:
    """Mount the page, its static files and the dashboard routes on the controller's app."""
    app.state.dashboard = DashboardState()
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.add_api_route("/ui", index, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/", index, methods=["GET"], include_in_schema=False)
    app.include_router(router)
    app.include_router(ops.router)


class DashboardState:
    """Per-app caches: the power sampler (history without a quota service) and the registry index."""

    def __init__(self) -> None:
        self.sampler = views.PowerSampler()
        self.index = views.RegistryIndex()


def dashboard(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def key_in_query_or_header(*roles: Role) -> Callable[[Request], Principal]:
    """Like registry.auth.require_role, but also takes ?key= (EventSource and plain links cannot send headers)."""

    def dependency(request: Request) -> Principal:
        svc: Services = request.app.state.services
        token = token_from(request) or request.query_params.get("key")
        if not token:
            raise HTTPException(401, "missing API key (?key=, X-API-Key or Authorization: Bearer)")
        if svc.registry is None:
            raise HTTPException(503, "no registry in this controller: API keys live in it")
        with svc.registry.reading() as session:
            principal = authenticate(session, token)
        if principal is None:
            raise HTTPException(401, "unknown or revoked API key")
        if principal.role not in roles:
            raise HTTPException(403, f"role {principal.role} may not do this")
        return principal

    return dependency


read_by_link = key_in_query_or_header(Role.OPERATOR, Role.REGULATOR, Role.GRID)
read_registry = require_role(Role.OPERATOR, Role.REGULATOR)


# ------------------------------------------------------------------ read


@router.get("/snapshot", dependencies=[Depends(read_fleet)])
def get_snapshot(svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)) -> dict[str, Any]:
    return views.snapshot(svc, ui.sampler)


@router.get("/stream", dependencies=[Depends(read_by_link)])
async def stream(
    request: Request, svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)
) -> StreamingResponse:
    """`event: snapshot` every ~2 s; the stream ends after a minute and EventSource reconnects by itself."""
    return StreamingResponse(_events(request, svc, ui), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip


async def _events(request: Request, svc: Services, ui: DashboardState) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    ends = time.monotonic() + STREAM_MAX_S
    while time.monotonic() < ends and not await request.is_disconnected():
        try:
            snap = await run_in_threadpool(views.snapshot, svc, ui.sampler)
        except Exception:
            log.exception("dashboard snapshot failed")
            yield 'event: problem\ndata: {"detail": "snapshot failed; see the controller log"}\n\n'
        else:
            yield f"event: snapshot\ndata: {json.dumps(snap, default=str)}\n\n"
        if await _stopping_within(request, STREAM_INTERVAL_S):
            return


async def _stopping_within(request: Request, seconds: float) -> bool:
    """Sleep `seconds`, but say True as soon as the server is shutting down (`app.state.stopping`, set by
    `kuat controller run`): an open dashboard must not hold the controller's shutdown."""
    stopping = getattr(request.app.state, "stopping", None)
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if stopping is not None and stopping():
            return True
        await asyncio.sleep(min(0.25, seconds))
    return False


@router.get("/fleet", dependencies=[Depends(read_fleet)])
def fleet(svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)) -> list[dict[str, Any]]:
    return views.fleet_rows(svc, ui.index)


@router.get("/device/{device_id}", dependencies=[Depends(read_fleet)])
def device(
    device_id: str, svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)
) -> dict[str, Any]:
    return views.device_page(svc, ui.index, device_id)  # NotFound 404, Conflict 409 (serverkit.errors)


@router.get("/registry", dependencies=[Depends(read_registry)])  # registry data: never for grid keys
def registry_page(svc: Services = Depends(services)) -> dict[str, Any]:
    return views.registry_page(svc)


@router.get("/ledger.csv", dependencies=[Depends(read_by_link)])
def ledger_csv(svc: Services = Depends(services)) -> Response:
    text = views.ledger_csv(svc, views.site_name(svc), clock.now())
    if text is None:
        raise HTTPException(409, "no ledger: the site is not under quota control (or the quota service is off)")
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="kuat-ledger.csv"'})  # fmt: skip


# ------------------------------------------------------------------ act


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serials: list[str] = Field(min_length=1, max_length=5000)
    owner_id: int
    dpc_id: int | None = Field(None, description="default: the registry's only DPC")


@router.post("/approve")
def approve(body: ApproveBody, svc: Services = Depends(services), who: Principal = Depends(operate)) -> dict[str, Any]:
    """Approve pending machines for one owner, all or nothing (the registry names the first bad item)."""
    from registry.schemas import BulkApproveItem

    if svc.registry is None:
        raise HTTPException(503, "no registry in this controller")
    dpc_id = body.dpc_id if body.dpc_id is not None else _only_dpc(svc)
    items = [BulkApproveItem(serial=s, owner_id=body.owner_id, dpc_id=dpc_id) for s in body.serials]
    done = svc.registry.bulk_approve(items, who.actor)
    svc.owners.refresh()
    log.info("%s approved %d registration(s) for owner %d", who.actor, len(done), body.owner_id)
    return {"approved": len(done), "serials": [h.serial for h in done]}


def _only_dpc(svc: Services) -> int:
    from registry.models import Dpc

    dpcs = svc.registry.list_rows("dpc") if svc.registry is not None else []
    if len(dpcs) != 1:
        raise HTTPException(422, [{"loc": ["body", "dpc_id"], "msg": f"required: the registry has {len(dpcs)} DPCs",
                                   "type": "missing"}])  # fmt: skip
    dpc: Dpc = dpcs[0]
    assert dpc.id is not None
    return dpc.id


class EmergencyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=100, description="the grid operator's order number")
    cap_pct: float | None = Field(None, ge=0, le=100, description="% of the hour's schedule (0: full stop)")
    cap_mw: float | None = Field(None, ge=0)
    minutes: int | None = Field(None, ge=1, le=7 * 24 * 60, description="empty: until lifted")

    @model_validator(mode="after")
    def _one_cap(self) -> EmergencyBody:
        given = [v for v in (self.cap_pct, self.cap_mw) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cap_pct or cap_mw")
        if not math.isfinite(given[0]):
            raise ValueError("the cap must be a finite number")
        return self


@router.post("/emergency", status_code=201)
def emergency(body: EmergencyBody, svc: Services = Depends(services),
              who: Principal = Depends(operate)) -> dict[str, Any]:  # fmt: skip
    """An emergency order entered by hand (phoned or faxed by the grid operator), effective now."""
    quota = views.quota_of(svc)
    site = views.site_name(svc)
    if quota is None or site is None:
        raise HTTPException(503, "the quota service is not running in this controller")
    try:
        result = quota.push_emergency(site, cap_pct=body.cap_pct, cap_mw=body.cap_mw, start=clock.now(), end=None,
                                      minutes=body.minutes, reference=body.reference, actor=who.actor)  # fmt: skip
    except QuotaInputError as exc:
        raise HTTPException(422, exc.as_detail()) from None
    log.info("%s entered emergency order %s on %s", who.actor, body.reference, site)
    return {"id": getattr(result, "id", None), "reference": body.reference, "site": site}
