"""LuxOS control over its cgminer RPC: one session per miner kept open, curtail, and profiles as power targets.

pyasic logs on, acts and logs off for every command (a power target is six RPC calls: logon, profiles, atm,
atmset, profileset, logoff). Here the session is opened once and kept (LuxOS expires idle sessions; an "Invalid
session id" reply opens a new one, and a "Another session is active" reply (Code 402) adopts the open one via
`session`), the profile list is fetched once, ATM (which refuses profile changes) is switched off once, so a
setpoint is one `profileset` and a sleep one `curtail`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading, Reply, first, pick, section
from agent.errors import CommandUnsupported, DeviceError
from agent.transport.cgminer import RpcClient, RpcError

log = logging.getLogger(__name__)

ANOTHER_SESSION = 402
INVALID_SESSION = 401
ATM_ENABLED = 328  # profileset refused while Advanced Thermal Management runs


class LuxosControl(Control):
    name = "luxos"

    def __init__(self, target: Target, **_: Any) -> None:
        super().__init__(target)
        self.rpc = RpcClient(target.ip, target.rpc_port, target.timeout)
        self.session_id: str | None = None
        self.logons = 0  # sessions opened (bench and tests: one per miner, not one per command)
        self._profiles: list[tuple[float, str]] | None = None  # (watts, name), lowest first
        self._atm_off = False
        self._lock = asyncio.Lock()  # one privileged exchange at a time per miner: the session is shared

    async def _logon(self) -> str:
        try:
            reply = await self.rpc.command("logon")
        except RpcError as exc:
            if exc.code != ANOTHER_SESSION:
                raise
            reply = await self.rpc.command("session")  # ours from before a restart, or a technician's
        sid = first(reply, "SESSION").get("SessionID")
        if not isinstance(sid, str) or not sid:
            raise DeviceError(f"{self.ip}: LuxOS gave no session id")
        self.logons += 1
        return sid

    async def privileged(self, command: str, *params: str) -> Reply:
        """A command that needs the session (its id goes first in the parameters); one new session on expiry."""
        async with self._lock:
            for attempt in (1, 2):
                if self.session_id is None:
                    self.session_id = await self._logon()
                try:
                    return await self.rpc.command(command, ",".join((self.session_id, *params)))
                except RpcError as exc:
                    if exc.code != INVALID_SESSION or attempt == 2:
                        raise
                    log.info("%s: LuxOS session expired, logging on again", self.ip)
                    self.session_id = None
        raise AssertionError("unreachable")

    async def sleep(self) -> None:
        await self.privileged("curtail", "sleep")

    async def wake(self) -> None:
        await self.privileged("curtail", "wakeup")

    async def reboot(self) -> None:
        await self.privileged("rebootdevice")

    async def profiles(self) -> list[tuple[float, str]]:
        if self._profiles is None:
            rows = section(await self.rpc.command("profiles"), "PROFILES")
            found = [(pick(p, "Watts"), p.get("Profile Name")) for p in rows]
            self._profiles = sorted((w, n) for w, n in found if w and isinstance(n, str) and n)
        return self._profiles

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        """The highest profile at or below `watts` (as pyasic picks); below the lowest profile is refused."""
        fitting = [(w, n) for w, n in await self.profiles() if w <= watts + 0.5]
        if not fitting:
            raise CommandUnsupported(f"{self.ip}: {watts:.0f} W is below LuxOS's lowest profile")
        _, name = fitting[-1]
        if not self._atm_off:
            await self.privileged("atmset", "enabled=false")
            self._atm_off = True
        try:
            await self.privileged("profileset", name)
        except RpcError as exc:
            if exc.code != ATM_ENABLED:
                raise
            await self.privileged("atmset", "enabled=false")  # someone switched ATM back on
            await self.privileged("profileset", name)
        log.info("%s: LuxOS profile %s for %.0f W", self.ip, name, watts)

    async def close(self) -> None:
        if self.session_id is not None:
            try:
                await self.rpc.command("logoff", self.session_id)
            except DeviceError as exc:
                log.debug("%s: logoff: %s", self.ip, exc)
            self.session_id = None


def luxos_control(target: Target, **kwargs: Any) -> Control:
    return LuxosControl(target, **kwargs)
