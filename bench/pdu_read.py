"""Bench: CPU per PDU read, Kuat's SNMP reader beside Prometheus' snmp_exporter, on the same simulated PDUs.

One session: a child process serves the PDUs of a site over SNMP v2c (default sim/sites/container-1000.toml:
50 PDUs of 20 outlets, APC rPDU2 / Raritan PX2 / ServerTech Sentry4); then, against those same PDUs,

- Kuat: the agent's own driver (`open_pdu` -> `SnmpPdu.read()`, a `PduSample` out), all PDUs read at once per
  round, CPU of this process (`time.process_time`) per read; two modes:
  `get`  - the read between full walks: a GET of the power and state rows the last walk found;
  `walk` - a full read: a GETBULK walk of every column of the family's OID table;
- snmp_exporter (Debian's `prometheus-snmp-exporter`, Go) with a generator-free snmp.yml written here from the
  same OID tables: per family a `get` module listing exactly the OIDs Kuat's GET asks for, and a `walk` module
  walking exactly the columns Kuat walks; scraped over HTTP (`/snmp?target=IP:PORT&module=M`), all PDUs at once
  per round, CPU of the exporter process (from /proc) per scrape.

It prints, per mode: ms of CPU per read for each, varbinds per read for each (the same requests), and the ratio.

    .venv/bin/python bench/pdu_read.py [--site FILE] [--rounds 20] [--exporter /usr/bin/prometheus-snmp-exporter]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from agent.drivers import open_pdu  # noqa: E402 - after the path setup for running from anywhere
from agent.drivers.pdu import SnmpPdu, walk_columns  # noqa: E402
from agent.oids import load_tables  # noqa: E402
from agent.transport.snmp import oid_text  # noqa: E402

EXPORTER = "/usr/bin/prometheus-snmp-exporter"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# ---------------------------------------------------------------- the simulated PDUs (child process)
def start_pdus(site: str, port: int) -> tuple[subprocess.Popen[str], list[tuple[str, str]]]:
    """bench/sim_snmp.py --serve: the site's PDUs (and its energy ticker) on 127.N.x.y:port."""
    pdu_net = f"127.{random.randint(20, 250)}"
    server = subprocess.Popen(
        [sys.executable, str(PROJECT / "bench" / "sim_snmp.py"), "--serve", "--site", site, "--port", str(port),
         "--miner-net", "127.19", "--pdu-net", pdu_net],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT,
    )
    assert server.stdout is not None
    pdus: list[tuple[str, str]] = []
    deadline = time.monotonic() + 120
    for line in server.stdout:
        if line.startswith("PDU "):
            _, ip, family = line.split()
            pdus.append((ip, family))
        if line.startswith("READY") or time.monotonic() > deadline:
            break
    if not pdus:
        server.kill()
        raise SystemExit("the PDU simulator did not start")
    return server, pdus


# ---------------------------------------------------------------- Kuat
async def kuat_rounds(pdus: list[tuple[str, str]], port: int, rounds: int) -> dict[str, tuple[float, float]]:
    """{mode: (CPU s per read, varbinds per read)} for Kuat's driver; the first (identifying) read is not counted."""
    drivers: list[SnmpPdu] = []
    for ip, _family in pdus:
        pdu = await open_pdu(ip, port=port, timeout=5.0, retries=2)
        assert isinstance(pdu, SnmpPdu)
        drivers.append(pdu)
    await asyncio.gather(*(p.read() for p in drivers))  # identity + the first full walk
    out: dict[str, tuple[float, float]] = {}
    for mode in ("get", "walk"):
        await asyncio.gather(*(_read(p, mode) for p in drivers))  # warm
        t0 = time.process_time()
        for _ in range(rounds):
            await asyncio.gather(*(_read(p, mode) for p in drivers))
        cpu = (time.process_time() - t0) / (rounds * len(drivers))
        if mode == "get":
            binds = sum(len(p._instances) for p in drivers) / len(drivers)
        else:
            binds = sum(sum(len(rows) for rows in p._slow_rows.values()) + len(p._instances) for p in drivers)
            binds /= len(drivers)
        out[mode] = (cpu, binds)
    return out


async def _read(pdu: SnmpPdu, mode: str) -> None:
    if mode == "walk":
        pdu._slow_at = -math.inf  # the slow columns are due: a full walk
    await pdu.read()


async def kuat_plan(pdus: list[tuple[str, str]], port: int) -> dict[str, dict[str, Any]]:
    """Per PDU: the family, the OIDs Kuat's GET asks for and the columns its walk reads (for the exporter)."""
    plan: dict[str, dict[str, Any]] = {}
    for ip, _family in pdus:
        pdu = await open_pdu(ip, port=port, timeout=5.0, retries=2)
        assert isinstance(pdu, SnmpPdu)
        await pdu.read()
        plan[ip] = {
            "family": pdu.table.family,
            "get": [f"{column}.{oid_text(index)}" for column, index in pdu._instances],
            "walk": walk_columns(pdu.table),
            "index_parts": {**{c: len(next(iter(rows), ())) for c, rows in pdu._slow_rows.items()},
                            **{c: len(index) for c, index in pdu._instances}},
        }
    return plan


# ---------------------------------------------------------------- snmp_exporter
def exporter_config(plan: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """snmp.yml (v0.21 format: auth in the module) and, per PDU, the module name of each mode."""
    modules: dict[str, Any] = {}
    names: dict[str, dict[str, str]] = {}
    tables = load_tables()
    for ip, p in plan.items():
        table = tables[p["family"]]
        strings = {c.oid for name, c in table.outlets.items() if name == "name"} | {
            c.fallback for c in table.outlets.values() if c.fallback
        }
        base = {"version": 2, "max_repetitions": 25, "retries": 1, "timeout": "5s", "auth": {"community": "public"}}
        get_key = f"{p['family']}_get_{len(p['get'])}"
        if get_key not in modules:
            columns = sorted({_column_of(oid, p["walk"]) for oid in p["get"]})
            metrics = [_metric(c, c in strings, p["index_parts"]) for c in columns]
            modules[get_key] = {**base, "get": p["get"], "metrics": metrics}
        walk_key = f"{p['family']}_walk"
        if walk_key not in modules:
            modules[walk_key] = {**base, "walk": p["walk"], "metrics": [_metric(c, c in strings, p["index_parts"])
                                                                    for c in p["walk"]]}
        names[ip] = {"get": get_key, "walk": walk_key}
    return modules, names


def _column_of(oid: str, columns: list[str]) -> str:
    return max((c for c in columns if oid.startswith(c + ".")), key=len)


def _metric(column: str, is_string: bool, index_parts: dict[str, int]) -> dict[str, Any]:
    """One metric per column, one gauge label per index part (unit.outlet.sensorType: three)."""
    parts = max(1, index_parts.get(column, 1))
    return {"name": "c_" + column.replace(".", "_"), "oid": column, "type": "DisplayString" if is_string else "gauge",
            "indexes": [{"labelname": f"i{n}", "type": "gauge"} for n in range(parts)]}


def exporter_rounds(exporter: str, plan: dict[str, dict[str, Any]], port: int, rounds: int
                    ) -> dict[str, tuple[float, float]]:
    """{mode: (exporter CPU s per scrape, samples per scrape)}."""
    modules, names = exporter_config(plan)
    work = Path(tempfile.mkdtemp(prefix="kuat-bench-exporter-"))
    config = work / "snmp.yml"
    config.write_text(yaml.safe_dump(modules, sort_keys=False))
    listen = free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen([exporter, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{listen}",
                             "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_http(f"http://127.0.0.1:{listen}/", proc)
        out: dict[str, tuple[float, float]] = {}
        with ThreadPoolExecutor(max_workers=len(plan)) as pool:
            for mode in ("get", "walk"):
                urls = [f"http://127.0.0.1:{listen}/snmp?target={ip}:{port}&module={names[ip][mode]}" for ip in plan]
                counts = list(pool.map(_scrape, urls))  # warm, and check that every scrape worked
                t0 = cpu_seconds(proc.pid)
                for _ in range(rounds):
                    list(pool.map(_scrape, urls))
                cpu = (cpu_seconds(proc.pid) - t0) / (rounds * len(urls))
                out[mode] = (cpu, sum(counts) / len(counts))
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


SAMPLE = re.compile(r"^c_[0-9_]+\{", re.M)


def _scrape(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"exporter scrape failed: {url}: {exc.read().decode()[:500]}") from exc
    if "snmp_scrape_pdus_returned" not in text:
        raise SystemExit(f"exporter scrape failed: {url}: {text[:300]}")
    return len(SAMPLE.findall(text))


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"snmp_exporter exited: {err[-1000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("snmp_exporter did not start")


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", default=str(PROJECT / "sim" / "sites" / "container-1000.toml"))
    ap.add_argument("--rounds", type=int, default=20, help="reads of every PDU per mode (default 20)")
    ap.add_argument("--exporter", default=EXPORTER, help=f"snmp_exporter binary (default {EXPORTER})")
    args = ap.parse_args()
    have_exporter = Path(args.exporter).exists()
    port = free_port(socket.SOCK_DGRAM)
    server, pdus = start_pdus(args.site, port)
    try:
        print(f"{len(pdus)} simulated PDUs on udp port {port}, {args.rounds} rounds per mode", file=sys.stderr)
        kuat = asyncio.run(kuat_rounds(pdus, port, args.rounds))
        exporter: dict[str, tuple[float, float]] = {}
        if have_exporter:
            plan = asyncio.run(kuat_plan(pdus, port))
            exporter = exporter_rounds(args.exporter, plan, port, args.rounds)
        else:
            print(f"{args.exporter} missing (apt-get install prometheus-snmp-exporter): Kuat only", file=sys.stderr)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"{'mode':<6} {'Kuat ms CPU/read':>17} {'exporter ms CPU/read':>21} {'Kuat/exporter':>14} "
          f"{'Kuat varbinds':>14} {'exporter samples':>17}")
    for mode in ("get", "walk"):
        k_cpu, k_binds = kuat[mode]
        e_cpu, e_samples = exporter.get(mode, (math.nan, math.nan))
        ratio = k_cpu / e_cpu if e_cpu else math.nan
        print(f"{mode:<6} {1000 * k_cpu:>17.3f} {1000 * e_cpu:>21.3f} {ratio:>14.2f} {k_binds:>14.0f} "
              f"{e_samples:>17.0f}")


if __name__ == "__main__":
    main()
