"""The quota control loop: one thread, every `interval_s` real seconds per site, and at once when an input changes.

One run for a site:

1. measure: site power from the live fleet, per machine the best figure it has (PDU outlet > firmware report >
   estimate: quota.control.site_power), and per tenant;
2. account: the hour's energy so far, the ledger period rows and excursions above the instantaneous caps
   (quota.ledger), written when a period closes;
3. decide: the dispatch limit (energy pace of the hour, orders, grid signal, connection: quota.control.dispatch_limit),
   the three-band step with its correction factor, the allocation (quota.allocate) over the machines the live state
   knows, with registry violations at zero, operator rules (protected, priority), min on/off and staggered wakes;
   a machine without the right to power (quota.rights, through `rights`) is at zero on EVERY run: slept or cut at
   its outlet, whatever it is doing, also when the allocator cannot steer it (model unknown, not answering);
4. act: every setpoint, one batch per gateway with a lease (controller.quota.dispatch); machines still drawing
   well above a sleep or power-target setpoint after `straggler_settle_s` are re-sent, then cut at their outlet.

Time stamps, hours, energy and leases use kuat.clock (the demo's --speed); the pacing of runs is real seconds.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from sqlmodel import Session

from controller.live import DeviceLive, LiveState
from controller.quota import dispatch
from controller.quota import ledger as ledger_store
from controller.quota.models import QuotaDispatch
from controller.settings import QuotaSettings
from kuat import catalog, clock
from kuat.catalog import ModelSpec, ratio_at_power
from kuat.wire import v1
from quota.allocate import Allocation, Mode, Policy, allocate
from quota.control import (
    UNCERTAINTY,
    Bands,
    LoopState,
    Planned,
    PowerReading,
    band_step,
    dispatch_limit,
    site_power,
    stragglers,
)
from quota.fleet import BOOL, FleetArrays, Machine, Now
from quota.ledger import (
    Allotment,
    CapWindow,
    LedgerRow,
    PowerSample,
    energy_excursions,
    energy_kwh,
    excursions,
    ledger_rows,
    tenant_allotments,
)
from quota.limits import EffectiveLimit, QuotaState, constraints_at, hour_bounds, most_restrictive, purchased_kwh
from quota.timebase import local_day_and_hour

if TYPE_CHECKING:
    from controller.quota.service import QuotaService

log = logging.getLogger(__name__)

HOST = "host"  # the allocator's owner for every machine not under a tenant contract
WARM_EVERY_S = 0.5  # between runs, new telemetry is pre-digested this often (see QuotaLoop._warm_all)
PREPARE_IF_LOOK_S = 0.1  # sites whose pass over the live state takes this long get a view prepared between runs
PREPARE_EVERY_S = 2.0
PREPARED_MAX_AGE_S = 3.0  # telemetry itself is a poll interval old; a run for a new limit may use a view this old
MAX_GAP_S = 120.0  # clock seconds between two loop samples beyond which the energy between them is not integrated
STRAGGLER_TOLERANCE = 0.15  # the model's per-machine error is a few %: only clear misses count


@dataclass(frozen=True, slots=True)
class LoopPoint:
    ts: datetime
    power_w: float
    limit: EffectiveLimit
    target_w: float
    action: str
    reason: str
    correction: float
    machines: int
    hour_used_kwh: float
    tenant_w: dict[str, float]
    elapsed_ms: float = 0.0  # the run, from reading the live state to the last batch handed to MQTT

    def view(self) -> dict[str, Any]:
        return {"ts": self.ts, "power_w": round(self.power_w, 1), "limit_w": round(self.limit.limit_w, 1),
                "target_w": round(self.target_w, 1)}


@dataclass(slots=True)
class _Seen:
    """What the loop derived from one telemetry sample; reused while the live state holds the same sample."""

    sample: v1.MinerSample
    floor: float | None
    spec: ModelSpec | None
    power_target: bool
    sleep: bool
    reboots: bool
    answering: bool
    pdu_metered: bool
    has_outlet: bool
    sleeping: bool
    power_w: float | None
    source: str
    current_w: float

    @classmethod
    def current(cls, seen: dict[str, _Seen], d: DeviceLive, floor: float | None) -> _Seen:
        """The record of `d` in `seen`, derived again only when its sample or its learnt floor changed."""
        known = seen.get(d.device_id)
        if known is None or known.sample is not d.sample or known.floor != floor:
            known = seen[d.device_id] = cls.of(d, floor)
        return known

    @classmethod
    def of(cls, d: DeviceLive, floor: float | None) -> _Seen:
        s = d.sample
        assert isinstance(s, v1.MinerSample)
        caps = s.capabilities
        spec, power_target = _machine_spec(s.model, caps.power_target, caps.power_min_w, floor)
        current = s.power_limit_w if power_target and s.power_limit_w is not None else math.nan
        return cls(s, floor, spec, power_target, caps.sleep, caps.power_target_reboots, s.available,
                   s.power_source == v1.PowerSource.PDU, s.outlet is not None, s.state == v1.MinerState.SLEEPING,
                   s.power_w, s.power_source, current)


@dataclass
class SiteView:
    """What one run sees of a site."""

    readings: list[PowerReading] = field(default_factory=list)
    watts: dict[str, float | None] = field(default_factory=dict)  # device -> measured W (metered devices)
    tenant_w: dict[str, float] = field(default_factory=dict)
    gateway_of: dict[str, str] = field(default_factory=dict)
    oldest_reading: float = math.inf  # wall-clock poll time of the oldest metered reading
    held_w: float = 0.0  # what machines the loop cannot steer this run draw or will draw (see _held_w)
    held_unmetered_w: float = 0.0  # the part of it no reading in this run measures
    held: int = 0
    fleet: FleetArrays = field(default_factory=lambda: FleetArrays.from_machines([]))
    dark_ids: list[str] = field(default_factory=list)  # no right to power and outside the allocator's fleet
    dark_wires: list[dispatch.Wire] = field(default_factory=list)

    def hold(self, watts: float, metered: bool) -> None:
        self.held_w += watts
        self.held += 1
        if not metered:
            self.held_unmetered_w += watts


@dataclass
class SiteRuntime:
    """What the loop remembers about one site between runs."""

    points: deque[LoopPoint]
    loop_state: LoopState = field(default_factory=LoopState)
    last: PowerSample | None = None
    hour_start: datetime | None = None
    hour_used_kwh: float = 0.0
    period_start: datetime | None = None
    samples: list[PowerSample] = field(default_factory=list)  # the open ledger period (+ the sample before it)
    tenant_samples: dict[str, list[PowerSample]] = field(default_factory=dict)
    caps: list[CapWindow] = field(default_factory=list)
    period_limit_w: float = math.inf
    sent: dict[str, dispatch.Wire] = field(default_factory=dict)  # device -> (mode, power_w) last sent
    sent_at: dict[str, float] = field(default_factory=dict)  # clock time the device's setpoint last changed
    escalated: set[str] = field(default_factory=set)  # cut at the outlet because they did not follow
    attempts: dict[str, int] = field(default_factory=dict)
    changed_at: float = -math.inf  # clock time of the last dispatch that changed something
    changed_real: float = -math.inf  # the same in wall-clock seconds (telemetry receipt times are wall clock)
    acked_real: float = -math.inf  # wall-clock time the agents acked the last change
    planned_w: float = 0.0
    states: dict[str, tuple[Now, float]] = field(default_factory=dict)  # device -> (what it does, since)
    floors: dict[str, float] = field(default_factory=dict)  # device -> lowest power target its firmware took
    reboots: set[str] = field(default_factory=set)  # machines that reboot to apply a limit (their acks may fail)
    inflight: list[str] = field(default_factory=list)  # command ids of the last dispatch whose acks are awaited
    statics: list[tuple[Any, ...]] = field(default_factory=list)  # the fleet's static columns, as last built
    base_fleet: FleetArrays | None = None
    batcher: dispatch.Batcher = field(default_factory=dispatch.Batcher)
    seen: dict[str, _Seen] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    look_s: float = 0.0  # how long the last pass over the live state took
    prepared: tuple[float, SiteView] | None = None  # (time.monotonic(), view) prepared between runs


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
    ) -> None:
        self.stale_s = stale_s  # a PDU-metered figure counts this long, even while the miner does not answer
        self.service = service
        self.command_record = command_record  # command id -> its record with the agent's per-item acks
        self.live = live
        self.available = available
        self.send = send
        self.noncompliant = noncompliant
        self.settings = settings
        self.bands = bands or Bands()
        self._sites: dict[str, SiteRuntime] = {}
        self.observers: list[Callable[[str, LoopPoint], None]] = []  # told of every run (metrics, InfluxDB)
        self._sites_lock = threading.Lock()
        self._kicked: set[str] = set()
        self._fresh_look: set[str] = set()  # kicked for a change the prepared view does not reflect
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dark: set[str] = set()
        self._dark_read = -math.inf
        self._unknown_models: set[str] = set()
        self.runs = 0
        # fail-closed power (controller.registry_link.power.PowerGate); None: no registry link configured
        self.rights: Callable[[], Callable[[str, v1.MinerSample], bool]] | None = None

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_forever, name="kuat-quota-loop", daemon=True)
        self._thread.start()
        log.info("quota loop started (every %g s, lease %g s)", self.settings.interval_s, self.settings.lease_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        log.info("quota loop stopped")

    def kick(self, site: str, limits_only: bool = False) -> None:
        """Run `site` now (an order arrived or was lifted, a grid target changed). `limits_only`: only the limit
        changed, so the run may use the site view prepared between runs (see `_warm_all`)."""
        with self._sites_lock:
            self._kicked.add(site)
            if not limits_only:
                self._fresh_look.add(site)
        self._wake.set()

    def _run_forever(self) -> None:
        next_all = time.monotonic()
        while not self._stop.is_set():
            woken = self._wake.wait(max(0.0, min(next_all - time.monotonic(), WARM_EVERY_S)))
            if not woken and time.monotonic() < next_all:
                self._warm_all()
                continue
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._sites_lock:
                kicked, self._kicked = self._kicked, set()
                fresh, self._fresh_look = self._fresh_look, set()
            if time.monotonic() >= next_all:
                next_all = time.monotonic() + self.settings.interval_s
                fresh |= set(self._configured_sites())
                kicked |= fresh
            for site in sorted(kicked):
                self.run_guarded(site, prepared_ok=site not in fresh)

    def _warm_all(self) -> None:
        """Between runs, get ready for an order: derive what the loop needs from telemetry that arrived since the
        last run (`_Seen`; with 100,000 machines re-reporting, a quarter of a run), and on sites whose pass over
        the live state is slow (`PREPARE_IF_LOOK_S`), prepare the whole view, which a run for a new limit uses
        if it is at most `PREPARED_MAX_AGE_S` old (half of a 100,000-machine run). Stops as soon as a run is
        asked for; a view interrupted half way is dropped."""
        for site in list(self._sites):
            rt = self._sites[site]
            if not rt.lock.acquire(blocking=False):  # a run is on (from another thread): it derives for itself
                continue
            try:
                if not self._warm(rt, self._devices(site)[0]):
                    return
                if rt.look_s >= PREPARE_IF_LOOK_S and not self._prepare(site, rt):
                    return
            finally:
                rt.lock.release()

    def _prepare(self, site: str, rt: SiteRuntime) -> bool:
        if rt.prepared is not None and time.monotonic() - rt.prepared[0] < PREPARE_EVERY_S:
            return True
        try:
            state = self.service.state(site)
        except KeyError:
            return True
        started = time.monotonic()
        view = self._look(site, rt, time.time(), clock.time(), state, interruptible=True)
        if view is None:
            return False
        rt.prepared = (started, view)
        return True

    def _warm(self, rt: SiteRuntime, miners: list[DeviceLive]) -> bool:
        seen, floors = rt.seen, rt.floors
        for k, d in enumerate(miners):
            if k % 2048 == 0 and (self._wake.is_set() or self._stop.is_set()):
                return False
            _Seen.current(seen, d, floors.get(d.device_id) if floors else None)
        return True

    def _configured_sites(self) -> list[str]:
        try:
            return self.service.sites()
        except Exception:
            log.exception("quota loop: cannot list the sites under control")
            return []

    def _tell_observers(self, site: str, point: LoopPoint) -> None:
        for observe in self.observers:
            try:
                observe(site, point)
            except Exception:  # monitoring must never stop the loop
                log.exception("quota loop observer %r failed", observe)

    def run_guarded(self, site: str, prepared_ok: bool = False) -> LoopPoint | None:
        try:
            return self.run_once(site, prepared_ok)
        except Exception:
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
        """Measure, account, decide, dispatch. None when the site is not under quota control. `prepared_ok`: the
        view of the site prepared between runs may stand in for a fresh pass (a run for a new limit)."""
        try:
            state = self.service.state(site)
        except KeyError:
            return None
        rt = self.runtime(site)
        with rt.lock:
            return self._run(site, state, rt, prepared_ok)

    def _run(self, site: str, state: QuotaState, rt: SiteRuntime, prepared_ok: bool = False) -> LoopPoint:
        started = time.perf_counter()
        now, now_s, real_now = clock.now(), clock.time(), time.time()
        self._learn_from_acks(site, rt)
        prepared, rt.prepared = rt.prepared, None
        if prepared_ok and prepared is not None and time.monotonic() - prepared[0] <= PREPARED_MAX_AGE_S:
            view = prepared[1]
        else:
            look_started = time.perf_counter()
            view = self._look(site, rt, real_now, now_s, state)
            rt.look_s = time.perf_counter() - look_started
        measured = site_power(view.readings)
        self._account(site, state, rt, now, measured.watts, view.tenant_w)
        lim = dispatch_limit(state, now, rt.hour_used_kwh, measured.watts, self.settings.lag_s,
                             max(measured.uncertainty, self.settings.margin_for(site)))  # fmt: skip
        settled = self._settled(rt, view.oldest_reading, now_s)
        # Until the plant has answered the last change, measurements describe the old setpoints: reacting to them
        # again would cut twice. The loop then steers by the plan (what the change will draw), and by measured
        # power once every metered machine has reported since the change.
        # what nobody measures of the machines the loop cannot steer is counted at what they are expected to draw
        steer_w = measured.watts + view.held_unmetered_w if settled else rt.planned_w * rt.loop_state.correction
        decision = band_step(self.bands, rt.loop_state, lim.limit_w, steer_w, rt.planned_w, settled)
        fleet = view.fleet
        plan = allocate(fleet, max(0.0, decision.budget_w - view.held_w), self._policy(state))
        wires = dispatch.wire_setpoints(plan, fleet)
        wires, unchanged = self._note_changes(rt, fleet.ids, wires, now_s)
        wires, cut, resend = self._stragglers(site, rt, fleet, plan, wires, unchanged, view.watts, now_s,
                                              decision.state.correction)  # fmt: skip
        changed = int(len(wires) - unchanged.sum()) + cut
        if view.dark_ids:  # no right to power and outside the allocator: slept or cut, every run
            batches = rt.batcher.batches([*fleet.ids, *view.dark_ids], [*wires, *view.dark_wires], view.gateway_of,
                                         resend)  # fmt: skip
        else:
            batches = rt.batcher.batches(fleet.ids, wires, view.gateway_of, resend)
        result = dispatch.send_batches(self.send, site, batches, self.settings.lease_s)
        rt.loop_state, rt.planned_w = decision.state, plan.total_power_w + view.held_w
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
            self._log_dispatch(site, point, decision.budget_w, plan, changed, result, elapsed_ms, view.held_w,
                               view.held)  # fmt: skip
        if plan.over_budget_w > 0:
            log.warning("quota %s: floors exceed the budget by %.0f W; %s", site, plan.over_budget_w,
                        "; ".join(plan.notes))
        elif plan.notes and changed:
            log.info("quota %s: %s", site, "; ".join(plan.notes))
        return point

    def _settled(self, rt: SiteRuntime, oldest_reading: float, now_s: float) -> bool:
        """`settle_s` after the last change, every agent has acked it, and every metered machine was read at least
        `settle_s` after that (a reading taken before the plant could move says nothing about the new setpoints)."""
        if now_s - rt.changed_at < self.settings.settle_s or rt.inflight:
            return False
        return oldest_reading >= max(rt.changed_real, rt.acked_real) + self.settings.settle_s

    def _devices(self, site: str) -> tuple[list[DeviceLive], dict[str, v1.PduSample]]:
        miners, pdus = [], {}
        for d in self.live.device_list():
            if d.site != site:
                continue
            if d.kind == "miner":
                miners.append(d)
            elif isinstance(d.sample, v1.PduSample):
                pdus[d.device_id] = d.sample
        return miners, pdus

    def _policy(self, state: QuotaState) -> Policy:
        s = self.settings
        return Policy(min_on_s=s.min_on_s, min_off_s=s.min_off_s, max_wakes=s.max_wakes, max_wake_w=s.max_wake_w,
                      tenant_shares=dict(state.site.tenant_shares), lend_unused_share=state.site.lend_unused_share)

    # ------------------------------------------------------------ the machines as the allocator sees them

    def _noncompliant(self) -> set[str]:
        if self.noncompliant is None:
            return set()
        if time.monotonic() - self._dark_read >= self.settings.compliance_refresh_s:
            try:
                self._dark = set(self.noncompliant())
                self._dark_read = time.monotonic()
            except Exception:
                log.exception("cannot read the registry's violations; keeping %d known", len(self._dark))
        return self._dark

    def refresh_compliance(self) -> None:
        """Read the registry's violations on the next run (after a compliance check)."""
        self._dark_read = -math.inf

    @overload
    def _look(self, site: str, rt: SiteRuntime, real_now: float, now_s: float, state: QuotaState) -> SiteView: ...

    @overload
    def _look(self, site: str, rt: SiteRuntime, real_now: float, now_s: float, state: QuotaState,
              interruptible: bool) -> SiteView | None: ...

    def _look(self, site: str, rt: SiteRuntime, real_now: float, now_s: float, state: QuotaState,
              interruptible: bool = False) -> SiteView | None:
        """One pass over the site's live devices: power readings, tenants' power, and the fleet as the allocator
        sees it. The static columns (models, capabilities, owners, rules) are rebuilt only when they change; what
        machines are doing now is refreshed every run. For the allocator every owner without a tenant contract is
        the host (subtype I): shares are the tenants'; the rest, unassigned machines included, is one pool."""
        miners, pdus = self._devices(site)
        dark = self._noncompliant()
        powered = self.rights() if self.rights is not None else None
        rules = self.service.machine_rules(site)
        view = SiteView()
        statics: list[tuple[Any, ...]] = []
        doing_now: list[Now] = []
        since: list[float] = []
        current: list[float] = []
        compliant: list[bool] = []
        stale_s, states, floors, seen = self.stale_s, rt.states, rt.floors, rt.seen
        online = {gw: g.online for (gsite, gw), g in list(self.live.gateways.items()) if gsite == site}
        tenants = state.site.tenant_shares
        last_ts, last_ts_s = None, math.inf
        watts, tenant_w, gateway_of = view.watts, view.tenant_w, view.gateway_of
        by_source: dict[str, float] = {}  # site_power needs per source only the sum and the sum of squares
        squares: dict[str, float] = {}
        missing = 0
        wake = self._wake
        for k, d in enumerate(miners):
            if interruptible and k % 4096 == 0 and wake.is_set():
                return None
            device = d.device_id
            known = _Seen.current(seen, d, floors.get(device) if floors else None)
            # FleetService.available, inlined (100,000 calls a run): answering, fresh, its gateway online
            fresh = real_now - d.received <= stale_s
            available = known.answering and fresh and online.get(d.gateway, False)
            if available or (known.pdu_metered and fresh):
                power_w = known.power_w
                watts[device] = power_w
                if d.ts is not last_ts:  # one batch, one poll time: taken once per batch
                    last_ts, last_ts_s = d.ts, d.ts.timestamp()
                    view.oldest_reading = min(view.oldest_reading, last_ts_s)
                if power_w is not None and known.source in UNCERTAINTY:
                    by_source[known.source] = by_source.get(known.source, 0.0) + power_w
                    squares[known.source] = squares.get(known.source, 0.0) + power_w * power_w
                    tenant_w[d.owner] = tenant_w.get(d.owner, 0.0) + power_w
                else:
                    missing += 1
            if powered is not None and not powered(device, known.sample):
                if known.spec is None or not available:
                    self._keep_dark(view, d, known, pdus, watts.get(device))
                    continue
                dark_now = True
            else:
                dark_now = device in dark
            if known.spec is None:
                self._unknown(site, d, known.sample)
                view.hold(_held_w(known, None, watts.get(device), None, now_s), watts.get(device) is not None)
                continue
            if known.has_outlet:
                outlet = _outlet(known.sample, pdus)
                doing = _doing(known.sample, outlet, available)
                switchable = outlet is not None and outlet.switchable
            else:
                doing = (Now.SLEEPING if known.sleeping else Now.RUNNING) if available else None
                switchable = False
            if doing is None:  # unreachable with its outlet on (or unknown): nothing we send would arrive
                held = _held_w(known, rt.sent.get(device), watts.get(device), rt.sent_at.get(device), now_s)
                view.hold(held, watts.get(device) is not None)
                continue
            rule = rules.get(device) if rules else None
            if known.reboots:
                rt.reboots.add(device)
            statics.append((device, known.spec, known.power_target, known.sleep, switchable,
                            d.owner if d.owner in tenants else HOST, bool(rule and rule.protected),
                            rule.priority if rule else 0, known.reboots))  # fmt: skip
            prev = states.get(device)
            if prev is None or prev[0] != doing:
                prev = states[device] = (doing, now_s if prev is not None else -math.inf)
            gateway_of[device] = d.gateway
            doing_now.append(doing)
            since.append(now_s - prev[1])
            current.append(known.current_w)
            compliant.append(not dark_now)
        view.readings = [PowerReading(f"all-{src}", w, src, squares[src]) for src, w in by_source.items()]
        view.readings += [PowerReading("missing", None, "none")] * missing
        view.fleet = self._fleet(rt, statics, doing_now, since, current, compliant)
        return view

    @staticmethod
    def _keep_dark(view: SiteView, d: DeviceLive, known: _Seen, pdus: dict[str, v1.PduSample],
                   measured: float | None) -> None:
        """A machine without the right to power that the allocator cannot steer (model unknown, not answering): cut
        at its outlet where it can be switched (the PDU answers for it), else told to sleep (it applies it when it
        answers again). What it draws meanwhile is held out of the budget."""
        outlet = _outlet(known.sample, pdus) if known.has_outlet else None
        off = outlet is not None and outlet.switchable
        view.dark_ids.append(d.device_id)
        view.dark_wires.append((dispatch.OFF, None) if off else (dispatch.SLEEP, None))
        view.gateway_of[d.device_id] = d.gateway
        view.hold(0.0 if measured is None else measured, measured is not None)

    def _unknown(self, site: str, d: DeviceLive, s: v1.MinerSample) -> None:
        if s.model not in self._unknown_models:
            self._unknown_models.add(str(s.model))
            log.warning("quota %s: model %r of %s is not in the catalogue; it is not dispatched", site, s.model,
                        d.device_id)  # fmt: skip

    @staticmethod
    def _fleet(rt: SiteRuntime, statics: list[tuple[Any, ...]], doing: list[Now], since: list[float],
               current: list[float], compliant: list[bool]) -> FleetArrays:
        if statics != rt.statics or rt.base_fleet is None:
            machines = [Machine(i, spec, owner=owner, power_target=pt, sleep=sleep, outlet_switchable=off,
                                protected=prot, priority=prio, reboots_on_power_change=reboots)
                        for i, spec, pt, sleep, off, owner, prot, prio, reboots in statics]  # fmt: skip
            rt.base_fleet, rt.statics = FleetArrays.from_machines(machines), statics
        return replace(rt.base_fleet, now=np.asarray(doing, dtype=np.int64),
                       since_change=np.asarray(since, dtype=np.float64),
                       current_w=np.asarray(current, dtype=np.float64), compliant=np.asarray(compliant, dtype=bool))

    # ------------------------------------------------------------ machines that did not follow

    def _learn_from_acks(self, site: str, rt: SiteRuntime) -> None:
        """A power target the firmware refused (e.g. below its lowest preset) raises that machine's floor by 25 %,
        so the next dispatch asks for something it can do; once acked, the batch is forgotten."""
        if self.command_record is None or not rt.inflight:
            return
        waiting = []
        refused: list[str] = []
        for command_id in rt.inflight:
            record = self.command_record(command_id)
            if record is None:
                continue
            if record.status == "sent":
                waiting.append(command_id)
                continue
            if record.acked_at is not None:
                rt.acked_real = max(rt.acked_real, record.acked_at.timestamp())
            for item in record.items:
                sent = rt.sent.get(item.device_id)
                if item.status == v1.AckStatus.APPLIED or sent is None or sent[1] is None:
                    continue
                if sent[0] == v1.SetpointMode.POWER_TARGET.value and item.device_id not in rt.reboots:
                    rt.floors[item.device_id] = max(rt.floors.get(item.device_id, 0.0), sent[1] * 1.25)
                    rt.sent.pop(item.device_id, None)
                    refused.append(f"{item.device_id} refused {sent[1]:.0f} W ({item.reason}), floor now "
                                   f"{rt.floors[item.device_id]:.0f} W")
        rt.inflight = waiting
        if refused:  # one line per ack round, not one per machine (a whole model can refuse at once)
            log.warning("quota %s: %d power targets refused, their floors raised by 25 %%: %s%s", site, len(refused),
                        "; ".join(refused[:3]), " ..." if len(refused) > 3 else "")
            for line in refused[3:]:
                log.debug("quota %s: %s", site, line)

    def _stragglers(self, site: str, rt: SiteRuntime, fleet: FleetArrays, plan: Allocation,
                    wires: list[dispatch.Wire], unchanged: BOOL, measured: dict[str, float | None], now_s: float,
                    correction: float) -> tuple[list[dispatch.Wire], int, set[str]]:
        """Machines still drawing clearly more than an unchanged sleep or power-target setpoint are re-sent (the
        agent applies it again: `reapply`), then cut at their outlet (quota.control.stragglers decides). Returns
        the setpoints to send, how many were newly cut, and the machines whose setpoint is re-sent."""
        modes = plan.mode
        candidates = (modes == Mode.SLEEP) | (modes == Mode.POWER_TARGET)
        if rt.escalated:  # planned to run again: the outlet comes back on with it
            rt.escalated = {fleet.ids[i] for i in np.flatnonzero(candidates).tolist() if fleet.ids[i] in rt.escalated}
        candidates &= unchanged
        watts = np.full(len(fleet), np.nan)
        for i in np.flatnonzero(candidates).tolist():
            reading = measured.get(fleet.ids[i])
            if reading is not None:
                watts[i] = reading
        with np.errstate(invalid="ignore"):
            over = candidates & (watts > plan.power_w * correction * (1 + STRAGGLER_TOLERANCE) + 60.0)
        planned = {fleet.ids[i]: Planned(Mode(int(modes[i])), float(plan.power_w[i]) * correction,
                                         now_s - rt.sent_at.get(fleet.ids[i], now_s), bool(fleet.can_off[i]))
                   for i in np.flatnonzero(over).tolist()}  # fmt: skip
        check = stragglers(planned, {k: float(measured[k] or 0.0) for k in planned},
                           rt.attempts, settle_s=self.settings.straggler_settle_s,
                           tolerance=STRAGGLER_TOLERANCE)  # fmt: skip
        rt.attempts = check.attempts
        resend = set()
        for r in check.redispatch:
            if r.mode == Mode.OUTLET_OFF:
                rt.escalated.add(r.device_id)
            else:
                resend.add(r.device_id)
        if check.redispatch:
            first = "; ".join(f"{r.device_id} {r.reason}" for r in check.redispatch[:3])
            log.warning("quota %s: %d machines do not follow their setpoint (re-sent; cut at the outlet after %d "
                        "tries): %s%s", site, len(check.redispatch), 3, first,
                        " ..." if len(check.redispatch) > 3 else "")  # fmt: skip
        if not rt.escalated:
            return wires, 0, resend
        cut = 0
        off: dispatch.Wire = (dispatch.OFF, None)
        out = []
        for device, w in zip(fleet.ids, wires, strict=True):
            if device in rt.escalated:
                if rt.sent.get(device) != off:
                    rt.sent[device], rt.sent_at[device] = off, now_s
                    cut += 1
                w = off
            out.append(w)
        return out, cut, resend

    @staticmethod
    def _note_changes(rt: SiteRuntime, ids: Sequence[str], wires: list[dispatch.Wire],
                      now_s: float) -> tuple[list[dispatch.Wire], BOOL]:
        """Keep the previous target where the new one is within the dead band (the firmware would re-tune, and a
        Whatsminer reboot, for nothing; the band loop absorbs the difference). Returns what to send and which
        setpoints are unchanged."""
        out: list[dispatch.Wire] = []
        same: list[bool] = []
        sent = rt.sent
        for device, wire in zip(ids, wires, strict=True):
            before = sent.get(device)
            if before is not None and before[0] == wire[0] and _close(before[1], wire[1]):
                out.append(before)
                same.append(True)
                continue
            sent[device] = wire
            rt.sent_at[device] = now_s
            out.append(wire)
            same.append(False)
        unchanged = np.asarray(same, dtype=bool)
        if not unchanged.all():
            rt.changed_at, rt.changed_real = now_s, time.time()
        return out, unchanged

    # ------------------------------------------------------------ energy and the ledger

    def _account(self, site: str, state: QuotaState, rt: SiteRuntime, now: datetime, watts: float,
                 tenant_w: dict[str, float]) -> None:
        """The hour's energy so far, and the ledger rows of every period that closed since the last run."""
        sample = PowerSample(now, watts)
        hour_start = hour_bounds(now, state.tz)[0]
        if rt.hour_start != hour_start:
            rt.hour_start = hour_start
            rt.hour_used_kwh = self._stored_kwh(site, hour_start, now) if rt.last is None else 0.0
        gap_ok = rt.last is not None and (now - rt.last.t).total_seconds() <= MAX_GAP_S
        if rt.last is not None and gap_ok:
            rt.hour_used_kwh += energy_kwh([rt.last, sample], max(rt.last.t, hour_start), now)
        cap = most_restrictive(now, constraints_at(state, now, energy=False))
        if rt.last is not None and gap_ok:
            rt.caps.append(CapWindow(rt.last.t, now, cap.limit_w, cap.binding.source.value, cap.binding.reason,
                                     cap.binding.reference))  # fmt: skip
        elif rt.last is not None:
            log.warning("quota %s: %.0f s without a loop run; that stretch is not integrated", site,
                        (now - rt.last.t).total_seconds())  # fmt: skip
            rt.samples, rt.tenant_samples, rt.caps = [], {}, []
        rt.samples.append(sample)
        for tenant in set(rt.tenant_samples) | set(tenant_w) | set(state.site.tenant_shares):
            rt.tenant_samples.setdefault(tenant, []).append(PowerSample(now, tenant_w.get(tenant, 0.0)))
        rt.period_limit_w = min(rt.period_limit_w, cap.limit_w)
        rt.last = sample
        self._close_periods(site, state, rt, now)

    def _stored_kwh(self, site: str, start: datetime, end: datetime) -> float:
        """After a restart: what the ledger already holds for this hour."""
        rows = ledger_store.rows(self.service.engine, site, "site", site, start, end, "hour")
        return sum(r["used_kwh"] for r in rows)

    def _close_periods(self, site: str, state: QuotaState, rt: SiteRuntime, now: datetime) -> None:
        period = timedelta(seconds=self.settings.ledger_period_s)
        if rt.period_start is None:
            rt.period_start = _floor(now, self.settings.ledger_period_s)
            return
        while rt.period_start + period <= now:
            a, b = rt.period_start, rt.period_start + period
            self._write_period(site, state, rt, a, b)
            rt.period_start = b
            rt.samples = _tail(rt.samples, b)
            rt.tenant_samples = {t: _tail(v, b) for t, v in rt.tenant_samples.items()}
            rt.caps = [c for c in rt.caps if c.end > b]
            rt.period_limit_w = math.inf

    def _write_period(self, site: str, state: QuotaState, rt: SiteRuntime, a: datetime, b: datetime) -> None:
        allot = _allotments(state, a)
        site_row = ledger_rows("site", site, rt.samples, allot, a, b, self.settings.ledger_period_s)
        tenant_rows = [r for tenant, samples in rt.tenant_samples.items() if tenant in state.site.tenant_shares
                       for r in ledger_rows("tenant", tenant, samples,
                                            tenant_allotments(allot, state.site.tenant_shares[tenant]), a, b,
                                            self.settings.ledger_period_s)]  # fmt: skip
        inside = [p for p in rt.points if a <= p.ts < b]
        mean_w = site_row[0].consumed_kwh * 3.6e6 / (b - a).total_seconds() if site_row else 0.0
        target = inside[-1].target_w if inside else 0.0
        limit = rt.period_limit_w if math.isfinite(rt.period_limit_w) else 0.0
        try:
            engine = self.service.write_engine
            ledger_store.write_minutes(engine, site, [*site_row, *tenant_rows], mean_w, limit, target)
            ledger_store.write_excursions(engine, site, excursions(_clip(rt.samples, a, b), rt.caps))
            if b == hour_bounds(b - timedelta(microseconds=1), state.tz)[1]:
                self._close_hour(site, state, b)
        except Exception:
            log.exception("quota %s: ledger rows for %s..%s not written", site, a.isoformat(), b.isoformat())

    def _close_hour(self, site: str, state: QuotaState, end: datetime) -> None:
        """An hour above its purchased energy is an excursion of its own (cause purchased_energy)."""
        start = end - timedelta(hours=1)
        rows = ledger_store.rows(self.service.engine, site, "site", site, start, end, "hour")
        found = energy_excursions([LedgerRow("site", site, start, end, r["allotted_kwh"], r["used_kwh"])
                                   for r in rows if _purchased(state, start) is not None])  # fmt: skip
        ledger_store.write_excursions(self.service.write_engine, site, found)

    def _log_dispatch(self, site: str, point: LoopPoint, budget_w: float, plan: Allocation, changed: int,
                      result: dispatch.DispatchResult, elapsed_ms: float, held_w: float, held: int) -> None:
        running = int(sum(1 for m in plan.mode if int(m) in (Mode.RUN, Mode.POWER_TARGET, Mode.PRESET)))
        log.info("quota %s: %s; %d of %d setpoints changed, %d running, planned %.1f kW (+%.1f kW held for %d "
                 "machines it cannot steer now), %d gateways (%.0f ms)", site, point.reason, changed, point.machines,
                 running, plan.total_power_w / 1e3, held_w / 1e3, held, len(result.commands), elapsed_ms)
        try:
            with Session(self.service.write_engine) as s:
                s.add(QuotaDispatch(site=site, ts=point.ts, action=point.action, reason=point.reason,
                                    limit_w=point.limit.limit_w, measured_w=point.power_w, budget_w=budget_w,
                                    planned_w=plan.total_power_w, machines=point.machines, running=running,
                                    changed=changed, gateways=len(result.commands),
                                    commands_json=json.dumps({"sent": result.commands, "failed": result.failed}),
                                    elapsed_ms=elapsed_ms))  # fmt: skip
                s.commit()
        except Exception:
            log.exception("quota %s: dispatch log row not written", site)


# ---------------------------------------------------------------- helpers


def _outlet(s: v1.MinerSample, pdus: dict[str, v1.PduSample]) -> v1.OutletSample | None:
    if s.outlet is None:
        return None
    pdu = pdus.get(s.outlet.pdu)
    found = None if pdu is None else next((o for o in pdu.outlets if o.index == s.outlet.outlet), None)
    return found or v1.OutletSample(index=s.outlet.outlet)


COMMITTED_S = 600.0  # a machine told to change within this long is assumed to come back at that setpoint


def _held_w(known: _Seen, sent: dispatch.Wire | None, measured: float | None, sent_at: float | None,
            now_s: float) -> float:
    """The power to reserve for a machine the loop cannot steer now (unreachable with its outlet on, or a model
    not in the catalogue). Left out of the plan, its draw was handed to other machines, which were woken and slept
    again when it came back.

    Told something recently, it is reserved at what that setpoint draws: a Whatsminer rebooting to apply a new
    limit reads full power (the last reading before it went down), then ~120 W while it boots, then its limit;
    reserving what it read would swing the others with it. Otherwise: what its outlet measures, or what it last
    reported. Whatever it really draws meanwhile is in the measured site power the band loop steers by."""
    spec = known.spec
    if sent is not None and spec is not None and sent_at is not None and now_s - sent_at <= COMMITTED_S:
        mode, target = sent
        by_mode = {dispatch.RUN: spec.max_power_w, dispatch.SLEEP: spec.sleep_w, dispatch.OFF: 0.0}
        return max(0.0, by_mode.get(mode, target or 0.0))
    return max(0.0, measured if measured is not None else (known.power_w or 0.0))


def _doing(s: v1.MinerSample, outlet: v1.OutletSample | None, available: bool) -> Now | None:
    if outlet is not None and outlet.state == v1.OutletState.OFF:
        return Now.OFF
    if not available:
        return None
    return Now.SLEEPING if s.state == v1.MinerState.SLEEPING else Now.RUNNING


DEAD_BAND_W = 25.0
DEAD_BAND = 0.015


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a == b
    return abs(a - b) <= max(DEAD_BAND_W, DEAD_BAND * max(a, b))


@functools.lru_cache(maxsize=4096)
def _machine_spec(model: str | None, power_target: bool, power_min_w: float | None,
                  floor_w: float | None) -> tuple[ModelSpec | None, bool]:
    """The model as this machine's firmware allows it: its reported minimum power target and any learnt floor
    (None: not in the catalogue). Cached on plain values: called for every machine on every run."""
    spec = catalog.lookup(model)
    if spec is None or not power_target:
        return spec, False
    lowest = max(power_min_w or 0.0, floor_w or 0.0)
    if lowest <= spec.min_power_w:
        return spec, True
    if lowest >= spec.max_power_w * 0.98:
        return spec, False  # no room for a target: full or idle
    return replace(spec, min_ratio=ratio_at_power(spec, lowest)), True


def _floor(t: datetime, period_s: int) -> datetime:
    epoch = t.timestamp()
    return datetime.fromtimestamp(epoch - epoch % period_s, t.tzinfo)


def _tail(samples: list[PowerSample], t: datetime) -> list[PowerSample]:
    """Samples from the last one at or before `t` on (the next period integrates from there)."""
    keep = [i for i, s in enumerate(samples) if s.t <= t]
    return samples[keep[-1]:] if keep else samples


def _clip(samples: list[PowerSample], a: datetime, b: datetime) -> list[PowerSample]:
    """The samples inside [a, b], with values interpolated at both ends."""
    out = [s for s in samples if a < s.t < b]
    for edge in (a, b):
        before = [s for s in samples if s.t <= edge]
        after = [s for s in samples if s.t >= edge]
        if before and after:
            p, q = before[-1], after[0]
            span = (q.t - p.t).total_seconds()
            w = p.watts if span <= 0 else p.watts + (q.watts - p.watts) * (edge - p.t).total_seconds() / span
            out.append(PowerSample(edge, w))
    return sorted(out, key=lambda s: s.t)


def _purchased(state: QuotaState, at: datetime) -> float | None:
    day, hour = local_day_and_hour(at, state.tz)
    bought = purchased_kwh(state, day, hour)
    return None if bought is None else bought[0]


def _allotments(state: QuotaState, at: datetime) -> list[Allotment]:
    start, end, _ = hour_bounds(at, state.tz)
    kwh = _purchased(state, at)
    return [] if kwh is None else [Allotment(start, end, kwh)]
