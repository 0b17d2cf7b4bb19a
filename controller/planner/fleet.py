"""Tomorrow's machines of a site, from the live state and the last days' minute rollups (planner.outlook).

A machine is taken as the quota loop takes it (its catalogue model, its firmware's power target and floor, sleep,
a switched outlet, the owner as a tenant or the host, the operator's protection, registry compliance). What the
planner adds: a machine not answering now is out tomorrow; a degraded one hashes with the boards it has; per hour
of the day its observed hash per watt against its model (thermal derating) and whether it answered then.
The rollups are read as one grouped query per hour of the last `derate_days` days (per device: sums of power, hash
rate and answered samples), so a 100,000-machine site costs 24 x days small queries, not millions of rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta

from sqlalchemy import Engine, and_, case, func, select

from controller.history import device_minute
from controller.live import DeviceLive, LiveState
from kuat import catalog
from kuat.catalog import ModelSpec, ratio_at_power
from kuat.wire import v1
from planner.outlook import HOURS, MachineOutlook, Observation, board_factor, derating
from quota.fleet import Machine
from quota.timebase import hour_window

HOST = "host"


def machine_of(d: DeviceLive, s: v1.MinerSample, pdus: Mapping[str, v1.PduSample], tenants: Mapping[str, float],
               protected: bool, compliant: bool) -> Machine | None:
    """The allocator's view of one miner (None: its model is not in the catalogue, the loop does not steer it)."""
    spec = catalog.lookup(s.model)
    if spec is None:
        return None
    caps = s.capabilities
    target = caps.power_target
    if target and caps.power_min_w and caps.power_min_w > spec.min_power_w:
        floored = _floored(spec, caps.power_min_w)
        if floored is None:
            target = False
        else:
            spec = floored
    switchable = False
    if s.outlet is not None:
        pdu = pdus.get(s.outlet.pdu)
        outlet = None if pdu is None else next((o for o in pdu.outlets if o.index == s.outlet.outlet), None)
        switchable = outlet.switchable if outlet is not None else True
    return Machine(d.device_id, spec, owner=d.owner if d.owner in tenants else HOST, power_target=target,
                   sleep=caps.sleep, outlet_switchable=switchable, protected=protected, compliant=compliant,
                   reboots_on_power_change=caps.power_target_reboots)  # fmt: skip


def _floored(spec: ModelSpec, lowest_w: float) -> ModelSpec | None:
    if lowest_w >= spec.max_power_w * 0.98:
        return None  # no room for a target: full or idle
    return replace(spec, min_ratio=ratio_at_power(spec, lowest_w))


def _fault(s: v1.MinerSample) -> tuple[float, str | None]:
    if s.state != v1.MinerState.DEGRADED or not s.boards:
        return 1.0, None
    hashing = sum(1 for b in s.boards if (b.hashrate_ths or 0) > 0)
    return board_factor(hashing, len(s.boards)), f"degraded: {hashing} of {len(s.boards)} boards hash"


def observations(engine: Engine, site: str, day: date, days: int) -> dict[str, list[Observation]]:
    """Per device, one observation per hour of each of the `days` days before `day` (Astana hours)."""
    hashing = and_(device_minute.c.hashrate_ths_sum > 0, device_minute.c.power_samples > 0,
                   device_minute.c.hashrate_samples > 0)
    q_cols = [
        device_minute.c.device_id,
        func.sum(case((hashing, device_minute.c.power_w_sum), else_=0.0)),
        func.sum(case((hashing, device_minute.c.power_samples), else_=0)),
        func.sum(case((hashing, device_minute.c.hashrate_ths_sum), else_=0.0)),
        func.sum(case((hashing, device_minute.c.hashrate_samples), else_=0)),
        func.sum(device_minute.c.available_samples),
        func.sum(device_minute.c.samples),
    ]
    out: dict[str, list[Observation]] = {}
    with engine.connect() as conn:
        for back in range(1, days + 1):
            d = day - timedelta(days=back)
            for hour in range(1, HOURS + 1):
                a, b = hour_window(d, hour)
                rows = conn.execute(select(*q_cols).where(
                    device_minute.c.site == site, device_minute.c.kind == "miner", device_minute.c.minute >= a,
                    device_minute.c.minute < b).group_by(device_minute.c.device_id)).all()  # fmt: skip
                for dev, p_sum, p_n, h_sum, h_n, avail, samples in rows:
                    power = p_sum / p_n if p_n else None
                    ths = h_sum / h_n if h_n else None
                    share = avail / samples if samples else 0.0
                    out.setdefault(dev, []).append(Observation(hour, power, ths, share))
    return out


def site_outlooks(live: LiveState, available: Callable[[DeviceLive, float], bool], site: str,
                  tenants: Mapping[str, float], protected: set[str], noncompliant: set[str],
                  history: Mapping[str, list[Observation]], min_available: float,
                  now: float | None = None) -> tuple[list[MachineOutlook], list[str]]:
    """Every miner of `site` as an outlook for tomorrow, and notes on machines the planner cannot use."""
    now = time.time() if now is None else now
    miners, pdus = [], {}
    for d in live.device_list():
        if d.site != site:
            continue
        if isinstance(d.sample, v1.MinerSample):
            miners.append(d)
        elif isinstance(d.sample, v1.PduSample):
            pdus[d.device_id] = d.sample
    outlooks, notes = [], []
    unknown = 0
    for d in sorted(miners, key=lambda x: x.device_id):
        s = d.sample
        assert isinstance(s, v1.MinerSample)
        m = machine_of(d, s, pdus, tenants, d.device_id in protected, d.device_id not in noncompliant)
        if m is None:
            unknown += 1
            continue
        if not available(d, now):
            outlooks.append(MachineOutlook(m, out="not answering now"))
            continue
        factor, note = _fault(s)
        if factor < 1.0:
            m = replace(m, hash_factor=m.hash_factor * factor)
        obs = history.get(d.device_id)
        hash_by_hour, avail_by_hour = derating(m.spec, obs, min_available) if obs else (None, None)
        outlooks.append(MachineOutlook(m, hash_by_hour, avail_by_hour, note=note))
    if unknown:
        notes.append(f"{unknown} machines of models not in the catalogue are left out (the quota loop does not "
                     "steer them either)")
    out = sum(1 for o in outlooks if o.out is not None)
    if out:
        notes.append(f"{out} machines not answering now are assumed down tomorrow")
    degraded = sum(1 for o in outlooks if o.note)
    if degraded:
        notes.append(f"{degraded} degraded machines count with the boards that hash")
    return outlooks, notes

