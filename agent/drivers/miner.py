"""Miners: a lean cgminer-RPC read path for polling, identification and control through pyasic.

Why two paths: pyasic's `get_data()` opens many connections per miner (too slow for 1,000 miners every 10 s on
half a core), so `read()` sends one multi-command (or a few single commands) and parses the replies with the pure
functions in `parsers`. Identification (`open_miner(driver="auto")`) and every control call go through pyasic.
When tests run miners on non-standard ports (simulated site with a port offset) pyasic's factory cannot probe
them (it hard-codes 80/4028), so the firmware is recognised from the `version` reply with pyasic's own rules and
the matching pyasic class is built directly with its ports overridden.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kuat.wire import v1

from . import parsers, state
from .base import CommandUnsupported, DeviceError, DeviceUnreachable, MinerDriver, register_miner
from .parsers import Reading, Reply

log = logging.getLogger(__name__)

IDENTITY_RETRY_S = 300.0  # an incomplete identity (no MAC) is fetched again this often
CONTROL_TIMEOUT_S = 60.0  # one pyasic control call (login, token, encrypted command, reply) at the most
WARM_CONCURRENCY = 8  # pyasic identifications running in the background at once, per agent process
_warm_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _warm_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _warm_slots:
        _warm_slots.clear()  # one event loop at a time (tests make a new one per test)
        _warm_slots[loop] = asyncio.Semaphore(WARM_CONCURRENCY)
    return _warm_slots[loop]

# What one poll asks each firmware (one multi-command when it is accepted).
READ_COMMANDS: dict[str, list[str]] = {
    "antminer": ["stats", "pools"],
    "luxos": ["stats", "pools", "power"],
    "whatsminer": ["summary", "edevs", "pools"],
    "braiins": ["summary", "devs", "temps", "fans", "pools", "tunerstatus"],
    "avalon": ["summary", "stats", "pools"],
}

_FAMILY_BY_PYASIC_TYPE = {
    "ANTMINER": "antminer",
    "HIVEON": "antminer",
    "MSKMINER": "antminer",
    "VNISH": "antminer",
    "LUX_OS": "luxos",
    "WHATSMINER": "whatsminer",
    "BRAIINS_OS": "braiins",
    "AVALONMINER": "avalon",
}


def _parse(family: str, replies: dict[str, Reply], model: str | None) -> Reading:
    if family == "antminer":
        return parsers.parse_antminer(replies)
    if family == "luxos":
        return parsers.parse_luxos(replies)
    if family == "whatsminer":
        return parsers.parse_whatsminer(replies, model)
    if family == "braiins":
        return parsers.parse_braiins(replies, model)
    if family == "avalon":
        return parsers.parse_avalon(replies)
    raise ValueError(f"no parser for firmware family {family!r}")


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

        if family not in READ_COMMANDS:
            raise ValueError(f"unknown miner family {family!r}; known: {', '.join(sorted(READ_COMMANDS))}")
        self.ip = ip
        self.family = family
        self.rpc = RpcClient(ip, rpc_port, timeout)
        self.web_port = web_port
        self.timeout = timeout
        self.username = username
        self.password = password
        self.device_id = device_id
        self.identity: Reading | None = None
        self._identity_retry_at = time.monotonic() + IDENTITY_RETRY_S
        self._pyasic = pyasic_miner
        self._warming: asyncio.Task[None] | None = None
        self._warm_after = 0.0  # time.monotonic() before which no background identification is tried again

    # ---------------------------------------------------------------- reading

    async def read(self) -> v1.MinerSample:
        try:
            replies = await self.rpc.multi(READ_COMMANDS[self.family])
            if not replies:
                raise DeviceError(f"{self.ip}: the miner refused every read command")
        except DeviceError as rpc_error:
            if self.family != "antminer":
                raise
            reading = await self._read_web(rpc_error)  # stock firmware can have its RPC API switched off
        else:
            if self.identity is None or self._identity_incomplete():
                self.identity = await self._identify()
            if self.family == "whatsminer" and not _hashing(replies):
                replies["status"] = await self._optional_command("status")
            reading = _parse(self.family, replies, self.identity.model)
        assert self.identity is not None
        self._warm_control()
        return state.build_sample(self.ip, reading.merge(self.identity), self.family, device_id=self.device_id)

    def _warm_control(self) -> None:
        """Identify the miner for pyasic in the background after a good read, so the first power command of
        an emergency cut does not pay pyasic's several identification probes (bounded concurrency)."""
        if self._pyasic is None and self._warming is None and time.monotonic() >= self._warm_after:
            self._warm_after = time.monotonic() + IDENTITY_RETRY_S
            self._warming = asyncio.get_running_loop().create_task(self._warm(), name=f"pyasic-warm-{self.ip}")

    async def _warm(self) -> None:
        try:
            async with _warm_slot():
                if self._pyasic is None:
                    self._pyasic = await pyasic_for(self.ip, rpc_port=self.rpc.port, web_port=self.web_port,
                                                    username=self.username, password=self.password)
        except Exception as exc:  # a miner that cannot be identified now is identified at its first command
            log.debug("%s: pyasic identification in the background failed: %s", self.ip, exc)
        finally:
            self._warming = None

    async def _read_web(self, rpc_error: DeviceError) -> Reading:
        """Stock Antminer through its web API (stats.cgi, summary.cgi) when the RPC does not answer."""
        try:
            stats = await self._web_json("/cgi-bin/stats.cgi")
            summary = await self._web_json("/cgi-bin/summary.cgi")
        except DeviceError:
            raise rpc_error from None
        if self.identity is None or self._identity_incomplete():
            self.identity = await self._antminer_web_identity()
        log.debug("%s: RPC unavailable (%s), read through the web API", self.ip, rpc_error)
        return parsers.parse_antminer_web_stats(stats, summary)

    async def _optional_command(self, command: str) -> Reply:
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
        """Identity that does not change between polls (model, serial, MAC, firmware): fetched once."""
        identity = parsers.parse_version(await self._optional_command("version"))
        if self.family == "whatsminer":
            identity.model = _whatsminer_model(await self._optional_command("devdetails")) or identity.model
            serial, mac = parsers.whatsminer_miner_info(await self._optional_command("get_miner_info"))
            identity.serial, identity.mac = serial or identity.serial, mac or identity.mac
        if self.family == "antminer":
            identity.merge(await self._antminer_web_identity())
        if self.family == "luxos":
            config = await self._optional_command("config")
            identity.mac = parsers.luxos_mac(config)
            identity.serial = parsers.luxos_serial(config) or identity.serial
            profiles = await self._optional_command("profiles")
            identity.presets = parsers.luxos_presets(profiles)
            identity.preset_watts = parsers.luxos_preset_watts(profiles)
        return identity

    async def _web_json(self, path: str) -> dict[str, Any]:
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

    async def _antminer_web_identity(self) -> Reading:
        try:
            info = await self._web_json("/cgi-bin/get_system_info.cgi")
        except DeviceError as exc:
            log.info("%s: no web identity (serial, MAC): %s", self.ip, exc)
            return Reading()
        return parsers.parse_system_info(info)

    # ---------------------------------------------------------------- control (pyasic)

    async def pyasic_miner(self) -> Any:
        warming = self._warming
        if self._pyasic is None and warming is not None and warming is not asyncio.current_task():
            await asyncio.wait({warming}, timeout=CONTROL_TIMEOUT_S)
        if self._pyasic is None:
            self._pyasic = await pyasic_for(
                self.ip, rpc_port=self.rpc.port, web_port=self.web_port, username=self.username, password=self.password
            )
        return self._pyasic

    async def _control(self, name: str, call: Callable[[Any], Awaitable[Any]]) -> None:
        await pyasic_call(self.ip, name, call(await self.pyasic_miner()))

    async def sleep(self) -> None:
        await self._control("sleep", lambda m: m.stop_mining())

    async def wake(self) -> None:
        await self._control("wake", lambda m: m.resume_mining())

    async def reboot(self) -> None:
        await self._control("reboot", lambda m: m.reboot())

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
        await self._control(f"power target {watts:.0f} W", lambda m: m.set_power_limit(int(watts)))


async def pyasic_call(ip: str, name: str, call: Awaitable[Any]) -> None:
    """Await one pyasic control call: its errors become driver errors, and `False` (refused) too."""
    try:
        result = await asyncio.wait_for(call, CONTROL_TIMEOUT_S)
    except TimeoutError as exc:
        raise DeviceUnreachable(f"{ip} {name}: no answer within {CONTROL_TIMEOUT_S:.0f}s") from exc
    except OSError as exc:
        raise DeviceUnreachable(f"{ip} {name}: {exc}") from exc
    except DeviceError:
        raise
    except Exception as exc:  # pyasic raises APIError and friends
        raise DeviceError(f"{ip} {name} failed: {exc.__class__.__name__}: {exc}") from exc
    if result is False:
        raise DeviceError(f"{ip}: the firmware did not accept {name}")
    log.info("%s: %s accepted", ip, name)


def _hashing(replies: dict[str, Reply]) -> bool:
    summary = parsers.first(replies.get("summary"), "SUMMARY")
    return (parsers.pick(summary, "MHS 1m", "MHS 5s", "MHS av") or 0) > 0


def _whatsminer_model(devdetails: Reply) -> str | None:
    model = parsers.first(devdetails, "DEVDETAILS").get("Model")
    return model.replace("_", "").strip() or None if isinstance(model, str) else None


# ------------------------------------------------------------------ pyasic glue


async def pyasic_for(
    ip: str, *, rpc_port: int = 4028, web_port: int = 80, username: str | None = None, password: str | None = None
) -> Any:
    """A pyasic miner object for control: the factory on standard ports, else built from our own probe."""
    from pyasic.miners.factory import MinerFactory, miner_factory

    if rpc_port == 4028 and web_port == 80:
        miner = await miner_factory.get_miner(ip)
    else:
        miner_type, model = await _probe_type(ip, rpc_port)
        miner = MinerFactory._select_miner_from_classes(ip, miner_model=model, miner_type=miner_type)
    if miner is None:
        raise DeviceUnreachable(f"{ip}: no miner answers (pyasic probed ports {web_port} and {rpc_port})")
    if type(miner).__name__ == "UnknownMiner":
        raise DeviceError(f"{ip}: something answers, but pyasic does not recognise the miner")
    _override_ports(miner, rpc_port, web_port)
    for api in (getattr(miner, "rpc", None), getattr(miner, "web", None)):
        if password and api is not None and hasattr(api, "pwd"):
            api.pwd = password
        if username and api is not None and hasattr(api, "username"):
            api.username = username
    return miner


def _override_ports(miner: Any, rpc_port: int, web_port: int) -> None:
    if getattr(miner, "rpc", None) is not None:
        miner.rpc.port = rpc_port
    if getattr(miner, "web", None) is not None:
        miner.web.port = web_port


async def _probe_type(ip: str, rpc_port: int) -> tuple[Any, str | None]:
    """(pyasic MinerTypes, model string as pyasic's tables spell it) from `version` / `devdetails` on any port."""
    from pyasic.miners.factory import MinerFactory, MinerTypes

    from agent.transport.cgminer import RpcClient

    rpc = RpcClient(ip, rpc_port, timeout=3.0)
    version = await _safe(rpc, "version")
    miner_type = MinerFactory._parse_socket_type(str(version)) if version else None
    if miner_type is None:
        miner_type = MinerFactory._parse_socket_type(str(await _safe(rpc, "devdetails")))
    if miner_type is None:
        raise DeviceError(f"{ip}:{rpc_port}: answers, but no miner firmware pyasic recognises")
    if miner_type == MinerTypes.WHATSMINER:
        model = _whatsminer_model(await _safe(rpc, "devdetails"))
        return miner_type, (model[:-1] + "0") if model else None
    type_field = parsers.first(version, "VERSION").get("Type")
    model = str(type_field).upper().strip() if type_field else None
    if model and not model.startswith(("ANTMINER", "AVALON")) and miner_type != MinerTypes.BRAIINS_OS:
        model = f"ANTMINER {model}"
    return miner_type, model


async def _safe(rpc: Any, command: str) -> Reply:
    try:
        reply: Reply = await rpc.command(command)
        return reply
    except DeviceUnreachable:
        raise
    except DeviceError:
        return {}


async def identify_family(ip: str, *, rpc_port: int = 4028, timeout_s: float = 5.0) -> str:
    """The parser family of the miner at ip (lean: one or two RPC commands)."""
    from agent.transport.cgminer import RpcClient

    rpc = RpcClient(ip, rpc_port, timeout_s)
    version = await _safe(rpc, "version")
    family = parsers.firmware_family(version)
    if family is None:
        family = parsers.firmware_family(await _safe(rpc, "devdetails"))
    if family is None:
        raise DeviceError(f"{ip}:{rpc_port} answers but is no miner firmware Kuat knows")
    return family


def _factory(family: str) -> Callable[..., MinerDriver]:
    def make(ip: str, **kwargs: Any) -> MinerDriver:
        return RpcMiner(ip, family=family, **kwargs)

    make.__doc__ = f"{family} miner (cgminer RPC read, pyasic control)"
    return make


for _family in READ_COMMANDS:
    register_miner(_family)(_factory(_family))
