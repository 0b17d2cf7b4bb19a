"""/healthz (is ingest connected and keeping up) and /metrics (Prometheus text). No API key: monitoring only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from controller.api.deps import services
from controller.runtime import Services

router = APIRouter(tags=["health"])
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


class HealthOut(BaseModel):
    """`ok` (200) or `degraded` (503): the broker is disconnected, or the ingest queue is nearly full."""

    status: str
    broker_connected: bool | None
    queue_depth: int
    queue_ok: bool
    db_errors: int
    gateways_online: int
    devices_live: int


def health(svc: Services) -> tuple[bool, dict[str, Any]]:
    m = svc.metrics
    broker = svc.ingest.connected.is_set() if svc.ingest is not None else None
    depth = m.queue_depth()
    checks: dict[str, Any] = {
        "broker_connected": broker,
        "queue_depth": depth,
        "queue_ok": depth < svc.settings.ingest_queue_max * 0.9,
        "db_errors": m.db_errors,
        "gateways_online": sum(g.online for g in svc.live.gateway_list()),
        "devices_live": len(svc.live.devices),
    }
    ok = broker is not False and checks["queue_ok"]
    return ok, checks


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut, "description": "degraded"}})
def healthz(response: Response, svc: Services = Depends(services)) -> dict[str, Any]:
    ok, checks = health(svc)
    response.status_code = 200 if ok else 503
    return {"status": "ok" if ok else "degraded", **checks}


@router.get("/metrics", response_class=PlainTextResponse, response_model=None,
            responses={200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"}})
def metrics(svc: Services = Depends(services)) -> PlainTextResponse:
    return PlainTextResponse(svc.metrics.render(), media_type=PROMETHEUS_TEXT)
