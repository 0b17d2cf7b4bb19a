"""Soak: a 100,000-machine site (in-process plant) under the real controller for an hour of simulated time.

The controller's real services (SQLite, registry, ingest through a real mosquitto, the quota loop every
`--interval-s` real seconds, the scheduler's jobs such as the rollup flush, the API in process) run a site
whose machines follow their setpoints: every `--plant-every-s` real seconds the stand-in plant reports again what
each machine's newest setpoint asks (the telemetry of 100 gateways). An emergency cap is pushed and lifted every
`--cap-every-min` simulated minutes. The clock is accelerated (kuat.clock, `--speed`), so hours, the energy pace
and the ledger's periods run as in an hour.

Sampled every `--sample-s` real seconds and printed: resident memory (VmRSS), the last loop run's time, open files
(/proc/self/fd) and threads. After the warm-up (`--warmup`, a share of the run, and at least the first rollup flush:
the minute buckets a flush takes are the run's largest transient, so RSS reaches its working level only after it)
the growth from the first sample to
the last is printed against the goal (no growth beyond 5 %). Figures only: nothing is asserted.

The rollup load is the plant's, not a real site's: each report at x20 lands in a new simulated minute, so 100,000
machines reporting every 10 s make 600,000 minute buckets per real minute (a real site: 100,000). Python's own
objects (allocated blocks), the rollup book's buckets and the flushes are printed beside RSS to tell a leak from a
writer that lags; `--tracemalloc N` diffs snapshots (end of warm-up vs end), `--trim` calls malloc_trim every sample.

Run:  .venv/bin/python bench/soak.py                            # 100,000 machines, 60 simulated minutes, x60
      .venv/bin/python bench/soak.py --machines 5000 --sim-minutes 10 --speed 60   # a short run
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--machines", type=int, default=100_000)
    p.add_argument("--sim-minutes", type=float, default=60.0, help="simulated minutes to run")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    p.add_argument("--interval-s", type=float, default=2.0, help="real seconds between loop runs")
    p.add_argument("--plant-every-s", type=float, default=10.0, help="real seconds between plant reports")
    p.add_argument("--cap-every-min", type=float, default=10.0, help="simulated minutes between caps")
    p.add_argument("--sample-s", type=float, default=5.0, help="real seconds between samples")
    p.add_argument("--warmup", type=float, default=0.25, help="share of the run before growth is measured")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                   help="trace Python allocations (this many frames): a snapshot at the end of the warm-up and at "
                        "the end, the top growths by traceback printed (slows the run)")
    p.add_argument("--trim", action="store_true",
                   help="glibc malloc_trim(0) after each sample (a mitigation for arena fragmentation)")
    p.add_argument("--postgres", action="store_true",
                   help="a private PostgreSQL cluster instead of SQLite (on SQLite, 100,000 machines' rollup "
                        "flushes lock the database long enough for API writes to fail with 'database is locked')")
    return p.parse_args()


ARGS = _args()
now = time.time()
os.environ["KUAT_CLOCK"] = f"{now},{now},{ARGS.speed}"  # before kuat.clock is imported
sys.path.insert(0, str(ROOT))


def _helpers() -> ModuleType:
    """bench/quota_response.py's stand-in fleet, API and setpoint counter (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("quota_response", ROOT / "bench" / "quota_response.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> None:
    import logging

    from fastapi.testclient import TestClient

    from controller.app import create_app
    from controller.quota.wiring import start_quota
    from controller.runtime import build_services, tune_gc_for_ingest
    from controller.scheduler import make_scheduler
    from kuat import clock
    from tests.support.servers import Mosquitto

    if ARGS.tracemalloc:
        import tracemalloc

        tracemalloc.start(ARGS.tracemalloc)
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    qr = _helpers()
    cluster = None
    if ARGS.postgres:
        from tests.support.postgres import PostgresCluster

        cluster = PostgresCluster().start()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        settings = qr.settings_for(Path(tmp), broker.port, interval_s=ARGS.interval_s, lease_s=120.0, lag_s=0.0,
                                   settle_s=10.0, ledger_period_s=60)  # fmt: skip
        if cluster is not None:
            settings = settings.model_copy(update={"database_url": cluster.create_database()})
        svc = build_services(settings)
        assert svc.ingest is not None and svc.quota is not None
        tune_gc_for_ingest()
        svc.ingest.start()
        assert svc.ingest.wait_connected(10)
        counter = qr.SetpointCounter(broker.port, qr.SITE)
        started = time.perf_counter()
        for b in qr.fleet_batches(ARGS.machines):
            svc.telemetry.ingest(b)
        print(f"soak: {ARGS.machines} machines live in {time.perf_counter() - started:.1f} s; "
              f"{ARGS.sim_minutes:g} simulated minutes at x{ARGS.speed:g} "
              f"({ARGS.sim_minutes * 60 / ARGS.speed:.0f} s real), loop every {ARGS.interval_s:g} s")
        stop = threading.Event()
        seq = [2]

        def plant() -> None:
            while not stop.wait(ARGS.plant_every_s):
                for b in qr.fleet_batches(ARGS.machines, follow=dict(counter.latest), seq=seq[0]):
                    svc.telemetry.ingest(b)
                seq[0] += 1

        samples: list[dict[str, float]] = []
        try:
            with TestClient(create_app(settings, svc)) as client:
                full_kw = sum(d.sample.power_w or 0 for d in svc.live.device_list()) / 1e3
                qr.configure_site(client, qr.SITE, full_kw * 1.2)
                start_quota(svc)
                scheduler = make_scheduler(svc)  # rollup flushes, timeouts...: as `kuat controller run` runs them
                scheduler.start()
                feeder = threading.Thread(target=plant, name="soak-plant", daemon=True)
                feeder.start()
                samples = _run(svc, client, qr, clock, full_kw)
                scheduler.shutdown(wait=True)
        finally:
            stop.set()
            counter.close()
            svc.close()
            if cluster is not None:
                cluster.stop()
    _report(samples, settings.rollup_flush_s)


def _run(svc: Any, client: Any, qr: ModuleType, clock: Any, full_kw: float) -> list[dict[str, float]]:
    """Sample until the simulated time is over; caps pushed and lifted on the way."""
    sim_start, real_start = clock.time(), time.perf_counter()
    end = sim_start + ARGS.sim_minutes * 60
    next_cap, order = sim_start + ARGS.cap_every_min * 60 / 2, None
    samples = []
    warm_at, warm_snap = sim_start + ARGS.warmup * ARGS.sim_minutes * 60, None
    print(f"{'sim min':>7} {'RSS MB':>8} {'loop ms':>8} {'files':>6} {'threads':>7} {'runs':>6} {'blocks k':>8} "
          f"{'py MB':>7} {'buckets k':>9} {'flushes':>7} {'flush s':>7}")
    while clock.time() < end:
        time.sleep(ARGS.sample_s)
        if ARGS.trim:
            _malloc_trim()
        if ARGS.tracemalloc and warm_snap is None and clock.time() >= warm_at:
            warm_snap = _snapshot()
        if clock.time() >= next_cap:
            next_cap += ARGS.cap_every_min * 60 / 2
            try:
                if order is None:
                    order = qr.api(client, "POST", f"{qr.SITE}/emergencies", qr.GRID,
                                   {"reference": f"SOAK-{int(clock.time())}", "cap_mw": full_kw / 1e3 * 0.5})
                else:
                    qr.api(client, "POST", f"emergencies/{order['id']}/lift", qr.GRID)
                    order = None
            except Exception as exc:  # a figure of the soak too: said, and the run goes on
                print(f"  cap/lift failed: {str(exc)[:160]}")
        point = svc.quota.loop.latest(qr.SITE)
        row = {"sim_min": (clock.time() - sim_start) / 60, "rss_mb": rss_mb(),
               "loop_ms": point.elapsed_ms if point is not None else float("nan"), "files": float(open_files()),
               "threads": float(threading.active_count()), "runs": float(svc.quota.loop.runs),
               "blocks_k": sys.getallocatedblocks() / 1e3, "real_s": time.perf_counter() - real_start,
               "buckets_k": len(svc.book.buckets) / 1e3, "flushes": float(svc.metrics.db_flush_count),
               "flush_s": svc.metrics.db_last_flush_s}
        samples.append(row)
        print(f"{row['sim_min']:7.1f} {row['rss_mb']:8.1f} {row['loop_ms']:8.0f} {row['files']:6.0f} "
              f"{row['threads']:7.0f} {row['runs']:6.0f} {row['blocks_k']:8.0f} {_traced_mb():7.1f} "
              f"{row['buckets_k']:9.0f} {row['flushes']:7.0f} {row['flush_s']:7.1f}")
    if warm_snap is not None:
        _print_growth(warm_snap, _snapshot())
    return samples


def _traced_mb() -> float:
    """Python's own heap as tracemalloc counts it (nan when not tracing): flat while RSS grows = not a leak."""
    import tracemalloc

    return tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else float("nan")


def _snapshot() -> Any:
    import gc
    import tracemalloc

    gc.collect()
    return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])


def _print_growth(before: Any, after: Any, top: int = 15) -> None:
    """The allocation sites that grew most from the end of the warm-up to the end, with their tracebacks."""
    diffs = after.compare_to(before, "traceback")
    total = sum(d.size_diff for d in diffs)
    print(f"tracemalloc, end of warm-up -> end: {total / 2**20:+.1f} MB of Python objects in all; top growths:")
    for d in diffs[:top]:
        print(f"  {d.size_diff / 2**20:+8.2f} MB {d.count_diff:+9d} blocks (now {d.size / 2**20:.2f} MB)")
        for line in d.traceback.format(limit=ARGS.tracemalloc)[-2 * ARGS.tracemalloc:]:
            print(f"      {line}")


def _malloc_trim() -> None:
    """Hand glibc's free arena pages back to the kernel (no-op elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _report(samples: list[dict[str, float]], flush_s: float) -> None:
    if len(samples) < 4:
        print("too few samples for a growth figure (run longer)")
        return
    flushed = next((i for i, s in enumerate(samples) if s["real_s"] >= flush_s * 1.1), len(samples) - 2)
    warm = samples[max(int(len(samples) * ARGS.warmup), flushed):]
    quarter = max(1, len(warm) // 4)
    print(f"after warm-up ({ARGS.warmup:.0%} of the run and the first rollup flush, from {warm[0]['sim_min']:.1f} "
          f"simulated minutes, {len(warm)} samples), first -> last "
          f"(goal: no growth beyond 5 %):")
    for key, what in (("rss_mb", "resident memory MB"), ("blocks_k", "Python objects (allocated blocks, k)"),
                      ("files", "open files"), ("threads", "threads")):
        a, b = warm[0][key], warm[-1][key]
        print(f"  {what}: {a:.1f} -> {b:.1f} ({(b - a) / a * 100:+.1f} %)")
    first = statistics.median(s["loop_ms"] for s in warm[:quarter])
    last = statistics.median(s["loop_ms"] for s in warm[-quarter:])
    print(f"  loop run, median of the first and last quarter: {first:.0f} -> {last:.0f} ms "
          f"({(last - first) / first * 100:+.1f} %)")
    peak = max(s["rss_mb"] for s in warm)
    grew = (peak - warm[0]["rss_mb"]) / warm[0]["rss_mb"] * 100
    print(f"  resident memory peak after warm-up: {peak:.1f} MB ({grew:+.1f} %)")


if __name__ == "__main__":
    main()
