"""QuotaService: the quota side of the controller. It keeps the inputs (persisted, with provenance), validates them
with the pure engine (quota.limits), owns the control loop (controller.quota.loop) and answers status, history
and ledger questions for the API and the dashboard.

Every input is checked by the engine before anything is stored; a refused push raises `QuotaInputError` (every
problem as `field: reason`, a 422 at the API) and is itself logged in `quota_input_log`, so nothing the grid side
sent is lost, even when it was wrong. An accepted emergency order or lift wakes the loop at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from controller.db import init_controller_db
from controller.quota import ledger as ledger_view
from controller.quota.errors import NotUnderQuota
from controller.quota.grid_intake import PRIMARY, GridIntake
from controller.quota.models import (
    EmergencyOrder,
    QuotaGridContract,
    QuotaInputLog,
    QuotaMachineRule,
    QuotaSchedule,
    QuotaSiteLimits,
    QuotaTenantContract,
    utc,
)
from controller.settings import QuotaSettings
from kuat import clock
from kuat.wire import v1
from quota import limits
from quota.errors import Issue, QuotaInputError
from quota.grid import Skew
from quota.limits import (
    DaySchedule,
    EffectiveLimit,
    EffectivePlan,
    GridContract,
    QuotaState,
    SiteConfig,
    accept_orders,
    accept_schedule,
    effective_limit,
    hour_bounds,
    purchased_kwh,
    validate_site,
)
from quota.timebase import hour_window, hours_in_day, local_day_and_hour, require_aware
from serverkit.db import SQLITE_BEGIN
from serverkit.errors import NotFound

log = logging.getLogger(__name__)

SOURCES = ("api", "csv", "mqtt", "config")


def _issue(field: str, reason: str) -> QuotaInputError:
    return QuotaInputError([Issue(field, reason)])


def plan_view(plan: EffectivePlan) -> dict[str, Any]:
    """What an accepted push returns: the day's limit segments and, per hour, purchased / allowed / planned kWh."""
    return {
        "day": plan.day.isoformat(),
        "segments": [
            {"start": s.start, "end": s.end, "limit_w": round(s.limit_w, 1), "source": s.binding.source.value,
             "reason": s.binding.reason, "reference": s.binding.reference}
            for s in plan.segments
        ],
        "hours": [
            {"hour": h.hour, "start": h.start, "end": h.end, "purchased_kwh": h.purchased_kwh,
             "cap_kwh": round(h.cap_kwh, 3), "planned_kwh": round(h.planned_kwh, 3)}
            for h in plan.hours
        ],
    }  # fmt: skip


def describe_order(o: EmergencyOrder) -> str:
    level = f"cap {o.cap_mw:g} MW" if o.cap_mw is not None else f"{o.share_pct:g} % of the schedule"
    start, end, lifted = utc(o.start), utc(o.end), utc(o.lifted_at)
    assert start is not None
    until = f"until {end.isoformat()}" if end is not None else "until lifted"
    text = f"order {o.reference} for {o.area}: {level} from {start.isoformat()} {until}"
    if lifted is not None:
        text += f"; lifted {lifted.isoformat()} by {o.lifted_by}"
    return text


def _entry(site: str, kind: str, action: str, object_id: object, detail: dict[str, Any], actor: str, source: str,
           at: datetime | None = None) -> QuotaInputLog:
    """One row of the append-only input log (accepted, refused, deleted): who sent what, how, and when."""
    return QuotaInputLog(site=site, kind=kind, action=action, object_id=None if object_id is None else str(object_id),
                         detail=json.dumps(detail, default=str), actor=actor, source=source,
                         received_at=clock.now() if at is None else at)

class QuotaService:
    """Constructed once by controller.runtime.build_services; reachable as `services.quota`."""

    def __init__(
        self,
        engine: Engine,
        settings: QuotaSettings,
        loop_factory: Callable[[QuotaService], Any] | None = None,
        grid_brokers: list[str] | None = None,
    ) -> None:
        """`grid_brokers`: the names of the grid signal's brokers, in preference order (default: one, primary)."""
        self.engine = engine
        self.write_engine = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self.settings = settings
        init_controller_db(engine)  # a no-op when the controller's runtime migrated the database already
        self._lock = threading.RLock()
        self._states: dict[str, QuotaState] = {}
        self._inputs_seen: int | None = None  # the newest input-log id the cached states reflect (refresh_inputs)
        self.grid = GridIntake(engine, self._session, Skew(settings.grid_future_skew_s, settings.grid_past_skew_s),
                               grid_brokers)
        self.loop: Any = loop_factory(self) if loop_factory is not None else None

    # ------------------------------------------------------------ storage helpers

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE, as the registry's
        writers do), so it queues on the busy timeout instead of failing when another writer holds the lock."""
        with Session(self.write_engine, expire_on_commit=False) as s:
            yield s
            s.commit()

    def _log(self, site: str, kind: str, action: str, object_id: object, detail: dict[str, Any], actor: str,
             source: str) -> None:
        with self._session() as s:
            s.add(_entry(site, kind, action, object_id, detail, actor, source))

    def _refused(self, site: str, kind: str, detail: dict[str, Any], err: QuotaInputError, actor: str,
                 source: str) -> QuotaInputError:
        log.warning("quota %s for %s from %s (%s) refused: %s", kind, site, actor, source, err)
        self._log(site, kind, "refused", None, {**detail, "issues": err.as_detail()}, actor, source)
        return err

    def input_log(self, site: str, limit: int = 200) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.exec(select(QuotaInputLog).where(col(QuotaInputLog.site) == site)
                          .order_by(col(QuotaInputLog.id).desc()).limit(limit)).all()
        return [{**r.model_dump(), "received_at": utc(r.received_at), "detail": json.loads(r.detail)} for r in rows]

    # ------------------------------------------------------------ the engine's view of a site

    def sites(self) -> list[str]:
        """Sites under quota control (those with limits set)."""
        with Session(self.engine) as s:
            return sorted(s.exec(select(QuotaSiteLimits.site)).all())

    def state(self, site: str) -> QuotaState:
        """Everything in force for `site` (NotUnderQuota: the site has no limits set)."""
        with self._lock:
            cached = self._states.get(site)
            if cached is None:
                cached = self._states[site] = self._load_state(site)
        contract = cached.site.grid
        followed = None if contract is None else self.grid.reading(site, clock.now(), contract.stale_after_s)
        return cached if followed is None else replace(cached, grid=followed[1])

    def refresh_inputs(self) -> None:
        """Under active/standby the other controller may have accepted inputs (its API, the same database): the
        cached states are dropped when the input log moved. One indexed query; the loop calls it every run."""
        with Session(self.engine) as s:
            newest = s.exec(select(func.max(QuotaInputLog.id))).one()
        if newest != self._inputs_seen:
            self._inputs_seen = newest
            self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._states.clear()

    def _load_state(self, site: str) -> QuotaState:
        with Session(self.engine) as s:
            cfg_row = s.get(QuotaSiteLimits, site)
            if cfg_row is None:
                raise NotUnderQuota(site)
            cfg = self._site_config(s, cfg_row)
            today = local_day_and_hour(clock.now())[0]
            rows = s.exec(select(QuotaSchedule).where(col(QuotaSchedule.area).in_(cfg.areas()),
                                                      col(QuotaSchedule.replaced_by).is_(None),
                                                      col(QuotaSchedule.day) >= today - timedelta(days=1))).all()
            orders = s.exec(select(EmergencyOrder).where(col(EmergencyOrder.area).in_(cfg.areas()))).all()
        schedules = tuple(DaySchedule.from_kwh(r.area, r.day, json.loads(r.hours_json), r.reference) for r in rows)
        return QuotaState(cfg, schedules, tuple(_engine_order(o) for o in orders))

    @staticmethod
    def _site_config(s: Session, row: QuotaSiteLimits) -> SiteConfig:
        tenants = s.exec(select(QuotaTenantContract).where(col(QuotaTenantContract.site) == row.site)).all()
        grid = s.get(QuotaGridContract, row.site)
        return SiteConfig(
            row.site, row.connection_kw, row.reserved_headroom_kw, row.zone, row.zone_share,
            {t.tenant: t.share_pct / 100.0 for t in tenants}, row.lend_unused_share,
            None if grid is None else GridContract(grid.contract_mw, grid.stale_after_s, grid.safe_pct),
            row.require_schedule,
        )  # fmt: skip

    def _configured(self, site: str, field: str = "site") -> QuotaState:
        try:
            return self.state(site)
        except NotUnderQuota:
            raise _issue(field, f"site {site!r} is not under quota control; set its limits first") from None

    def machine_rules(self, site: str) -> dict[str, QuotaMachineRule]:
        with Session(self.engine) as s:
            rows = s.exec(select(QuotaMachineRule).where(col(QuotaMachineRule.site) == site)).all()
        return {r.device_id: r for r in rows}

    # ------------------------------------------------------------ inputs: day-ahead schedules

    def push_schedule(
        self, site: str, day: date, hours_kwh: list[float], actor: str, source: str = "api",
        area: str | None = None, reference: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Accept a day-ahead schedule (kWh per Astana hour) for the site or its zone; returns (id, plan)."""
        area = area or site
        detail = {"area": area, "day": str(day), "hours_kwh": hours_kwh, "reference": reference}
        try:
            state = self._configured(site)
            sched = DaySchedule.from_kwh(area, day, [float(v) for v in hours_kwh], reference)
            _, plan = accept_schedule(state, sched, clock.now())
        except QuotaInputError as err:
            raise self._refused(site, "schedule", detail, err, actor, source) from None
        with self._lock, self._session() as s:
            row = QuotaSchedule(site=site, area=area, day=day, hours_json=json.dumps(list(sched_kwh(sched))),
                                reference=reference, actor=actor, source=source, received_at=clock.now())
            s.add(row)
            s.flush()
            old = s.exec(select(QuotaSchedule).where(col(QuotaSchedule.area) == area, col(QuotaSchedule.day) == day,
                                                     col(QuotaSchedule.replaced_by).is_(None),
                                                     col(QuotaSchedule.id) != row.id)).all()
            for o in old:
                o.replaced_by = row.id
                s.add(o)
            replaced = {**detail, "replaces": [o.id for o in old]}
            s.add(_entry(site, "schedule", "accepted", row.id, replaced, actor, source))
            self._invalidate()
        assert row.id is not None
        log.info("schedule %d for %s %s accepted from %s via %s (%.1f kWh)", row.id, area, day, actor, source,
                 sum(hours_kwh))  # fmt: skip
        self._kick(site)
        return row.id, plan_view(plan)

    def schedules(self, site: str, day: date | None = None) -> list[dict[str, Any]]:
        state = self._configured(site)
        with Session(self.engine) as s:
            q = select(QuotaSchedule).where(col(QuotaSchedule.area).in_(state.site.areas()))
            if day is not None:
                q = q.where(col(QuotaSchedule.day) == day)
            rows = s.exec(q.order_by(col(QuotaSchedule.id))).all()
        return [{**r.model_dump(exclude={"hours_json"}), "hours_kwh": json.loads(r.hours_json),
                 "received_at": utc(r.received_at)} for r in rows]  # fmt: skip

    # ------------------------------------------------------------ inputs: emergency orders

    def push_emergency(
        self, site: str, *, cap_pct: float | None, cap_mw: float | None, start: datetime | None,
        end: datetime | None, minutes: float | None, reference: str, actor: str, source: str = "api",
        area: str | None = None,
    ) -> EmergencyOrder:
        """Accept an emergency order (effective at its start, now by default) and run the loop at once."""
        now = clock.now()
        area = area or site
        detail = {"area": area, "cap_pct": cap_pct, "cap_mw": cap_mw, "start": start, "end": end,
                  "minutes": minutes, "reference": reference}  # fmt: skip
        try:
            state = self._configured(site)
            order = _order_from_push(area, reference, now, start, end, minutes, cap_mw, cap_pct)
            accept_orders(state, [order], now)
        except QuotaInputError as err:
            raise self._refused(site, "emergency", detail, _order_fields(err), actor, source) from None
        with self._lock, self._session() as s:
            row = EmergencyOrder(site=site, area=area, reference=order.reference.strip(), start=order.start,
                                 end=order.end, cap_mw=order.cap_mw, share_pct=order.share_pct, actor=actor,
                                 source=source, received_at=now)  # fmt: skip
            s.add(row)
            s.flush()
            s.add(_entry(site, "emergency", "accepted", str(row.id), detail, actor, source, at=now))
            self._invalidate()
        log.warning("emergency %s accepted from %s via %s: %s", row.id, actor, source, describe_order(row))
        self._kick(site)
        return row

    def emergency_site(self, order_id: int) -> str | None:
        """The site of an emergency order (None: no such order)."""
        with Session(self.engine) as s:
            found = s.get(EmergencyOrder, order_id)
        return None if found is None else found.site

    def lift_emergency(self, order_id: int, actor: str, source: str = "api") -> EmergencyOrder:
        """Lift an order now (NotFound: no such order; QuotaInputError: already lifted or over)."""
        now = clock.now()
        with Session(self.engine) as s:  # checked first: a refusal is logged in a transaction of its own
            found = s.get(EmergencyOrder, order_id)
        if found is None:
            raise NotFound("emergency order", order_id)
        stopped = [t for t in (utc(found.end), utc(found.lifted_at)) if t is not None]
        if stopped and min(stopped) <= now:
            err = _issue("order_id", f"order {order_id} ({found.reference}) is no longer in force "
                                     f"(stopped {min(stopped).isoformat()})")  # fmt: skip
            raise self._refused(found.site, "lift", {"order_id": order_id}, err, actor, source)
        with self._lock, self._session() as s:
            row = s.get(EmergencyOrder, order_id)
            assert row is not None
            row.lifted_at, row.lifted_by = now, actor
            s.add(row)
            s.add(_entry(row.site, "lift", "accepted", order_id, {"reference": row.reference}, actor, source, at=now))
            self._invalidate()
        log.warning("emergency %s (%s) lifted by %s", order_id, row.reference, actor)
        self._kick(row.site)
        return row

    def emergencies(self, site: str, include_past_h: float = 24.0) -> list[dict[str, Any]]:
        state = self._configured(site)
        now = clock.now()
        with Session(self.engine) as s:
            rows = s.exec(select(EmergencyOrder).where(col(EmergencyOrder.area).in_(state.site.areas()))
                          .order_by(col(EmergencyOrder.id))).all()
        out = []
        for r in rows:
            o = _engine_order(r)
            stop = o.stops_at()
            if stop is not None and stop < now - timedelta(hours=include_past_h):
                continue
            out.append({"id": r.id, "reference": r.reference, "area": r.area, "describe": describe_order(r),
                        "active": o.active_at(now), "start": o.start, "end": o.end, "cap_mw": r.cap_mw,
                        "share_pct": r.share_pct, "lifted_at": o.lifted_at, "lifted_by": r.lifted_by,
                        "actor": r.actor, "source": r.source})  # fmt: skip
        return out

    # ------------------------------------------------------------ inputs: site limits, contracts, machine rules

    def set_site_limits(
        self, site: str, *, connection_kw: float, reserved_headroom_kw: float = 0.0, zone: str | None = None,
        zone_share: float = 1.0, require_schedule: bool = True, lend_unused_share: bool = True, actor: str,
        source: str = "api",
    ) -> QuotaSiteLimits:
        row = QuotaSiteLimits(site=site, connection_kw=connection_kw, reserved_headroom_kw=reserved_headroom_kw,
                              zone=zone, zone_share=zone_share, require_schedule=require_schedule,
                              lend_unused_share=lend_unused_share, actor=actor, source=source,
                              received_at=clock.now())  # fmt: skip
        detail = row.model_dump(exclude={"site", "actor", "source", "received_at"})
        with Session(self.engine) as s:  # validated first: a refusal is logged in a transaction of its own
            cfg = self._site_config(s, row)
        try:
            validate_site(cfg)
        except QuotaInputError as err:
            raise self._refused(site, "site_limits", detail, err, actor, source) from None
        with self._lock, self._session() as s:
            s.merge(row)
            s.add(_entry(site, "site_limits", "accepted", site, detail, actor, source))
            self._invalidate()
        log.info("site limits of %s set by %s: %s", site, actor, detail)
        self._kick(site)
        return row

    def site_limits(self, site: str) -> dict[str, Any]:
        state = self._configured(site)
        with Session(self.engine) as s:
            row = s.get(QuotaSiteLimits, site)
            grid = s.get(QuotaGridContract, site)
        assert row is not None
        return {**row.model_dump(), "received_at": utc(row.received_at),
                "tenants": {k: v * 100 for k, v in state.site.tenant_shares.items()},
                "grid_contract": None if grid is None else {**grid.model_dump(), "received_at": utc(grid.received_at)}}

    def delete_site(self, site: str, actor: str, source: str = "api") -> None:
        """Take a site out of quota control (its inputs and ledger stay)."""
        with self._lock, self._session() as s:
            row = s.get(QuotaSiteLimits, site)
            if row is None:
                raise NotUnderQuota(site)
            s.delete(row)
            s.add(_entry(site, "site_limits", "deleted", site, {}, actor, source))  # fmt: skip
            self._invalidate()
        log.warning("site %s taken out of quota control by %s", site, actor)

    def set_grid_contract(self, site: str, *, contract_mw: float, stale_after_s: float = 240.0,
                          safe_pct: float = 0.0, actor: str, source: str = "api") -> QuotaGridContract:
        detail = {"contract_mw": contract_mw, "stale_after_s": stale_after_s, "safe_pct": safe_pct}
        row = QuotaGridContract(site=site, **detail, actor=actor, source=source, received_at=clock.now())
        try:
            state = self._configured(site)
            validate_site(replace(state.site, grid=GridContract(contract_mw, stale_after_s, safe_pct)))
        except QuotaInputError as err:
            raise self._refused(site, "grid_contract", detail, err, actor, source) from None
        with self._lock, self._session() as s:
            s.merge(row)
            s.add(_entry(site, "grid_contract", "accepted", site, detail, actor, source))
            self._invalidate()
        log.info("grid contract of %s set by %s: %s", site, actor, detail)
        self._kick(site)
        return row

    def delete_grid_contract(self, site: str, actor: str, source: str = "api") -> None:
        with self._lock, self._session() as s:
            row = s.get(QuotaGridContract, site)
            if row is None:
                raise NotFound("grid contract of site", site)
            s.delete(row)
            s.add(_entry(site, "grid_contract", "deleted", site, {}, actor, source))  # fmt: skip
            self.grid.forget(site)
            self._invalidate()
        self._kick(site)

    def set_tenant(self, site: str, tenant: str, share_pct: float, actor: str,
                   source: str = "api") -> QuotaTenantContract:
        detail = {"tenant": tenant, "share_pct": share_pct}
        try:
            state = self._configured(site)
            if not tenant.strip():
                raise _issue("tenant", "a tenant (the owner's BIN as the controller knows it) is required")
            shares = {**state.site.tenant_shares, tenant: share_pct / 100.0}
            validate_site(replace(state.site, tenant_shares=shares))
        except QuotaInputError as err:
            raise self._refused(site, "tenant", detail, _percent(err), actor, source) from None
        with self._lock, self._session() as s:
            row = s.exec(select(QuotaTenantContract).where(col(QuotaTenantContract.site) == site,
                                                           col(QuotaTenantContract.tenant) == tenant)).first()
            row = row or QuotaTenantContract(site=site, tenant=tenant, share_pct=share_pct, actor=actor,
                                             source=source, received_at=clock.now())
            row.share_pct, row.actor, row.source, row.received_at = share_pct, actor, source, clock.now()
            s.add(row)
            s.add(_entry(site, "tenant", "accepted", tenant, detail, actor, source))
            self._invalidate()
        self._kick(site, limits_only=False)
        return row

    def delete_tenant(self, site: str, tenant: str, actor: str, source: str = "api") -> None:
        with self._lock, self._session() as s:
            row = s.exec(select(QuotaTenantContract).where(col(QuotaTenantContract.site) == site,
                                                           col(QuotaTenantContract.tenant) == tenant)).first()
            if row is None:
                raise NotFound("tenant contract", f"{tenant} on {site}")
            s.delete(row)
            s.add(_entry(site, "tenant", "deleted", tenant, {}, actor, source))  # fmt: skip
            self._invalidate()
        self._kick(site, limits_only=False)

    def set_machine_rule(self, site: str, device_id: str, *, protected: bool, priority: int, actor: str,
                         source: str = "api") -> QuotaMachineRule:
        self._configured(site)
        row = QuotaMachineRule(site=site, device_id=device_id, protected=protected, priority=priority, actor=actor,
                               received_at=clock.now())
        with self._session() as s:
            s.merge(row)
            rule = {"protected": protected, "priority": priority}
            s.add(_entry(site, "rule", "accepted", device_id, rule, actor, source))
        return row

    def delete_machine_rule(self, site: str, device_id: str, actor: str, source: str = "api") -> None:
        with self._session() as s:
            row = s.get(QuotaMachineRule, (site, device_id))
            if row is None:
                raise NotFound("machine rule", f"{device_id} on {site}")
            s.delete(row)
            s.add(_entry(site, "rule", "deleted", device_id, {}, actor, source))  # fmt: skip

    # ------------------------------------------------------------ inputs: the live grid signal

    def on_grid_signal(self, site: str, signal: v1.GridSignal | None, error: str | None = None,
                       actor: str = "mqtt", broker: str = PRIMARY, retained: bool = False) -> bool:
        """Record one grid-signal message from `broker` (valid or not, controller.quota.grid_intake); a valid,
        timely one for a site under a grid contract becomes that broker's reading, counting from its own
        timestamp. True if accepted; the loop runs at once when the target the site follows changed."""
        try:
            contract = self.state(site).site.grid
        except NotUnderQuota:
            contract = None
        accepted = self.grid.receive(site, signal, error, contract, actor, broker, retained)
        if accepted and contract is not None and self.grid.changed(site, contract.stale_after_s):
            self._kick(site)
        return accepted

    def restore_grid_readings(self) -> None:
        """After a restart: each broker's last accepted message (it may well be stale by now, which is right)."""
        self.grid.restore(self.sites())

    # ------------------------------------------------------------ read side

    def effective(self, site: str, at: datetime | None = None) -> EffectiveLimit:
        return effective_limit(self._configured(site), require_aware(at, "at") if at else clock.now())

    def status(self, site: str, at: datetime | None = None) -> dict[str, Any]:
        """What applies now and why, what the loop asks for and what the site draws (the dashboard's panel)."""
        try:
            state = self.state(site)
        except NotUnderQuota:
            return _unconfigured_status(site)
        at = clock.now() if at is None else require_aware(at, "at")
        point = self.loop.latest(site) if self.loop is not None else None
        if point is not None and abs((at - point.ts).total_seconds()) > self._fresh_s():
            point = None  # a status for another time than the loop's last run
        lim = point.limit if point is not None else effective_limit(state, at)
        start, _end, _hour = hour_bounds(at, state.tz)
        day, hour = local_day_and_hour(at, state.tz)
        bought = purchased_kwh(state, day, hour)
        tenant_w = point.tenant_w if point is not None else {}
        return {
            "site": site, "configured": True, "at": at, "effective_limit_w": round(lim.limit_w, 1),
            "limit_reason": lim.explain(),
            "limit_source": lim.binding.source.value, "limit_reference": lim.binding.reference,
            "constraints": [{"source": c.source.value, "limit_w": round(c.limit_w, 1), "reason": c.reason,
                             "reference": c.reference} for c in lim.constraints],
            "target_w": None if point is None else round(point.target_w, 1),
            "measured_w": None if point is None else round(point.power_w, 1),
            "loop": None if point is None else {"ts": point.ts, "action": point.action, "reason": point.reason,
                                                "correction": point.correction, "machines": point.machines,
                                                "elapsed_ms": point.elapsed_ms},
            "hour": {"start": start, "purchased_kwh": None if bought is None else bought[0],
                     "used_kwh": None if point is None else round(point.hour_used_kwh, 4)},
            "tenants": [{"tenant": t, "share_pct": round(share * 100, 3), "allotted_w": round(share * lim.limit_w, 1),
                         "used_w": round(tenant_w.get(t, 0.0), 1)} for t, share in state.site.tenant_shares.items()],
            "emergencies": [{k: e[k] for k in ("id", "reference", "describe", "active", "start", "end")}
                            for e in self.emergencies(site)],
            "schedule": self._schedule_view(state, day, at),
            "grid": self._grid_view(state, at),
        }  # fmt: skip

    def _fresh_s(self) -> float:
        """How far from the loop's last run a status still shows its measured and target figures (clock s)."""
        return 3 * self.settings.interval_s * clock.speed() + 5.0

    @staticmethod
    def _schedule_view(state: QuotaState, day: date, at: datetime) -> list[dict[str, Any]]:
        out = []
        for h in range(1, hours_in_day(day, state.tz) + 1):
            a, b = hour_window(day, h, state.tz)
            bought = purchased_kwh(state, day, h)
            out.append({"hour": h, "start": a, "kwh": None if bought is None else bought[0], "current": a <= at < b})
        return out

    @staticmethod
    def _grid_view(state: QuotaState, at: datetime) -> dict[str, Any] | None:
        contract = state.site.grid
        if contract is None:
            return None
        r = state.grid
        age = None if r is None else (at - r.ts).total_seconds()
        return {"contract_mw": contract.contract_mw, "stale_after_s": contract.stale_after_s,
                "safe_pct": contract.safe_pct, "last_received": None if r is None else r.ts,
                "target_pct": None if r is None else r.target_pct, "target_mw": None if r is None else r.target_mw,
                "stale": age is None or age > contract.stale_after_s}  # fmt: skip

    def history(self, site: str, since: datetime) -> list[dict[str, Any]]:
        """One point per loop run from memory (the last hours), older ones from the persisted minute rows."""
        since = require_aware(since, "since")
        if site not in self.sites():
            return []
        points = self.loop.points(site, since) if self.loop is not None else []
        first = points[0]["ts"] if points else clock.now()
        older = ledger_view.minute_points(self.engine, site, since, first)
        return older + points

    def ledger(self, site: str, start: datetime, end: datetime, period: str = "hour", kind: str = "site",
               entity: str | None = None) -> list[dict[str, Any]]:
        """Allotted vs used kWh per period with the excursions that fall in it (kind: site, tenant or zone)."""
        state = self._configured(site)
        start, end = require_aware(start, "start"), require_aware(end, "end")
        if end <= start:
            raise _issue("end", f"must be after start ({start.isoformat()})")
        if period not in ledger_view.PERIODS:
            raise _issue("period", f"must be one of {', '.join(ledger_view.PERIODS)}")
        if kind == "zone":
            if state.site.zone is None:
                raise _issue("kind", f"site {site!r} is in no zone")
            zone_sites = [s for s in self.sites() if self.state(s).site.zone == state.site.zone]
            return ledger_view.zone_rows(self.engine, state.site.zone, zone_sites, start, end, period)
        if kind not in ("site", "tenant"):
            raise _issue("kind", "must be site, tenant or zone")
        return ledger_view.rows(self.engine, site, kind, entity, start, end, period)

    def ledger_gaps(self, site: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Stretches the ledger does not cover (controller down, loop stalled), flagged as they were found."""
        self._configured(site)
        from controller.quota.gaps import QuotaLedgerGap

        with Session(self.engine) as s:
            rows = s.exec(select(QuotaLedgerGap).where(col(QuotaLedgerGap.site) == site,
                                                       col(QuotaLedgerGap.end) > require_aware(start, "start"),
                                                       col(QuotaLedgerGap.start) < require_aware(end, "end"))
                          .order_by(col(QuotaLedgerGap.start))).all()
        return [{"start": utc(r.start), "end": utc(r.end), "reason": r.reason, "detected_at": utc(r.detected_at)}
                for r in rows]

    def ledger_csv(self, site: str, start: datetime, end: datetime, period: str = "hour", kind: str = "site",
                   entity: str | None = None) -> str:
        return ledger_view.to_csv(self.ledger(site, start, end, period, kind, entity))

    def excursions(self, site: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._configured(site)
        return ledger_view.excursion_rows(self.engine, site, require_aware(start, "start"), require_aware(end, "end"))

    # ------------------------------------------------------------ loop

    def _kick(self, site: str, limits_only: bool = True) -> None:
        """Run the site's loop now. `limits_only=False` when what changed also changes how the fleet is seen
        (tenant shares): the run then does not use a view prepared before the change."""
        if self.loop is not None:
            self.loop.kick(site, limits_only)


def _unconfigured_status(site: str) -> dict[str, Any]:
    """A site without limits: nothing is controlled (the dashboard shows this rather than failing)."""
    return {"site": site, "configured": False, "at": clock.now(), "effective_limit_w": None,
            "limit_reason": f"site {site} is not under quota control (no site limits set)", "limit_source": None,
            "limit_reference": None, "constraints": [], "target_w": None, "measured_w": None, "loop": None,
            "hour": {"start": None, "purchased_kwh": None, "used_kwh": None}, "tenants": [], "emergencies": [],
            "schedule": [], "grid": None}  # fmt: skip


def sched_kwh(s: DaySchedule) -> list[float]:
    return [h.kwh for h in s.hours]


def _percent(err: QuotaInputError) -> QuotaInputError:
    """The engine speaks in shares (0..1); the API takes percentages."""
    return QuotaInputError([Issue(i.field.replace("tenant_shares", "share_pct"), i.reason) for i in err.issues])


def _order_fields(err: QuotaInputError) -> QuotaInputError:
    """The engine names an order's fields `order.share_pct`...; the API's are `cap_pct`, `cap_mw`, `end`..."""
    names = {"share_pct": "cap_pct"}
    issues = []
    for i in err.issues:
        name = i.field.removeprefix("order.")
        issues.append(Issue(names.get(name, name), i.reason))
    return QuotaInputError(issues)


def _engine_order(r: EmergencyOrder) -> limits.EmergencyOrder:
    start = utc(r.start)
    assert start is not None
    return limits.EmergencyOrder(r.area, r.reference, start, utc(r.end), r.cap_mw, r.share_pct, utc(r.lifted_at))


def _order_from_push(
    area: str, reference: str, now: datetime, start: datetime | None, end: datetime | None, minutes: float | None,
    cap_mw: float | None, cap_pct: float | None,
) -> limits.EmergencyOrder:
    """The pushed fields as the engine's order; the engine validates the rest (levels, windows, reference)."""
    issues = []
    if minutes is not None and end is not None:
        issues.append(Issue("minutes", "give end or minutes, not both"))
    elif minutes is not None and not (minutes > 0 and minutes < 1e7):
        issues.append(Issue("minutes", f"must be a positive number of minutes (got {minutes!r})"))
    for name, t in (("start", start), ("end", end)):
        if t is not None and (t.tzinfo is None or t.utcoffset() is None):
            issues.append(Issue(name, f"needs a time zone (got {t.isoformat()}); e.g. 2026-11-22T10:00:00+05:00"))
    if issues:
        raise QuotaInputError(issues)
    begin = now if start is None else require_aware(start, "start")
    stop = begin + timedelta(minutes=minutes) if minutes is not None else end
    return limits.EmergencyOrder(area, reference or "", begin, stop, cap_mw, cap_pct)
