"""Avalon control over the cgminer RPC (Canaan's cgminer 4.11): soft-off / soft-on, work levels, restart.

`ascset|0,softoff,1:<ts>` and `ascset|0,softon,1:<ts>` stop and start hashing at the UNIX time `ts` (sent a few
seconds ahead, as pyasic does); `ascset|0,worklevel,set,N` picks one of a few coarse levels; `restart` restarts
cgminer. One RPC per command, no session. A work level is not a power target (its watts are not published per
model), so the allocator does not get one: `set_power_target` is refused; `set_work_level` is there for tools.
"""

from __future__ import annotations

import time
from typing import Any

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading, first
from agent.errors import CommandUnsupported, DeviceError
from agent.transport.cgminer import RpcClient

SOFT_DELAY_S = 5  # soft-off/on are scheduled this far ahead (the firmware wants a time in the future)


class AvalonControl(Control):
    name = "avalon"

    def __init__(self, target: Target, **_: Any) -> None:
        super().__init__(target)
        self.rpc = RpcClient(target.ip, target.rpc_port, target.timeout)

    async def ascset(self, option: str, value: str) -> str:
        reply = await self.rpc.command("ascset", f"0,{option},{value}")
        msg = str(first(reply, "STATUS").get("Msg", ""))
        if "success" not in msg and "set OK" not in msg:
            raise DeviceError(f"{self.ip}: ascset {option} not accepted: {msg}")
        return msg

    async def sleep(self) -> None:
        await self.ascset("softoff", f"1:{int(time.time()) + SOFT_DELAY_S}")

    async def wake(self) -> None:
        await self.ascset("softon", f"1:{int(time.time()) + SOFT_DELAY_S}")

    async def reboot(self) -> None:
        reply = await self.rpc.raw({"command": "restart"})
        if b"RESTART" not in reply:
            raise DeviceError(f"{self.ip}: restart not accepted: {reply[:80]!r}")

    async def set_work_level(self, level: int) -> None:
        await self.ascset("worklevel", f"set,{level}")

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        raise CommandUnsupported(f"{self.ip}: Avalon has coarse work levels, not a power target")


def avalon_control(target: Target, **kwargs: Any) -> Control:
    return AvalonControl(target, **kwargs)
