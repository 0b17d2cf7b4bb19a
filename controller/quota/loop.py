"""The quota control loop: every `interval_s` real seconds per site, and at once when an input changes.

One run for a site (`QuotaLoop.run_once`), each step in the module of its job:

1. measure (controller.quota.view): site power from the live fleet, per machine the best figure it has (PDU outlet >
   firmware report > estimate: quota.control.site_power), and per tenant; the fleet as the allocator sees it;
2. account (controller.quota.bookkeeping): the hour's energy so far, the ledger period rows and excursions above
   the instantaneous caps (quota.ledger), written when a period closes (controller.quota.loop_store);
3. decide (here, with the engine): the dispatch limit (energy pace of the hour, orders, grid signal, connection:
   quota.control.dispatch_limit), the three-band step with its correction factor, the allocation (quota.allocate)
   over the machines the live state knows, with registry violations at zero, operator rules (protected,
   priority), min on/off and staggered wakes; a machine without the right to power (quota.rights, through
   `rights`) is at zero on EVERY run: slept or cut at its outlet, whatever it is doing, also when the allocator
   cannot steer it (model unknown, not answering);
4. act (controller.quota.dispatch, .followup): every setpoint, one batch per gateway with a lease; machines still
   drawing well above a sleep or power-target setpoint after `straggler_settle_s` are re-sent, then cut at their
   outlet (quota.policies).

When it runs is controller.quota.schedule's job. A site without limits is not run (`NotUnderQuota`, logged once
when it leaves control); any other error in a run is logged with its traceback and the next run tries again. The
database being unreachable (PostgreSQL restarting) is an outage, not a bug: one line when it starts and one when it
ends (serverkit.db.Outage); meanwhile the loop runs from memory on the sites it last listed and the inputs it has
cached, keeps dispatching (the agents' leases stay fresh), and keeps closed ledger periods until they can be
written.

Time stamps, hours, energy and leases use kuat.clock (the demo's --speed); the pacing of runs is real seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from controller.live import DeviceLive, LiveState
from controller.quota import dispatch
from controller.quota.bookkeeping import Bookkeeper
from controller.quota.errors import NotUnderQuota
from controller.quota.followup import follow_stragglers, learn_from_acks, note_changes, settled
from controller.quota.loop_store import LoopStore
from controller.quota.memory import LoopPoint, SiteRuntime
from controller.quota.models import QuotaDispatch
from controller.quota.schedule import Scheduler
from controller.quota.view import LiveView, SiteView
from controller.settings import QuotaSettings
from kuat import clock
from kuat.wire import v1
from quota.allocate import RUNNING, Allocation, Policy, allocate
from quota.control import Bands, LoopState, band_step, dispatch_limit, site_power
from quota.limits import EffectiveLimit, QuotaState
from quota.policies import initial_correction, model_now_w
from serverkit.db import Outage, unavailable

if TYPE_CHECKING:
    from controller.quota.service import QuotaService


class Fence(Protocol):
    """The active/standby lease as the loop sees it (controller.lease.keeper.LeaseKeeper)."""

    def epoch(self) -> int | None: ...

    def holds(self, epoch: int) -> bool: ...

__all__ = ["LoopPoint", "QuotaLoop", "SiteRuntime"]

log = logging.getLogger(__name__)

PREPARE_IF_LOOK_S = 0.1  # sites whose pass over the live state takes this long get a view prepared between runs
PREPARE_EVERY_S = 2.0
PREPARED_MAX_AGE_S = 3.0  # telemetry itself is a poll interval old; a run for a new limit may use a view this old


class QuotaLoop:
    def __init__(
        self,
        service: QuotaService,
        live: LiveState,
        available: Callable[[DeviceLive, float], bool],
        send: dispatch.SendJson,
        noncompliant: Callable[[], set[str]] | None,
        settings: QuotaSettings,
        bands: Bands | None = None,
        command_record: Callable[[str], Any] | None = None,
        stale_s: float = 120.0,
        fence: Fence | None = None,
    ) -> None:
        """`fence`: the active/standby lease (controller.lease); without one this loop is always active."""
        self.service = service
        self.fence = fence
        self.command_record = command_record  # command id -> its record with the agent's per-item acks
        self.live = live
        self.available = available
        self.send = send
        self.settings = settings
        self.bands = bands or Bands()
        self.db = Outage("quota loop", log)  # one line per database outage, not a traceback per run
        self.view = LiveView(live, service.machine_rules, noncompliant, settings.compliance_refresh_s, stale_s,
                             self.db)  # fmt: skip
        self.store = LoopStore(service.engine, service.write_engine)
        self.books = Bookkeeper(self.store, settings, self.db)
        self.scheduler = Scheduler(settings, self._configured_sites, self._run_scheduled, self.warm_all)
        self._sites: dict[str, SiteRuntime] = {}
        self._sites_lock = threading.Lock()
        self._uncontrolled: set[str] = set()  # sites told once that they are not under quota control
        self._listed: list[str] = []  # the sites last listed: what the loop runs while the database is out
        self.observers: list[Callable[[str, LoopPoint], None]] = []  # told of every run (metrics, InfluxDB)
        self.runs = 0

    # ------------------------------------------------------------ life cycle (controller.quota.schedule)

    @property
    def noncompliant(self) -> Callable[[], set[str]] | None:
        return self.view.noncompliant

    @noncompliant.setter
    def noncompliant(self, read: Callable[[], set[str]] | None) -> None:
        self.view.noncompliant = read
        self.view.refresh_compliance()

    @property
    def rights(self) -> Callable[[], Callable[[str, v1.MinerSample], bool]] | None:
        """Fail-closed power (controller.registry_link.power.PowerGate); None: no registry link configured."""
        return self.view.rights

    @rights.setter
    def rights(self, gate: Callable[[], Callable[[str, v1.MinerSample], bool]] | None) -> None:
        self.view.rights = gate

    def start(self) -> None:
        self.scheduler.start()
        log.info("quota loop started (every %g s, lease %g s)", self.settings.interval_s, self.settings.lease_s)

    def stop(self, timeout: float = 10.0) -> None:
        self.scheduler.stop(timeout)
        log.info("quota loop stopped")

    def kick(self, site: str, limits_only: bool = False) -> None:
        """Run `site` now (an order arrived or was lifted, a grid target changed). `limits_only`: only the limit
        changed, so the run may use the site view prepared between runs (see `warm_all`)."""
        self.scheduler.kick(site, limits_only)

    def refresh_compliance(self) -> None:
        """Read the registry's violations on the next run (after a compliance check)."""
        self.view.refresh_compliance()

    def _run_scheduled(self, site: str, prepared_ok: bool) -> None:
        self.run_guarded(site, prepared_ok)

    def warm_all(self) -> None:
        """Between runs, get ready for an order: derive what the loop needs from telemetry that arrived since the
        last run (`view.Seen`; with 100,000 machines re-reporting, a quarter of a run), and on sites whose pass
        over the live state is slow (`PREPARE_IF_LOOK_S`), prepare the whole view, which a run for a new limit
        uses if it is at most `PREPARED_MAX_AGE_S` old (half of a 100,000-machine run). Stops as soon as a run is
        asked for; a view interrupted half way is dropped."""
        interrupted = self.scheduler.interrupted
        for site in list(self._sites):
            rt = self._sites[site]
            if not rt.lock.acquire(blocking=False):  # a run is on (from another thread): it derives for itself
                continue
            try:
                if not self.view.warm(rt, self.view.devices(site)[0], interrupted):
                    return
                if rt.look_s >= PREPARE_IF_LOOK_S and not self._prepare(site, rt):
                    return
            finally:
                rt.lock.release()

    def _prepare(self, site: str, rt: SiteRuntime) -> bool:
        """Prepare the site's view between runs; False if a run was asked for meanwhile."""
        if rt.prepared is not None and time.monotonic() - rt.prepared[0] < PREPARE_EVERY_S:
            return True
        state = self._state(site)
        if state is None:
            return True
        started = time.monotonic()
        view = self.view.look(site, rt, time.time(), clock.time(), state, self.scheduler.interrupted)
        if view is None:
            return False
        rt.prepared = (started, view)
        return True

    def _configured_sites(self) -> list[str]:
        """The sites under control; while the database is out, the ones it last listed (they are still bound by
        what they were bound by, and their agents' leases must be renewed)."""
        try:
            self._listed = self.service.sites()
        except Exception as exc:
            if not unavailable(exc):
                log.exception("quota loop: cannot list the sites under control")
                return []
            self.db.failed(exc, "listing the sites under control")
            return self._listed
        self.db.ok()
        return self._listed

    def _state(self, site: str) -> QuotaState | None:
        """The site's inputs in force; None, said once in the log, when the site has no limits set."""
        try:
            state = self.service.state(site)
        except NotUnderQuota:
            if site not in self._uncontrolled:
                self._uncontrolled.add(site)
                log.warning("quota %s: not under quota control (no site limits set); nothing is dispatched", site)
            return None
        if site in self._uncontrolled:
            self._uncontrolled.discard(site)
            log.info("quota %s: under quota control again", site)
        return state

    def _tell_observers(self, site: str, point: LoopPoint) -> None:
        for observe in self.observers:
            try:
                observe(site, point)
            except Exception:  # monitoring must never stop the loop
                log.exception("quota loop observer %r failed", observe)

    def run_guarded(self, site: str, prepared_ok: bool = False) -> LoopPoint | None:
        try:
            return self.run_once(site, prepared_ok)
        except Exception as exc:
            if unavailable(exc):
                self.db.failed(exc, f"the run for {site}")
            else:
                log.exception("quota loop run for %s failed", site)
            return None

    def run_all(self) -> list[LoopPoint]:
        return [p for site in self._configured_sites() if (p := self.run_guarded(site)) is not None]

    # ------------------------------------------------------------ reads

    def runtime(self, site: str) -> SiteRuntime:
        with self._sites_lock:
            rt = self._sites.get(site)
            if rt is None:
                keep = max(10, int(self.settings.history_hours * 3600 / self.settings.interval_s))
                rt = self._sites[site] = SiteRuntime(deque(maxlen=keep))
            return rt

    def latest(self, site: str) -> LoopPoint | None:
        rt = self._sites.get(site)
        return rt.points[-1] if rt is not None and rt.points else None

    def points(self, site: str, since: datetime) -> list[dict[str, Any]]:
        rt = self._sites.get(site)
        return [p.view() for p in list(rt.points) if p.ts >= since] if rt is not None else []

    # ------------------------------------------------------------ one run

    def run_once(self, site: str, prepared_ok: bool = False) -> LoopPoint | None:
        """Measure, account, decide, dispatch. None when the site is not under quota control (`NotUnderQuota`);
        any other error propagates (run_guarded logs it). `prepared_ok`: the view of the site prepared between
        runs may stand in for a fresh pass (a run for a new limit)."""
        if self.fence is not None:  # the other controller may have taken inputs meanwhile
            self.service.refresh_inputs()
        state = self._state(site)
        if state is None:
            return None
        rt = self.runtime(site)
        with rt.lock:
            return self._run(site, state, rt, prepared_ok)

    def _look(self, site: str, rt: SiteRuntime, state: QuotaState, real_now: float, now_s: float,
              prepared_ok: bool) -> SiteView:
        prepared, rt.prepared = rt.prepared, None
        if prepared_ok and prepared is not None and time.monotonic() - prepared[0] <= PREPARED_MAX_AGE_S:
            return prepared[1]
        look_started = time.perf_counter()
        view = self.view.look(site, rt, real_now, now_s, state)
        assert view is not None  # only an interruptible look gives up
        rt.look_s = time.perf_counter() - look_started
        return view

    def _run(self, site: str, state: QuotaState, rt: SiteRuntime, prepared_ok: bool = False) -> LoopPoint:
        started = time.perf_counter()
        now, now_s, real_now = clock.now(), clock.time(), time.time()
        epoch = self.fence.epoch() if self.fence is not None else None
        active = self.fence is None or epoch is not None
        learn_from_acks(site, rt, self.command_record)
        view = self._look(site, rt, state, real_now, now_s, prepared_ok)
        measured = site_power(view.readings)
        self.books.account(site, state, rt, now, measured.watts, view.tenant_w, write=active)
        lim = dispatch_limit(state, now, rt.hour_used_kwh, measured.watts, self.settings.lag_s,
                             max(measured.uncertainty, self.settings.margin_for(site)))  # fmt: skip
        if not active:
            return self._shadow(rt, now, measured.watts, lim, len(view.fleet), view.tenant_w, started)
        is_settled = settled(rt, view.oldest_reading, now_s, self.settings.settle_s)
        # Until the plant has answered the last change, measurements describe the old setpoints: reacting to them
        # again would cut twice. The loop then steers by the plan (what the change will draw), and by measured
        # power once every metered machine has reported since the change.
        # the machines the loop cannot steer count at what they are expected to draw where no reading shows it
        steer_w = measured.watts + view.held_unseen_w if is_settled else rt.planned_w * rt.loop_state.correction
        if not rt.sent and len(view.fleet):  # nothing dispatched yet (a start, a restart, a takeover; a first run
            # may have seen no telemetry yet): learn the model's error from the plant as it is, and start afresh
            rt.loop_state = LoopState(initial_correction(measured.watts, model_now_w(view.fleet) + view.held_w,
                                                         self.bands.correction_max))
        decision = band_step(self.bands, rt.loop_state, lim.limit_w, steer_w, rt.planned_w, is_settled)
        fleet = view.fleet
        budget_w = max(0.0, decision.budget_w - view.held_w)
        plan = allocate(fleet, budget_w, self._policy(state))
        wires = dispatch.wire_setpoints(plan, fleet)
        wires, unchanged, kept_w = note_changes(rt, fleet.ids, wires, now_s, budget_w - plan.total_power_w)
        wires, cut, resend = follow_stragglers(site, rt, fleet, plan, wires, unchanged, view.watts, now_s,
                                               decision.state.correction, self.settings.straggler_settle_s)
        changed = int(len(wires) - unchanged.sum()) + cut
        if view.dark_ids:  # no right to power and outside the allocator: slept or cut, every run
            batches = rt.batcher.batches([*fleet.ids, *view.dark_ids], [*wires, *view.dark_wires], view.gateway_of,
                                         resend)  # fmt: skip
        else:
            batches = rt.batcher.batches(fleet.ids, wires, view.gateway_of, resend)
        result = dispatch.send_batches(self.send, site, batches, self.settings.lease_s, epoch,
                                       self.fence.holds if self.fence is not None else None)
        rt.loop_state, rt.planned_w = decision.state, plan.total_power_w + view.held_w + kept_w
        if changed:
            rt.inflight = list(result.commands.values())
        target_w = rt.planned_w * decision.state.correction
        elapsed_ms = (time.perf_counter() - started) * 1000
        point = LoopPoint(now, measured.watts, lim, target_w, decision.action.value, decision.reason,
                          round(decision.state.correction, 4), len(fleet), rt.hour_used_kwh, view.tenant_w,
                          round(elapsed_ms, 1))  # fmt: skip
        rt.points.append(point)
        self.runs += 1
        self._tell_observers(site, point)
        if changed:
            self._log_dispatch(site, point, decision.budget_w, plan, changed, result, elapsed_ms, view)
        if plan.over_budget_w > 0:
            log.warning("quota %s: floors exceed the budget by %.0f W; %s", site, plan.over_budget_w,
                        "; ".join(plan.notes))
        elif plan.notes and changed:
            log.info("quota %s: %s", site, "; ".join(plan.notes))
        return point

    def _shadow(self, rt: SiteRuntime, now: datetime, power_w: float, lim: EffectiveLimit, machines: int,
                tenant_w: dict[str, float], started: float) -> LoopPoint:
        """A standby's run: it measures and keeps the ledger's books in memory (so a takeover continues them
        without a gap) but dispatches nothing and writes nothing. What it sent before, if it was active, is
        forgotten: after a takeover back, every setpoint goes out again."""
        rt.sent.clear()
        rt.sent_at.clear()
        rt.inflight = []
        rt.loop_state, rt.planned_w = LoopState(), 0.0
        point = LoopPoint(now, power_w, lim, 0.0, "standby", "standby: another controller holds the lease", 1.0,
                          machines, rt.hour_used_kwh, tenant_w, round((time.perf_counter() - started) * 1000, 1))
        rt.points.append(point)
        return point

    def _policy(self, state: QuotaState) -> Policy:
        s = self.settings
        return Policy(min_on_s=s.min_on_s, min_off_s=s.min_off_s, max_wakes=s.max_wakes, max_wake_w=s.max_wake_w,
                      tenant_shares=dict(state.site.tenant_shares), lend_unused_share=state.site.lend_unused_share)

    def _log_dispatch(self, site: str, point: LoopPoint, budget_w: float, plan: Allocation, changed: int,
                      result: dispatch.DispatchResult, elapsed_ms: float, view: SiteView) -> None:
        running = int(sum(1 for m in plan.mode if int(m) in RUNNING))
        log.info("quota %s: %s; %d of %d setpoints changed, %d running, planned %.1f kW (+%.1f kW held for %d "
                 "machines it cannot steer now), %d gateways (%.0f ms)", site, point.reason, changed, point.machines,
                 running, plan.total_power_w / 1e3, view.held_w / 1e3, view.held, len(result.commands), elapsed_ms)
        row = QuotaDispatch(site=site, ts=point.ts, action=point.action, reason=point.reason,
                            limit_w=point.limit.limit_w, measured_w=point.power_w, budget_w=budget_w,
                            planned_w=plan.total_power_w, machines=point.machines, running=running, changed=changed,
                            gateways=len(result.commands),
                            commands_json=json.dumps({"sent": result.commands, "failed": result.failed}),
                            elapsed_ms=elapsed_ms)  # fmt: skip
        try:
            self.store.log_dispatch(row)
        except Exception as exc:
            if unavailable(exc):  # the dispatch went out; only its log row is lost
                self.db.failed(exc, f"logging a dispatch of {site} (that row is lost)")
            else:
                log.exception("quota %s: dispatch log row not written", site)
