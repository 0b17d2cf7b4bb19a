"""Ingest throughput: TelemetryBatch messages through a real mosquitto into the controller's ingest (SQLite).

Starts a private mosquitto on 127.0.0.1:<free port>, the controller's services and MQTT ingest in this process
(registry and SQLite rollups as in production, no InfluxDB unless --influx-url), and a publisher process that
sends batches of --batch-size miners (QoS 1, like the agent) from --gateways gateways as fast as the broker takes
them for --seconds. Prints samples/s counted by the controller, CPU of each process, ingest lag and queue depth.
Goal: 20,000 samples/s on a 2-core machine.

    .venv/bin/python bench/ingest.py --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.runtime import Services, build_services, tune_gc_for_ingest
from controller.settings import load_settings
from kuat.wire import v1
from tests.support.servers import Mosquitto

TS_MARK = b"2000-01-01T00:00:00Z"


def template(site: str, gateway: str, miners: int, gw_index: int) -> bytes:
    """One gateway's batch as bytes, with a fixed ts and seq 0 to substitute per message."""
    samples = []
    for i in range(miners):
        mac = f"02:{gw_index:02x}:00:00:{i // 256:02x}:{i % 256:02x}"
        samples.append(v1.MinerSample(
            device_id=mac, ip=f"127.70.{gw_index}.{i % 250}", available=True, state=v1.MinerState.MINING,
            make="Antminer", model="S19j Pro", firmware="bmminer 1.0.0", serial=f"B{gw_index:03d}{i:05d}", mac=mac,
            hashrate_ths=100.0 + random.random(), nominal_ths=104.0, power_w=3000.0 + random.random() * 50,
            power_source=v1.PowerSource.REPORTED, temp_c=65.0, fans_rpm=[4800, 4800, 4900, 4900],
            boards=[v1.Board(index=b, hashrate_ths=33.3, chips=126, expected_chips=126, temp_c=64.0) for b in range(3)],
            pools=[v1.Pool(url="stratum+tcp://pool.kz-accredited.example:3333", user=f"kz.w{i}", active=True)],
        ))  # fmt: skip
    batch = v1.TelemetryBatch(site=site, gateway=gateway, seq=0, ts=datetime(2000, 1, 1, tzinfo=UTC), miners=samples)
    raw = v1.dumps(batch)
    return raw.replace(b'"2000-01-01T00:00:00Z"', b'"' + TS_MARK + b'"')


def publish(
    port: int, site: str, gateways: int, miners: int, seconds: float, rate: float, sent: Any, ready: Any
) -> None:
    """Child process: send batches round-robin over the gateways until the time is up; `rate` > 0 paces the
    offered load (samples/s), 0 sends as fast as the broker takes them."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(50)
    client.max_queued_messages_set(200)
    client.connect("127.0.0.1", port)
    client.loop_start()
    templates = [(f"gw{g}", template(site, f"gw{g}", miners, g)) for g in range(gateways)]
    ready.set()  # the measurement window starts now, not while this interpreter was starting
    started = time.monotonic()
    seq, deadline, n = 0, started + seconds, 0
    while time.monotonic() < deadline:
        if rate > 0 and n >= rate * (time.monotonic() - started):
            time.sleep(0.005)
            continue
        gateway, raw = templates[seq % gateways]
        seq += 1
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        payload = raw.replace(TS_MARK, stamp, 1).replace(b'"seq":0', b'"seq":%d' % seq, 1)
        info = client.publish(v1.topic(site, gateway, "telemetry"), payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.002)
            seq -= 1
            continue
        n += miners
    client.disconnect()
    client.loop_stop()
    sent.value = n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the publisher sends (default 20)")
    parser.add_argument("--batch-size", type=int, default=500, help="miners per TelemetryBatch (default 500)")
    parser.add_argument("--gateways", type=int, default=20, help="gateways the batches come from (default 20)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered samples/s (0: as fast as the broker takes them, to find the maximum)")
    parser.add_argument("--influx-url", help="also write raw telemetry to this InfluxDB v2 / VictoriaMetrics URL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("registry").setLevel(logging.ERROR)  # thousands of "unregistered mining" lines otherwise

    site = f"bench{random.randint(1000, 9999)}"
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="kuat-bench-") as tmp:
        overrides: dict[str, object] = {
            "database_url": f"sqlite:///{tmp}/kuat.sqlite", "sites": [site],
            "broker": {"port": broker.port, "client_id": f"bench-ctl-{os.getpid()}", "persistent_session": False},
        }  # fmt: skip
        if args.influx_url:
            overrides["influx"] = {"url": args.influx_url}
        services = build_services(load_settings(None, **overrides))
        tune_gc_for_ingest()
        assert services.ingest is not None
        services.ingest.start()
        if not services.ingest.wait_connected(10):
            raise SystemExit("controller could not connect to the bench broker")
        time.sleep(0.3)
        run(services, broker, site, args)


def run(services: Services, broker: Mosquitto, site: str, args: argparse.Namespace) -> None:
    metrics = services.metrics
    me = psutil.Process()
    mosq = psutil.Process(broker.proc.pid) if broker.proc else None
    ctx = mp.get_context("spawn")  # a fresh interpreter: no copy of the controller's threads
    sent, ready = ctx.Value("q", 0), ctx.Event()
    child = ctx.Process(target=publish, args=(broker.port, site, args.gateways, args.batch_size, args.seconds,
                                              args.rate, sent, ready))  # fmt: skip
    child.start()
    if not ready.wait(120):
        child.kill()
        raise SystemExit("the publisher did not get ready within 120 s")
    pub = psutil.Process(child.pid)
    load0 = os.getloadavg()[0]
    cpu_me0, cpu_mosq0, pub_cpu0 = _cpu(me), _cpu(mosq), _cpu(pub)
    start, samples0 = time.monotonic(), metrics.samples_total
    lags, depths, pub_cpu = [], [], 0.0
    while child.is_alive():
        time.sleep(0.5)
        lags.append(metrics.last_lag_s)
        depths.append(metrics.queue_depth())
        with contextlib.suppress(psutil.Error):
            pub_cpu = _cpu(pub) - pub_cpu0
    child.join()
    window = time.monotonic() - start
    in_window = metrics.samples_total - samples0
    cpu_me, cpu_mosq = _cpu(me) - cpu_me0, _cpu(mosq) - cpu_mosq0
    drain_deadline = time.monotonic() + 30
    while metrics.samples_total - samples0 < sent.value and time.monotonic() < drain_deadline:
        time.sleep(0.1)
    backlog = sent.value - (metrics.samples_total - samples0)
    flush_started = time.perf_counter()
    rows = services.rollups.flush(everything=True)
    flush_s = time.perf_counter() - flush_started
    offered = f"paced at {args.rate:,.0f}/s" if args.rate else "as fast as the broker takes them"
    print(f"published       {sent.value:,} samples in {args.seconds:.0f} s, {offered} "
          f"({args.gateways} gateways x {args.batch_size} miners per batch, QoS 1)")
    rate = in_window / window
    print(f"ingested        {in_window:,} samples while publishing ({window:.1f} s) = {rate:,.0f} samples/s; "
          f"{'all drained' if backlog <= 0 else f'{backlog:,} not yet ingested 30 s later'}")
    print(f"rejected        {dict(metrics.rejected) or 0}")
    print(f"cpu (s / %)     controller {cpu_me:.1f} s ({100 * cpu_me / window:.0f} %), mosquitto {cpu_mosq:.1f} s "
          f"({100 * cpu_mosq / window:.0f} %), publisher {pub_cpu:.1f} s ({100 * pub_cpu / window:.0f} %) "
          f"on {psutil.cpu_count()} cores, while publishing")
    if lags:
        print(f"lag (s)         median {statistics.median(lags):.3f}, max {max(lags):.3f} (processing - batch ts)")
        print(f"queue depth     median {statistics.median(depths):.0f}, max {max(depths)} messages")
    print(f"rollup flush    {rows:,} device-minute rows in {flush_s:.2f} s (SQLite)")
    per_sample_us = 1e6 * cpu_me / max(in_window, 1)
    print(f"controller cost {per_sample_us:.1f} us CPU per sample (receive, decode, live state, energy, rollups) = "
          f"{1e6 / per_sample_us:,.0f} samples/s per fully available core")
    print(f"machine load    1-min load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end "
          "(other work on the machine slows the wall-clock rate; the CPU cost above does not depend on it)")
    goal = 20_000
    if args.rate:  # paced: did ingest keep up with what was offered?
        kept_up = in_window >= 0.99 * sent.value and bool(lags) and statistics.median(lags) < 1.0
        verdict = f"offered {args.rate:,.0f}/s, kept up: {'yes' if kept_up else 'NO'}"
        met = rate >= goal or (kept_up and args.rate >= goal)
    else:  # flood: the highest rate ingest reached
        verdict, met = f"reached {rate:,.0f}/s", rate >= goal
    print(f"goal            {goal:,} samples/s: {'met' if met else 'NOT met'} ({verdict}; wall clock, this run)")
    sys.stdout.flush()
    services.close()


def _cpu(proc: psutil.Process | None) -> float:
    """User + system CPU seconds of a process (0 when there is none)."""
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return float(times.user + times.system)


if __name__ == "__main__":
    main()
