"""Setpoints per second and CPU per setpoint, per firmware: the lean control paths (agent/control) against the
pyasic path on the same simulated miners.

One process plays the gateway: it applies `--setpoints` commands per firmware to the simulated miners (started in
a separate process, so its CPU is not counted), `--concurrency` at a time, and measures wall time and its own CPU
(time.process_time). What a "setpoint" is per firmware: LuxOS and Braiins OS a power target (alternating two profiles),
Whatsminer API v2 and v3, stock Antminer and Avalon a sleep/wake order (the encrypted or signed write path that a
power target also takes; their power targets reboot the simulated miner, which would make the run measure boots).
pyasic's identification is paid before the clock starts (the agent warms it in the background), so the baseline
is pyasic's per-command cost only. Prints figures; asserts nothing. Goal (issue 14): 500 setpoints in < 2 s using
< 50 % of a core.

    .venv/bin/python bench/setpoints.py                   # 100 miners per firmware, 500 setpoints each
    .venv/bin/python bench/setpoints.py --no-pyasic       # the lean paths only
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_poll import free_loopback_blocks, stop_simulator, wait_tcp  # noqa: E402

from agent.control.base import Control, Target  # noqa: E402
from agent.control.pyasic import PyasicControl  # noqa: E402
from agent.drivers.parsers import Reading  # noqa: E402
from agent.firmware import FAMILIES  # noqa: E402
from sim.site import load_site  # noqa: E402

FIRMWARE = {"luxos": ("luxos", "S19j Pro"), "btminer": ("whatsminer", "M30S"), "btminer3": ("whatsminer3", "M60"),
            "bmminer": ("antminer", "S19j Pro"), "avalon": ("avalon", "A1246"), "braiins": ("braiins", "S19j Pro")}
SIM_PASSWORDS = {"btminer": "admin", "btminer3": "super", "braiins": "root"}
NO_PYASIC_BASELINE = {"braiins"}  # pyasic sets a Braiins power target over gRPC or SSH, neither simulated


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--miners", type=int, default=100, help="simulated miners per firmware")
    p.add_argument("--setpoints", type=int, default=500, help="setpoints applied per firmware and path")
    p.add_argument("--concurrency", type=int, default=64, help="commands in flight at once (per gateway)")
    p.add_argument("--firmware", action="append", choices=sorted(FIRMWARE), help="only these (repeatable)")
    p.add_argument("--no-pyasic", action="store_true", help="skip the pyasic baseline")
    p.add_argument("--start-timeout", type=float, default=180.0)
    return p.parse_args()


def site_file(directory: Path, miners: int, firmware: list[str]) -> Path:
    racks = []
    for fw in firmware:
        model = FIRMWARE[fw][1]
        racks.append(f'[[racks]]\nname = "{fw}"\ngateway = "gw1"\npdus = ["apc_rpdu2"]\noutlets_per_pdu = {miners}\n'
                     f'miners = [{{ model = "{model}", firmware = "{fw}", count = {miners} }}]\n')
    path = directory / "setpoints.toml"
    path.write_text('[site]\nname = "setpoints"\ngateways = ["gw1"]\n\n' + "\n".join(racks))
    return path


def order(fw: str, control: Control, i: int) -> Awaitable[None]:
    """The i-th setpoint for a miner of this firmware (alternating, so every order changes something)."""
    if fw in ("luxos", "braiins"):
        return control.set_power_target(2900 if i % 2 else 2700, Reading())
    return control.wake() if i % 2 else control.sleep()


async def apply(fw: str, controls: list[Control], total: int, concurrency: int) -> tuple[float, float, int]:
    slots = asyncio.Semaphore(concurrency)
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        async with slots:
            try:
                await order(fw, controls[i % len(controls)], i // len(controls))
            except Exception:  # counted and printed: a bench reports, it does not stop
                errors += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    return time.perf_counter() - wall0, time.process_time() - cpu0, errors


async def identified(controls: list[Control]) -> list[Control]:
    """The pyasic controls whose miner pyasic identified (8 at a time, as the agent warms them)."""
    slots = asyncio.Semaphore(8)

    async def ok(c: Control) -> bool:
        async with slots:
            try:
                assert isinstance(c, PyasicControl)
                await c.miner()
            except Exception as exc:
                print(f"    pyasic could not identify {c.ip}: {exc}", flush=True)
                return False
            return True

    flags = await asyncio.gather(*(ok(c) for c in controls))
    return [c for c, good in zip(controls, flags, strict=True) if good]


def v3_pyasic(targets: list[Target]) -> list[Control]:
    """pyasic's factory looks for API v3 only on port 4433: build its BTMinerV3 directly, on the offset port."""
    import warnings

    from pyasic.miners.factory import MinerFactory, MinerTypes

    out: list[Control] = []
    for t in targets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            miner = MinerFactory._select_miner_from_classes(t.ip, miner_model="M60VK10",
                                                            miner_type=MinerTypes.WHATSMINER, version="20241205")
        miner.rpc.port = 4433 + t.rpc_port - 4028
        out.append(PyasicControl(t, miner))
    return out


async def run(site: Any, args: argparse.Namespace, offset: int) -> list[tuple[str, str, float, float, int]]:
    results = []
    for fw in args.firmware:
        miners = [m for m in site.miners if m.firmware == fw]
        targets = [Target(m.ip, 4028 + offset, 80 + offset, 10.0, None, SIM_PASSWORDS.get(fw)) for m in miners]
        paths: list[tuple[str, list[Control]]] = []
        pyasic: list[Control] = []
        # pyasic identified first: a sleeping Whatsminer refuses the devdetails pyasic needs
        if not args.no_pyasic and fw not in NO_PYASIC_BASELINE:
            pyasic = (v3_pyasic(targets) if fw == "btminer3" else await identified([PyasicControl(t) for t in targets]))
            if not pyasic:
                print(f"  {fw:<9} pyasic identified none of the miners: no baseline", flush=True)
        lean_factory = FAMILIES[FIRMWARE[fw][0]].control
        paths.append(("lean", [lean_factory(t) for t in targets]))
        if pyasic:
            paths.append(("pyasic", pyasic))
        for name, controls in paths:
            await apply(fw, controls, min(len(controls), args.concurrency), args.concurrency)  # warm-up round
            wall, cpu, errors = await apply(fw, controls, args.setpoints, args.concurrency)
            results.append((fw, name, wall, cpu, errors))
            print(f"  {fw:<9} {name:<6} {args.setpoints} setpoints in {wall:5.2f} s = {args.setpoints / wall:6.0f}/s,"
                  f" CPU {cpu:5.2f} s ({cpu / args.setpoints * 1000:5.2f} ms each, {cpu / wall * 100:3.0f} % of a core"
                  f" while applying), {errors} failed", flush=True)
            for c in controls:
                await c.close()
    return results


def main() -> None:
    import subprocess

    args = parse_args()
    args.firmware = args.firmware or list(FIRMWARE)
    miner_net, pdu_net = free_loopback_blocks()
    offset = random.randint(20, 29) * 1000
    with tempfile.TemporaryDirectory(prefix="kuat-setpoints-") as tmp:
        path = site_file(Path(tmp), args.miners, args.firmware)
        site = load_site(path, miner_net=miner_net, pdu_net=pdu_net)
        cmd = [sys.executable, "-m", "kuat.cli", "--log-level", "warning", "sim", "run", "--site", str(path),
               "--port-offset", str(offset), "--miner-net", miner_net, "--pdu-net", pdu_net, "--control-port",
               "0", "--speed", "1", "--no-pdus", "--wake-s", "0.2", "--ramp-s", "0.2", "--sleep-s", "0.2"]
        proc = subprocess.Popen(cmd, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            last = site.miners[-1]
            assert last.ip is not None
            port = (4433 if last.firmware == "btminer3" else 4028) + offset
            wait_tcp(last.ip, port, args.start_timeout, proc)
            print(f"{len(site.miners)} simulated miners ({args.miners} per firmware), concurrency "
                  f"{args.concurrency}; CPU is this process's (the simulator runs in another)", flush=True)
            results = asyncio.run(run(site, args, offset))
        finally:
            stop_simulator(proc)
    lean = {fw: cpu for fw, name, _, cpu, _ in results if name == "lean"}
    for fw, name, _, cpu, _ in results:
        if name == "pyasic" and lean.get(fw):
            print(f"  {fw:<9} pyasic / lean CPU per setpoint: {cpu / lean[fw]:.1f}x")


if __name__ == "__main__":
    main()
