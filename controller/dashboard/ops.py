"""The operators' daily routes behind the dashboard's Racks and Schedule tabs (typed: each has a response_model).

    GET  /api/v1/dashboard/racks                   halls, racks, slots, rack power vs feeds (racks.LayoutOut)
    PUT  /api/v1/dashboard/racks/{rack}/feeds      {"feeds": [{"name", "capacity_w"}]}: a rack's PDU feeds
    POST /api/v1/dashboard/schedule/preview?day=   the quota API's CSV (hour,kwh) against the fleet's capacity
    GET  /api/v1/dashboard/machine-rules           every machine with its quota rule (protected, priority)

The schedule itself is pushed with the quota API (POST /api/v1/quota/{site}/schedules, the same CSV) and machine
rules with PUT /api/v1/quota/{site}/machines/{id}: the dashboard shows those routes' 422s field by field.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from controller.api.deps import operate, read_fleet, services
from controller.dashboard import racks, schedule_preview, views
from controller.dashboard.placement import Feed, PlacementStore
from controller.runtime import Services
from kuat import clock
from kuat.wire import v1
from serverkit.auth import Principal
from serverkit.errors import InvalidInput, Unavailable

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


def placements(request: Request) -> PlacementStore:
    """One store per app (it caches what it wrote)."""
    store: PlacementStore | None = getattr(request.app.state, "placements", None)
    if store is None:
        svc: Services = request.app.state.services
        store = request.app.state.placements = PlacementStore(svc.engine)
    return store


def _site(svc: Services) -> str:
    site = views.site_name(svc)
    if site is None:
        raise Unavailable("site", "no site configured and none seen on the broker yet")
    return site


def sync_placements(svc: Services, store: PlacementStore) -> int:
    """Store the placement of every live miner that changed (see controller.dashboard.placement)."""
    seen = [(d.site, d.device_id, d.sample.placement) for d in svc.live.device_list()
            if isinstance(d.sample, v1.MinerSample) and d.sample.placement is not None]  # fmt: skip
    return store.sync(seen, clock.now())


@router.get("/racks", response_model=racks.LayoutOut, dependencies=[Depends(read_fleet)])
def get_racks(request: Request, svc: Services = Depends(services),
              store: PlacementStore = Depends(placements)) -> Response:  # fmt: skip
    """The layout, serialised once (the model is built from the controller's own rows; FastAPI's re-validation of
    every slot would double the time of a read on a large site)."""
    site = views.site_name(svc)
    sync_placements(svc, store)
    rows = [r for r in views.fleet_rows(svc, request.app.state.dashboard.index) if site is None or r["site"] == site]
    layout = racks.layout(site, rows, store.placements(site), store.feeds(site)) if site else racks.layout(
        None, rows, {}, {})
    return Response(layout.model_dump_json(), media_type="application/json")


@router.put("/racks/{rack}/feeds", response_model=racks.RackFeedsOut)
def put_feeds(
    rack: str, body: racks.RackFeedsIn, svc: Services = Depends(services),
    store: PlacementStore = Depends(placements), who: Principal = Depends(operate),
) -> racks.RackFeedsOut:  # fmt: skip
    names = [f.name for f in body.feeds]
    if len(set(names)) != len(names):
        raise InvalidInput("feeds", f"feed names must be unique (got {', '.join(names)})")
    site = _site(svc)
    feeds = store.set_feeds(site, rack, [Feed(f.name, f.capacity_w) for f in body.feeds], who.actor, clock.now())
    return racks.RackFeedsOut(site=site, rack=rack, feeds=[racks.FeedOut(name=f.name, capacity_w=f.capacity_w)
                                                           for f in feeds])  # fmt: skip


@router.post("/schedule/preview", response_model=schedule_preview.SchedulePreviewOut,
             dependencies=[Depends(read_fleet)])  # fmt: skip
async def post_preview(request: Request, day: date = Query(description="the Astana day the schedule is for"),
                       svc: Services = Depends(services)) -> schedule_preview.SchedulePreviewOut:  # fmt: skip
    """The CSV the quota API takes (`hour,kwh`, Astana hours 1..24), parsed by the quota API's own parser."""
    from controller.quota.api import _parse_schedule_csv

    hours = _parse_schedule_csv(await request.body())
    site = _site(svc)
    rules, connection_kw = _quota_context(svc, site)
    rows = [r for r in views.fleet_rows(svc, request.app.state.dashboard.index) if r["site"] == site]
    protected = {d for d, rule in rules.items() if rule.protected}
    return schedule_preview.preview(site, day, hours, rows, protected, connection_kw)


def _quota_context(svc: Services, site: str) -> tuple[dict[str, Any], float | None]:
    quota = views.quota_for(svc, site)
    if quota is None:
        return {}, None
    return quota.machine_rules(site), quota.site_limits(site).get("connection_kw")


class MachineRuleRow(BaseModel):
    device_id: str
    serial: str | None
    model: str | None
    rack: str | None
    state: str | None
    protected: bool
    priority: int
    rule: bool  # False: no rule stored (the defaults apply)


class MachineRulesOut(BaseModel):
    site: str
    quota: bool  # False: the site is not under quota control, rules cannot be set
    machines: list[MachineRuleRow]


@router.get("/machine-rules", response_model=MachineRulesOut, dependencies=[Depends(read_fleet)])
def machine_rules(request: Request, svc: Services = Depends(services)) -> MachineRulesOut:
    site = _site(svc)
    quota = views.quota_for(svc, site)
    rules = quota.machine_rules(site) if quota is not None else {}
    rows = [r for r in views.fleet_rows(svc, request.app.state.dashboard.index) if r["site"] == site]
    out = []
    for r in rows:
        rule = rules.get(r["device_id"])
        out.append(MachineRuleRow(device_id=r["device_id"], serial=r.get("serial"), model=r.get("model"),
                                  rack=r.get("rack"), state=r.get("state"), protected=bool(rule and rule.protected),
                                  priority=rule.priority if rule else 0, rule=rule is not None))  # fmt: skip
    return MachineRulesOut(site=site, quota=quota is not None, machines=out)
