"""Bench: the simulated PDUs of a 1,000-miner site answering an agent-like SNMP poll.

A server process builds the site (default sim/sites/container-1000.toml: 1,000 miners, 50 PDUs), runs its energy
ticker and serves every PDU over SNMP v2c on loopback (random 127.N blocks, a free UDP port). This process polls
every PDU the way a lean agent does - one GETBULK walk per PDU over the outlet power/current/energy/state/name
columns plus the device totals - for a few cycles, and prints figures: wall time per cycle, var-binds per cycle and
the server's CPU time per cycle (from /proc), i.e. its CPU share at a 10 s poll period.

    .venv/bin/python bench/sim_snmp.py [--site FILE] [--cycles 5] [--period 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from pysnmp.hlapi.v3arch.asyncio import (  # noqa: E402 - after the path setup for running from anywhere
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    bulk_cmd,
)
from pysnmp.proto.rfc1905 import EndOfMibView  # noqa: E402

APC, RARITAN, SENTRY = "1.3.6.1.4.1.318.1.1.26", "1.3.6.1.4.1.13742.6", "1.3.6.1.4.1.1718.4"
POLL_COLUMNS = {  # what an agent reads per PDU, per family (DEVICES.md)
    "apc_rpdu2": [f"{APC}.9.4.3.1.3", f"{APC}.9.4.3.1.6", f"{APC}.9.4.3.1.7", f"{APC}.9.4.3.1.11",
                  f"{APC}.9.2.3.1.5", f"{APC}.4.3.1.5", f"{APC}.4.3.1.9"],
    "raritan_px2": [f"{RARITAN}.3.5.3.1.3", f"{RARITAN}.5.4.3.1.4", f"{RARITAN}.4.1.2.1.3", f"{RARITAN}.5.2.3.1.4"],
    "sentry4": [f"{SENTRY}.1.8.2.1.3", f"{SENTRY}.1.8.3.1.3", f"{SENTRY}.1.8.3.1.7", f"{SENTRY}.1.8.3.1.14",
                f"{SENTRY}.1.8.3.1.1", f"{SENTRY}.1.3.3.1.3", f"{SENTRY}.1.3.3.1.10"],
}


# ---------------------------------------------------------------- server side (child process)
async def serve(site_file: str, port: int, miner_net: str, pdu_net: str, with_miners: bool) -> None:
    """PDU agents and the site's ticker; `with_miners`: the whole simulator process (sim.server), miners
    listening on 80/4028 + offset, so the figures are those of the real process."""
    from sim.site import load_site

    site_def = load_site(site_file, miner_net=miner_net, pdu_net=pdu_net)
    stop: Callable[[], Awaitable[None]]
    if with_miners:
        from sim.server import SNMP_PORT, SimConfig, SimServer

        server = await SimServer(site_def, SimConfig(port_offset=port - SNMP_PORT, control_port=None)).start()
        site, stop = server.site, server.stop
    else:
        from sim.clock import SimClock
        from sim.pdus import start_pdu_agents
        from sim.runtime import Site

        site = Site(site_def, clock=SimClock())
        agents = await start_pdu_agents(site, port)
        ticker = asyncio.create_task(site.run_ticker())

        async def stop() -> None:
            ticker.cancel()
            await agents.stop()

    for pdu in site.pdus:
        print(f"PDU {pdu.ip} {pdu.d.family}", flush=True)
    print(f"READY {len(site.miners)} miners{' served' if with_miners else ''}", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    finally:
        await stop()


# ---------------------------------------------------------------- client side
def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def poll_pdu(engine: SnmpEngine, ip: str, family: str, port: int) -> int:
    """Walk all poll columns of one PDU side by side with GETBULK (R columns per request); var-binds read."""
    target = await UdpTransportTarget.create((ip, port), timeout=2, retries=1)
    last = {c: c for c in POLL_COLUMNS[family]}  # column -> last OID read in it
    binds = 0
    while last:
        columns = list(last)
        err, status, _, rows = await bulk_cmd(
            engine, CommunityData("public"), target, ContextData(), 0, 25,
            *(ObjectType(ObjectIdentity(last[c])) for c in columns), lookupMib=False,
        )
        if err or status:
            raise RuntimeError(f"{ip}: {err or status.prettyPrint()}")
        done: set[str] = set()
        for i, (name, value) in enumerate(rows):
            column = columns[i % len(columns)]
            ended = isinstance(value, EndOfMibView) or str(name) == last[column]
            if column in done or ended or not str(name).startswith(column + "."):
                done.add(column)
                continue
            last[column] = str(name)
            binds += 1
        if not rows:
            break
        for column in done:
            last.pop(column, None)
    return binds


async def poll_all(pdus: list[tuple[str, str]], port: int, cycles: int, period: float, server_pid: int) -> None:
    engine = SnmpEngine()
    await poll_pdu(engine, *pdus[0], port)  # warm up the client's MIB resolution
    print(f"{len(pdus)} PDUs, {cycles} poll cycles every {period:.0f} s")
    header = ("cycle", "wall s", "var-binds", "server CPU s", "server CPU %", "client CPU s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (5, 8, 10, 13, 13, 13), strict=True)))
    for n in range(1, cycles + 1):
        cpu0, t0, mine0 = cpu_seconds(server_pid), time.perf_counter(), time.process_time()
        counts = await asyncio.gather(*(poll_pdu(engine, ip, fam, port) for ip, fam in pdus))
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(server_pid) - cpu0
        mine = time.process_time() - mine0
        print(f"{n:>5} {wall:>8.2f} {sum(counts):>10} {cpu:>13.3f} {100 * cpu / period:>12.1f}% {mine:>13.2f}")
        await asyncio.sleep(max(0.0, period - wall))
    idle0 = cpu_seconds(server_pid)
    await asyncio.sleep(period)
    idle = cpu_seconds(server_pid) - idle0
    print(f"idle server (energy ticker, no requests): {idle:.3f} CPU s per {period:.0f} s "
          f"({100 * idle / period:.1f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", default=str(PROJECT / "sim" / "sites" / "container-1000.toml"))
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--period", type=float, default=10.0, help="poll period in seconds (default 10)")
    ap.add_argument("--with-miners", action="store_true",
                    help="run the whole simulator (sim.server: miners on 80/4028 + an offset too), not only the PDUs")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--miner-net", default="", help=argparse.SUPPRESS)
    ap.add_argument("--pdu-net", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.site, args.port, args.miner_net, args.pdu_net, args.with_miners))
        return
    # with miners, the simulator serves 80/4028/161 + one offset: pick it so all three are unprivileged
    port = random.randint(20000, 30000) + 161 if args.with_miners else free_udp_port()
    miner_net, pdu_net = (f"127.{n}" for n in random.sample(range(20, 251), 2))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--site", args.site, "--port", str(port),
         "--miner-net", miner_net, "--pdu-net", pdu_net, *(["--with-miners"] if args.with_miners else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        pdus: list[tuple[str, str]] = []
        deadline = time.monotonic() + 60
        for line in server.stdout:
            if line.startswith("PDU "):
                _, ip, family = line.split()
                pdus.append((ip, family))
            if line.startswith("READY") or time.monotonic() > deadline:
                print(f"server: {line.strip()}, {len(pdus)} PDUs on udp port {port} ({pdu_net}.x.y)")
                break
        asyncio.run(poll_all(pdus, port, args.cycles, args.period, server.pid))
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
