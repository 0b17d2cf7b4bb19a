"""Whatsminer API v3 control (firmware from about 2024.11 on): signed `set.*` commands over a kept connection.

`set.miner.service` stop / start (sleep / wake: the control board stays up), `set.miner.power_limit` (W; the
miner restarts its mining service to apply it, so the capability says the change reboots), `set.system.reboot`.
The salt is fetched once; a token error (the salt changed, e.g. after a firmware update) fetches it again and
retries once. pyasic's BTMinerV3 also caches the salt but opens a connection per command.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading
from agent.transport.btminer_v3 import V3Client, V3Error

log = logging.getLogger(__name__)

TOKEN_ERROR = -4
V3_PORT = 4433


def v3_client(target: Target) -> V3Client:
    """The v3 port with the same offset as the RPC port (simulated sites); factory account super/super."""
    return V3Client(target.ip, V3_PORT + target.rpc_port - 4028, target.timeout,
                    account=target.username or "super", password=target.password or "super")


class WhatsminerV3Control(Control):
    name = "whatsminer-v3"

    def __init__(self, target: Target, client: V3Client | None = None, **_: Any) -> None:
        super().__init__(target)
        self.client = client or v3_client(target)

    async def set(self, cmd: str, param: Any = None) -> None:
        try:
            await self.client.call(cmd, param)
        except V3Error as exc:
            if exc.code != TOKEN_ERROR:
                raise
            log.info("%s: API v3 token refused, fetching the salt again", self.ip)
            self.client.salt = None
            await self.client.call(cmd, param)

    async def sleep(self) -> None:
        await self.set("set.miner.service", "stop")

    async def wake(self) -> None:
        await self.set("set.miner.service", "start")

    async def reboot(self) -> None:
        await self.set("set.system.reboot")

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        await self.set("set.miner.power_limit", int(watts))
        log.info("%s: Whatsminer (API v3) power limit %d W", self.ip, int(watts))

    async def close(self) -> None:
        await self.client.close()


def whatsminer_v3_control(target: Target, **kwargs: Any) -> Control:
    return WhatsminerV3Control(target, **kwargs)
