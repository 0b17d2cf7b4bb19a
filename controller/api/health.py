"""/healthz (is ingest connected and keeping up) and /metrics (Prometheus text). No API key: monitoring only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from controller.api.deps import services
from controller.runtime import Services

router = APIRouter(tags=["health"])


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


@router.get("/healthz")
def healthz(svc: Services = Depends(services)) -> JSONResponse:
    ok, checks = health(svc)
    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(svc: Services = Depends(services)) -> PlainTextResponse:
    return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")
