"""Miners: one driver for every cgminer-family firmware, run by that firmware's record (`agent.firmware`).

Why one driver: what differs between firmware (what a poll asks, how replies parse, how identity is fetched, how
the miner is controlled) is data and small functions in the firmware's record; the driver only sequences them.
A poll sends one multi-command (or a few single commands) and parses the replies with pure functions, because
pyasic's `get_data()` opens many connections per miner (too slow for 1,000 miners every 10 s on half a core).
Control goes through the record's control path (`agent.control`), built once per driver so it can keep sessions
and tokens between commands.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agent import firmware as registry
from agent.control.base import Control, Target
from agent.control.pyasic import safe_command
from agent.firmware.record import Firmware
from kuat import catalog
from kuat.wire import v1

from . import state
from .base import CommandUnsupported, DeviceError, DeviceUnreachable, MinerDriver, register_miner
from .parsers import Reading, Reply

log = logging.getLogger(__name__)

IDENTITY_RETRY_S = 300.0  # an incomplete identity (no MAC) is fetched again this often
MAX_BOARDS = 64  # "every board": the firmware's own list says which exist


class RpcMiner(MinerDriver):
    """A cgminer-family miner (stock Antminer, LuxOS, Whatsminer, Braiins OS, Avalon)."""

    def __init__(
        self,
        ip: str,
        *,
        family: str,
        rpc_port: int = 4028,
        web_port: int = 80,
        timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        device_id: str | None = None,
        pyasic_miner: Any = None,
    ) -> None:
        from agent.transport.cgminer import RpcClient  # lazy: agent.transport imports agent.drivers.base

        self.firmware: Firmware = registry.by_name(family)
        self.ip = ip
        self.family = family
        self.rpc = RpcClient(ip, rpc_port, timeout)
        self.web_port = web_port
        self.timeout = timeout
        self.username = username
        self.password = password
        self.device_id = device_id
        self.identity: Reading | None = None
        self._faulty: set[int] = set()  # boards the last read found dead or short of chips
        self._identity_retry_at = time.monotonic() + IDENTITY_RETRY_S
        target = Target(ip, rpc_port, web_port, timeout, username, password)
        self.control: Control = self.firmware.control(target, pyasic_miner=pyasic_miner)

    # ---------------------------------------------------------------- reading

    async def read(self) -> v1.MinerSample:
        try:
            replies = await self.rpc.multi(list(self.firmware.read_commands))
            if not replies:
                raise DeviceError(f"{self.ip}: the miner refused every read command")
        except DeviceError as rpc_error:
            if not self.firmware.web_fallback:
                raise
            reading = await self._read_web(rpc_error)  # stock firmware can have its RPC API switched off
        else:
            if self.identity is None or self._identity_incomplete():
                self.identity = await self._identify()
            await self.firmware.extra_reads(self, replies)
            reading = self.firmware.parse(replies, self.identity.model)
        assert self.identity is not None
        self._faulty = {b.index for b in reading.boards if not b.ok}  # a board switched off on purpose is ok
        self.control.warm()
        return state.build_sample(self.ip, reading.merge(self.identity), self.family, device_id=self.device_id)

    async def _read_web(self, rpc_error: DeviceError) -> Reading:
        """Stock Antminer through its web API (stats.cgi, summary.cgi) when the RPC does not answer."""
        from agent.firmware import antminer

        try:
            stats = await self.web_json("/cgi-bin/stats.cgi")
            summary = await self.web_json("/cgi-bin/summary.cgi")
        except DeviceError:
            raise rpc_error from None
        if self.identity is None or self._identity_incomplete():
            self.identity = await antminer.web_identity(self)
        log.debug("%s: RPC unavailable (%s), read through the web API", self.ip, rpc_error)
        return antminer.parse_antminer_web_stats(stats, summary)

    async def optional_command(self, command: str) -> Reply:
        try:
            return await self.rpc.command(command)
        except DeviceUnreachable:
            raise
        except DeviceError as exc:
            log.debug("%s: %s", self.ip, exc)
            return {}

    def _identity_incomplete(self) -> bool:
        """No MAC yet (e.g. the web API was down at first read): ask again, at most every IDENTITY_RETRY_S."""
        if self.identity is None or self.identity.mac is not None:
            return False
        now = time.monotonic()
        if now < self._identity_retry_at:
            return False
        self._identity_retry_at = now + IDENTITY_RETRY_S
        return True

    async def _identify(self) -> Reading:
        """Identity that does not change between polls (model, serial, MAC, firmware, presets): fetched once."""
        identity = registry.parse_version(await self.optional_command("version"))
        await self.firmware.identify(self, identity)
        return identity

    async def web_json(self, path: str) -> dict[str, Any]:
        """GET one stock-Antminer web API page (digest auth; factory login root/root unless configured)."""
        from agent.transport.http import get_json

        return await get_json(
            self.ip,
            path,
            port=self.web_port,
            user=self.username or "root",
            password=self.password or "root",
            timeout_s=self.timeout,
        )

    # ---------------------------------------------------------------- control

    async def sleep(self) -> None:
        await self.control.sleep()

    async def wake(self) -> None:
        await self.control.wake()

    async def reboot(self) -> None:
        await self.control.reboot()

    async def set_power_target(self, watts: float | None) -> None:
        if self.identity is None:
            self.identity = await self._identify()
        caps = state.capabilities_for(self.family, self.identity.model, preset_watts=self.identity.preset_watts)
        if not caps.power_target:
            raise CommandUnsupported(f"{self.family} firmware on {self.ip} has no power target (sleep/wake only)")
        if watts is None:
            watts = caps.power_max_w
            if watts is None:
                raise CommandUnsupported(f"{self.ip}: unknown model, cannot restore its nominal power")
        await self.control.set_power_target(watts, self.identity)

    async def set_boards(self, count: int | None) -> None:
        if self.identity is None:
            self.identity = await self._identify()
        if not state.capabilities_for(self.family, self.identity.model).boards:
            raise CommandUnsupported(f"{self.family} firmware on {self.ip} cannot switch single hash boards")
        spec = catalog.lookup(self.identity.model)
        boards = spec.boards if spec is not None else MAX_BOARDS
        if count is None:
            await self.control.set_boards(list(range(MAX_BOARDS)), self.identity)
            return
        if count > boards:
            raise CommandUnsupported(f"{self.ip}: {count} boards asked, the {self.identity.model} has {boards}")
        # the healthy boards hash, lowest index first: a dead board kept on would leave the plan a board short
        keep = sorted(range(boards), key=lambda i: (i in self._faulty, i))[:count]
        await self.control.set_boards(sorted(keep), self.identity)


async def identify_family(ip: str, *, rpc_port: int = 4028, timeout_s: float = 5.0) -> str:
    """The firmware family of the miner at ip (lean: one or two RPC commands)."""
    from agent.transport.cgminer import RpcClient

    rpc = RpcClient(ip, rpc_port, timeout_s)
    family = registry.family_from_reply(await safe_command(rpc, "version"))
    if family is None:
        family = registry.family_from_reply(await safe_command(rpc, "devdetails"))
    if family is None:
        raise DeviceError(f"{ip}:{rpc_port} answers but is no miner firmware Kuat knows")
    return family


def _factory(family: str) -> Any:
    def make(ip: str, **kwargs: Any) -> MinerDriver:
        return RpcMiner(ip, family=family, **kwargs)

    make.__doc__ = f"{family} miner (cgminer RPC read, its firmware's control path)"
    return make


for _family, _fw in registry.FAMILIES.items():
    register_miner(_family)(_fw.driver or _factory(_family))
