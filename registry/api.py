"""HTTP API of the registry: everything under /api/v1/registry/... and /api/v1/compliance/...

Mount with `install(app, service)`: it keeps the service on ``app.state.registry_service``, adds the router and
turns `InvalidInput` into a 422 naming the field (same shape as FastAPI's own validation errors) and `NotFound`
into a 404. Roles: operator reads and writes; regulator reads the registry and compliance; agent (and operator)
submit sightings.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from registry import auth, export
from registry.auth import READ, SUBMIT, WRITE, require_role
from registry.importer import import_csv
from registry.models import HscStatus, ViolationKind, ViolationStatus, Zone
from registry.schemas import (
    ApproveIn,
    AuditEventOut,
    AuditVerifyOut,
    BulkApproveIn,
    ComplianceResult,
    DpcIn,
    DpcOut,
    DpcPatch,
    HscDetail,
    HscIn,
    HscOut,
    HscPage,
    HscPatch,
    ImportReport,
    LicenseeIn,
    LicenseeOut,
    LicenseePatch,
    NoncompliantOut,
    PoolIn,
    PoolOut,
    PoolPatch,
    SightingResult,
    SightingsIn,
    ViolationOut,
    streamed,
)
from registry.service import HscFilter, RegistryService
from serverkit.auth import Principal
from serverkit.db import RowId
from serverkit.errors import install_error_handlers

router = APIRouter(prefix="/api/v1")
Reader = Annotated[Principal, Depends(require_role(*READ))]
Writer = Annotated[Principal, Depends(require_role(*WRITE))]
Submitter = Annotated[Principal, Depends(require_role(*SUBMIT))]


def service_of(request: Request) -> RegistryService:
    svc: RegistryService = request.app.state.registry_service
    return svc


Service = Annotated[RegistryService, Depends(service_of)]


def install(app: FastAPI, service: RegistryService) -> None:
    """Mount the registry on `app` (the controller's app, or the standalone one): its routes, its key realm and the
    error tree's mapping to HTTP (serverkit.errors)."""
    app.state.registry_service = service
    app.include_router(router)
    auth.install(app, service.reading)
    install_error_handlers(app)


# ---------------------------------------------------------------- licensees, DPCs, pools


def _crud_routes(entity: str, path: str, in_model: type[BaseModel], patch_model: type[BaseModel],
                 out_model: type[BaseModel]) -> None:
    """List, create, read, patch and delete routes for one reference entity (licensee, DPC or pool)."""

    def list_rows(svc: Service, _: Reader, limit: int = Query(1000, ge=1, le=10_000),
                  offset: int = Query(0, ge=0)) -> Any:
        return svc.list_rows(entity, limit, offset)

    def create(data: Any, svc: Service, who: Writer) -> Any:
        return svc.create(entity, data, who.actor)

    def read(row_id: RowId, svc: Service, _: Reader) -> Any:
        return svc.get(entity, row_id)

    def update(row_id: RowId, patch: Any, svc: Service, who: Writer) -> Any:
        return svc.update(entity, row_id, patch, who.actor)

    def delete(row_id: RowId, svc: Service, who: Writer) -> Response:
        svc.delete(entity, row_id, who.actor)
        return Response(status_code=204)

    create.__annotations__["data"] = in_model  # the body models are only known here, at registration
    update.__annotations__["patch"] = patch_model
    tags: list[str | Enum] = ["registry"]
    one = f"/registry/{path}/{{row_id}}"
    router.add_api_route(f"/registry/{path}", list_rows, methods=["GET"], response_model=list[out_model],  # type: ignore[valid-type]
                         tags=tags, name=f"list_{path}")
    router.add_api_route(f"/registry/{path}", create, methods=["POST"], response_model=out_model, status_code=201,
                         tags=tags, name=f"create_{entity}")
    router.add_api_route(one, read, methods=["GET"], response_model=out_model, tags=tags, name=f"get_{entity}")
    router.add_api_route(one, update, methods=["PATCH"], response_model=out_model, tags=tags,
                         name=f"update_{entity}")
    router.add_api_route(one, delete, methods=["DELETE"], status_code=204, tags=tags, name=f"delete_{entity}",
                         description=f"Delete a {entity} nothing references (a 422 says what still does).")


_crud_routes("licensee", "licensees", LicenseeIn, LicenseePatch, LicenseeOut)
_crud_routes("dpc", "dpcs", DpcIn, DpcPatch, DpcOut)
_crud_routes("pool", "pools", PoolIn, PoolPatch, PoolOut)


# ---------------------------------------------------------------- HSCs


def hsc_filter(
    owner_id: RowId | None = None,
    owner_bin: str | None = Query(None, description="owner licensee's BIN/IIN"),
    dpc_id: RowId | None = None,
    zone: Zone | None = None,
    status: HscStatus | None = None,
    model: str | None = None,
    changed_since: datetime | None = Query(None, description="ISO 8601; rows changed at or after this time"),
) -> HscFilter:
    return HscFilter(owner_id=owner_id, owner_bin=owner_bin, dpc_id=dpc_id, zone=zone.value if zone else None,
                     status=status.value if status else None, model=model, changed_since=changed_since)


Filter = Annotated[HscFilter, Depends(hsc_filter)]


@router.get("/registry/hscs", response_model=HscPage, tags=["registry"])
def list_hscs(svc: Service, _: Reader, flt: Filter, cursor: str | None = None,
              limit: int = Query(100, ge=1, le=1000)) -> Any:
    """Machines ordered by (changed_at, id), one page at a time: follow `next_cursor` until it is null."""
    rows, next_cursor = svc.list_hscs(flt, cursor, limit)
    return HscPage(items=[HscOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/registry/hscs", response_model=HscOut, status_code=201, tags=["registry"])
def create_hsc(data: HscIn, svc: Service, who: Writer) -> Any:
    return svc.create_hsc(data, who.actor)


@router.get("/registry/hscs/{ref}", response_model=HscDetail, tags=["registry"])
def get_hsc(ref: str, svc: Service, _: Reader) -> Any:
    """One machine (by id or serial) with its full audit history."""
    row, events = svc.hsc_history(ref)
    return HscDetail(hsc=HscOut.model_validate(row), history=[_event_out(e) for e in events])


def _event_out(event: Any) -> AuditEventOut:
    return AuditEventOut(seq=event.seq, hash=event.hash, prev_hash=event.prev_hash, actor=event.actor, ts=event.ts,
                         entity=event.entity, entity_id=event.entity_id, action=event.action,
                         before=json.loads(event.before) if event.before else None,
                         after=json.loads(event.after) if event.after else None)


@router.patch("/registry/hscs/{ref}", response_model=HscOut, tags=["registry"])
def update_hsc(ref: str, patch: HscPatch, svc: Service, who: Writer) -> Any:
    return svc.update_hsc(ref, patch, who.actor)


@router.delete("/registry/hscs/{ref}", response_model=HscOut, tags=["registry"])
def decommission_hsc(ref: str, svc: Service, who: Writer) -> Any:
    """Machines are never deleted from the registry: DELETE decommissions (excludes) them."""
    return svc.decommission_hsc(ref, who.actor)


@router.post("/registry/hscs/{ref}/approve", response_model=HscOut, tags=["registry"])
def approve(ref: str, data: ApproveIn, svc: Service, who: Writer) -> Any:
    return svc.approve(ref, data, who.actor)


@router.post("/registry/approve", response_model=list[HscOut], tags=["registry"])
def bulk_approve(data: BulkApproveIn, svc: Service, who: Writer) -> Any:
    """Approve many pending machines at once: all or nothing."""
    return svc.bulk_approve(data.items, who.actor)


@router.post("/registry/import", response_model=ImportReport, tags=["registry"])
def bulk_import(svc: Service, who: Writer, body: Annotated[str, Body(media_type="text/csv")],
                dry_run: bool = Query(True, description="report only (default); false applies the file")
                ) -> JSONResponse:
    """CSV import (see docs/registry.md): a dry run reports per line; a file with any error is not applied (422)."""
    report = import_csv(svc, body, who.actor, dry_run=dry_run)
    failed = any(r.action == "error" for r in report.rows)
    return JSONResponse(report.model_dump(mode="json"), status_code=422 if failed and not dry_run else 200)


@router.get("/registry/export.csv", tags=["registry"], response_class=StreamingResponse,
            responses=streamed("text/csv", "the machines of the filter, one CSV row each (header first)"))
def export_csv(svc: Service, _: Reader, flt: Filter) -> StreamingResponse:
    return StreamingResponse(export.iter_csv(svc, flt), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="hsc-registry.csv"'})


@router.get("/registry/export.jsonl", tags=["registry"], response_class=StreamingResponse,
            responses=streamed("application/x-ndjson", "JSON Lines: one machine a line, keys as in the CSV header"))
def export_jsonl(svc: Service, _: Reader, flt: Filter) -> StreamingResponse:
    return StreamingResponse(export.iter_jsonl(svc, flt), media_type="application/x-ndjson")


@router.get("/registry/audit/verify", tags=["registry"], response_model=AuditVerifyOut)
def verify_audit(svc: Service, _: Reader) -> dict[str, Any]:
    """Recompute the hash chain and compare every audited row with its last recorded state."""
    return svc.verify_audit().as_dict()


@router.post("/registry/sightings", response_model=SightingResult, tags=["registry"])
def sightings(data: SightingsIn, svc: Service, who: Submitter,
              idempotency_key: Annotated[str | None, Header(max_length=100)] = None) -> Any:
    """Telemetry sightings from a controller (or gateway). With Idempotency-Key, a repeat returns the first
    result and changes nothing."""
    return svc.record_sightings(data.site, data.gateway, data.samples, data.at, idempotency_key=idempotency_key,
                                actor=who.actor)


# ---------------------------------------------------------------- compliance


@router.get("/compliance/violations", response_model=list[ViolationOut], tags=["compliance"])
def violations(svc: Service, _: Reader, status: ViolationStatus | None = ViolationStatus.OPEN,
               kind: ViolationKind | None = None, limit: int = Query(1000, ge=1, le=10_000),
               offset: int = Query(0, ge=0)) -> Any:
    return svc.violations(status.value if status else None, kind.value if kind else None, limit, offset)


@router.post("/compliance/check", response_model=ComplianceResult, tags=["compliance"])
def check(svc: Service, who: Writer) -> Any:
    return svc.check_compliance(actor=who.actor)


@router.get("/compliance/noncompliant", tags=["compliance"], response_model=NoncompliantOut)
def noncompliant(svc: Service, _: Reader) -> dict[str, list[str]]:
    """Machines that get no power by policy (the quota engine's input)."""
    return {"device_ids": sorted(svc.noncompliant_device_ids()), "serials": sorted(svc.noncompliant_serials())}
