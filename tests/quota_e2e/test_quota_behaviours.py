"""End to end, machine by machine: the quota loop's behaviours as the simulated plant shows them.

The real controller (quota loop, scheduler, HTTP API) in process, a real mosquitto, the real agent against the
simulated small site (20 miners of five models, three PDU families). Each test drives the system through the API and
checks the simulator's own state (phases, watts, hash rates, outlets), not only what the controller believes:

1. staggered restore: after a deep cap is lifted, at most `max_wakes` machines start waking per loop run, the most
   efficient first;
2. operator rules: a protected machine is never slept nor cut, and a high-priority one is served before every machine
   of priority 0 (quota.allocate serves priority groups high to low, each keeping the lower groups' floors) even more
   efficient ones, while the site stays under the cap;
3. a machine that ignores its commands is cut at its PDU outlet; the site holds the cap; the lift powers it again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import statistics
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kuat import catalog, clock
from kuat.wire import v1
from quota.policies import MAX_ATTEMPTS
from quota.timebase import local_day_and_hour
from sim.physics import Fault, Phase
from sim.runtime import SimMiner, SimOutlet
from tests.agent.test_e2e_sim import Sim
from tests.quota_e2e.support import GRID, OPERATOR, QUOTA, call, held_under, quota_site, sim_power, until
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MAX_WAKES = 3
ASLEEP = (Phase.SLEEPING, Phase.FALLING_ASLEEP)


@dataclass(frozen=True)
class Batch:
    """One setpoint batch as it crossed the broker: one loop run for the site's single gateway."""

    issued: float  # the controller's time stamp on the command (before any agent could act on it)
    modes: dict[str, v1.SetpointMode]


class SetpointTap:
    """Subscribes to the gateway's command topic and keeps every setpoint batch the loop publishes."""

    def __init__(self, port: int, site: str) -> None:
        self.batches: list[Batch] = []
        self._lock = threading.Lock()
        self._topic = v1.topic(site, "gw1", "cmd")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tap-{site}")
        self.client.on_connect = lambda c, *_: c.subscribe(self._topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        cmd = v1.Command.model_validate_json(msg.payload)
        if cmd.kind == v1.CommandKind.SETPOINTS:
            with self._lock:
                self.batches.append(Batch(cmd.ts.timestamp(), {sp.device_id: sp.mode for sp in cmd.setpoints}))

    def since(self, t: float) -> list[Batch]:
        with self._lock:
            return [b for b in self.batches if b.issued >= t]

    def last_before(self, t: float) -> Batch:
        with self._lock:
            return [b for b in self.batches if b.issued < t][-1]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@asynccontextmanager
async def _site(sim: Sim, broker: Mosquitto, tmp_path: Path, **quota: Any) -> AsyncIterator[dict[str, Any]]:
    """Every miner registered, a 100 kW connection limit and 90 kWh bought every hour (both above what the site
    draws), the loop's `quota` settings; ready once the controller sees the whole fleet and every miner mines."""
    async with quota_site(sim, broker, tmp_path, {**QUOTA, **quota}, dark=False) as s:
        services, site = s["svc"], s["site"]
        call(s["client"], "PUT", f"{site}/limits", OPERATOR, {"connection_kw": 100})
        today = local_day_and_hour(clock.now())[0]
        call(s["client"], "POST", f"{site}/schedules", GRID, {"day": today.isoformat(), "hours_kwh": [90.0] * 24})
        await until(lambda: services.fleet.site_totals(site) != [] and
                    services.fleet.site_totals(site)[0]["miners_available"] >= 20, "the fleet live in the controller")
        await until(lambda: all(m.phys.phase() == Phase.MINING for m in sim.server.site.miners), "every miner mining")
        yield s


@pytest.fixture
async def restoring_site(sim: Sim, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with _site(sim, broker, tmp_path, max_wakes=MAX_WAKES, min_on_s=1.0, min_off_s=1.0,
                         straggler_settle_s=60.0) as s:  # fmt: skip
        yield s


@pytest.fixture
async def ruled_site(sim: Sim, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with _site(sim, broker, tmp_path, min_on_s=1.0, min_off_s=1.0) as s:
        yield s


@pytest.fixture
async def straggling_site(sim: Sim, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with _site(sim, broker, tmp_path, straggler_settle_s=2.0, min_on_s=1.0, min_off_s=1.0) as s:
        yield s


def j_per_th(m: SimMiner) -> float:
    spec = catalog.lookup(m.d.model)
    assert spec is not None, m.d.model
    return spec.j_per_th


def device_id(m: SimMiner) -> str:
    """The miner's id on the wire and in the controller (its MAC, from the site file)."""
    assert m.d.mac is not None, f"{m.ip} has no MAC in the site file"
    return m.d.mac


def hashing(m: SimMiner) -> bool:
    return m.phys.hashrate_ths() > 0


def outlet_of(sim: Sim, m: SimMiner) -> SimOutlet:
    assert m.d.pdu is not None and m.d.outlet is not None, f"{device_id(m)} has no outlet"
    pdu = next(p for p in sim.server.site.pdus if p.d.id == m.d.pdu)
    return pdu.outlet(m.d.outlet)


def by_model(sim: Sim, model: str) -> list[SimMiner]:
    return [m for m in sim.server.site.miners if m.d.model == model]


def emergency(client: Any, site: str, cap_w: float, reference: str) -> int:
    order = call(client, "POST", f"{site}/emergencies", GRID, {"reference": reference, "cap_mw": cap_w / 1e6})
    return int(order["id"])


async def watch_wakes(miners: list[SimMiner], woke: dict[str, float]) -> None:
    """Every 0.1 s: the wall time each of `miners` first leaves its sleep (the simulator's phase)."""
    while True:
        now = time.time()
        for m in miners:
            if device_id(m) not in woke and m.phys.phase() not in ASLEEP:
                woke[device_id(m)] = now
        await asyncio.sleep(0.1)


async def watch_phases(m: SimMiner, seen: set[Phase]) -> None:
    """Every 0.1 s: every phase `m` goes through."""
    while True:
        seen.add(m.phys.phase())
        await asyncio.sleep(0.1)


def wake_waves(batches: list[Batch], before: Batch) -> list[list[str]]:
    """Per batch, the machines whose setpoint turned from sleep (in the previous batch) to running."""
    waves, prev = [], before.modes
    for b in batches:
        waves.append([d for d, mode in b.modes.items() if prev.get(d) == v1.SetpointMode.SLEEP
                      and mode in (v1.SetpointMode.RUN, v1.SetpointMode.POWER_TARGET)])  # fmt: skip
        prev = b.modes
    return waves


async def test_lift_restores_machines_staggered_most_efficient_first(restoring_site: dict[str, Any]) -> None:
    s = restoring_site
    site, client, sim = s["site"], s["client"], s["sim"]
    miners: list[SimMiner] = sim.server.site.miners
    tap = SetpointTap(s["broker"].port, site)
    try:
        cap_w = 3_000.0  # one machine's worth: the rest sleep
        order = emergency(client, site, cap_w, "KEGOC-STAGGER")
        await held_under(sim, cap_w, "site power under the deep cap")
        await until(lambda: sum(m.phys.phase() == Phase.SLEEPING for m in miners) >= 3 * MAX_WAKES + 1,
                    "most machines asleep")  # fmt: skip
        await asyncio.sleep(2.5)  # past min_off_s: every sleeper may wake at the lift; the tap has batches
        lift_at = time.time()
        before = tap.last_before(lift_at)
        asleep = [m for m in miners if m.phys.phase() == Phase.SLEEPING
                  and before.modes.get(device_id(m)) == v1.SetpointMode.SLEEP]  # fmt: skip
        assert len(asleep) >= 3 * MAX_WAKES + 1, f"only {len(asleep)} machines asleep under the cap"
        woke: dict[str, float] = {}
        watching = asyncio.create_task(watch_wakes(asleep, woke))
        try:
            call(client, "POST", f"emergencies/{order}/lift", GRID)
            await until(lambda: len(woke) == len(asleep), "every sleeper woken after the lift", 60)
        finally:
            watching.cancel()
        batches = tap.since(lift_at)
    finally:
        tap.close()

    waves = wake_waves(batches, before)
    for b, wave in zip(batches, waves, strict=True):  # the controller's side: the ramp limit per loop run
        assert len(wave) <= MAX_WAKES, f"batch at {b.issued:.2f} woke {len(wave)} machines: {wave}"
    cause = {dev: (k, batches[k].issued) for k, wave in enumerate(waves) for dev in wave}
    by_batch: dict[int, list[SimMiner]] = {}
    for m in asleep:  # the plant's side: each sleeper woke after the run that ordered it, never before
        dev = device_id(m)
        assert dev in cause, f"{dev} woke without a setpoint telling it to"
        k, issued = cause[dev]
        assert woke[dev] >= issued, f"{dev} woke {issued - woke[dev]:.2f} s before it was told to"
        by_batch.setdefault(k, []).append(m)
    groups = [by_batch[k] for k in sorted(by_batch)]
    assert all(len(g) <= MAX_WAKES for g in groups)
    assert len(groups) >= 3, f"the restore came in {len(groups)} waves"
    eff = [[j_per_th(m) for m in g] for g in groups]
    print("\nwake waves (J/TH):", " | ".join(", ".join(f"{e:.1f}" for e in sorted(g)) for g in eff))
    assert statistics.mean(eff[0]) < statistics.mean(eff[-1])
    for earlier, later in itertools.pairwise(eff):  # most efficient first, wave after wave
        assert max(earlier) <= min(later) + 1e-9, f"a less efficient machine woke before a better one: {eff}"


async def test_protected_and_priority_machines_under_a_deep_cap(ruled_site: dict[str, Any]) -> None:
    s = ruled_site
    site, client, sim, svc = s["site"], s["client"], s["sim"], s["svc"]
    m30s = by_model(sim, "M30S")  # the least efficient model on the site (38 J/TH)
    assert len(m30s) >= 4 and all(j_per_th(m) == max(j_per_th(x) for x in sim.server.site.miners) for m in m30s)
    protected, favoured, peers = m30s[0], m30s[1], m30s[2:]

    cap_w = 10_000.0  # deep: a machine at its lowest power target is more efficient than at full, so M30S would
    # otherwise run throttled under a shallower cap
    emergency(client, site, cap_w, "KEGOC-RULES")
    await held_under(sim, cap_w, "site power under the cap")
    # without rules, the cap sleeps both (least efficient first)
    await until(lambda: not any(hashing(m) for m in m30s), "every M30S slept by the cap")

    call(client, "PUT", f"{site}/machines/{device_id(protected)}", OPERATOR, {"protected": True})
    call(client, "PUT", f"{site}/machines/{device_id(favoured)}", OPERATOR, {"priority": 5})
    await until(lambda: protected.phys.phase() == Phase.MINING and favoured.phys.phase() == Phase.MINING,
                "the protected and the favoured machine mining again", 40)  # fmt: skip
    await held_under(sim, cap_w, "site power under the cap with the rules", hold_s=3.0)
    assert hashing(protected) and hashing(favoured)
    assert not any(hashing(m) for m in peers), "an M30S without a rule hashes under the cap"
    # priority outranks efficiency: the favoured machine runs at full while better machines of priority 0 sleep
    spec = catalog.lookup("M30S")
    assert spec is not None
    assert favoured.phys.hashrate_ths() >= 0.9 * spec.nominal_ths
    better_asleep = [m for m in sim.server.site.miners if m not in m30s and not hashing(m)]
    assert better_asleep and all(j_per_th(m) < j_per_th(favoured) for m in better_asleep)
    assert sim_power(sim) <= cap_w
    rules = {e["object_id"] for e in svc.quota.input_log(site) if e["kind"] == "rule"}
    assert {device_id(protected), device_id(favoured)} <= rules

    # deeper still: the protected machine is never slept nor cut (a reboot to apply a lower target is allowed);
    # the favoured one still runs at full, its peers stay asleep
    phases: set[Phase] = set()
    watching = asyncio.create_task(watch_phases(protected, phases))
    try:
        deeper_w = 7_000.0
        emergency(client, site, deeper_w, "KEGOC-RULES-DEEPER")
        await held_under(sim, deeper_w, "site power under the deeper cap", hold_s=3.0)
    finally:
        watching.cancel()
    assert not phases & {Phase.SLEEPING, Phase.FALLING_ASLEEP, Phase.OFF}, f"the protected machine went {phases}"
    assert outlet_of(sim, protected).on and protected.phys.power_w() > 0
    assert favoured.phys.hashrate_ths() >= 0.9 * spec.nominal_ths
    assert not any(hashing(m) for m in peers)


async def test_machine_ignoring_commands_is_cut_at_its_outlet(straggling_site: dict[str, Any],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """What the controller put on the wire for the deaf machine, in order: its setpoint re-sent (`reapply`) at
    least MAX_ATTEMPTS times, then outlet_off; the machine's outlet off and its power zero. (Counted from the
    batches, not from log lines: under load other slow machines share the loop's one summary line.)"""
    s = straggling_site
    site, client, sim, svc = s["site"], s["client"], s["sim"], s["svc"]
    deaf = by_model(sim, "M30S")[0]  # least efficient: the cap sleeps it
    outlet = outlet_of(sim, deaf)
    sent_to_deaf: list[tuple[str, bool]] = []  # (mode, reapply) of every batch item for it, in publishing order
    loop = svc.quota.loop
    send = loop.send

    def recording(site_: str, gateway: str, payload: bytes, lease_s: float, issuer: str | None,
                  **fenced: Any) -> object:
        sent_to_deaf.extend((item["mode"], bool(item.get("reapply"))) for item in json.loads(payload)
                            if item["device_id"] == device_id(deaf))  # fmt: skip
        return send(site_, gateway, payload, lease_s, issuer, **fenced)

    loop.send = recording
    sim.server.site.inject(deaf.ip, Fault.IGNORE_COMMANDS.value)
    caplog.set_level(logging.INFO, logger="sim.miners")  # the simulated firmware says what it ignored

    cap_w = 10_000.0
    order = emergency(client, site, cap_w, "KEGOC-DEAF")
    await until(lambda: not outlet.on and deaf.phys.power_w() == 0, "the deaf machine cut at its outlet", 60)
    ignored = [r.getMessage() for r in caplog.records if r.name.startswith("sim.miners")
               and r.getMessage().startswith(f"{deaf.ip}: ") and "acknowledged and ignored" in r.getMessage()]
    assert ignored, "no command reached the machine before it was cut (it ignored none)"
    assert not hashing(deaf) and deaf.phys.phase() == Phase.OFF
    modes = [mode for mode, _ in sent_to_deaf]
    assert v1.SetpointMode.OUTLET_OFF.value in modes, f"the controller never sent outlet_off: {sent_to_deaf}"
    before_cut = sent_to_deaf[: modes.index(v1.SetpointMode.OUTLET_OFF.value)]
    resent = [mode for mode, reapply in before_cut if reapply]
    assert len(resent) >= MAX_ATTEMPTS, f"cut after {len(resent)} re-sends: {sent_to_deaf}"
    assert set(resent) <= {v1.SetpointMode.SLEEP.value, v1.SetpointMode.POWER_TARGET.value}
    print(f"\nthe deaf machine ignored {len(ignored)} commands; the loop re-sent {len(resent)} times, then cut it")
    await held_under(sim, cap_w, "site power under the cap with the deaf machine cut", hold_s=3.0)

    call(client, "POST", f"emergencies/{order}/lift", GRID)
    await until(lambda: outlet.on, "the deaf machine's outlet back on after the lift", 30)
    await until(lambda: deaf.phys.phase() == Phase.MINING and hashing(deaf), "the deaf machine mining again", 40)
