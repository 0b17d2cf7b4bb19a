"""Stock Antminer control through its web API (port 80, HTTP digest auth, factory login root/root).

`set_miner_conf.cgi` with `miner-mode` 0 (normal), 1 (sleep) or 3 (low power, about a quarter under nominal);
`reboot.cgi`. pyasic reads the whole miner config first and posts it back with the new mode (two requests and a
new HTTP client per command); here one kept connection posts the mode alone. That the firmware then keeps its
pools is how the simulator behaves; it is not verified on a real miner (docs/capabilities.md says which path is
verified where). Stock firmware has no power target.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading
from agent.errors import CommandUnsupported, DeviceError
from agent.transport.http import WebClient

log = logging.getLogger(__name__)

NORMAL, SLEEP, LOW_POWER = 0, 1, 3


class AntminerWebControl(Control):
    name = "antminer-web"

    def __init__(self, target: Target, **_: Any) -> None:
        super().__init__(target)
        self.web = WebClient(target.ip, port=target.web_port, user=target.username or "root",
                             password=target.password or "root", timeout_s=target.timeout)

    async def set_mode(self, mode: int) -> None:
        reply = await self.web.request_json("POST", "/cgi-bin/set_miner_conf.cgi", {"miner-mode": mode})
        if str(reply.get("stats", "")).lower() != "success":
            raise DeviceError(f"{self.ip}: set_miner_conf refused: {reply.get('msg') or reply}")

    async def sleep(self) -> None:
        await self.set_mode(SLEEP)

    async def wake(self) -> None:
        await self.set_mode(NORMAL)

    async def reboot(self) -> None:
        await self.web.request_json("POST", "/cgi-bin/reboot.cgi")

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        raise CommandUnsupported(f"{self.ip}: stock Antminer firmware has no power target (sleep/wake only)")

    async def close(self) -> None:
        await self.web.close()


def antminer_web_control(target: Target, **kwargs: Any) -> Control:
    return AntminerWebControl(target, **kwargs)
