"""The planner's answers as documents for controller.planner.schemas: the curve, the bids, a bid set, the ledger,
and the dashboard's Plan view (all of it for one site and day, errors listed rather than raised)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from controller.planner import formats, inputs
from controller.planner.models import PlannerBidSet
from controller.planner.service import PlannerService, summary_doc
from controller.quota.models import utc
from kuat import clock
from planner.bids import BidPlan
from planner.errors import PlannerInputError
from planner.market import HOURS
from quota.timebase import ASTANA, hour_window


def curve_doc(svc: PlannerService, site: str, day: date) -> dict[str, Any]:
    plan = svc.site_plan(site, day)
    econ = svc.economics(day)
    usable = 1.0 - svc.energy_margin
    hours = []
    for h in range(1, HOURS + 1):
        c = plan.curves[h - 1]
        blocks = [{"start_mwh": b.start_mwh, "mwh": b.mwh, "ths": b.ths, "ths_per_w": b.ths_per_w,
                   "value_kzt_per_mwh": econ.value_kzt_per_mwh(b.ths_per_w)} for b in c.blocks]  # fmt: skip
        hours.append({"hour": h, "start": hour_window(day, h)[0], "machines": c.machines,
                      "fleet_mwh": c.fleet_max_w / 1e6 / usable, "connection_mwh": plan.connection_mwh,
                      "floor_mwh": c.floor_w / 1e6, "blocks": blocks})  # fmt: skip
    return {"site": site, "zone": plan.zone, "day": day, "economics": inputs.econ_doc(econ), "hours": hours,
            "notes": plan.notes}


def bids_doc(svc: PlannerService, day: date, plan: BidPlan, notes: list[str]) -> dict[str, Any]:
    floors = {}
    for zone in plan.zones:
        out = svc.outlook(zone, day)
        floors[zone] = {"kzt_per_mwh": out.floor_kzt_per_mwh, "source": out.floor_source,
                        "history_days": out.history_days}
    r = plan.rules
    return {
        "day": day, "phase": svc.phase(day), "zones": plan.zones, "floors": floors,
        "economics": inputs.econ_doc(plan.economics),
        "rules": {"max_steps": r.max_steps, "price_tick_kzt": r.price_tick_kzt, "lot_mwh": r.lot_mwh,
                  "shade": r.shade, "budget_kzt": r.budget_kzt, "usable_share": r.usable_share},
        "steps": [formats.step_doc(s) for s in plan.steps()],
        "hours": [{"zone": h.zone, "hour": h.hour, "fleet_mwh": h.limits.fleet_mwh,
                   "connection_mwh": h.limits.connection_mwh, "above_floor_mwh": h.limits.above_floor_mwh,
                   "volume_mwh": h.limits.volume_mwh, "bid_mwh": h.limits.bid_mwh, "binding": h.limits.binding}
                  for h in plan.hours],
        "summary": summary_doc(plan), "notes": notes,
    }  # fmt: skip


def plan_doc(svc: PlannerService, day: date, budget_kzt: float | None = None) -> dict[str, Any]:
    plan, sites = svc.plan(day, budget_kzt)
    return bids_doc(svc, day, plan, [f"{p.site}: {n}" for p in sites for n in p.notes])


def bid_set_doc(row: PlannerBidSet) -> dict[str, Any]:
    created = utc(row.created_at)
    return {"id": row.id, "day": row.day, "created_at": created, "actor": row.actor,
            "summary": json.loads(row.summary_json), "steps": json.loads(row.steps_json),
            "exports": {f: f"/api/v1/planner/bids/{row.id}/export?format={f}" for f in ("csv", "json")}}


def ledger_doc(svc: PlannerService, site: str, day: date) -> dict[str, Any]:
    bid = svc.latest_bid_set(day)
    return {"site": site, "day": day, "bid_set_id": None if bid is None else bid.id,
            "hours": svc.ledger(site, day)}


def view_doc(svc: PlannerService, site: str, day: date | None, at: datetime | None = None) -> dict[str, Any]:
    """The Plan tab: tomorrow's curve and bids and, after the session closes, the results against the bids."""
    at = at or clock.now()
    day = day or svc.tomorrow(at)
    errors: list[dict[str, str]] = []
    curve = bids = ledger = None
    try:
        curve = curve_doc(svc, site, day)
    except PlannerInputError as err:
        errors.extend(err.as_detail())
    if not errors:
        try:
            bids = plan_doc(svc, day)
            bids["steps"] = [s for s in bids["steps"] if site in s["sites"]]
            zone = curve["zone"] if curve else None
            bids["hours"] = [h for h in bids["hours"] if h["zone"] == zone]
        except PlannerInputError as err:
            errors.extend(err.as_detail())
    results = svc.results(day)
    try:
        ledger = ledger_doc(svc, site, day)
    except PlannerInputError as err:
        errors.extend(e for e in err.as_detail() if e not in errors)
    bid = svc.latest_bid_set(day)
    close = datetime.combine(day - timedelta(days=1), svc.settings.session_close, ASTANA)
    return {"site": site, "day": day, "now": at, "phase": svc.phase(day, at), "session_close": close,
            "curve": curve, "bids": bids, "bid_set_id": None if bid is None else bid.id,
            "results_published": bool(results), "ledger": ledger, "errors": errors}
