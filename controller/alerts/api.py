"""/api/v1/alerts: rules (CRUD), channels (webhook secrets write-only), alerts open and past with their history,
acknowledgement (records who), test sends, deliveries, and the live stream the dashboard's Alerts tab reads.

Roles (registry.auth): operators define rules and channels, acknowledge and test; operators, regulators and the
grid side read. A refused rule or channel is one 422 whose `detail` names every bad field.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from alerts.rules import SCOPE_FOR, SPECS, Issue
from controller.alerts import schemas
from controller.alerts.checks import InvalidFields
from controller.alerts.service import AlertService
from controller.api.deps import operate, read_fleet, services
from controller.dashboard.api import read_by_link
from controller.runtime import Services
from serverkit.auth import Principal
from serverkit.db import ROW_ID_MAX, RowId

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
SSE_EVENT = {"type": "object", "required": ["event", "data"], "description": "one event of the stream",
             "properties": {"event": {"enum": ["alert", "alerts"]},
                            "data": {"type": "string", "description": "JSON: EventOut, or a list of AlertOut"}}}

STREAM_MAX_S = 60.0  # EventSource reconnects (with Last-Event-ID) after this
STREAM_POLL_S = 1.0


def alerts_of(svc: Services = Depends(services)) -> AlertService:
    a = getattr(svc, "alerts", None)
    if a is None:
        raise HTTPException(503, "alerts are disabled in this controller's settings (alerts.enabled)")
    assert isinstance(a, AlertService)
    return a


async def json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise InvalidFields([Issue("body", "not valid JSON")]) from None


def _doc(model: type[Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# ------------------------------------------------------------------ rules


@router.get("/conditions", response_model=list[schemas.ConditionOut], dependencies=[Depends(read_fleet)])
def conditions() -> Any:
    """Every condition with what its threshold means, its default and bounds, and the scope it takes."""
    return [{"condition": c.value, "level": s.level.value, "threshold_means": s.threshold, "default": s.default,
             "low": s.low, "high": s.high, "scope": sorted(SCOPE_FOR[s.level])} for c, s in SPECS.items()]  # fmt: skip


@router.get("/rules", response_model=list[schemas.RuleOut], dependencies=[Depends(read_fleet)])
def list_rules(a: AlertService = Depends(alerts_of)) -> Any:
    return a.rules()


@router.post("/rules", status_code=201, response_model=schemas.RuleOut, openapi_extra=_doc(schemas.RuleIn))
def create_rule(doc: Any = Depends(json_body), a: AlertService = Depends(alerts_of),
                who: Principal = Depends(operate)) -> Any:  # fmt: skip
    return a.create_rule(doc, who.actor)


@router.get("/rules/{rule_id}", response_model=schemas.RuleOut, dependencies=[Depends(read_fleet)])
def get_rule(rule_id: RowId, a: AlertService = Depends(alerts_of)) -> Any:
    return a.rule(rule_id)


@router.put("/rules/{rule_id}", response_model=schemas.RuleOut, openapi_extra=_doc(schemas.RuleIn))
def replace_rule(rule_id: RowId, doc: Any = Depends(json_body), a: AlertService = Depends(alerts_of),
                 who: Principal = Depends(operate)) -> Any:  # fmt: skip
    return a.replace_rule(rule_id, doc, who.actor)


@router.delete("/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: RowId, a: AlertService = Depends(alerts_of), who: Principal = Depends(operate)) -> Response:
    a.delete_rule(rule_id, who.actor)
    return Response(status_code=204)


# ------------------------------------------------------------------ channels


@router.get("/channels", response_model=list[schemas.ChannelOut], dependencies=[Depends(read_fleet)])
def list_channels(a: AlertService = Depends(alerts_of)) -> Any:
    """Every channel, the built-in dashboard first. Webhook secrets are never returned (`has_secret` says one is
    set)."""
    return a.channels()


@router.put("/channels/{name}", response_model=schemas.ChannelOut, openapi_extra=_doc(schemas.ChannelIn))
def put_channel(name: str, doc: Any = Depends(json_body), a: AlertService = Depends(alerts_of),
                who: Principal = Depends(operate)) -> Any:  # fmt: skip
    return a.put_channel(name, doc, who.actor)


@router.delete("/channels/{name}", status_code=204)
def delete_channel(name: str, a: AlertService = Depends(alerts_of), who: Principal = Depends(operate)) -> Response:
    a.delete_channel(name, who.actor)
    return Response(status_code=204)


@router.post("/channels/{name}/test", response_model=schemas.DeliveryOut)
def test_channel(name: str, a: AlertService = Depends(alerts_of), who: Principal = Depends(operate)) -> Any:
    """Send a test message now; the answer says whether the channel took it (and the error if not)."""
    return a.test_send(name, who.actor)


@router.get("/deliveries", response_model=list[schemas.DeliveryOut], dependencies=[Depends(read_fleet)])
def list_deliveries(status: str | None = Query(None, pattern="^(pending|sent|failed)$"),
                    limit: int = Query(200, ge=1, le=5000), a: AlertService = Depends(alerts_of)) -> Any:  # fmt: skip
    return a.deliveries(status, limit)


# ------------------------------------------------------------------ alerts


@router.get("", response_model=list[schemas.AlertOut], dependencies=[Depends(read_fleet)])
def list_alerts(status: str = Query("open", pattern="^(open|pending|firing|resolved|cleared|closed|all)$"),
                site: str | None = None, limit: int = Query(500, ge=1, le=5000),
                offset: int = Query(0, ge=0, le=ROW_ID_MAX),
                a: AlertService = Depends(alerts_of)) -> Any:  # fmt: skip
    """Alerts, newest first: `open` (pending and firing, the default), one status, or `all`."""
    return a.alerts(None if status == "all" else status, site, limit, offset)


@router.get("/history", response_model=list[schemas.EventOut], dependencies=[Depends(read_fleet)])
def history(after_id: int = Query(0, ge=0, le=ROW_ID_MAX), since: datetime | None = None,
            limit: int = Query(500, ge=1, le=5000),
            a: AlertService = Depends(alerts_of)) -> Any:  # fmt: skip
    """Every alert's transitions, oldest first after `after_id` (or from `since`)."""
    return a.events(after_id, limit, since)


@router.get("/stream", dependencies=[Depends(read_by_link)], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                             "description": "`alert` per new history event (SSE id = event id), `alerts` with the "
                                            "open alerts when they change"}})
async def stream(request: Request, a: AlertService = Depends(alerts_of)) -> StreamingResponse:
    """Server-Sent Events: `alert` for each new event of the history (its id is the SSE id, so a reconnecting
    EventSource resumes after the last one it saw), `alerts` with the open alerts whenever they change."""
    last = request.headers.get("last-event-id")
    start = int(last) if last and last.isdigit() else None
    return StreamingResponse(_events(request, a, start), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip


async def _events(request: Request, a: AlertService, after: int | None) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    if after is None:
        after = await run_in_threadpool(a.last_event_id)
        yield f"id: {after}\nevent: alerts\ndata: {json.dumps(await run_in_threadpool(a.alerts), default=str)}\n\n"
    ends = time.monotonic() + getattr(request.app.state, "alerts_stream_max_s", STREAM_MAX_S)  # tests shorten it
    stopping = getattr(request.app.state, "stopping", None)
    while time.monotonic() < ends and not await request.is_disconnected():
        if stopping is not None and stopping():
            return
        new = await run_in_threadpool(a.events, after)
        for e in new:
            after = int(e["id"])
            yield f"id: {after}\nevent: alert\ndata: {json.dumps(e, default=str)}\n\n"
        if new:
            yield f"event: alerts\ndata: {json.dumps(await run_in_threadpool(a.alerts), default=str)}\n\n"
        await asyncio.sleep(STREAM_POLL_S)


@router.get("/{alert_id}", response_model=schemas.AlertDetailOut, dependencies=[Depends(read_fleet)])
def get_alert(alert_id: RowId, a: AlertService = Depends(alerts_of)) -> Any:
    """One alert with its history of events and its deliveries."""
    return a.alert(alert_id)


@router.post("/{alert_id}/acknowledge", response_model=schemas.AlertDetailOut)
def acknowledge(alert_id: RowId, a: AlertService = Depends(alerts_of), who: Principal = Depends(operate)) -> Any:
    """Take the alert: who and when are recorded, and its repeats stop. 409 for an alert that has ended."""
    return a.acknowledge(alert_id, who.actor)
