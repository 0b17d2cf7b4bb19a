"""The cgminer RPC transport over real TCP sockets: a small loopback server replays real captured replies the way
firmware sends them (NUL terminator, one request per connection, multi-command refused like some Whatsminer and
S19 firmware, broken JSON), and the driver's read path must cope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.drivers.base import DeviceError, DeviceUnreachable
from agent.drivers.miner import RpcMiner
from agent.transport.cgminer import RpcClient, RpcError
from kuat.wire import v1
from tests.support.servers import free_port

Handler = Callable[[dict[str, str]], bytes | None]


class ReplayServer:
    """One request per connection; `handler(request) -> reply bytes` (None: accept and say nothing)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = free_port()
        self.requests: list[dict[str, str]] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.read(4096))
            self.requests.append(request)
            reply = self.handler(request)
            if reply is None:
                await asyncio.sleep(1.0)
                return
            writer.write(reply)
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> ReplayServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def whatsminer_handler(fixtures: Path) -> Handler:
    """Real M31S captures; multi-commands refused with the real error reply of that firmware."""
    files = {
        "summary": "foreman_whatsminer_m31s_new_firmware_summary.json",
        "edevs": "foreman_whatsminer_m31s_new_firmware_edevs.json",
        "pools": "foreman_whatsminer_m31s_new_firmware_pools.json",
    }
    refused = (fixtures / "foreman_whatsminer_m31s_sleeping_pools_summary_edevs.json").read_bytes()
    invalid = b'{"STATUS":[{"STATUS":"E","When":0,"Code":14,"Msg":"Invalid command","Description":"btminer"}],"id":1}'

    def handle(request: dict[str, str]) -> bytes:
        command = request.get("command", "")
        if "+" in command:
            return refused + b"\x00"
        if command in files:
            return (fixtures / files[command]).read_bytes() + b"\x00"
        if command == "devdetails":
            return b'{"STATUS":[{"STATUS":"S"}],"DEVDETAILS":[{"Model":"M31S"}],"id":1}\x00'
        return invalid + b"\x00"

    return handle


@pytest.fixture
async def whatsminer(miner_fixtures: Path) -> AsyncIterator[ReplayServer]:
    async with ReplayServer(whatsminer_handler(miner_fixtures)) as server:
        yield server


async def test_multi_command_refused_falls_back_to_singles(whatsminer: ReplayServer) -> None:
    driver = RpcMiner("127.0.0.1", family="whatsminer", rpc_port=whatsminer.port, timeout=2.0)
    sample = await driver.read()
    assert driver.rpc.multi_supported is False
    assert sample.model == "M31S" and sample.power_w == 3553.0 and len(sample.boards) == 3
    commands = [r["command"] for r in whatsminer.requests]
    assert commands[0] == "summary+edevs+pools" and {"summary", "edevs", "pools"} <= set(commands)
    whatsminer.requests.clear()
    await driver.read()  # remembered: no second multi attempt
    assert all("+" not in r["command"] for r in whatsminer.requests)


async def test_error_status_raises_rpc_error(whatsminer: ReplayServer) -> None:
    with pytest.raises(RpcError) as info:
        await RpcClient("127.0.0.1", whatsminer.port, 2.0).command("nonsense")
    assert info.value.code == 14 and "Invalid command" in str(info.value)


async def test_broken_and_multi_replies_over_the_wire(miner_fixtures: Path) -> None:
    hiveon = (miner_fixtures / "foreman_antminer_s9_hiveon_stats.malformed.txt").read_bytes()
    avalon = (miner_fixtures / "foreman_avalon_10xx_multicommand_pools+summary+stats.json").read_bytes()

    def handle(request: dict[str, str]) -> bytes:
        return (avalon if "+" in request["command"] else hiveon) + b"\x00"

    async with ReplayServer(handle) as server:
        rpc = RpcClient("127.0.0.1", server.port, 2.0)
        stats = await rpc.command("stats")
        assert stats["STATS"][1]["GHS 5s"] == "11781.40"  # the `}{` between STATS objects repaired
        replies = await rpc.multi(["summary", "stats", "pools"])
        assert rpc.multi_supported is True and set(replies) == {"summary", "stats", "pools"}
        avalon_driver = RpcMiner("127.0.0.1", family="avalon", rpc_port=server.port, timeout=2.0)
        sample = await avalon_driver.read()
        assert sample.hashrate_ths == pytest.approx(37.47098) and sample.make == "Avalon"


async def test_silent_and_closed_miners() -> None:
    async with ReplayServer(lambda request: None) as silent:
        with pytest.raises(DeviceUnreachable, match="timed out"):
            await RpcClient("127.0.0.1", silent.port, 0.3).command("summary")
    async with ReplayServer(lambda request: b"") as mute:
        with pytest.raises(DeviceUnreachable, match="without a reply"):
            await RpcClient("127.0.0.1", mute.port, 1.0).command("summary")
    with pytest.raises(DeviceUnreachable, match="refused"):
        await RpcClient("127.0.0.1", free_port(), 1.0).command("summary")
    async with ReplayServer(lambda request: b"<html>400</html>\x00") as garbage:
        with pytest.raises(DeviceError, match="unrepairable"):
            await RpcClient("127.0.0.1", garbage.port, 1.0).command("summary")


async def test_refused_everything_is_a_device_error() -> None:
    refusal = b'{"STATUS":[{"STATUS":"E","Code":45,"Msg":"Access denied"}],"id":1}\x00'
    async with ReplayServer(lambda request: refusal) as server:
        driver = RpcMiner("127.0.0.1", family="antminer", rpc_port=server.port, timeout=1.0)
        with pytest.raises(DeviceError, match="refused every read command"):
            await driver.read()


def test_offline_sample_shape() -> None:
    from agent.drivers.state import offline_sample

    sample = offline_sample("127.0.0.5", error="connection refused")
    assert (sample.device_id, sample.state, sample.available) == ("ip-127.0.0.5", v1.MinerState.OFFLINE, False)
