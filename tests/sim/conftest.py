"""Running simulated sites for the miner tests: a random 127.N block per site (several engineers test at once)."""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sim.miners import MinerServers, ServeOptions
from sim.runtime import SimMiner, Site
from sim.site import load_site
from tests.support.servers import loopback_nets

PROJECT = Path(__file__).resolve().parents[2]
SMALL_SITE = PROJECT / "sim" / "sites" / "small.toml"
QUICK_PHYSICS = {"boot_s": 0.5, "wake_s": 0.5, "ramp_s": 0.5, "sleep_s": 0.2}
IO_TIMEOUT_S = 10.0


@dataclass
class RunningSite:
    site: Site
    servers: MinerServers

    @property
    def rpc_port(self) -> int:
        return self.servers.opts.rpc

    @property
    def web_port(self) -> int:
        return self.servers.opts.web

    def miner(self, firmware: str, model: str | None = None, index: int = 0) -> SimMiner:
        found = [m for m in self.site.miners if m.d.firmware == firmware and (model is None or m.d.model == model)]
        if len(found) <= index:
            raise LookupError(f"the test site has no {firmware} {model or ''} #{index}")
        return found[index]


StartSite = Callable[..., Awaitable[RunningSite]]


async def start_site(port_offset: int, slow_s: float = 5.0, attempts: int = 8) -> RunningSite:
    """Serve small.toml on a random loopback block, trying another block if this one is taken."""
    last: OSError | None = None
    for _ in range(attempts):
        net, pdu_net = loopback_nets(2)
        site = Site(load_site(SMALL_SITE, miner_net=net, pdu_net=pdu_net), **QUICK_PHYSICS)
        servers = MinerServers(site, ServeOptions(port_offset=port_offset, slow_s=slow_s))
        try:
            await servers.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
            continue
        return RunningSite(site, servers)
    raise RuntimeError(f"no free loopback block after {attempts} tries: {last}")


@pytest.fixture
async def sim_site() -> AsyncIterator[StartSite]:
    """Factory: `await sim_site(port_offset=30000)`; every site started is stopped at teardown."""
    started: list[RunningSite] = []

    async def factory(port_offset: int = 30000, slow_s: float = 5.0) -> RunningSite:
        running = await start_site(port_offset, slow_s)
        started.append(running)
        return running

    yield factory
    for running in started:
        await running.servers.stop()


async def rpc_raw(ip: str, port: int, payload: bytes | str | dict[str, Any], *, limit_s: float = IO_TIMEOUT_S) -> bytes:
    """One request on a fresh connection; everything the miner sends until it closes."""
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), limit_s)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), limit_s)
    finally:
        writer.close()


def decode(raw: bytes) -> Any:
    assert raw.endswith(b"\x00"), f"reply must end with NUL: {raw[-40:]!r}"
    assert raw.count(b"\x00") == 1, "exactly one NUL, at the end"
    return json.loads(raw[:-1])


async def rpc(ip: str, port: int, command: str, parameter: str | None = None) -> Any:
    req: dict[str, Any] = {"command": command}
    if parameter is not None:
        req["parameter"] = parameter
    return decode(await rpc_raw(ip, port, req))


async def until(predicate: Callable[[], bool], what: str, limit_s: float = 15.0) -> None:
    """Wait (bounded) for the simulated physics to reach a state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
