"""PlannerService: the planner's controller side. It assembles tomorrow's inputs (fleet outlooks from the live
state and rollups, the zone's outlook from stored results, economics from imported series), runs the pure planner,
freezes bid sets for submission, imports the published results and turns what each site won into its day-ahead
schedule through the quota service (with provenance), and compares won, bid and used per hour.

Curves are cached per site and day for `planner.curve_cache_s` real seconds (15 minutes by default): they cost
`curve_points` allocator runs per distinct hour fleet (100,000 machines: ~18 s each on this machine), the dashboard
asks every 30 s, and tomorrow's fleet does not change by the minute. An import of series clears the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controller.live import DeviceLive, LiveState
from controller.planner import fleet as site_fleet
from controller.planner import formats, inputs
from controller.planner.models import PlannerAward, PlannerBidSet, PlannerImport, PlannerResult
from controller.planner.settings import PlannerSettings
from controller.quota.errors import NotUnderQuota
from controller.quota.models import utc
from kuat import clock
from planner.award import HourAward, split_award
from planner.bids import BidPlan, BidRules, SiteHour, Step, plan_bids
from planner.curve import Curve, energy_curve, planning_policy
from planner.economics import Economics, hashprice_from_network
from planner.errors import PlannerInputError, PlannerProblems, planner_issue
from planner.market import HOURS, ZoneHourResult, ZoneOutlook, zone_outlook
from planner.outlook import hour_fleet, hour_key
from quota.errors import QuotaInputError
from quota.timebase import ASTANA, hour_window, local_day_and_hour
from serverkit.db import SQLITE_BEGIN
from serverkit.errors import NotFound

log = logging.getLogger(__name__)

SCHEDULE_SOURCE = "korem"  # quota_schedule.source of schedules made from auction results


@dataclass
class SitePlan:
    """One site's part of tomorrow: its zone, connection, and per hour the curve (hours alike share one)."""

    site: str
    zone: str
    zone_share: float
    connection_mwh: float
    curves: list[Curve]  # index hour - 1
    machines: int
    notes: list[str]


class PlannerService:
    """Constructed by `attach_planner` (controller.planner.wiring); reachable as `services.planner`."""

    def __init__(self, engine: Engine, settings: PlannerSettings, quota: Any, live: LiveState,
                 available: Callable[[DeviceLive, float], bool], noncompliant: Callable[[], set[str]] | None = None,
                 energy_margin: float = 0.0, fee_rate_sets: Sequence[str] = ()) -> None:  # fmt: skip
        self.engine = engine
        self.write_engine = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self.settings = settings
        self.quota = quota  # controller.quota.service.QuotaService
        self.live = live
        self.available = available
        self.noncompliant = noncompliant
        self.energy_margin = energy_margin
        self.fee_rate_sets = tuple(fee_rate_sets)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, date], tuple[float, SitePlan]] = {}

    # ------------------------------------------------------------ days and zones

    @staticmethod
    def tomorrow(at: datetime | None = None) -> date:
        return local_day_and_hour(at or clock.now())[0] + timedelta(days=1)

    def phase(self, day: date, at: datetime | None = None) -> str:
        """"bidding" until the session for `day` closes (10:00 Astana the day before), then "results"."""
        close = datetime.combine(day - timedelta(days=1), self.settings.session_close, ASTANA)
        return "bidding" if (at or clock.now()) < close else "results"

    def zones(self) -> dict[str, list[str]]:
        """Zone -> its sites under quota control (a site without a zone in its limits is not planned)."""
        out: dict[str, list[str]] = {}
        for site in self.quota.sites():
            zone = self.quota.state(site).site.zone
            if zone:
                out.setdefault(zone, []).append(site)
        return out

    def _site(self, site: str) -> Any:
        try:
            cfg = self.quota.state(site).site
        except NotUnderQuota:
            raise planner_issue("site", f"site {site!r} is not under quota control; set its limits first") from None
        if not cfg.zone:
            raise planner_issue("site", f"site {site!r} has no zone in its limits: bids are made per zone")
        return cfg

    # ------------------------------------------------------------ the fleet's curves

    def site_plan(self, site: str, day: date) -> SitePlan:
        cfg = self._site(site)
        with self._lock:
            hit = self._cache.get((site, day))
            if hit is not None and time.monotonic() - hit[0] < self.settings.curve_cache_s:
                return hit[1]
        plan = self._build_site_plan(cfg, day)
        with self._lock:
            self._cache[(site, day)] = (time.monotonic(), plan)
        return plan

    def _build_site_plan(self, cfg: Any, day: date) -> SitePlan:
        started = time.perf_counter()
        rules = self.quota.machine_rules(cfg.site)
        protected = {d for d, r in rules.items() if r.protected}
        dark = set(self.noncompliant()) if self.noncompliant is not None else set()
        history = site_fleet.observations(self.engine, cfg.site, day, self.settings.derate_days)
        outlooks, notes = site_fleet.site_outlooks(self.live, self.available, cfg.site, cfg.tenant_shares,
                                                   protected, dark, history, self.settings.min_available)
        connection_w = max(0.0, (cfg.connection_kw - cfg.reserved_headroom_kw) * 1000.0)
        policy = planning_policy(dict(cfg.tenant_shares), cfg.lend_unused_share)
        by_key: dict[tuple[object, ...], Curve] = {}
        curves = []
        for hour in range(1, HOURS + 1):
            key = hour_key(outlooks, hour)
            if key not in by_key:
                by_key[key] = energy_curve(hour_fleet(outlooks, hour), policy, None, self.settings.curve_points,
                                           [connection_w])
            curves.append(by_key[key])
        log.info("planner: %s %s curves for %d machines (%d distinct hours) in %.2f s", cfg.site, day,
                 len(outlooks), len(by_key), time.perf_counter() - started)
        takes_part = sum(1 for o in outlooks if o.out is None)
        return SitePlan(cfg.site, cfg.zone, cfg.zone_share, connection_w / 1e6, curves, takes_part, notes)

    def rules(self, budget_kzt: float | None = None) -> BidRules:
        s = self.settings
        return BidRules(s.max_steps, s.price_tick_kzt, s.lot_mwh, s.shade,
                        s.prepayment_kzt if budget_kzt is None else budget_kzt, 1.0 - self.energy_margin)

    def economics(self, day: date) -> Economics:
        return inputs.economics(self.engine, self.settings, day, self.price_basis(day), self.fee_rate_sets)

    def price_basis(self, day: date) -> inputs.PriceBasis:
        """The average price the fee scale is read at: what the awards of `day`'s month so far cost, or, before the
        first purchase of the month, the lowest floor in force (every accepted price is at least its zone's floor;
        the lower the price, the higher the fee band)."""
        first = day.replace(day=1)
        with Session(self.engine) as s:
            rows = s.exec(select(PlannerAward).where(col(PlannerAward.day) >= first,
                                                     col(PlannerAward.day) < day)).all()  # fmt: skip
        mwh = sum(r.mwh for r in rows)
        if mwh > 0:
            avg = sum(r.cost_kzt for r in rows) / mwh / 1000.0
            return inputs.PriceBasis(avg, f"the average price paid since {first} ({avg:.2f} KZT/kWh, {mwh:.3f} MWh)")
        floors = [f for f in (inputs.zone_floor(self.settings, z, day) for z in self.zones()) if f is not None]
        if not floors:
            return inputs.PriceBasis(0.0, "no price known (no purchase this month, no floor): the top rate")
        low = min(f[0] for f in floors) / 1000.0
        return inputs.PriceBasis(low, f"the zone floor ({low:.2f} KZT/kWh: no purchase yet this month)")

    # ------------------------------------------------------------ bids

    def outlook(self, zone: str, day: date) -> ZoneOutlook:
        floor = inputs.zone_floor(self.settings, zone, day)
        if floor is None:
            raise planner_issue("zone", f"no floor for zone {zone!r} on {day}: set planner.zone_floors")
        return zone_outlook(zone, floor[0], self.history(zone, day), day, self.settings.history_days,
                            self.settings.volume_quantile, floor[1])

    def history(self, zone: str, day: date) -> list[ZoneHourResult]:
        since = day - timedelta(days=self.settings.history_days)
        with Session(self.engine) as s:
            rows = s.exec(select(PlannerResult).where(col(PlannerResult.zone) == zone, col(PlannerResult.day) < day,
                                                      col(PlannerResult.day) >= since,
                                                      col(PlannerResult.replaced_by).is_(None))).all()  # fmt: skip
        return [ZoneHourResult(r.day, r.zone, r.hour, r.offered_mwh, r.sold_mwh, r.clearing_kzt_per_mwh) for r in rows]

    def plan(self, day: date, budget_kzt: float | None = None) -> tuple[BidPlan, list[SitePlan]]:
        """Tomorrow's bids for every zone with sites here, and the site plans they were made from."""
        zones = self.zones()
        if not zones:
            raise planner_issue("site", "no site under quota control has a zone: nothing to bid for")
        problems = PlannerProblems()
        outlooks: dict[str, ZoneOutlook] = {}
        for zone in zones:
            try:
                outlooks[zone] = self.outlook(zone, day)
            except PlannerInputError as err:
                problems.issues.extend(err.issues)
        try:
            econ = self.economics(day)
        except PlannerInputError as err:
            problems.issues.extend(err.issues)
        problems.raise_if_any()
        sites = [self.site_plan(site, day) for zone in zones for site in zones[zone]]
        site_hours = [SiteHour(p.site, p.zone, h, p.curves[h - 1], p.connection_mwh) for p in sites
                      for h in range(1, HOURS + 1)]  # fmt: skip
        return plan_bids(site_hours, outlooks, econ, self.rules(budget_kzt)), sites

    def freeze(self, day: date, actor: str, budget_kzt: float | None = None) -> PlannerBidSet:
        """Store the bids for `day` as the set to submit (the latest set of a day is what results are split by)."""
        plan, sites = self.plan(day, budget_kzt)
        row = PlannerBidSet(day=day, steps_json=json.dumps([formats.step_doc(s) for s in plan.steps()]),
                            summary_json=json.dumps(summary_doc(plan)),
                            inputs_json=json.dumps(inputs_doc(plan, sites)), actor=actor,
                            created_at=clock.now())  # fmt: skip
        with Session(self.write_engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
        log.info("planner: bid set %s for %s frozen by %s: %d steps, %.3f MWh, prepayment %.0f KZT", row.id, day,
                 actor, len(plan.steps()), plan.summary.bid_mwh, plan.summary.prepayment_kzt)
        return row

    def bid_set(self, bid_set_id: int) -> PlannerBidSet:
        with Session(self.engine) as s:
            row = s.get(PlannerBidSet, bid_set_id)
        if row is None:
            raise NotFound("bid set", bid_set_id)
        return row

    def latest_bid_set(self, day: date) -> PlannerBidSet | None:
        with Session(self.engine) as s:
            return s.exec(select(PlannerBidSet).where(col(PlannerBidSet.day) == day)
                          .order_by(col(PlannerBidSet.id).desc())).first()  # fmt: skip

    @staticmethod
    def steps_of(row: PlannerBidSet | None) -> list[Step]:
        return [] if row is None else [formats.step_from_doc(d) for d in json.loads(row.steps_json)]

    def export(self, bid_set_id: int, fmt: str) -> str:
        row = self.bid_set(bid_set_id)
        steps = self.steps_of(row)
        if fmt == "csv":
            return formats.bids_csv(row.day, steps)
        created = utc(row.created_at)
        assert row.id is not None and created is not None
        return formats.bids_json(row.id, row.day, created.isoformat(), steps, json.loads(row.summary_json),
                                 json.loads(row.inputs_json))

    # ------------------------------------------------------------ series in

    def import_series(self, kind: str, body: bytes, actor: str, source: str = "csv",
                      filename: str | None = None) -> dict[str, Any]:
        if kind == "hashprice":
            rows = formats.parse_hashprice(body, hashprice_from_network)
        elif kind == "usd_kzt":
            rows = formats.parse_usd(body)
        else:
            raise planner_issue("kind", f"must be one of {', '.join(inputs.KINDS)}")
        imp = inputs.store_series(self.engine, kind, rows, actor, source, filename, body)
        log.info("planner: %d %s values imported by %s (import %d)", len(rows), kind, actor, imp)
        self._cache.clear()
        return {"import_id": imp, "kind": kind, "rows": len(rows), "days": [str(r.day) for r in rows]}

    # ------------------------------------------------------------ results in

    def import_results(self, body: bytes, actor: str, source: str = "csv",
                       filename: str | None = None) -> dict[str, Any]:
        """Store one day's published results and push each site's schedule for that day (see module doc)."""
        zones = self.zones()
        rows = formats.parse_results(body, known_zones=sorted(zones))
        day = rows[0].day
        bid = self.latest_bid_set(day)
        steps = self.steps_of(bid)
        awards: dict[str, list[Any]] = {}
        for r in rows:
            shares = {site: self.quota.state(site).site.zone_share for site in zones[r.zone]}
            for a in split_award(HourAward(r.zone, r.hour, r.won_mwh, r.paid_kzt), steps, shares):
                awards.setdefault(a.site, []).append(a)
        imp_id = self._store_results(day, rows, awards, body, bid, actor, source, filename)
        outcome = self._push_schedules(day, imp_id, bid, zones, {r.zone for r in rows}, awards, actor)
        with Session(self.write_engine) as s:
            imp = s.get(PlannerImport, imp_id)
            assert imp is not None
            imp.outcome_json = json.dumps(outcome)
            s.add(imp)
            for site, info in outcome.items():
                for row in s.exec(select(PlannerAward).where(col(PlannerAward.import_id) == imp_id,
                                                             col(PlannerAward.site) == site)).all():
                    row.schedule_id = info.get("schedule_id")
                    s.add(row)
            s.commit()
        won = sum(r.won_mwh for r in rows)
        log.info("planner: results for %s imported by %s (import %d): %.3f MWh won in %s; schedules %s", day, actor,
                 imp_id, won, ", ".join(sorted({r.zone for r in rows})), outcome)
        return {"import_id": imp_id, "day": str(day), "rows": len(rows), "won_mwh": round(won, 6),
                "bid_set_id": None if bid is None else bid.id, "sites": outcome}

    def _store_results(self, day: date, rows: list[formats.ResultRow], awards: dict[str, list[Any]], body: bytes,
                       bid: PlannerBidSet | None, actor: str, source: str, filename: str | None) -> int:
        with Session(self.write_engine, expire_on_commit=False) as s:
            imp = PlannerImport(kind="results", day=day, filename=filename, sha256=hashlib.sha256(body).hexdigest(),
                                rows=len(rows), actor=actor, source=source, received_at=clock.now())  # fmt: skip
            s.add(imp)
            s.flush()
            assert imp.id is not None
            for zone in {r.zone for r in rows}:
                for old in s.exec(select(PlannerResult).where(col(PlannerResult.day) == day,
                                                              col(PlannerResult.zone) == zone,
                                                              col(PlannerResult.replaced_by).is_(None))).all():
                    old.replaced_by = imp.id
                    s.add(old)
            for r in rows:
                s.add(PlannerResult(import_id=imp.id, day=day, zone=r.zone, hour=r.hour, offered_mwh=r.offered_mwh,
                                    sold_mwh=r.sold_mwh, clearing_kzt_per_mwh=r.clearing_kzt_per_mwh,
                                    won_mwh=r.won_mwh, paid_kzt=r.paid_kzt))  # fmt: skip
            for site_awards in awards.values():
                for a in site_awards:
                    s.add(PlannerAward(import_id=imp.id, bid_set_id=None if bid is None else bid.id, day=day,
                                       site=a.site, zone=a.zone, hour=a.hour, mwh=a.mwh, cost_kzt=a.cost_kzt,
                                       note=a.note[:200]))  # fmt: skip
            s.commit()
            return imp.id

    def _push_schedules(self, day: date, imp_id: int, bid: PlannerBidSet | None, zones: dict[str, list[str]],
                        present: set[str], awards: dict[str, list[Any]], actor: str) -> dict[str, Any]:
        """Each site of every zone in the file gets the day's schedule of what it won (0 kWh where nothing)."""
        outcome: dict[str, Any] = {}
        for zone in sorted(present):
            for site in zones[zone]:
                kwh = [0.0] * HOURS
                for a in awards.get(site, []):
                    kwh[a.hour - 1] += a.mwh * 1000.0
                kwh = [round(v, 3) for v in kwh]
                ref = f"KOREM {day} {zone}: results import {imp_id}" + (f", bid set {bid.id}" if bid else "")
                try:
                    sid, _ = self.quota.push_schedule(site, day, kwh, actor, SCHEDULE_SOURCE, area=site,
                                                      reference=ref)
                    outcome[site] = {"schedule_id": sid, "kwh": round(sum(kwh), 3), "reference": ref}
                except QuotaInputError as err:
                    outcome[site] = {"schedule_id": None, "refused": err.as_detail(), "reference": ref}
        return outcome

    def results(self, day: date) -> list[PlannerResult]:
        with Session(self.engine) as s:
            return list(s.exec(select(PlannerResult).where(col(PlannerResult.day) == day,
                                                           col(PlannerResult.replaced_by).is_(None))
                               .order_by(col(PlannerResult.zone), col(PlannerResult.hour))).all())  # fmt: skip

    def awards(self, site: str, day: date) -> list[PlannerAward]:
        """The site's awards from the newest results import of `day`."""
        with Session(self.engine) as s:
            last = s.exec(select(PlannerImport.id).where(col(PlannerImport.kind) == "results",
                                                         col(PlannerImport.day) == day)
                          .order_by(col(PlannerImport.id).desc())).first()  # fmt: skip
            if last is None:
                return []
            return list(s.exec(select(PlannerAward).where(col(PlannerAward.import_id) == last,
                                                          col(PlannerAward.site) == site)).all())

    # ------------------------------------------------------------ won vs bid vs used

    def ledger(self, site: str, day: date) -> list[dict[str, Any]]:
        """Per Astana hour of `day`: what the latest bid set bid for the site, what it won, what it used."""
        self._site(site)
        bid = self.latest_bid_set(day)
        bids = [0.0] * HOURS
        bid_cost = [0.0] * HOURS
        for s in self.steps_of(bid):
            for name, q in s.sites:
                if name == site:
                    bids[s.hour - 1] += q
                    bid_cost[s.hour - 1] += q * s.price_kzt_per_mwh
        won = [0.0] * HOURS
        won_cost = [0.0] * HOURS
        awarded = self.awards(site, day)
        for a in awarded:
            won[a.hour - 1] += a.mwh
            won_cost[a.hour - 1] += a.cost_kzt
        start, end = hour_window(day, 1)[0], hour_window(day, HOURS)[1]
        used: dict[int, float] = {}
        allotted: dict[int, float] = {}
        for row in self.quota.ledger(site, start, end, "hour"):
            h = local_day_and_hour(row["hour"])[1]
            used[h] = used.get(h, 0.0) + row["used_kwh"] / 1000.0
            allotted[h] = allotted.get(h, 0.0) + row["allotted_kwh"] / 1000.0
        return [{"hour": h, "start": hour_window(day, h)[0], "bid_mwh": round(bids[h - 1], 6),
                 "bid_cost_kzt": round(bid_cost[h - 1], 2), "won_mwh": round(won[h - 1], 6) if awarded else None,
                 "won_cost_kzt": round(won_cost[h - 1], 2) if awarded else None,
                 "used_mwh": round(used[h], 6) if h in used else None,
                 "allotted_mwh": round(allotted[h], 6) if h in allotted else None}
                for h in range(1, HOURS + 1)]  # fmt: skip


def summary_doc(plan: BidPlan) -> dict[str, Any]:
    s = plan.summary
    return {"bid_mwh": round(s.bid_mwh, 3), "prepayment_kzt": round(s.prepayment_kzt, 2),
            "expected_mwh": round(s.expected_mwh, 3), "expected_cost_kzt": round(s.expected_cost_kzt, 2),
            "expected_revenue_kzt": round(s.expected_revenue_kzt, 2), "expected_fee_kzt": round(s.expected_fee_kzt, 2),
            "expected_margin_kzt": round(s.expected_margin_kzt, 2), "expected_avg_ths": round(s.expected_avg_ths, 3),
            "all_win_avg_ths": round(s.all_win_avg_ths, 3),
            "constraint_costs_kzt": {k: round(v, 2) for k, v in plan.constraint_costs.items()}}  # fmt: skip


def inputs_doc(plan: BidPlan, sites: list[SitePlan]) -> dict[str, Any]:
    r = plan.rules
    return {"economics": inputs.econ_doc(plan.economics),
            "rules": {"max_steps": r.max_steps, "price_tick_kzt": r.price_tick_kzt, "lot_mwh": r.lot_mwh,
                      "shade": r.shade, "budget_kzt": r.budget_kzt, "usable_share": r.usable_share},
            "sites": [{"site": p.site, "zone": p.zone, "connection_mwh": p.connection_mwh, "machines": p.machines,
                       "notes": p.notes} for p in sites]}  # fmt: skip

