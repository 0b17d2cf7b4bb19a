"""The ops dashboard: the page under /ui (plain files, no CDN) and the JSON routes its app.js calls.

    GET  /ui                              index.html (static files under /ui/static)
    GET  /api/v1/dashboard/snapshot       site totals, limit and why, power history, quota (see views.snapshot)
    GET  /api/v1/dashboard/stream         Server-Sent Events: "snapshot" every ~2 s (key header or session cookie)
    GET  /api/v1/dashboard/fleet          every miner, one flat row each
    GET  /api/v1/dashboard/device/{id}    one miner: row, minute history, command log
    GET  /api/v1/dashboard/registry       owners, pending registrations, open violations (operator, regulator)
    POST /api/v1/dashboard/approve        {"serials": [...], "owner_id": N, "dpc_id": N?}: approve, all or nothing
    POST /api/v1/dashboard/emergency      {"reference", "cap_pct" | "cap_mw", "minutes"?}: an emergency order now
    GET  /api/v1/dashboard/ledger.csv     the quota ledger of the last 24 h (key header or session cookie)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.api.deps import operate, read_fleet, services
from controller.dashboard import ops, views
from controller.dashboard import schemas as S
from controller.runtime import Services
from kuat import clock
from quota.errors import QuotaInputError
from registry.auth import guard
from registry.models import Role
from serverkit.auth import Principal
from serverkit.db import RowId

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
STREAM_INTERVAL_S = 2.0
STREAM_MAX_S = 60.0  # a stream ends after this (the browser reconnects): a controller shutdown never waits long

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])
SSE_EVENT = {"type": "object", "required": ["event", "data"], "description": "one event of the stream",
             "properties": {"event": {"enum": ["snapshot", "problem"]},
                            "data": {"type": "string", "description": "JSON: SnapshotOut, or {detail} for problem"}}}


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
        self.stream_max_s = STREAM_MAX_S  # tests that walk every route shorten it


def dashboard(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# EventSource and a plain download link cannot send headers: those two routes also take the session cookie that
# POST /api/v1/session sets from the key (serverkit.session). No route takes a key in the URL.
read_by_link = guard.require(Role.OPERATOR, Role.REGULATOR, Role.GRID, cookie=True)
read_registry = guard.require(Role.OPERATOR, Role.REGULATOR)  # owners and pending machines: not the grid's to see


# ------------------------------------------------------------------ read


@router.get("/snapshot", dependencies=[Depends(read_fleet)], response_model=S.SnapshotOut)
def get_snapshot(svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)) -> dict[str, Any]:
    return views.snapshot(svc, ui.sampler)


@router.get("/stream", dependencies=[Depends(read_by_link)], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                             "description": "`snapshot` events (SnapshotOut as JSON), `problem` on a failed one"}})
async def stream(
    request: Request, svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)
) -> StreamingResponse:
    """`event: snapshot` every ~2 s; the stream ends after a minute and EventSource reconnects by itself."""
    return StreamingResponse(_events(request, svc, ui, ui.stream_max_s), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip


async def _events(request: Request, svc: Services, ui: DashboardState, max_s: float) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    ends = time.monotonic() + max_s
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


@router.get("/fleet", dependencies=[Depends(read_fleet)], response_model=list[S.FleetRow])
def fleet(svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)) -> list[dict[str, Any]]:
    return views.fleet_rows(svc, ui.index)


@router.get("/device/{device_id}", dependencies=[Depends(read_fleet)], response_model=S.DevicePageOut)
def device(
    device_id: str, svc: Services = Depends(services), ui: DashboardState = Depends(dashboard)
) -> dict[str, Any]:
    """404 for a device not live, 409 for an id on several sites (serverkit's NotFound / Conflict)."""
    return views.device_page(svc, ui.index, device_id)


@router.get("/registry", dependencies=[Depends(read_registry)], response_model=S.RegistryPageOut)
def registry_page(svc: Services = Depends(services)) -> dict[str, Any]:
    return views.registry_page(svc)


@router.get("/ledger.csv", dependencies=[Depends(read_by_link)], response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "the quota ledger of the last 24 h"}})
def ledger_csv(svc: Services = Depends(services)) -> Response:
    text = views.ledger_csv(svc, views.site_name(svc), clock.now())
    if text is None:
        raise HTTPException(409, "no ledger: the site is not under quota control (or the quota service is off)")
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="kuat-ledger.csv"'})  # fmt: skip


# ------------------------------------------------------------------ act


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serials: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=5000)
    owner_id: RowId
    dpc_id: RowId | None = Field(None, description="default: the registry's only DPC")


@router.post("/approve", response_model=S.ApprovedOut)
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


@router.post("/emergency", status_code=201, response_model=S.EmergencyEntered)
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
