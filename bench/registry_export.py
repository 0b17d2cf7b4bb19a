"""Registry benchmark: bulk-load N HSCs into SQLite, then measure through the real ASGI app (httpx + ASGITransport)
the full export (rows/s, CSV and JSON Lines) and filtered, cursor-paged list requests (p50/p95 latency); then the
export generators alone, to tell the database's share from the HTTP layer's. (ASGITransport keeps the whole
response in the client's memory; the server side streams.)

Goals (issue 4): export >= 100,000 rows/s and a filtered page < 50 ms at p95 on 1,000,000 HSCs.

    .venv/bin/python bench/registry_export.py                 # 1,000,000 rows (a few minutes, ~1 GB of disk in /tmp)
    .venv/bin/python bench/registry_export.py --rows 50000    # quick
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import httpx

# Run as a script, this file's folder is first on sys.path and its name would shadow the `registry` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry import auth, export
from registry.app import create_app
from registry.bin import check_digit
from registry.db import init_db
from registry.models import Role
from registry.service import HscFilter, RegistryService
from registry.settings import RegistrySettings
from serverkit.db import make_engine, session_factory

MODELS = [("Antminer", "Antminer S19j Pro", 104.0, 3068.0), ("Antminer", "Antminer S21", 200.0, 3500.0),
          ("Whatsminer", "WhatsMiner M30S", 88.0, 3344.0), ("Whatsminer", "WhatsMiner M50", 118.0, 3422.0),
          ("Avalon", "AvalonMiner A1246", 90.0, 3420.0)]
STATUSES = ["registered"] * 8 + ["pending", "suspended"]
ZONES = ["North", "South", "West"]
SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


def valid_bin(n: int) -> str:
    while True:
        first = f"{n:011d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
        n += 1


def load(db: Path, rows: int, owners: int, dpcs: int) -> None:
    """Reference rows plus `rows` HSCs, inserted with executemany in one transaction (bypassing the service)."""
    engine = make_engine(f"sqlite:///{db}")
    init_db(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    stamp = now.strftime(SQLITE_TS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO licensee (id, bin, name, licence_number, subtype, valid_from, valid_to, status, created_at,"
            " changed_at) VALUES (?, ?, ?, ?, ?, '2025-01-01', '2028-01-01', 'active', ?, ?)",
            [(i, valid_bin(10_000_000 + i * 7), f"Owner {i}", f"DM-{i:06d}", "I" if i <= dpcs else "II", stamp,
              stamp) for i in range(1, owners + 1)])
        cur.executemany(
            "INSERT INTO dpc (id, name, address, zone, operator_id, capacity_mw, residential_zone_evidence,"
            " created_at, changed_at) VALUES (?, ?, 'bench', ?, ?, 100.0, '', ?, ?)",
            [(i, f"DPC-{i}", ZONES[i % 3], i, stamp, stamp) for i in range(1, dpcs + 1)])
        rng = random.Random(7)
        batch: list[tuple[object, ...]] = []
        for i in range(1, rows + 1):
            make, model, ths, watts = MODELS[i % len(MODELS)]
            changed = (now + timedelta(seconds=i * 0.5 + rng.random())).strftime(SQLITE_TS)
            status = STATUSES[i % len(STATUSES)]
            mac = f"02:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}:01"
            batch.append((i, f"BN{i:09d}", mac, make, model, "bmminer 1.0", ths, watts, rng.randint(1, owners),
                          rng.randint(1, dpcs), f"H{i % 4}", f"R{i % 500}", str(i % 40), "site", "gw1", mac,
                          json.dumps(["stratum+tcp://pool.kz:3333"]), status,
                          f"KZ-HSC-{i:08d}" if status != "pending" else None, stamp, changed))
            if len(batch) == 50_000:
                _insert_hscs(cur, batch)
                batch = []
        _insert_hscs(cur, batch)
        cur.execute("COMMIT")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the one huge transaction into the main file
        cur.execute("ANALYZE")  # planner statistics, as a long-running registry would have
    finally:
        raw.close()
    engine.dispose()


def _insert_hscs(cur: object, batch: list[tuple[object, ...]]) -> None:
    cur.executemany(  # type: ignore[attr-defined]
        "INSERT INTO hsc (id, serial, mac, make, model, firmware, nominal_ths, rated_w, owner_id, dpc_id, hall, rack,"
        " slot, site, gateway, device_id, pools, status, registry_number, first_seen_at, changed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)


async def measure_export(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> tuple[int, float]:
    lines = 0
    started = time.perf_counter()
    async with client.stream("GET", path, headers=headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            lines += chunk.count(b"\n")
    return lines, time.perf_counter() - started


def page_queries(owners: int, dpcs: int, rng: random.Random) -> list[dict[str, str]]:
    choices = [
        lambda: {"status": "registered"},
        lambda: {"zone": rng.choice(ZONES)},
        lambda: {"owner_bin": valid_bin(10_000_000 + rng.randint(1, owners) * 7)},
        lambda: {"dpc_id": str(rng.randint(1, dpcs)), "status": "registered"},
        lambda: {"model": rng.choice(MODELS)[1]},
        lambda: {"status": "pending", "zone": rng.choice(ZONES)},
        lambda: {"changed_since": "2026-01-02T00:00:00+00:00", "status": "suspended"},
    ]
    return [rng.choice(choices)() for _ in range(200)]


async def measure_pages(client: httpx.AsyncClient, headers: dict[str, str], owners: int, dpcs: int
                        ) -> list[float]:
    rng = random.Random(11)
    timings: list[float] = []
    for params in page_queries(owners, dpcs, rng):
        cursor = None
        for _ in range(3):  # first page and two more through the cursor
            query = {**params, "limit": "100", **({"cursor": cursor} if cursor else {})}
            started = time.perf_counter()
            response = await client.get("/api/v1/registry/hscs", params=query, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
    return timings


async def run_http(db: Path, owners: int, dpcs: int) -> None:
    engine = make_engine(f"sqlite:///{db}")
    service = RegistryService(session_factory(engine))
    with service.transaction() as session:
        token = auth.create_key(session, "bench", Role.REGULATOR)
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(RegistrySettings(compliance_interval_s=0), service=service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry",
                                 timeout=3600) as client:
        for name, path in (("CSV", "/api/v1/registry/export.csv"), ("JSON Lines", "/api/v1/registry/export.jsonl")):
            lines, seconds = await measure_export(client, headers, path)
            rows = lines - 1 if name == "CSV" else lines
            print(f"export {name:<10}: {rows:>9,} rows in {seconds:6.2f} s = {rows / seconds:>9,.0f} rows/s")
        timings = await measure_pages(client, headers, owners, dpcs)
    for name, produce in (("CSV", export.iter_csv), ("JSON Lines", export.iter_jsonl)):
        started = time.perf_counter()
        rows = sum(chunk.count("\n") for chunk in produce(service, HscFilter())) - (name == "CSV")
        seconds = time.perf_counter() - started
        print(f"  without HTTP {name:<10}: {rows:>9,} rows in {seconds:6.2f} s = {rows / seconds:>9,.0f} rows/s")
    q = statistics.quantiles(timings, n=100)
    print(f"filtered pages (100 rows, cursor-paged, {len(timings)} requests): p50 {statistics.median(timings):.1f} ms"
          f", p95 {q[94]:.1f} ms, max {max(timings):.1f} ms")
    engine.dispose()


@click.command()
@click.option("--rows", default=1_000_000, show_default=True, help="number of HSCs to load")
@click.option("--owners", default=2_000, show_default=True)
@click.option("--dpcs", default=30, show_default=True)
@click.option("--keep", type=click.Path(path_type=Path), default=None, help="keep the database at this path")
def main(rows: int, owners: int, dpcs: int, keep: Path | None) -> None:
    """Load the registry and print export throughput and filtered-page latency."""
    workdir = Path(tempfile.mkdtemp(prefix="kuat-bench-registry-"))
    db = keep or workdir / "registry.db"
    try:
        started = time.perf_counter()
        load(db, rows, owners, dpcs)
        seconds = time.perf_counter() - started
        print(f"bulk load      : {rows:>9,} HSCs in {seconds:6.2f} s = {rows / seconds:>9,.0f} rows/s (SQLite, WAL)")
        asyncio.run(run_http(db, owners, dpcs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
