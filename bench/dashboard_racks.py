#!/usr/bin/env python3
"""What the rack view costs by fleet size: the time of GET /api/v1/dashboard/racks (layout of every hall, rack and
slot with rack power against its feeds) and its JSON size, the first placement sync (every machine written) and a
sync of an unchanged fleet (nothing written), and POST /api/v1/commands/bulk building a batch (no broker: every
machine fails 'not sent', which measures the controller's side only). Prints figures; asserts nothing.

    .venv/bin/python bench/dashboard_racks.py [--sizes 1000,10000] [--per-rack 40] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from controller.app import create_app
from controller.dashboard.ops import sync_placements
from controller.dashboard.placement import PlacementStore
from controller.runtime import build_services
from controller.settings import load_settings
from kuat.wire import v1

KEY = "bench-operator-0123456789"
SITE = "bench"


def sample(n: int, per_rack: int) -> v1.MinerSample:
    mac = f"02:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}:00"
    rack = n // per_rack
    return v1.MinerSample(device_id=mac, ip=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", available=True,
                          state=v1.MinerState.MINING, model="S19j Pro", serial=f"B{n:08d}", mac=mac,
                          hashrate_ths=100.0, power_w=3000.0, temp_c=70.0,
                          placement=v1.Placement(hall=f"H{rack // 50 + 1}", rack=f"R{rack:04d}",
                                                 slot=n % per_rack + 1))  # fmt: skip


def run(size: int, per_rack: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, database_url=f"sqlite:///{Path(tmp) / 'k.sqlite'}", sites=[SITE],
                                 api_keys=[{"name": "bench", "role": "operator", "key": KEY}],
                                 device_stale_s=3600)  # fmt: skip
        svc = build_services(settings, with_ingest=False)
        for seq, start in enumerate(range(0, size, 1000), start=1):
            miners = [sample(n, per_rack) for n in range(start, min(size, start + 1000))]
            svc.telemetry.ingest(v1.TelemetryBatch(site=SITE, gateway="gw1", seq=seq, ts=datetime.now(UTC),
                                                   miners=miners))  # fmt: skip
        store = PlacementStore(svc.engine)
        t0 = time.perf_counter()
        written = sync_placements(svc, store)
        first_sync = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = sync_placements(svc, store)
        idle_sync = time.perf_counter() - t0
        app = create_app(settings, svc)
        app.state.placements = store
        with TestClient(app) as client:
            headers = {"X-API-Key": KEY}
            times, size_b = [], 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = client.get("/api/v1/dashboard/racks", headers=headers)
                times.append(time.perf_counter() - t0)
                size_b = len(r.content)
            ids = [sample(n, per_rack).device_id for n in range(size)]
            t0 = time.perf_counter()
            client.post("/api/v1/commands/bulk", json={"device_ids": ids[:5000], "kind": "sleep"}, headers=headers)
            bulk_s = time.perf_counter() - t0
        svc.engine.dispose()
    racks = (size + per_rack - 1) // per_rack
    print(f"{size:>7} machines {racks:>5} racks | first sync {first_sync * 1e3:8.1f} ms ({written} rows) | "
          f"unchanged sync {idle_sync * 1e3:7.1f} ms ({again} rows) | GET racks median "
          f"{statistics.median(times) * 1e3:7.1f} ms, {size_b / 1e6:5.2f} MB | bulk of {min(size, 5000)} "
          f"{bulk_s * 1e3:7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="fleet sizes, comma separated")
    parser.add_argument("--per-rack", type=int, default=40, help="machines per rack")
    parser.add_argument("--repeat", type=int, default=5, help="GETs per size (the median is printed)")
    opts = parser.parse_args()
    for size in (int(s) for s in opts.sizes.split(",")):
        run(size, opts.per_rack, opts.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
