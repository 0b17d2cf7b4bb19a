"""The driver for Whatsminers on API v3 (its own transport, so not `RpcMiner`): reads and control on one kept
connection to port 4433 (+ the RPC port's offset on simulated sites)."""

from __future__ import annotations

from typing import Any

from agent.control.base import Target
from agent.control.whatsminer_v3 import WhatsminerV3Control, v3_client
from agent.firmware import whatsminer_v3
from agent.transport.btminer_v3 import V3Client
from kuat.wire import v1

from . import state
from .base import CommandUnsupported, MinerDriver
from .parsers import Reading


class WhatsminerV3Miner(MinerDriver):
    family = "whatsminer3"

    def __init__(self, ip: str, *, rpc_port: int = 4028, web_port: int = 80, timeout: float = 5.0,
                 username: str | None = None, password: str | None = None, device_id: str | None = None,
                 **_: Any) -> None:
        self.ip = ip
        self.device_id = device_id
        target = Target(ip, rpc_port, web_port, timeout, username, password)
        self.client: V3Client = v3_client(target)
        self.control = WhatsminerV3Control(target, client=self.client)
        self.identity: Reading | None = None

    async def read(self) -> v1.MinerSample:
        if self.identity is None or self.identity.mac is None:
            self.identity = whatsminer_v3.parse_device_info(await self.client.call("get.device.info"))
        replies = {part: await self.client.call("get.miner.status", part) for part in ("summary", "edevs", "pools")}
        reading = whatsminer_v3.parse(replies, self.identity.model).merge(self.identity)
        return state.build_sample(self.ip, reading, self.family, device_id=self.device_id)

    async def sleep(self) -> None:
        await self.control.sleep()

    async def wake(self) -> None:
        await self.control.wake()

    async def reboot(self) -> None:
        await self.control.reboot()

    async def set_power_target(self, watts: float | None) -> None:
        if self.identity is None:
            self.identity = whatsminer_v3.parse_device_info(await self.client.call("get.device.info"))
        caps = state.capabilities_for(self.family, self.identity.model)
        if watts is None:
            watts = caps.power_max_w
            if watts is None:
                raise CommandUnsupported(f"{self.ip}: unknown model, cannot restore its nominal power")
        await self.control.set_power_target(watts, self.identity)


async def probe(ip: str, *, port: int, timeout_s: float = 3.0) -> bool:
    """Does an API v3 Whatsminer answer on `port`? (`get.device.info` with a `miner` section, as pyasic checks.)"""
    client = V3Client(ip, port, timeout_s)
    try:
        msg = await client.call("get.device.info")
    except Exception:
        return False
    finally:
        await client.close()
    return isinstance(msg, dict) and "miner" in msg
