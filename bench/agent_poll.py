"""How hard does one gateway agent work to poll a site? Devices polled per second and CPU per device.

Starts the simulator (`kuat sim run`) on a random loopback block with a port offset in a separate process, then runs
the agent's own poll loop (Coordinator + real drivers, the outlet-map merge, the TelemetryBatch serialisation and
the SQLite buffer write - everything a cycle costs but the MQTT socket) for K cycles back to back, and prints:

- the first cycle (drivers opened: firmware identification) apart from the steady ones;
- per steady cycle: wall time, devices answered, devices polled per second;
- CPU seconds of the agent process per cycle and per device (time.process_time: all threads of this process);
- % of one core the agent would use polling every --interval seconds (the goal: 1,000 miners + 50 PDUs every 10 s
  under 50 %).

The simulator runs on the same machine and competes for the same cores: wall times are pessimistic, CPU figures are
the agent's own.

    .venv/bin/python bench/agent_poll.py                       # container-1000: 1,000 miners, 50 PDUs
    .venv/bin/python bench/agent_poll.py --miners 200 --cycles 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from agent.buffer import Buffer  # noqa: E402
from agent.config import config_from_dict  # noqa: E402
from agent.coordinator import Coordinator, Cycle, Fleet  # noqa: E402
from agent.service import RealDrivers  # noqa: E402
from kuat.wire import v1  # noqa: E402
from sim.agent_config import agent_config_dict  # noqa: E402
from sim.site import SiteFile, load_site  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", default=str(PROJECT / "sim" / "sites" / "container-1000.toml"), help="site file")
    p.add_argument("--miners", type=int, default=None, help="poll only the first N miners (default: all)")
    p.add_argument("--cycles", type=int, default=5, help="steady cycles to measure (after the first)")
    p.add_argument("--interval", type=float, default=10.0, help="poll interval the %% of a core is computed for")
    p.add_argument("--concurrency", type=int, default=64, help="devices read at the same time")
    p.add_argument("--timeout", type=float, default=5.0, help="per-miner timeout, seconds")
    p.add_argument("--pdu-timeout", type=float, default=10.0, help="per-PDU timeout (a read walks several tables)")
    p.add_argument("--port-offset", type=int, default=None, help="simulator port offset (default: random)")
    p.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for the simulator")
    return p.parse_args()


def free_loopback_blocks() -> tuple[str, str]:
    a = random.randint(20, 240)
    return f"127.{a}", f"127.{a + 1}"


def wait_tcp(ip: str, port: int, limit_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the simulator exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=0.5):
            return
        time.sleep(0.2)
    raise SystemExit(f"the simulator did not open {ip}:{port} within {limit_s:.0f}s")


def start_simulator(args: argparse.Namespace, miner_net: str, pdu_net: str, offset: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "kuat.cli", "--log-level", "warning", "sim", "run", "--site", args.site,
           "--port-offset", str(offset), "--miner-net", miner_net, "--pdu-net", pdu_net, "--control-port", "0",
           "--speed", "1"]
    return subprocess.Popen(cmd, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def stop_simulator(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Measured:
    def __init__(self, cycle: Cycle, cpu_s: float) -> None:
        self.cycle = cycle
        self.cpu_s = cpu_s
        self.answered = sum(m.available for m in cycle.miners) + sum(p.available for p in cycle.pdus)


async def run_cycles(site: SiteFile, args: argparse.Namespace, offset: int, workdir: Path) -> list[Measured]:
    data = agent_config_dict(site, None, port_offset=offset, buffer_path=workdir / "buffer.sqlite")
    if args.miners is not None:
        data["devices"]["miners"] = data["devices"]["miners"][: args.miners]
    data["poll"].update(concurrency=args.concurrency, device_timeout_s=args.timeout, pdu_timeout_s=args.pdu_timeout)
    cfg = config_from_dict(data)
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    coord = Coordinator(fleet, RealDrivers(offset, args.timeout), concurrency=args.concurrency,
                        device_timeout_s=args.timeout, pdu_timeout_s=args.pdu_timeout)
    buffer = Buffer(cfg.buffer.path)
    results: list[Measured] = []
    for _ in range(args.cycles + 1):
        cpu0 = time.process_time()
        cycle = await coord.poll_once()
        batch = v1.TelemetryBatch(site=cfg.site, gateway=cfg.gateway, seq=buffer.next_seq(), ts=v1.now(),
                                  cycle_s=cycle.duration_s, miners=cycle.miners, pdus=cycle.pdus)
        payload = v1.dumps(batch)
        buffer.append(batch.seq, payload)
        buffer.delete(batch.seq)  # as if the broker had acknowledged it
        results.append(Measured(cycle, time.process_time() - cpu0))
        print(f"  cycle {len(results)}: {cycle.duration_s:6.2f} s wall, {results[-1].cpu_s:6.2f} s CPU, "
              f"{results[-1].answered}/{cycle.devices} answered, batch {len(payload) / 1024:.0f} KiB", flush=True)
    buffer.close()
    return results


def report(results: list[Measured], interval: float) -> None:
    first, steady = results[0], results[1:]
    devices = first.cycle.devices
    print(f"\nfirst cycle (drivers opened, firmware identified): {first.cycle.duration_s:.2f} s wall, "
          f"{first.cpu_s:.2f} s CPU")
    if not steady:
        return
    wall = statistics.mean(m.cycle.duration_s for m in steady)
    cpu = statistics.mean(m.cpu_s for m in steady)
    answered = min(m.answered for m in steady)
    print(f"steady cycles ({len(steady)}):")
    print(f"  devices:                   {devices} ({len(first.cycle.miners)} miners, {len(first.cycle.pdus)} PDUs);"
          f" fewest answering in a cycle: {answered}")
    print(f"  cycle time:                {wall:.2f} s mean, {max(m.cycle.duration_s for m in steady):.2f} s worst")
    print(f"  devices polled per second: {devices / wall:.0f}")
    print(f"  CPU per cycle:             {cpu:.2f} s  ({cpu / devices * 1000:.2f} ms per device)")
    print(f"  at a {interval:.0f} s interval:       {cpu / interval * 100:.1f} % of one core "
          f"(goal: under 50 % for 1,000 miners + 50 PDUs)")


def main() -> None:
    args = parse_args()
    miner_net, pdu_net = free_loopback_blocks()
    offset = args.port_offset if args.port_offset is not None else random.randint(20, 29) * 1000
    site = load_site(args.site, miner_net=miner_net, pdu_net=pdu_net)
    print(f"simulator: {args.site} ({len(site.miners)} miners, {len(site.pdus)} PDUs) on {miner_net}.x.y / "
          f"{pdu_net}.x.y, port offset {offset}", flush=True)
    proc = start_simulator(args, miner_net, pdu_net, offset)
    try:
        last = site.miners[-1]
        assert last.ip is not None
        t0 = time.monotonic()
        wait_tcp(last.ip, 4028 + offset, args.start_timeout, proc)
        print(f"simulator up in {time.monotonic() - t0:.1f} s; polling (concurrency {args.concurrency}, "
              f"timeout {args.timeout} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="kuat-bench-") as tmp:
            results = asyncio.run(run_cycles(site, args, offset, Path(tmp)))
        report(results, args.interval)
    finally:
        stop_simulator(proc)
        if proc.stderr is not None:
            errors = proc.stderr.read().decode(errors="replace").strip()
            if errors and os.environ.get("KUAT_BENCH_VERBOSE"):
                print("simulator stderr:\n" + errors[-3000:])


if __name__ == "__main__":
    main()
