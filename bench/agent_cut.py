"""One gateway's share of a cut, with and without commands-before-polls (agent/priority.py), in one process.

The simulator serves the 1,000-miner container site (another process, short firmware ramps); this process is the
agent of gateway gw1 (~520 miners, 26 PDUs): its real poll loop runs every `--poll-s` seconds while setpoint
batches for every miner are handed to its command processor, alternately a cut (stock Antminers and Whatsminers
sleep, LuxOS to a low power target) and a restore (everything runs), each 50 ms after a poll cycle began. Pairs
of rounds alternate the gate on and off, so both modes see the same machine load. Printed per mode: wall time
from a batch's arrival to its last device action, the agent's CPU in that time, and how many poll reads waited
for the batch (the reads holding poll slots; the others queue behind them). Asserts nothing.

    .venv/bin/python bench/agent_cut.py [--rounds 8] [--poll-s 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_poll import free_loopback_blocks, stop_simulator, wait_tcp  # noqa: E402

from agent.config import config_from_dict  # noqa: E402
from agent.priority import CommandsFirst  # noqa: E402
from agent.service import Agent  # noqa: E402
from kuat.wire import v1  # noqa: E402
from sim.agent_config import agent_config_dict  # noqa: E402
from sim.site import load_site  # noqa: E402

SITE = PROJECT / "sim" / "sites" / "container-1000.toml"


def batch(agent: Agent, cut: bool, k: int) -> v1.Command:
    setpoints = []
    for dev in agent.fleet.miners:
        fw = (dev.last.firmware or "").lower() if dev.last else ""
        if not cut:
            setpoints.append(v1.Setpoint(device_id=dev.device_id, mode=v1.SetpointMode.RUN))
        elif "lux" in fw:
            low = dev.last.capabilities.power_min_w if dev.last else None
            setpoints.append(v1.Setpoint(device_id=dev.device_id, mode=v1.SetpointMode.POWER_TARGET,
                                         power_w=(low or 1200.0) + 50))
        else:
            setpoints.append(v1.Setpoint(device_id=dev.device_id, mode=v1.SetpointMode.SLEEP))
    return v1.Command(id=f"bench-{k}", kind=v1.CommandKind.SETPOINTS, lease_s=600, setpoints=setpoints)


async def cycles_pass(agent: Agent, n: int) -> None:
    """Wait for `n` poll cycles to end (polling the counter: the coordinator has no cycle event)."""
    target = agent.coordinator.cycles + n
    while agent.coordinator.cycles < target:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def watch_cycle_starts(agent: Agent) -> asyncio.Event:
    """An event set whenever a poll cycle starts (wraps the coordinator's poll_once; bench only)."""
    started = asyncio.Event()
    poll_once = agent.coordinator.poll_once

    async def poll_once_watched():  # type: ignore[no-untyped-def]
        started.set()
        return await poll_once()

    agent.coordinator.poll_once = poll_once_watched  # type: ignore[method-assign]
    return started


async def rounds(agent: Agent, n: int, started: asyncio.Event) -> dict[bool, list[tuple[float, float, int, int]]]:
    gate = agent.gate
    out: dict[bool, list[tuple[float, float, int, int]]] = {True: [], False: []}
    for k in range(n):
        gated = (k // 2) % 2 == 0
        agent.coordinator.gate = gate if gated else None
        await cycles_pass(agent, 2)  # telemetry describes the plant before the batch
        started.clear()
        await started.wait()  # the batch arrives just after a cycle began, as a cap does on a busy gateway
        await asyncio.sleep(0.05)
        cmd = batch(agent, cut=k % 2 == 0, k=k)
        held0 = gate.reads_held
        cpu0, wall0 = time.process_time(), time.perf_counter()
        ack = await agent.commands.handle(cmd)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        changed = sum(1 for i in ack.items if i.status == v1.AckStatus.APPLIED and i.reason != "unchanged")
        out[gated].append((wall, cpu, gate.reads_held - held0, changed))
        print(f"  round {k}: {'cut    ' if k % 2 == 0 else 'restore'} gate {'on ' if gated else 'off'} "
              f"{changed} device actions in {wall:5.2f} s, agent CPU {cpu:4.2f} s, "
              f"{gate.reads_held - held0} reads waited", flush=True)
    return out


async def main_async(args: argparse.Namespace, offset: int, miner_net: str, pdu_net: str, tmp: Path) -> None:
    site = load_site(SITE, miner_net=miner_net, pdu_net=pdu_net)
    data = agent_config_dict(site, "gw1", port_offset=offset, buffer_path=tmp / "buf.sqlite", interval_s=args.poll_s)
    agent = Agent(config_from_dict(data))
    assert isinstance(agent.gate, CommandsFirst)
    stop = asyncio.Event()

    async def publish(_cycle: object) -> None:
        return None

    started = watch_cycle_starts(agent)
    poll = asyncio.create_task(agent.coordinator.run(publish, stop))
    await cycles_pass(agent, 3)
    up = sum(1 for m in agent.fleet.miners if m.last is not None and m.last.available)
    print(f"gw1: {up} of {len(agent.fleet.miners)} miners answering, poll every {args.poll_s:g} s "
          f"(last cycle {agent.coordinator.last_cycle.duration_s if agent.coordinator.last_cycle else 0:.2f} s)")
    try:
        out = await rounds(agent, args.rounds, started)
    finally:
        stop.set()
        await poll
    for gated in (False, True):
        rows = out[gated]
        if rows:
            print(f"gate {'on ' if gated else 'off'}: batch applied in median "
                  f"{statistics.median(r[0] for r in rows):.2f} s (rounds: {', '.join(f'{r[0]:.2f}' for r in rows)}),"
                  f" agent CPU median {statistics.median(r[1] for r in rows):.2f} s, reads waited "
                  f"{sum(r[2] for r in rows)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--poll-s", type=float, default=2.0)
    args = p.parse_args()
    miner_net, pdu_net = free_loopback_blocks()
    offset = random.randint(20, 29) * 1000
    site = load_site(SITE, miner_net=miner_net, pdu_net=pdu_net)
    cmd = [sys.executable, "-m", "kuat.cli", "--log-level", "warning", "sim", "run", "--site", str(SITE),
           "--port-offset", str(offset), "--miner-net", miner_net, "--pdu-net", pdu_net, "--control-port", "0",
           "--speed", "1", "--wake-s", "0.5", "--ramp-s", "0.5", "--sleep-s", "0.5", "--boot-s", "0.5"]
    proc = subprocess.Popen(cmd, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_tcp(str(site.miners[-1].ip), 4028 + offset, 180, proc)
        with tempfile.TemporaryDirectory(prefix="kuat-agent-cut-") as tmp:
            asyncio.run(main_async(args, offset, miner_net, pdu_net, Path(tmp)))
    finally:
        stop_simulator(proc)


if __name__ == "__main__":
    main()
