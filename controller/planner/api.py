"""/api/v1/planner: tomorrow's value-of-energy curve, the bids (proposed, frozen, exported as CSV or JSON), the
hashprice and USD-rate series in, the auction's published results in (each site's schedule made from them), won vs
bid vs used, and the dashboard's Plan view.

Roles (registry.auth): operators freeze bids and import series; operators and the grid side import results;
operators, regulators and the grid read. Every refusal is a 422 whose `detail` lists `{loc, msg}` (a CSV's bad
lines as `line N`); a refused file writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from controller.api.deps import services
from controller.planner import schemas, views
from controller.planner.service import PlannerService
from controller.runtime import Services
from quota.errors import QuotaInputError
from registry.auth import Principal, require_role
from registry.models import Role
from serverkit.db import RowId

router = APIRouter(prefix="/api/v1/planner", tags=["planner"])

read_plan = require_role(Role.OPERATOR, Role.REGULATOR, Role.GRID)
operate = require_role(Role.OPERATOR)
push_results = require_role(Role.OPERATOR, Role.GRID)

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
T = TypeVar("T")


def planner_of(svc: Services = Depends(services)) -> PlannerService:
    p = getattr(svc, "planner", None)
    if p is None:
        raise HTTPException(503, "the planner is disabled in this controller's settings (planner.enabled, "
                                 "quota.enabled)")
    assert isinstance(p, PlannerService)
    return p


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except QuotaInputError as err:  # PlannerInputError too; serverkit's errors (NotFound) map themselves
        raise HTTPException(422, err.as_detail()) from None


def _call(fn: Callable[[], T]) -> T:
    with _refusals():
        return fn()


async def _csv_body(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in CSV_TYPES:
        raise HTTPException(415, f"send the file as text/csv (got {kind or 'no content type'}); layout in "
                                 "docs/planner.md")
    return await request.body()


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: date | None = Field(None, description="Astana day the bids are for (default tomorrow)")
    budget_kzt: float | None = Field(None, ge=0, description="the prepayment (default planner.prepayment_kzt)")


@router.get("/curve", response_model=schemas.CurveOut, dependencies=[Depends(read_plan)])
def get_curve(site: str, day: date | None = None, p: PlannerService = Depends(planner_of)) -> Any:
    """Per Astana hour of `day` (default tomorrow): the fleet's blocks of energy and what each MWh is worth."""
    return _call(lambda: views.curve_doc(p, site, day or p.tomorrow()))


@router.get("/bids", response_model=schemas.BidsOut, dependencies=[Depends(read_plan)])
def get_bids(day: date | None = None, budget_kzt: float | None = Query(None, ge=0),
             p: PlannerService = Depends(planner_of)) -> Any:
    """The proposed bids for every zone (not stored): steps, the limits of each hour, the summary and what each
    constraint cost."""
    return _call(lambda: views.plan_doc(p, day or p.tomorrow(), budget_kzt))


@router.post("/bids", status_code=201, response_model=schemas.BidSetOut)
def freeze_bids(body: FreezeIn, p: PlannerService = Depends(planner_of),
                who: Principal = Depends(operate)) -> Any:
    """Freeze the bids for submission; results imported for that day are split by the latest frozen set."""
    return _call(lambda: views.bid_set_doc(p.freeze(body.day or p.tomorrow(), who.actor, body.budget_kzt)))


@router.get("/bids/{bid_set_id}", response_model=schemas.BidSetOut, dependencies=[Depends(read_plan)])
def get_bid_set(bid_set_id: RowId, p: PlannerService = Depends(planner_of)) -> Any:
    return _call(lambda: views.bid_set_doc(p.bid_set(bid_set_id)))


@router.get("/bids/{bid_set_id}/export", dependencies=[Depends(read_plan)],
            responses={200: {"content": {"text/csv": {}, "application/json": {}}}})
def export_bids(bid_set_id: RowId, format: str = Query("csv", pattern="^(csv|json)$"),
                p: PlannerService = Depends(planner_of)) -> Response:
    """The bid set as a file for the market operator: CSV (the submission) or JSON (with values and sources)."""
    text = _call(lambda: p.export(bid_set_id, format))
    row = p.bid_set(bid_set_id)
    media = "text/csv" if format == "csv" else "application/json"
    name = f"kuat-bids-{row.day}-{bid_set_id}.{format}"
    return Response(text, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/hashprice", status_code=201, response_model=schemas.SeriesImportOut)
async def import_hashprice(request: Request, filename: str | None = None, p: PlannerService = Depends(planner_of),
                           who: Principal = Depends(operate)) -> Any:
    """CSV `day,usd_per_ph_day,source` or `day,difficulty,subsidy_btc,fees_btc_per_block,btc_usd,source`."""
    body = await _csv_body(request)
    return _call(lambda: p.import_series("hashprice", body, who.actor, "csv", filename))


@router.post("/usd-rates", status_code=201, response_model=schemas.SeriesImportOut)
async def import_usd(request: Request, filename: str | None = None, p: PlannerService = Depends(planner_of),
                     who: Principal = Depends(operate)) -> Any:
    """CSV `day,kzt_per_usd,source`: the National Bank of Kazakhstan's rate, tenge per dollar."""
    body = await _csv_body(request)
    return _call(lambda: p.import_series("usd_kzt", body, who.actor, "csv", filename))


@router.get("/series/{kind}", response_model=list[schemas.SeriesOut], dependencies=[Depends(read_plan)])
def get_series(kind: str, since: date, p: PlannerService = Depends(planner_of)) -> Any:
    import json

    from controller.planner.inputs import KINDS, series
    from controller.quota.models import utc

    if kind not in KINDS:
        raise HTTPException(404, f"no series {kind!r} (there are {', '.join(KINDS)})")
    return [{"day": r.day, "value": r.value, "source": r.source, "actor": r.actor,
             "inputs": None if r.inputs_json is None else json.loads(r.inputs_json), "received_at": utc(r.received_at)}
            for r in series(p.engine, kind, since)]  # fmt: skip


@router.post("/results", status_code=201, response_model=schemas.ResultsImportOut)
async def import_results(request: Request, filename: str | None = None, p: PlannerService = Depends(planner_of),
                         who: Principal = Depends(push_results)) -> Any:
    """One day's published results per zone and hour (CSV, docs/planner.md); each site of the zones in the file
    gets that day's schedule of what it won, through the quota service (source `korem`, a reference naming the
    import and the bid set)."""
    body = await _csv_body(request)
    return _call(lambda: p.import_results(body, who.actor, "csv", filename))


@router.get("/results", response_model=list[schemas.ResultOut], dependencies=[Depends(read_plan)])
def get_results(day: date, p: PlannerService = Depends(planner_of)) -> Any:
    return [r.model_dump(exclude={"id", "replaced_by"}) for r in p.results(day)]


@router.get("/ledger", response_model=schemas.LedgerOut, dependencies=[Depends(read_plan)])
def get_ledger(site: str, day: date, p: PlannerService = Depends(planner_of)) -> Any:
    """Per Astana hour: bid (latest frozen set), won (latest results import) and used (the quota ledger), MWh."""
    return _call(lambda: views.ledger_doc(p, site, day))


@router.get("/view", response_model=schemas.PlanViewOut, dependencies=[Depends(read_plan)])
def get_view(site: str, day: date | None = None, p: PlannerService = Depends(planner_of)) -> Any:
    """Everything the dashboard's Plan tab shows for one site; missing inputs are listed in `errors`."""
    return _call(lambda: views.view_doc(p, site, day))
