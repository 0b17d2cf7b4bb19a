"""The money API, under /api/v1/money (OpenAPI at /docs). Errors of the money tree map to HTTP here, once:
ImportRefused -> 422 naming the file, line and reason (nothing was stored); InvalidInput -> 422 naming the field;
MissingInput -> 409 naming the input. Who sees which licensee: controller/money/access.py.

    POST /imports/{kind}?file_name=       the file as the request body (operator); idempotent by sha256
    GET  /imports                         provenance of every import (operator, regulator)
    GET  /status                          last month's values table: ready / pending / warning / late
    GET  /values/{YYYY-MM}[.csv|.xlsx]    the monthly table of values per asset and day
    GET  /licensees                       the licensees this key may see
    GET  /reports/{YYYY-MM}/{bin}[.csv|.xlsx]    the licensee's monthly report
    GET  /reports/{YYYY-MM}/{bin}/evidence.xlsx  the sale-share evidence pack, one file
    POST /reports/{YYYY-MM}/{bin}/publish        publish into the hash chain (operator)
    GET  /published, /published/{id}, /published/{id}/recompute
    GET  /meter/{site}?start=&end=        commercial meter vs Kuat's measured sum per hour, by source
    GET  /chain/verify                    the money chain and everything it covers
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from controller.money import render
from controller.money.access import READERS, may_see, visible
from controller.money.service import MoneyService
from controller.runtime import Services
from money import timebase
from money.errors import ImportRefused, InvalidInput, MissingInput
from money.importers import KINDS
from registry.auth import Principal, require_role
from registry.models import Role
from serverkit.db import RowId

router = APIRouter(prefix="/api/v1/money", tags=["money"])
reader = require_role(*READERS)
staff = require_role(Role.OPERATOR, Role.REGULATOR)
operator = require_role(Role.OPERATOR)
MAX_UPLOAD = 64 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Responses = dict[int | str, dict[str, Any]]
CSV_FILE: Responses = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}}
XLSX_FILE: Responses = {200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                              "description": "XLSX"}}


class ImportOut(BaseModel):
    id: int
    kind: str
    file_name: str
    sha256: str
    actor: str
    imported_at: str
    records: int
    already_stored: int
    repeated: bool
    chain_seq: int | None


class StatusOut(BaseModel):
    month: str
    state: str
    due: str
    cells: int
    missing: int
    first_missing: list[str]
    differences_from_src: int


class LicenseeOut(BaseModel):
    bin: str
    name: str


class EnergyRow(BaseModel):
    source: str
    kwh: str


class ReportOut(BaseModel):
    version: int
    licensee: str
    name: str
    month: str
    energy: list[EnergyRow]
    energy_total_kwh: str
    fee: dict[str, Any]
    income: dict[str, Any]
    sale_share: list[dict[str, Any]]
    expected_vs_distributed: list[dict[str, Any]]
    conventions: dict[str, Any]
    flags: list[str]


class ValuesOut(BaseModel):
    month: str
    complete: bool
    readiness: str
    due: str
    cells: list[dict[str, Any]]


class PublishedOut(BaseModel):
    id: int
    kind: str
    licensee: str | None
    month: str
    sha256: str
    published_at: str
    actor: str
    chain_seq: int


class PublishOut(BaseModel):
    id: int
    sha256: str
    chain_seq: int
    published_at: str


class RecomputeOut(BaseModel):
    id: int
    sha256: str
    recomputed_sha256: str
    same: bool


class MeterSource(BaseModel):
    source: str
    totals: dict[str, Any]
    suggested_margin: str
    rows: list[dict[str, Any]]


class MeterOut(BaseModel):
    site: str
    start: str
    end: str
    sources: list[MeterSource]
    margin_in_use: float


class ChainOut(BaseModel):
    ok: bool
    links: int
    problems: list[str]


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_exception_handler(ImportRefused, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(MissingInput, _missing)  # type: ignore[arg-type]


def _refused(request: Request, exc: ImportRefused) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", f"line {exc.line}"], "msg": exc.reason, "type": "import_refused",
                                     "file": exc.file, "line": exc.line}]}, status_code=422)


def _invalid(request: Request, exc: InvalidInput) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["path", exc.field], "msg": exc.reason, "type": "invalid"}]},
                        status_code=422)


def _missing(request: Request, exc: MissingInput) -> JSONResponse:
    return JSONResponse({"detail": f"missing input: {exc.what}"}, status_code=409)


def money(request: Request) -> MoneyService:
    svc: Services = request.app.state.services
    if svc.money is None:
        raise HTTPException(503, "the money side is not enabled in this controller (money.enabled)")
    m: MoneyService = svc.money
    return m


def _month(text: str) -> tuple[int, int]:
    try:
        return timebase.parse_month(text)
    except ValueError:
        raise InvalidInput("month", f"{text!r} is not YYYY-MM") from None


def _licensee(m: MoneyService, who: Principal, bin_: str) -> str:
    if not may_see(who, bin_, m.settings):
        raise HTTPException(403, f"this key may not see licensee {bin_}")
    return bin_


def _file(name: str, content: bytes | str, media: str) -> Response:
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/imports/{kind}", response_model=ImportOut)
async def import_file(kind: str, request: Request, file_name: str = Query(..., min_length=1, max_length=300),
                      m: MoneyService = Depends(money), who: Principal = Depends(operator)) -> dict[str, Any]:
    if kind not in KINDS:
        raise InvalidInput("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    data = await request.body()
    if len(data) > MAX_UPLOAD:
        raise ImportRefused(file_name, 0, f"larger than {MAX_UPLOAD // 2**20} MiB")
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(m.import_file, kind, file_name, data, who.actor)


@router.get("/imports", response_model=list[ImportOut])
def imports(m: MoneyService = Depends(money), who: Principal = Depends(staff)) -> list[dict[str, Any]]:
    return [i.as_dict() for i in m.store.imports()]


@router.get("/status", response_model=StatusOut)
def status(month: str | None = Query(None, description="YYYY-MM; default: the previous month, checked and logged"),
           m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> dict[str, Any]:
    if month is None:
        return m.check_readiness()
    return m.readiness(*_month(month))


def _values(m: MoneyService, month: str) -> dict[str, Any]:
    year, mon = _month(month)
    table = m.values_table(year, mon)
    today = timebase.astana_date(m.now())
    return {"month": month, "complete": table.complete, "readiness": table.readiness(today),
            "due": table.due().isoformat(), "cells": [c.as_dict() for c in table.cells]}


@router.get("/values/{month}.csv", response_class=Response, responses=CSV_FILE)
def values_csv(month: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> Response:
    return _file(f"kuat-values-{month}.csv", render.to_csv(render.values_sections(_values(m, month))), "text/csv")


@router.get("/values/{month}.xlsx", response_class=Response, responses=XLSX_FILE)
def values_xlsx(month: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> Response:
    return _file(f"kuat-values-{month}.xlsx", render.to_xlsx(render.values_sections(_values(m, month))), XLSX)


@router.get("/values/{month}", response_model=ValuesOut)
def values(month: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> dict[str, Any]:
    return _values(m, month)


@router.get("/licensees", response_model=list[LicenseeOut])
def licensees(m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> list[dict[str, str]]:
    names = m.names()
    known = sorted(set(m.store.licensees()) | set(names))
    return [{"bin": b, "name": names.get(b, "")} for b in visible(who, known, m.settings)]


def _report(m: MoneyService, who: Principal, month: str, bin_: str) -> dict[str, Any]:
    year, mon = _month(month)
    return m.report(_licensee(m, who, bin_), year, mon).as_dict()


@router.get("/reports/{month}/{bin_}.csv", response_class=Response, responses=CSV_FILE)
def report_csv(month: str, bin_: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> Response:
    sections = render.report_sections(_report(m, who, month, bin_))
    return _file(f"kuat-report-{bin_}-{month}.csv", render.to_csv(sections), "text/csv")


@router.get("/reports/{month}/{bin_}.xlsx", response_class=Response, responses=XLSX_FILE)
def report_xlsx(month: str, bin_: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> Response:
    sections = render.report_sections(_report(m, who, month, bin_))
    return _file(f"kuat-report-{bin_}-{month}.xlsx", render.to_xlsx(sections), XLSX)


@router.get("/reports/{month}/{bin_}/evidence.xlsx", response_class=Response, responses=XLSX_FILE)
def evidence(month: str, bin_: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> Response:
    year, mon = _month(month)
    pack = m.evidence(_licensee(m, who, bin_), year, mon)
    return _file(f"kuat-sale-share-evidence-{bin_}-{month}.xlsx", render.to_xlsx(render.evidence_sections(pack)),
                 XLSX)


@router.get("/reports/{month}/{bin_}", response_model=ReportOut)
def report(month: str, bin_: str, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> dict[str, Any]:
    return _report(m, who, month, bin_)


@router.post("/reports/{month}/{bin_}/publish", response_model=PublishOut, status_code=201)
def publish(month: str, bin_: str, m: MoneyService = Depends(money), who: Principal = Depends(operator)
            ) -> dict[str, Any]:
    year, mon = _month(month)
    return m.publish(bin_, year, mon, who.actor)


def _published_out(rep: Any) -> dict[str, Any]:
    return {"id": rep.id, "kind": rep.kind, "licensee": rep.licensee, "month": rep.month, "sha256": rep.sha256,
            "published_at": rep.published_at.isoformat(), "actor": rep.actor, "chain_seq": rep.chain_seq}


@router.get("/published", response_model=list[PublishedOut])
def published(m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> list[dict[str, Any]]:
    return [_published_out(r) for r in m.published_list() if r.licensee is None or may_see(who, r.licensee,
                                                                                         m.settings)]


@router.get("/published/{report_id}", response_model=ReportOut)
def published_one(report_id: RowId, m: MoneyService = Depends(money), who: Principal = Depends(reader)
                  ) -> dict[str, Any]:
    rep = m.published(report_id)
    if rep.licensee is not None:
        _licensee(m, who, rep.licensee)
    body: dict[str, Any] = json.loads(rep.body)
    return body


@router.get("/published/{report_id}/recompute", response_model=RecomputeOut)
def recompute(report_id: RowId, m: MoneyService = Depends(money), who: Principal = Depends(reader)) -> dict[str, Any]:
    rep = m.published(report_id)
    if rep.licensee is not None:
        _licensee(m, who, rep.licensee)
    return m.recompute(report_id)


@router.get("/meter/{site}", response_model=MeterOut)
def meter(site: str, start: date | None = None, end: date | None = None, m: MoneyService = Depends(money),
          who: Principal = Depends(staff)) -> dict[str, Any]:
    today = timebase.astana_date(m.now())
    end = end or today
    start = start or end - timedelta(days=1)
    if start > end or (end - start).days > 62:
        raise InvalidInput("start", "start must be at most 62 days before end")
    recs = m.meter(site, start, end)
    pct = m.settings.money.meter_margin_percentile
    return {"site": site, "start": start.isoformat(), "end": end.isoformat(),
            "margin_in_use": m.settings.quota.margin_for(site),
            "sources": [{"source": s, "totals": r.totals(),
                         "suggested_margin": format(r.suggested_margin(Decimal(str(pct))), "f"),
                         "rows": [row.as_dict() for row in r.rows]} for s, r in recs.items()]}


@router.get("/chain/verify", response_model=ChainOut)
def verify(m: MoneyService = Depends(money), who: Principal = Depends(staff)) -> dict[str, Any]:
    return m.verify_chain()
