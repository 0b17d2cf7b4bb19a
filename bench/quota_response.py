"""How fast an emergency cap takes effect, measured end to end.

`fleet` (default): an in-process controller (real services, SQLite, registry, a real mosquitto) with a live fleet of
100,000 machines in 100 gateways (stock Antminer, LuxOS, Whatsminer mix). An emergency cap is pushed through the
HTTP API (FastAPI app in process); a separate MQTT subscriber, standing in for the agents, counts the setpoints of
the batches issued after the push. Printed: push -> API answer, push -> loop dispatch done (its own timing), push
-> every machine's setpoint received from the broker. Baseline (the issue's goal): < 1 s for 100,000 machines.

`site`: the simulated container site (sim/sites/container-1000.toml, 1,000 miners on real sockets: `kuat sim run`
and one `kuat agent run` per gateway as processes, a real mosquitto), the controller in process. An emergency cap
(half the measured power) is pushed through the API; the simulator's own meter (its control API) is read every
0.25 s. Printed: push -> setpoints published, push -> the simulator's power under the cap (and held), next to the
baseline: one agent poll interval + the firmware's actuation time (the simulated sleep / ramp times).

Run:  .venv/bin/python bench/quota_response.py fleet [--machines 100000] [--repeat 3]
      .venv/bin/python bench/quota_response.py site  [--poll-s 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.app import create_app  # noqa: E402
from controller.quota.wiring import start_quota  # noqa: E402
from controller.runtime import Services, build_services, tune_gc_for_ingest  # noqa: E402
from controller.settings import load_settings  # noqa: E402
from kuat import clock  # noqa: E402
from kuat.catalog import MODELS  # noqa: E402
from kuat.wire import v1  # noqa: E402
from quota.timebase import local_day_and_hour  # noqa: E402
from tests.support.servers import Mosquitto  # noqa: E402

OPERATOR = "bench-op-" + "o" * 24
GRID = "bench-grid-" + "g" * 24
KEYS = [{"name": "bench", "role": "operator", "key": OPERATOR}, {"name": "grid", "role": "grid", "key": GRID}]
SITE = "bench"
# (model, firmware, capabilities): the same mix as the simulated sites
MIX = [
    ("S19j Pro", "bmminer 1.0.0", v1.Capabilities(sleep=True)),
    ("S21", "bmminer 1.0.0", v1.Capabilities(sleep=True)),
    ("S19j Pro", "LuxOS 2024.5.1", v1.Capabilities(sleep=True, power_target=True, power_min_w=1120, power_max_w=3050)),
    ("S19 XP", "LuxOS 2024.5.1", v1.Capabilities(sleep=True, power_target=True, power_min_w=968, power_max_w=3010)),
    ("M30S", "btminer 3.1", v1.Capabilities(sleep=True, power_target=True, power_target_reboots=True)),
]


# ---------------------------------------------------------------- helpers


class SetpointCounter:
    """An MQTT client on every gateway's cmd topic: which devices got a setpoint in a batch issued after `since`."""

    def __init__(self, port: int, site: str) -> None:
        self.since = 0.0
        self.devices: set[str] = set()
        self.latest: dict[str, dict[str, Any]] = {}  # device -> its newest setpoint (the stand-in plant follows it)
        self.last_at = 0.0
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-counter-{random.random()}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{v1.TOPIC_ROOT}/{site}/gw/+/cmd", qos=1)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("the counter could not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        if body.get("kind") != "setpoints" or clock.now().fromisoformat(body["ts"]).timestamp() < self.since:
            return
        with self._lock:
            self.devices.update(sp["device_id"] for sp in body["setpoints"])
            self.latest.update((sp["device_id"], sp) for sp in body["setpoints"])
            self.last_at = time.perf_counter()

    def reset(self, since: float) -> None:
        with self._lock:
            self.since, self.devices, self.last_at = since, set(), 0.0

    def count(self) -> int:
        with self._lock:
            return len(self.devices)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait(check: Callable[[], bool], what: str, timeout_s: float, every_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


def settings_for(tmp: Path, port: int, **quota: Any) -> Any:
    return load_settings(None, database_url=f"sqlite:///{tmp / 'kuat.sqlite'}", sites=[SITE],
                         broker={"port": port, "client_id": f"bench-{port}"}, api_keys=KEYS,
                         quota=quota, registry={"mode": "none_lab"})  # a lab: the loop is measured  # fmt: skip


def api(client: TestClient, method: str, path: str, key: str, body: Any = None) -> Any:
    r = client.request(method, f"/api/v1/quota/{path}", json=body, headers={"X-API-Key": key})
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
    return r.json() if r.content else None


def configure_site(client: TestClient, site: str, connection_kw: float) -> None:
    api(client, "PUT", f"{site}/limits", OPERATOR, {"connection_kw": connection_kw})
    today = local_day_and_hour(clock.now())[0]
    api(client, "POST", f"{site}/schedules", GRID, {"day": today.isoformat(), "hours_kwh": [connection_kw] * 24})


# ---------------------------------------------------------------- 100,000 machines in process


def fleet_batches(n: int, per_gateway: int = 1000, follow: dict[str, dict[str, Any]] | None = None,
                  seq: int = 1) -> list[v1.TelemetryBatch]:
    """Telemetry of the stand-in fleet; with `follow`, each machine draws what its newest setpoint asks."""
    now = clock.now()
    batches = []
    for g in range(0, n, per_gateway):
        miners = []
        for i in range(g, min(n, g + per_gateway)):
            model, firmware, caps = MIX[i % len(MIX)]
            spec = MODELS[model]
            device = f"m{i:06d}"
            sp = (follow or {}).get(device, {"mode": "run"})
            watts = {"run": spec.nominal_w, "power_target": sp.get("power_w") or spec.nominal_w}.get(sp["mode"],
                                                                                                  spec.sleep_w)
            state = v1.MinerState.MINING if sp["mode"] in ("run", "power_target") else v1.MinerState.SLEEPING
            miners.append(v1.MinerSample(
                device_id=device, ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", available=True,
                state=state, model=model, firmware=firmware, hashrate_ths=spec.nominal_ths,
                power_w=watts * random.uniform(0.98, 1.02), power_source=v1.PowerSource.REPORTED, capabilities=caps,
                power_limit_w=sp.get("power_w"),
            ))  # fmt: skip
        batches.append(v1.TelemetryBatch(site=SITE, gateway=f"gw{g // per_gateway:03d}", seq=seq, ts=now,
                                         miners=miners))  # fmt: skip
    return batches


def bench_fleet(machines: int, repeat: int) -> None:
    logging.getLogger("controller").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        settings = settings_for(Path(tmp), broker.port, interval_s=600.0, lease_s=120.0, lag_s=0.0, settle_s=0.0)
        svc = build_services(settings)
        assert svc.ingest is not None and svc.quota is not None
        tune_gc_for_ingest()  # as `kuat controller run` does
        svc.ingest.start()
        assert svc.ingest.wait_connected(10)
        counter = SetpointCounter(broker.port, SITE)
        started = time.perf_counter()
        for b in fleet_batches(machines):
            svc.telemetry.ingest(b)
        print(f"fleet: {machines} machines live in {time.perf_counter() - started:.1f} s "
              f"({len(svc.live.gateways)} gateways)")
        try:
            with TestClient(create_app(settings, svc)) as client:
                full_kw = sum(d.sample.power_w or 0 for d in svc.live.device_list()) / 1e3
                configure_site(client, SITE, full_kw * 1.2)
                start_quota(svc)
                _warm_up(svc, counter, machines)
                _cap_rounds(svc, client, counter, machines, full_kw, repeat)
        finally:
            counter.close()
            svc.close()


def _plant_follows(svc: Services, counter: SetpointCounter, machines: int, seq: int) -> None:
    """The stand-in machines now draw what their setpoints ask (not timed)."""
    for b in fleet_batches(machines, follow=dict(counter.latest), seq=seq):
        svc.telemetry.ingest(b)


def _warm_up(svc: Services, counter: SetpointCounter, machines: int) -> None:
    counter.reset(clock.time())
    assert svc.quota is not None
    svc.quota.loop.kick(SITE)
    wait(lambda: counter.count() >= machines, "first dispatch", 120)


def _cap_rounds(svc: Services, client: TestClient, counter: SetpointCounter, machines: int, full_kw: float,
                repeat: int) -> None:
    assert svc.quota is not None
    api_s, loop_s, all_s = [], [], []
    for k in range(repeat):
        cap_mw = full_kw / 1e3 * (0.5 if k % 2 == 0 else 0.3)
        counter.reset(clock.time())
        pushed_at = clock.now()
        t0 = time.perf_counter()
        order = api(client, "POST", f"{SITE}/emergencies", GRID, {"reference": f"BENCH-{k}", "cap_mw": cap_mw})
        t_api = time.perf_counter() - t0
        wait(lambda: counter.count() >= machines, "every setpoint received", 60)
        t_all = counter.last_at - t0
        wait(_ran_since(svc, pushed_at), "the loop run", 10)
        point = svc.quota.loop.latest(SITE)
        api_s.append(t_api)
        all_s.append(t_all)
        loop_ms = point.elapsed_ms if point is not None else float("nan")
        loop_s.append(loop_ms / 1e3)
        print(f"  cap {cap_mw:.1f} MW: API answered {t_api * 1e3:.0f} ms; loop run {loop_ms:.0f} ms; every one of "
              f"{machines} setpoints received {t_all * 1e3:.0f} ms after the push"
              f" (limit {point.limit.limit_w / 1e6 if point else 0:.1f} MW)")
        _plant_follows(svc, counter, machines, seq=10 * k + 2)
        api(client, "POST", f"emergencies/{order['id']}/lift", GRID)
        counter.reset(clock.time())
        wait(lambda: counter.count() >= machines, "the dispatch after the lift", 60)
        _plant_follows(svc, counter, machines, seq=10 * k + 3)
    print(f"fleet of {machines}: push -> all setpoints received: median {statistics.median(all_s) * 1e3:.0f} ms, "
          f"best {min(all_s) * 1e3:.0f} ms (baseline: < 1000 ms); loop run median "
          f"{statistics.median(loop_s) * 1e3:.0f} ms; API answer median {statistics.median(api_s) * 1e3:.0f} ms")


def _ran_since(svc: Services, t: datetime) -> Callable[[], bool]:
    """The loop has a point from a run that started after `t`."""

    def check() -> bool:
        point = svc.quota.loop.latest(SITE) if svc.quota is not None else None
        return point is not None and point.ts > t

    return check


# ---------------------------------------------------------------- the simulated 1,000-miner site


def bench_site(site_path: Path, poll_s: float, boot_s: float, log_dir: Path | None = None) -> None:
    from demo.procs import Child, free_port, kuat_argv
    from demo.seed import seed_registry
    from sim.agent_config import write_agent_config
    from sim.site import load_site

    net = random.randint(20, 200)
    site_file = load_site(site_path, miner_net=f"127.{net}", pdu_net=f"127.{net + 1}")
    physics = {"boot": boot_s, "wake": boot_s, "ramp": boot_s, "sleep": boot_s}
    offset = random.randint(20000, 40000)
    with tempfile.TemporaryDirectory() as tmp_name, Mosquitto() as broker:
        tmp = Path(tmp_name)
        logs = log_dir or tmp
        logs.mkdir(parents=True, exist_ok=True)
        control = free_port()
        children = [Child("sim", kuat_argv("sim", "run", "--site", str(site_path), "--port-offset", str(offset),
                                           "--control-port", str(control), "--miner-net", f"127.{net}",
                                           "--pdu-net", f"127.{net + 1}", "--boot-s", str(boot_s),
                                           "--wake-s", str(boot_s), "--ramp-s", str(boot_s), "--sleep-s",
                                           str(boot_s)), logs).start()]
        try:
            wait(lambda: _sim_state(control) is not None, "simulator", 120, 0.5)
            settings = settings_for(tmp, broker.port, interval_s=poll_s, lease_s=max(60.0, 10 * poll_s),
                                    lag_s=2 * poll_s, settle_s=2 * poll_s, min_on_s=0.0, min_off_s=0.0)
            settings = settings.model_copy(update={"sites": [site_file.site.name]})
            svc = build_services(settings)
            assert svc.ingest is not None and svc.quota is not None and svc.registry is not None
            logging.getLogger("registry").setLevel(logging.WARNING)
            seed_registry(svc.registry, site_file, 0, capacity_mw=10.0)
            svc.owners.refresh()
            svc.ingest.start()
            for gw in site_file.site.gateways:
                path = write_agent_config(tmp / f"agent-{gw}.yaml", site_file, gw, broker_port=broker.port,
                                          port_offset=offset, buffer_path=tmp / f"buf-{gw}.sqlite", interval_s=poll_s)
                children.append(Child(f"agent-{gw}", kuat_argv("agent", "run", "--config", str(path)), logs).start())
            _site_rounds(svc, settings, site_file.site.name, control, len(site_file.miners), poll_s, physics)
        finally:
            for child in reversed(children):
                child.stop()
            if "svc" in locals():
                svc.close()


def _sim_state(port: int) -> dict[str, Any] | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/state", timeout=5)
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _sim_power(port: int) -> float:
    state = _sim_state(port)
    return float(state["power_w"]) if state else float("nan")


def _site_rounds(svc: Services, settings: Any, site: str, control: int, miners: int, poll_s: float,
                 physics: dict[str, float]) -> None:
    assert svc.quota is not None
    started = time.monotonic()
    wait(lambda: sum(1 for d in svc.live.device_list() if d.kind == "miner" and d.sample.available) >= miners * 0.98,
         "the site's miners live in the controller", 300, 0.5)
    print(f"site: {miners} miners live in the controller after {time.monotonic() - started:.0f} s "
          f"(agent poll interval {poll_s:g} s)")
    with TestClient(create_app(settings, svc)) as client:
        full_w = _sim_power(control)
        full = {m["ip"]: m["power_w"] for m in (_sim_state(control) or {"miners": []})["miners"]}
        configure_site(client, site, full_w * 1.2 / 1e3)
        start_quota(svc)
        time.sleep(max(3 * poll_s, 5))
        before = _sim_power(control)
        cap_w = before * 0.5
        runs = svc.quota.loop.runs
        t0 = time.monotonic()
        api(client, "POST", f"{site}/emergencies", GRID, {"reference": "BENCH-SITE", "cap_mw": cap_w / 1e6})
        wait(lambda: svc.quota is not None and svc.quota.loop.runs > runs, "the loop's dispatch", 30)
        dispatched = time.monotonic() - t0
        pushed_real = time.time() - dispatched
        trace: list[str] = []
        under = _held_under(control, cap_w, t0, hold_s=max(5.0, 2 * poll_s), within_s=180, trace=trace)
        baseline = poll_s + max(physics.values())
        print(f"site {site}: {before / 1e3:.0f} kW, cap {cap_w / 1e3:.0f} kW pushed through the API; setpoints "
              f"published {dispatched:.2f} s after the push; the simulator's own power under the cap "
              f"{under:.1f} s after the push and held (baseline: poll {poll_s:g} s + actuation "
              f"{max(physics.values()):g} s = {baseline:g} s)")
        print("  simulator power after the push (s: kW): " + ", ".join(trace))
        pushed = clock.now() - timedelta(seconds=time.monotonic() - t0)
        loop = [f"{(p.ts - pushed).total_seconds():.0f}: {p.power_w / 1e3:.0f}/{p.target_w / 1e3:.0f} {p.action} "
                f"x{p.correction:.3f}" for p in svc.quota.loop._sites[site].points if p.ts >= pushed]
        print("  the loop after the push (s: measured/target kW, action, correction): " + ", ".join(loop[:25]))
        crossed = next(((p.ts - pushed).total_seconds() for p in svc.quota.loop._sites[site].points
                        if p.ts >= pushed and p.power_w <= cap_w), None)
        acks = [_acked_after(svc, c, pushed_real) for c in _cut_batches(svc, pushed_real)]
        print("  the cut's batches acked by the agents (every setpoint applied) " + ", ".join(
            f"{a:.2f} s" if a is not None else "not acked" for a in acks) + " after the push; the controller's "
              "measured sum (telemetry) under the cap " + (f"{crossed:.1f} s" if crossed is not None else "never")
              + " after the push")
        _model_error(svc, site, control, full)


def _cut_batches(svc: Services, pushed_real: float) -> list[str]:
    """The first setpoint batch per gateway issued after the push: the cut."""
    first: dict[str, str] = {}
    for record in list(svc.commands._records.values()):
        c = record.command
        if c.kind == v1.CommandKind.SETPOINTS and c.ts.timestamp() >= pushed_real - 0.05:
            first.setdefault(record.gateway, c.id)
    return [first[g] for g in sorted(first)]


def _acked_after(svc: Services, command_id: str, pushed_real: float) -> float | None:
    record = svc.commands.get(command_id)
    return None if record is None or record.acked_at is None else record.acked_at.timestamp() - pushed_real


def _model_error(svc: Services, site: str, control: int, full: dict[str, float]) -> None:
    """Per firmware and setpoint mode: what the last dispatch expected against what the simulator draws."""
    assert svc.quota is not None
    sent = svc.quota.loop._sites[site].sent
    ip_of = {d.device_id: d.sample.ip for d in svc.live.device_list() if d.kind == "miner"}
    state = _sim_state(control) or {"miners": []}
    by_ip = {m["ip"]: m for m in state["miners"]}
    groups: dict[tuple[str, str], list[float]] = {}
    phases: dict[tuple[str, str], dict[str, int]] = {}
    for device, (mode, watts) in sent.items():
        m = by_ip.get(ip_of.get(device, ""))
        if m is None:
            continue
        expected = {"run": full.get(m["ip"], 0.0), "sleep": 25.0, "outlet_off": 0.0}.get(mode, watts or 0.0)
        g = groups.setdefault((m["firmware"], mode), [0, 0.0, 0.0])
        g[0] += 1
        g[1] += expected
        g[2] += m["power_w"]
        count = phases.setdefault((m["firmware"], mode), {})
        count[m["phase"]] = count.get(m["phase"], 0) + 1
    print("  dispatch vs plant (firmware/mode: machines, expected kW -> simulator kW): " + "; ".join(
        f"{fw}/{mode}: {int(n)}, {e / 1e3:.1f} -> {a / 1e3:.1f} {phases[(fw, mode)]}"
        for (fw, mode), (n, e, a) in sorted(groups.items())))


def _held_under(control: int, cap_w: float, t0: float, hold_s: float, within_s: float,
                trace: list[str] | None = None) -> float:
    under_since: float | None = None
    last_note = -1.0
    while time.monotonic() - t0 < within_s:
        now = time.monotonic()
        watts = _sim_power(control)
        if trace is not None and now - t0 - last_note >= 1.0:
            last_note = now - t0
            trace.append(f"{last_note:.0f}: {watts / 1e3:.0f}")
        if watts <= cap_w:
            under_since = now if under_since is None else under_since
            if now - under_since >= hold_s:
                return under_since - t0
        else:
            under_since = None
        time.sleep(0.25)
    raise TimeoutError(f"power not under {cap_w:.0f} W within {within_s:.0f} s (now {_sim_power(control):.0f} W)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what")
    f = sub.add_parser("fleet", help="100,000 machines in process: push -> every setpoint received")
    f.add_argument("--machines", type=int, default=100_000)
    f.add_argument("--repeat", type=int, default=3)
    s = sub.add_parser("site", help="the simulated 1,000-miner site: push -> power under the cap")
    s.add_argument("--site", type=Path, default=ROOT / "sim" / "sites" / "container-1000.toml")
    s.add_argument("--poll-s", type=float, default=2.0)
    s.add_argument("--actuation-s", type=float, default=2.0, help="simulated boot/wake/ramp seconds")
    s.add_argument("--log-dir", type=Path, help="keep the simulator's and agents' logs here (default: discarded)")
    s.add_argument("--verbose", action="store_true", help="log the quota loop's dispatches (INFO)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "verbose", False):
        logging.getLogger("controller.quota").setLevel(logging.INFO)
    if args.what == "site":
        bench_site(args.site, args.poll_s, args.actuation_s, args.log_dir)
    else:
        bench_fleet(getattr(args, "machines", 100_000), getattr(args, "repeat", 3))


if __name__ == "__main__":
    main()
