"""The quota loop's view of the live state: one pass over a site's devices gives the power readings, the tenants'
power, the machines it cannot steer this run (held at what they draw or will draw, quota.policies.held_w) and the
fleet as the allocator sees it (quota.fleet.FleetArrays).

A site can have 100,000 machines re-reporting every poll: what the loop derives from a sample is kept (`Seen`) while
the live state holds that same sample, the fleet's static columns are rebuilt only when they change, and between
runs the loop may prepare a whole view (`LiveView.look(..., interrupted=...)`, given up as soon as a run is asked
for)."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from controller.live import DeviceLive, LiveState
from controller.quota import dispatch
from kuat import catalog
from kuat.catalog import ModelSpec
from kuat.wire import v1
from quota.control import UNCERTAINTY, PowerReading
from quota.fleet import FleetArrays, Machine, Now
from quota.limits import QuotaState
from quota.policies import firmware_spec, held_w
from serverkit.db import Outage, unavailable

if TYPE_CHECKING:
    from controller.quota.memory import SiteRuntime

log = logging.getLogger(__name__)

HOST = "host"  # the allocator's owner for every machine not under a tenant contract
INTERRUPT_EVERY = 4096  # machines between two looks at whether a run was asked for


@dataclass(slots=True)
class Seen:
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
    boards: bool  # single hash boards can be switched (a capability the matrix verified)

    @classmethod
    def current(cls, seen: dict[str, Seen], d: DeviceLive, floor: float | None) -> Seen:
        """The record of `d` in `seen`, derived again only when its sample or its learnt floor changed."""
        known = seen.get(d.device_id)
        if known is None or known.sample is not d.sample or known.floor != floor:
            known = seen[d.device_id] = cls.of(d, floor)
        return known

    @classmethod
    def of(cls, d: DeviceLive, floor: float | None) -> Seen:
        s = d.sample
        assert isinstance(s, v1.MinerSample)
        caps = s.capabilities
        spec, power_target = machine_spec(s.model, caps.power_target, caps.power_min_w, floor)
        current = s.power_limit_w if power_target and s.power_limit_w is not None else math.nan
        return cls(s, floor, spec, power_target, caps.sleep, caps.power_target_reboots, s.available,
                   s.power_source == v1.PowerSource.PDU, s.outlet is not None, s.state == v1.MinerState.SLEEPING,
                   s.power_w, s.power_source, current, caps.boards)


@dataclass
class SiteView:
    """What one run sees of a site."""

    readings: list[PowerReading] = field(default_factory=list)
    watts: dict[str, float | None] = field(default_factory=dict)  # device -> measured W (metered devices)
    tenant_w: dict[str, float] = field(default_factory=dict)
    gateway_of: dict[str, str] = field(default_factory=dict)
    oldest_reading: float = math.inf  # wall-clock poll time of the oldest metered reading
    held_w: float = 0.0  # what machines the loop cannot steer this run draw or will draw (quota.policies.held_w)
    held_unseen_w: float = 0.0  # the part of it no reading in this run shows (unmetered, or metered below it)
    held: int = 0
    fleet: FleetArrays = field(default_factory=lambda: FleetArrays.from_machines([]))
    dark_ids: list[str] = field(default_factory=list)  # no right to power and outside the allocator's fleet
    dark_wires: list[dispatch.Wire] = field(default_factory=list)

    def hold(self, watts: float, measured_w: float | None) -> None:
        """Reserve `watts` for a machine the loop cannot steer. What its reading (`measured_w`, None: unmetered)
        shows is already in the measured site power; the rest is not: a Whatsminer booting to apply its new limit
        reads ~120 W at its outlet and will draw its limit within a minute, so steering by the reading would
        raise the others' budget into the power it is about to take back."""
        self.held_w += watts
        self.held += 1
        self.held_unseen_w += max(0.0, watts - (measured_w or 0.0))


class LiveView:
    """Reads the live state for the loop. `rules`: site -> operator rules per device (protected, priority);
    `noncompliant`: the registry's violations (re-read every `compliance_refresh_s`)."""

    def __init__(self, live: LiveState, rules: Callable[[str], Mapping[str, Any]],
                 noncompliant: Callable[[], set[str]] | None, compliance_refresh_s: float, stale_s: float,
                 outage: Outage | None = None) -> None:
        """`outage`: where a database outage is said once (the loop's)."""
        self.live = live
        self.outage = outage or Outage("quota view", log)
        self.rules = rules
        self.noncompliant = noncompliant
        self.compliance_refresh_s = compliance_refresh_s
        self.stale_s = stale_s  # a PDU-metered figure counts this long, even while the miner does not answer
        self._dark: set[str] = set()
        self._rules: dict[str, Mapping[str, Any]] = {}  # the operator rules last read per site
        self._dark_read = -math.inf
        self._unknown_models: set[str] = set()
        # fail-closed power (controller.registry_link.power.PowerGate): per run, a test of (device, sample);
        # None: no registry link configured
        self.rights: Callable[[], Callable[[str, v1.MinerSample], bool]] | None = None

    def devices(self, site: str) -> tuple[list[DeviceLive], dict[str, v1.PduSample]]:
        miners, pdus = [], {}
        for d in self.live.device_list():
            if d.site != site:
                continue
            if d.kind == "miner":
                miners.append(d)
            elif isinstance(d.sample, v1.PduSample):
                pdus[d.device_id] = d.sample
        return miners, pdus

    def dark(self) -> set[str]:
        """The machines the registry finds in violation (kept when it cannot be read)."""
        if self.noncompliant is None:
            return set()
        if time.monotonic() - self._dark_read >= self.compliance_refresh_s:
            try:
                self._dark = set(self.noncompliant())
                self._dark_read = time.monotonic()
            except Exception as exc:
                if not unavailable(exc):
                    log.exception("cannot read the registry's violations; keeping %d known", len(self._dark))
                else:
                    self.outage.failed(exc, f"reading the registry's violations (keeping {len(self._dark)} known)")
        return self._dark

    def site_rules(self, site: str) -> Mapping[str, Any]:
        """The operator rules of the site's machines (protected, priority); while the database is out, the last
        ones read (they change only through the API, which is out with it)."""
        try:
            self._rules[site] = self.rules(site)
        except Exception as exc:
            if not unavailable(exc) or site not in self._rules:
                raise
            self.outage.failed(exc, f"reading the machine rules of {site}")
        return self._rules[site]

    def refresh_compliance(self) -> None:
        """Read the registry's violations on the next run (after a compliance check)."""
        self._dark_read = -math.inf

    @staticmethod
    def warm(rt: SiteRuntime, miners: list[DeviceLive], interrupted: Callable[[], bool]) -> bool:
        """Derive `Seen` for telemetry that arrived since the last run; False if interrupted."""
        seen, floors = rt.seen, rt.floors
        for k, d in enumerate(miners):
            if k % 2048 == 0 and interrupted():
                return False
            Seen.current(seen, d, floors.get(d.device_id) if floors else None)
        return True

    def look(self, site: str, rt: SiteRuntime, real_now: float, now_s: float, state: QuotaState,
             interrupted: Callable[[], bool] | None = None) -> SiteView | None:
        """One pass over the site's live devices: power readings, tenants' power, and the fleet as the allocator
        sees it. The static columns (models, capabilities, owners, rules) are rebuilt only when they change; what
        machines are doing now is refreshed every run. For the allocator every owner without a tenant contract is
        the host (subtype I): shares are the tenants'; the rest, unassigned machines included, is one pool.
        None only when `interrupted` said so."""
        miners, pdus = self.devices(site)
        dark = self.dark()
        powered = self.rights() if self.rights is not None else None
        rules = self.site_rules(site)
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
        for k, d in enumerate(miners):
            if interrupted is not None and k % INTERRUPT_EVERY == 0 and interrupted():
                return None
            device = d.device_id
            known = Seen.current(seen, d, floors.get(device) if floors else None)
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
                    _keep_dark(view, d, known, pdus, watts.get(device))
                    continue
                dark_now = True
            else:
                dark_now = device in dark
            if known.spec is None:
                self._unknown(site, d, known.sample)
                view.hold(_held(known, None, watts.get(device), None, now_s), watts.get(device))
                continue
            if known.has_outlet:
                outlet = _outlet(known.sample, pdus)
                doing = _doing(known.sample, outlet, available)
                switchable = outlet is not None and outlet.switchable
            else:
                doing = (Now.SLEEPING if known.sleeping else Now.RUNNING) if available else None
                switchable = False
            if doing is None:  # unreachable with its outlet on (or unknown): nothing we send would arrive
                held = _held(known, rt.sent.get(device), watts.get(device), rt.sent_at.get(device), now_s)
                view.hold(held, watts.get(device))
                continue
            rule = rules.get(device) if rules else None
            if known.reboots:
                rt.reboots.add(device)
            statics.append((device, known.spec, known.power_target, known.sleep, switchable,
                            d.owner if d.owner in tenants else HOST, bool(rule and rule.protected),
                            rule.priority if rule else 0, known.reboots, known.boards))  # fmt: skip
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
        view.fleet = fleet_of(rt, statics, doing_now, since, current, compliant)
        return view

    def _unknown(self, site: str, d: DeviceLive, s: v1.MinerSample) -> None:
        if s.model not in self._unknown_models:
            self._unknown_models.add(str(s.model))
            log.warning("quota %s: model %r of %s is not in the catalogue; it is not dispatched", site, s.model,
                        d.device_id)  # fmt: skip


def _keep_dark(view: SiteView, d: DeviceLive, known: Seen, pdus: dict[str, v1.PduSample],
               measured: float | None) -> None:
    """A machine without the right to power that the allocator cannot steer (model unknown, not answering): cut at
    its outlet where it can be switched (the PDU answers for it), else told to sleep (it applies it when it answers
    again). What it draws meanwhile is held out of the budget."""
    outlet = _outlet(known.sample, pdus) if known.has_outlet else None
    off = outlet is not None and outlet.switchable
    view.dark_ids.append(d.device_id)
    view.dark_wires.append((dispatch.OFF, None) if off else (dispatch.SLEEP, None))
    view.gateway_of[d.device_id] = d.gateway
    view.hold(0.0 if measured is None else measured, measured)


def fleet_of(rt: SiteRuntime, statics: list[tuple[Any, ...]], doing: list[Now], since: list[float],
             current: list[float], compliant: list[bool]) -> FleetArrays:
    """The allocator's fleet: the static columns rebuilt only when they changed, what machines do now each run."""
    if statics != rt.statics or rt.base_fleet is None:
        machines = [Machine(i, spec, owner=owner, power_target=pt, sleep=sleep, outlet_switchable=off,
                            protected=prot, priority=prio, reboots_on_power_change=reboots, boards=boards)
                    for i, spec, pt, sleep, off, owner, prot, prio, reboots, boards in statics]  # fmt: skip
        rt.base_fleet, rt.statics = FleetArrays.from_machines(machines), statics
    return replace(rt.base_fleet, now=np.asarray(doing, dtype=np.int64),
                   since_change=np.asarray(since, dtype=np.float64),
                   current_w=np.asarray(current, dtype=np.float64), compliant=np.asarray(compliant, dtype=bool))


def _held(known: Seen, sent: dispatch.Wire | None, measured: float | None, sent_at: float | None,
          now_s: float) -> float:
    """quota.policies.held_w on what the loop knows of the machine."""
    committed = None if sent is None else (dispatch.mode_of(sent[0]), sent[1])
    return held_w(known.spec, committed, None if sent_at is None else now_s - sent_at, measured, known.power_w)


def _outlet(s: v1.MinerSample, pdus: dict[str, v1.PduSample]) -> v1.OutletSample | None:
    if s.outlet is None:
        return None
    pdu = pdus.get(s.outlet.pdu)
    found = None if pdu is None else next((o for o in pdu.outlets if o.index == s.outlet.outlet), None)
    return found or v1.OutletSample(index=s.outlet.outlet)


def _doing(s: v1.MinerSample, outlet: v1.OutletSample | None, available: bool) -> Now | None:
    if outlet is not None and outlet.state == v1.OutletState.OFF:
        return Now.OFF
    if not available:
        return None
    return Now.SLEEPING if s.state == v1.MinerState.SLEEPING else Now.RUNNING


@functools.lru_cache(maxsize=4096)
def machine_spec(model: str | None, power_target: bool, power_min_w: float | None,
                 floor_w: float | None) -> tuple[ModelSpec | None, bool]:
    """quota.policies.firmware_spec of the catalogue's model, cached on plain values: called for every machine on
    every run."""
    return firmware_spec(catalog.lookup(model), power_target, power_min_w, floor_w)
