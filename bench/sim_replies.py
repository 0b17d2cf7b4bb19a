"""Bench: how many miner replies per second the simulator sustains.

A server process (this script with --serve) starts N simulated miners of a site file on a random 127.N block with a
port offset (no root needed), and optionally the site's PDUs. This process then runs M concurrent raw-socket
clients for a bounded time; each opens a connection to a random miner, sends one cgminer command (or, with --web,
one digest-authenticated GET of the stock Antminer web API), reads the reply to EOF and starts over. It prints
replies/s, latency percentiles, errors and the server's CPU share (from /proc).

    .venv/bin/python bench/sim_replies.py [--site FILE] [--miners 1000] [--clients 64] [--seconds 10] [--web]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

DEFAULT_SITE = PROJECT / "sim" / "sites" / "container-1000.toml"
COMMANDS = ["summary", "stats", "pools", "version", "devs"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- server side (child process)
async def serve(site_file: str, miners: int, port_offset: int, miner_net: str, pdus: bool) -> None:
    from sim.runtime import Site
    from sim.server import SimConfig, SimServer
    from sim.site import load_site

    site_def = load_site(site_file, miner_net=miner_net, pdu_net=f"127.{random.randint(20, 250)}")
    site_def = site_def.model_copy(update={"miners": site_def.miners[:miners]})
    server = SimServer(site_def, SimConfig(port_offset=port_offset, control_port=None, serve_pdus=pdus))
    assert isinstance(server.site, Site)
    started = time.monotonic()
    await server.start()
    for m in server.site.miners:
        print(f"MINER {m.ip} {m.d.firmware}", flush=True)
    print(f"READY {len(server.site.miners)} miners, {len(server.miners.servers)} listeners, "
          f"started in {time.monotonic() - started:.2f} s", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    finally:
        await server.stop()


# ---------------------------------------------------------------- client side
async def one_rpc(ip: str, port: int, command: str) -> bytes:
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        writer.write(json.dumps({"command": command}).encode())
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


async def one_web(ip: str, port: int, client: object) -> bytes:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    resp = await client.get(f"http://{ip}:{port}/cgi-bin/summary.cgi", auth=httpx.DigestAuth("root", "root"))
    return resp.content if resp.status_code == 200 else b""


async def client_loop(targets: list[tuple[str, str]], args: argparse.Namespace, deadline: float,
                      latencies: list[float], errors: list[str], web: object) -> None:
    import httpx

    rpc_port, web_port = 4028 + args.port_offset, 80 + args.port_offset
    web_targets = [ip for ip, fw in targets if fw == "bmminer"]
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            if args.web:
                data = await one_web(random.choice(web_targets), web_port, web)
                ok = data.startswith(b"{")
            else:
                ip, _ = random.choice(targets)
                data = await asyncio.wait_for(one_rpc(ip, rpc_port, random.choice(COMMANDS)), 10)
                ok = data.endswith(b"\x00")
        except (OSError, TimeoutError, httpx.HTTPError) as exc:
            errors.append(type(exc).__name__)
            continue
        if ok:
            latencies.append(time.monotonic() - t0)
        else:
            errors.append("bad reply")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def run_clients(args: argparse.Namespace, targets: list[tuple[str, str]], pid: int) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    import httpx

    if args.web and not any(fw == "bmminer" for _, fw in targets):
        raise SystemExit("--web needs stock Antminer (bmminer) miners in the site")
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=args.clients)) as web:
        cpu0, own0, t0 = cpu_seconds(pid), time.process_time(), time.monotonic()
        deadline = t0 + args.seconds
        await asyncio.gather(*(client_loop(targets, args, deadline, latencies, errors, web)
                               for _ in range(args.clients)))
        wall = time.monotonic() - t0
        cpu, own = cpu_seconds(pid) - cpu0, time.process_time() - own0
    lat = sorted(latencies)
    kind = "web summary.cgi (digest)" if args.web else "RPC " + "/".join(COMMANDS)
    print(f"miners: {len(targets)}  clients: {args.clients}  duration: {wall:.1f} s  requests: {kind}")
    print(f"replies: {len(lat)}  -> {len(lat) / wall:.0f} replies/s")
    if lat:
        print(f"latency ms: p50 {1000 * statistics.median(lat):.1f}  p99 {1000 * lat[int(0.99 * (len(lat) - 1))]:.1f}"
              f"  max {1000 * lat[-1]:.1f}")
    print(f"errors: {len(errors)} {dict((e, errors.count(e)) for e in set(errors))}")
    print(f"server CPU: {cpu:.1f} s over {wall:.1f} s = {100 * cpu / wall:.0f} % of one core"
          f"  (clients: {100 * own / wall:.0f} %)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", default=str(DEFAULT_SITE), help="site file (default: container-1000.toml)")
    ap.add_argument("--miners", type=int, default=1000, help="serve the first N miners of the site (default 1000)")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the clients run (default 10)")
    ap.add_argument("--port-offset", type=int, default=40000, help="added to 4028/80/161 (default 40000: no root)")
    ap.add_argument("--web", action="store_true", help="measure the Antminer web API (digest auth) instead of RPC")
    ap.add_argument("--pdus", action="store_true", help="also serve the site's PDUs over SNMP, as in production")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--miner-net", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.site, args.miners, args.port_offset, args.miner_net, args.pdus))
        return
    if args.miners < 1 or args.clients < 1 or args.seconds <= 0:
        ap.error("--miners and --clients must be >= 1 and --seconds > 0")
    net = f"127.{random.randint(20, 250)}"
    cmd = [sys.executable, __file__, "--serve", "--site", args.site, "--miners", str(args.miners),
           "--port-offset", str(args.port_offset), "--miner-net", net] + (["--pdus"] if args.pdus else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    targets: list[tuple[str, str]] = []
    try:
        for line in proc.stdout:
            if line.startswith("MINER "):
                _, ip, fw = line.split()
                targets.append((ip, fw))
            elif line.startswith("READY"):
                print(line.strip())
                break
        else:
            raise SystemExit(f"the simulator did not start (exit code {proc.wait(timeout=10)})")
        asyncio.run(run_clients(args, targets, proc.pid))
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
