"""HTTP binding of the DPC contract (registry.contract.v1): submissions and the change feed, for `dpc` keys bound to
the DPC codes in their scope. Every submission needs an Idempotency-Key; a repeat returns the first receipt."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from registry.auth import require_role
from registry.contract.v1 import (
    MAX_FEED_PAGE,
    AllowanceIn,
    AllowanceOut,
    ApplicationBatch,
    ApplicationReceipt,
    DpcBinding,
    FeedPage,
    SightingBatch,
    SightingReceipt,
)
from registry.models import Role
from registry.national.service import NationalRegistry
from serverkit.auth import Principal

router = APIRouter(prefix="/api/v1/dpc", tags=["dpc"])
DpcKey = Annotated[Principal, Depends(require_role(Role.DPC))]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                description="the client's key for this submission: a repeat returns the first answer")]


def national_of(request: Request) -> NationalRegistry:
    svc: NationalRegistry = request.app.state.national_registry
    return svc


National = Annotated[NationalRegistry, Depends(national_of)]


@router.get("/whoami", response_model=DpcBinding)
def whoami(who: DpcKey) -> DpcBinding:
    return DpcBinding(key_name=who.name, dpcs=sorted(who.scope.dpcs or ()))


@router.post("/{dpc}/sightings", response_model=SightingReceipt)
def sightings(dpc: str, batch: SightingBatch, key: IdemKey, svc: National, who: DpcKey) -> SightingReceipt:
    who.require_dpc(dpc)
    return svc.submit_sightings(dpc, batch, key, who.actor)


@router.post("/{dpc}/applications", response_model=ApplicationReceipt)
def applications(dpc: str, batch: ApplicationBatch, key: IdemKey, svc: National, who: DpcKey) -> ApplicationReceipt:
    who.require_dpc(dpc)
    return svc.submit_applications(dpc, batch, key, who.actor)


@router.post("/{dpc}/allowances", response_model=AllowanceOut)
def allowances(dpc: str, data: AllowanceIn, key: IdemKey, svc: National, who: DpcKey) -> AllowanceOut:
    who.require_dpc(dpc)
    return svc.submit_allowance(dpc, data, key, who.actor)


@router.get("/{dpc}/feed", response_model=FeedPage)
def feed(dpc: str, svc: National, who: DpcKey, after: int = Query(0, ge=0),
         limit: int = Query(1000, ge=1, le=MAX_FEED_PAGE)) -> Response:
    """Items after the cursor, oldest first (already a validated FeedPage: serialised once, not re-validated)."""
    who.require_dpc(dpc)
    return Response(svc.feed(dpc, after, limit).model_dump_json(), media_type="application/json")
