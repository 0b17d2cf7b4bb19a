"""National registry at scale, on a private PostgreSQL: 1,000,000 HSCs across 500 DPCs (bulk-loaded with COPY), the
registry served by uvicorn with workers, then over real HTTP on 127.0.0.1:

1. sightings accepted per second from many concurrent DPC clients (each its own key bound to its DPC), batches of
   --batch sightings with Idempotency-Keys (goal >= 5,000/s);
2. time from an application submitted by a DPC to a regulator's search finding it (p50/p95; goal p95 < 2 s), while
   the DPCs submit sightings at a set rate (--visibility-rate, default 2,500/s) and as fast as answered;
3. JSON Lines export of the whole registry by a regulator, rows/s (goal >= 150,000), read by httpx in this
   process and by `curl | wc -l` (a regulator's script; the client's CPU is shared with the server here);
4. a restarted site controller of a 10,000-machine DPC catching up its feed from cursor 0 (goal < 5 s).

The bulk load writes registrations and their feed items directly (COPY), not through the service: it has no audit
events, so the chain is not measured here. Figures are printed, never asserted. Client and server share this
machine's cores: the client's CPU is part of what is measured.

    .venv/bin/python bench/registry_scale.py --hscs 100000          # quick (about a minute)
    .venv/bin/python bench/registry_scale.py                        # 1,000,000 HSCs (several minutes)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this folder first on sys.path would shadow packages

from registry.bin import check_digit
from registry.db import init_db
from registry.models import Role
from registry.national.setup import bind_dpc_key, create_key
from serverkit.db import make_engine, session_factory
from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port, stop_process, wait_port

POOL = "stratum+tcp://pool.kz-accredited.example:3333"
BIG_DPC = 1  # the DPC with --big machines (feed catch-up)
MODELS = [("Antminer", "Antminer S19j Pro", 104.0, 3068.0), ("Antminer", "Antminer S21", 200.0, 3500.0),
          ("Whatsminer", "WhatsMiner M50", 118.0, 3422.0)]


def valid_bin(n: int) -> str:
    while True:
        first = f"{n:011d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
        n += 1


def code(i: int) -> str:
    return f"DPC-{i:03d}"


def dpc_of(i: int, hscs: int, dpcs: int, big: int) -> int:
    """Machines 1..big sit at BIG_DPC, the rest spread over the other DPCs."""
    return BIG_DPC if i <= big else 2 + (i - big) % (dpcs - 1)


def serial(i: int) -> str:
    return f"NS{i:09d}"


def load(url: str, hscs: int, dpcs: int, big: int) -> None:
    engine = make_engine(url)
    init_db(engine)
    stamp = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        licensees = io.StringIO()
        for i in range(1, dpcs + 1):
            licensees.write(f"{i}\t{valid_bin(10_000_000 + i * 7)}\tOperator {i}\tDM-{i:06d}\tI\t2025-01-01\t"
                            f"2028-12-31\tactive\t{stamp}\t{stamp}\n")
        licensees.seek(0)
        cur.copy_expert("COPY licensee (id, bin, name, licence_number, subtype, valid_from, valid_to, status, "
                        "created_at, changed_at) FROM STDIN", licensees)
        rows = io.StringIO()
        for i in range(1, dpcs + 1):
            rows.write(f"{i}\tDC {i}\t{code(i)}\tbench\t{['North', 'South', 'West'][i % 3]}\t{i}\t100\t\t{stamp}\t"
                       f"{stamp}\n")
        rows.seek(0)
        cur.copy_expert("COPY dpc (id, name, code, address, zone, operator_id, capacity_mw, "
                        "residential_zone_evidence, created_at, changed_at) FROM STDIN", rows)
        cur.execute("INSERT INTO accredited_pool (name, endpoints, accreditation_number, valid_from, valid_to, "
                    "created_at, changed_at) VALUES ('KZ Pool', %s, 'AP-1', '2025-01-01', '2028-12-31', %s, %s)",
                    (json.dumps([POOL]), stamp, stamp))
        cur.execute("SELECT setval('licensee_id_seq', %s); SELECT setval('dpc_id_seq', %s)", (dpcs, dpcs))
        bins = {i: valid_bin(10_000_000 + i * 7) for i in range(1, dpcs + 1)}
        step = 100_000
        for start in range(1, hscs + 1, step):
            regs, feed = io.StringIO(), io.StringIO()
            for i in range(start, min(start + step, hscs + 1)):
                make, model, ths, watts = MODELS[i % len(MODELS)]
                d = dpc_of(i, hscs, dpcs, big)
                mac = f"02:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}:01"
                number = f"KZ-HSC-2026-{i:08d}"
                regs.write(f"{serial(i)}\t{mac}\t{make}\t{model}\tbmminer 1.0\t{ths}\t{watts}\t{d}\t{d}\t{{}}\t"
                           f"included\t{number}\tauthority:bench\t{stamp}\t{stamp}\t{stamp}\n")
                item = {"kind": "hsc", "serial": serial(i), "mac": mac, "status": "included", "dpc": code(d),
                        "registry_number": number, "owner_bin": bins[d], "reason": None, "decided_at": stamp}
                feed.write(f"{d}\t{stamp}\t{json.dumps(item, separators=(',', ':'))}\n")
            regs.seek(0)
            feed.seek(0)
            cur.copy_expert("COPY registration (serial, mac, make, model, firmware, nominal_ths, rated_w, owner_id, "
                            "dpc_id, placement, status, registry_number, decided_by, decided_at, created_at, "
                            "changed_at) FROM STDIN", regs)
            cur.copy_expert("COPY feed_entry (dpc_id, at, data) FROM STDIN", feed)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()


def keys(url: str, clients: int) -> tuple[dict[int, str], str]:
    sessions = session_factory(make_engine(url))
    dpc_keys = {d: bind_dpc_key(sessions, f"bench-{code(d)}", [code(d)]) for d in range(1, clients + 2)}
    return dpc_keys, create_key(sessions, "bench-regulator", Role.REGULATOR)


def start_server(url: str, workers: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "KUAT_REGISTRY_DATABASE_URL": url, "KUAT_REGISTRY_COMPLIANCE_INTERVAL_S": "0",
           "KUAT_REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.pem"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    from registry.national.signing import Signer

    Signer.from_file(tmp / "signing.pem")  # created once here, so the workers do not race to create it
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "registry.app:create_app", "--host",
                             "127.0.0.1", "--port", str(port), "--workers", str(workers), "--timeout-keep-alive",
                             "60", "--log-level", "warning", "--no-access-log"], env=env, stdout=subprocess.DEVNULL,
                            stderr=sys.stderr)
    wait_port("127.0.0.1", port, timeout=60)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return proc, base


def sighting_body(d: int, serials: list[str], at: datetime) -> bytes:
    items = [{"serial": s, "hashing": True, "state": "mining", "power_w": 3200.0, "hashrate_ths": 104.0,
              "pools": [POOL], "seen_at": at.isoformat()} for s in serials]
    return json.dumps({"site": f"site-{d}", "sightings": items, "sent_at": at.isoformat()}).encode()


async def sightings_load(base: str, dpc_keys: dict[int, str], hscs: int, dpcs: int, big: int, batch: int,
                         seconds: float, stop: asyncio.Event, rate: float = 0.0) -> tuple[int, float, int]:
    """Every client posts batches of its DPC's machines, as fast as the answers come or (rate > 0) at its share of
    `rate` sightings per second in all; returns accepted, seconds, errors."""
    by_dpc: dict[int, list[str]] = {}
    for i in range(1, hscs + 1):
        d = dpc_of(i, hscs, dpcs, big)
        if d in dpc_keys and d != BIG_DPC:
            by_dpc.setdefault(d, []).append(serial(i))
    accepted, errors = 0, 0
    clients = len(by_dpc)
    t0 = time.perf_counter()

    async def client(d: int, serials: list[str]) -> None:
        nonlocal accepted, errors
        headers = {"Authorization": f"Bearer {dpc_keys[d]}", "Content-Type": "application/json"}
        stamp = "2000-01-01T00:00:00+00:00"
        bodies = [sighting_body(d, serials[i:i + batch], datetime.fromisoformat(stamp))
                  for i in range(0, len(serials), batch)]  # encoded once: the client's CPU goes to the server
        batch_sizes = [len(serials[i:i + batch]) for i in range(0, len(serials), batch)]
        n, sent, started = 0, 0, time.perf_counter()
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            while time.perf_counter() - t0 < seconds and not stop.is_set():
                body = bodies[n % len(bodies)].replace(stamp.encode(), datetime.now(UTC).isoformat().encode())
                sent += batch_sizes[n % len(bodies)]
                n += 1
                try:
                    resp = await http.post(f"/api/v1/dpc/{code(d)}/sightings", content=body,
                                           headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
                except httpx.TransportError:  # counted, and the next batch goes on a fresh connection
                    errors += 1
                    continue
                if resp.status_code == 200:
                    accepted += resp.json()["accepted"]
                else:
                    errors += 1
                if rate > 0:  # this client's share: its batch size over (rate / clients) seconds, from its start
                    due = started + sent / (rate / clients)
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))

    await asyncio.gather(*(client(d, s) for d, s in by_dpc.items()))
    return accepted, time.perf_counter() - t0, errors


async def visibility(base: str, dpc_key: str, d: int, regulator: str, probes: int, stop: asyncio.Event) -> list[float]:
    """Application submitted by a DPC -> found by a regulator's search; seconds per probe."""
    out: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        await asyncio.sleep(1.0)  # let the load start
        for n in range(probes):
            s = f"VIS-{uuid.uuid4().hex[:10]}"
            app = {"applications": [{"kind": "inclusion", "serial": s, "owner_bin": valid_bin(10_000_000 + d * 7),
                                     "submitted_by": "bench", "submitted_at": datetime.now(UTC).isoformat()}]}
            t0 = time.perf_counter()
            resp = await http.post(f"/api/v1/dpc/{code(d)}/applications", json=app,
                                   headers={"Authorization": f"Bearer {dpc_key}", "Idempotency-Key": f"vis-{n}-{s}"})
            resp.raise_for_status()
            while True:
                found = await http.get("/api/v1/national/hscs", params={"serial": s},
                                       headers={"Authorization": f"Bearer {regulator}"})
                if found.status_code == 200 and found.json()["items"]:
                    break
                await asyncio.sleep(0.01)
            out.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
    stop.set()
    return out


def export_rate(base: str, regulator: str) -> tuple[int, float]:
    rows = 0
    t0 = time.perf_counter()
    with httpx.stream("GET", f"{base}/api/v1/national/export.jsonl", headers={"Authorization": f"Bearer {regulator}"},
                      timeout=600) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw(1 << 20):
            rows += chunk.count(b"\n")
    return rows, time.perf_counter() - t0


def export_rate_curl(base: str, regulator: str) -> tuple[int, float] | None:
    """The same export read by curl into wc -l (what a regulator's script would run), or None without curl."""
    if shutil.which("curl") is None:
        return None
    t0 = time.perf_counter()
    out = subprocess.run(["bash", "-o", "pipefail", "-c", 'curl -sSf -H "Authorization: Bearer $KEY" "$URL" | wc -l'],
                         env={**os.environ, "KEY": regulator, "URL": f"{base}/api/v1/national/export.jsonl"},
                         capture_output=True, text=True, timeout=600, check=True)
    return int(out.stdout.strip()), time.perf_counter() - t0


def catch_up(base: str, key: str) -> tuple[int, int, float]:
    items = pages = 0
    after = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=base, timeout=120) as http:
        while True:
            page = http.get(f"/api/v1/dpc/{code(BIG_DPC)}/feed", params={"after": after, "limit": 5000},
                            headers={"Authorization": f"Bearer {key}"}).json()
            pages += 1
            items += len(page["items"])
            after = page["next_after"]
            if not page["has_more"]:
                break
    return items, pages, time.perf_counter() - t0


@click.command()
@click.option("--hscs", default=1_000_000, show_default=True, help="machines to bulk-load")
@click.option("--dpcs", default=500, show_default=True)
@click.option("--big", default=10_000, show_default=True, help="machines of the DPC whose feed catch-up is timed")
@click.option("--clients", default=32, show_default=True, help="concurrent DPC clients submitting sightings")
@click.option("--batch", default=500, show_default=True, help="sightings per request")
@click.option("--seconds", default=20.0, show_default=True, help="how long the sightings load runs")
@click.option("--workers", default=2, show_default=True, help="uvicorn worker processes")
@click.option("--probes", default=40, show_default=True, help="visibility probes during the load")
@click.option("--visibility-rate", "visibility_rates", multiple=True, type=float, default=(2500.0, 0.0),
              show_default=True, help="sightings/s submitted while probing (0: as fast as answered); repeatable")
@click.option("--reads-only", is_flag=True, help="skip the sightings and visibility parts (export and catch-up only)")
def main(hscs: int, dpcs: int, big: int, clients: int, batch: int, seconds: float, workers: int,
         probes: int, visibility_rates: tuple[float, ...], reads_only: bool) -> None:
    """Print the national registry's figures at scale (see the module docstring)."""
    cluster = PostgresCluster().start()
    proc = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix="kuat-bench-registry-"))
        url = cluster.create_database()
        t0 = time.perf_counter()
        load(url, hscs, dpcs, big)
        print(f"bulk load: {hscs:,} HSCs across {dpcs} DPCs (+ their feed items) in {time.perf_counter() - t0:.1f} s")
        dpc_keys, regulator = keys(url, clients)
        proc, base = start_server(url, workers, tmp)

        submitters = {d: k for d, k in dpc_keys.items() if d <= clients}
        if reads_only:
            visibility_rates = ()
        else:
            accepted, elapsed, errors = asyncio.run(sightings_load(base, submitters, hscs, dpcs, big, batch, seconds,
                                                                   asyncio.Event()))
            print(f"sightings: {accepted:,} accepted in {elapsed:.1f} s = {accepted / elapsed:,.0f}/s "
                  f"({clients} DPC clients, batches of {batch}, {workers} workers, {errors} errors)  goal >= 5,000/s")

        async def load_and_probe(rate: float) -> tuple[tuple[int, float, int], list[float]]:
            stop = asyncio.Event()
            probe_dpc = clients + 1
            return await asyncio.gather(
                sightings_load(base, submitters, hscs, dpcs, big, batch, 3600, stop, rate),
                visibility(base, dpc_keys[probe_dpc], probe_dpc, regulator, probes, stop))

        for rate in visibility_rates:
            (accepted, elapsed, errors), lat = asyncio.run(load_and_probe(rate))
            lat.sort()
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
            load_text = f"{accepted / elapsed:,.0f} sightings/s" + (" (as fast as answered)" if not rate else "")
            print(f"submission -> regulator sees it: p50 {statistics.median(lat) * 1000:.0f} ms, p95 "
                  f"{p95 * 1000:.0f} ms over {len(lat)} probes while DPCs submit {load_text}, {errors} errors  "
                  "goal p95 < 2 s")
        rows, secs = export_rate(base, regulator)
        print(f"JSON Lines export, read by httpx: {rows:,} rows in {secs:.1f} s = {rows / secs:,.0f} rows/s  "
              "goal >= 150,000")
        by_curl = export_rate_curl(base, regulator)
        if by_curl is not None:
            rows, secs = by_curl
            print(f"JSON Lines export, read by curl | wc -l: {rows:,} rows in {secs:.1f} s = {rows / secs:,.0f} rows/s"
                  "  goal >= 150,000")
        items, pages, secs = catch_up(base, dpc_keys[BIG_DPC])
        print(f"feed catch-up of a {big:,}-machine DPC from cursor 0: {items:,} items in {pages} pages, "
              f"{secs:.2f} s  goal < 5 s")
    finally:
        stop_process(proc)
        cluster.stop()


if __name__ == "__main__":
    main()
