"""Control through pyasic: the path for firmware without a lean one, and the baseline of bench/setpoints.py.

pyasic identifies a miner with several probes and then spends several requests per command (a LuxOS power target
is six RPC calls, every Whatsminer write fetches a new token), so it is fine for one command but slow for a site's
worth of setpoints. The identification is warmed in the background after a good read (bounded concurrency), so
the first command of an emergency cut does not pay for it.

When miners run on non-standard ports (a simulated site with a port offset) pyasic's factory cannot probe them (it
hard-codes 80/4028), so the firmware is recognised from the `version` reply with pyasic's own rules and the
matching pyasic class is built directly with its ports overridden.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading, Reply, first
from agent.errors import DeviceError, DeviceUnreachable

log = logging.getLogger(__name__)

IDENTITY_RETRY_S = 300.0  # a failed background identification is tried again after this long
CONTROL_TIMEOUT_S = 60.0  # one pyasic control call (login, token, encrypted command, reply) at the most
WARM_CONCURRENCY = 8  # pyasic identifications running in the background at once, per agent process
_warm_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _warm_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _warm_slots:
        _warm_slots.clear()  # one event loop at a time (tests make a new one per test)
        _warm_slots[loop] = asyncio.Semaphore(WARM_CONCURRENCY)
    return _warm_slots[loop]


class PyasicControl(Control):
    """Every order through a pyasic miner object (identified lazily, or handed over by `open_miner`)."""

    name = "pyasic"

    def __init__(self, target: Target, pyasic_miner: Any = None) -> None:
        super().__init__(target)
        self._pyasic = pyasic_miner
        self._warming: asyncio.Task[None] | None = None
        self._warm_after = 0.0  # time before which no background identification is tried again

    def warm(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pyasic is None and self._warming is None and loop.time() >= self._warm_after:
            self._warm_after = loop.time() + IDENTITY_RETRY_S
            self._warming = loop.create_task(self._warm(), name=f"pyasic-warm-{self.ip}")

    async def _warm(self) -> None:
        try:
            async with _warm_slot():
                if self._pyasic is None:
                    self._pyasic = await self._identify()
        except Exception as exc:  # a miner that cannot be identified now is identified at its first command
            log.debug("%s: pyasic identification in the background failed: %s", self.ip, exc)
        finally:
            self._warming = None

    def _identify(self) -> Awaitable[Any]:
        t = self.target
        return pyasic_for(t.ip, rpc_port=t.rpc_port, web_port=t.web_port, username=t.username, password=t.password)

    async def miner(self) -> Any:
        warming = self._warming
        if self._pyasic is None and warming is not None and warming is not asyncio.current_task():
            await asyncio.wait({warming}, timeout=CONTROL_TIMEOUT_S)
        if self._pyasic is None:
            self._pyasic = await self._identify()
        return self._pyasic

    async def _call(self, name: str, call: Callable[[Any], Awaitable[Any]]) -> None:
        await pyasic_call(self.ip, name, call(await self.miner()))

    async def sleep(self) -> None:
        await self._call("sleep", lambda m: m.stop_mining())

    async def wake(self) -> None:
        await self._call("wake", lambda m: m.resume_mining())

    async def reboot(self) -> None:
        await self._call("reboot", lambda m: m.reboot())

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        await self._call(f"power target {watts:.0f} W", lambda m: m.set_power_limit(int(watts)))


def pyasic_control(target: Target, pyasic_miner: Any = None) -> Control:
    return PyasicControl(target, pyasic_miner)


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


def whatsminer_model(devdetails: Reply) -> str | None:
    """DEVDETAILS[0].Model without its underscores (M30S_V40 -> M30SV40)."""
    model = first(devdetails, "DEVDETAILS").get("Model")
    return model.replace("_", "").strip() or None if isinstance(model, str) else None


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
    version = await safe_command(rpc, "version")
    miner_type = MinerFactory._parse_socket_type(str(version)) if version else None
    if miner_type is None:
        miner_type = MinerFactory._parse_socket_type(str(await safe_command(rpc, "devdetails")))
    if miner_type is None:
        raise DeviceError(f"{ip}:{rpc_port}: answers, but no miner firmware pyasic recognises")
    if miner_type == MinerTypes.WHATSMINER:
        model = whatsminer_model(await safe_command(rpc, "devdetails"))
        return miner_type, (model[:-1] + "0") if model else None
    type_field = first(version, "VERSION").get("Type")
    model = str(type_field).upper().strip() if type_field else None
    if model and not model.startswith(("ANTMINER", "AVALON")) and miner_type != MinerTypes.BRAIINS_OS:
        model = f"ANTMINER {model}"
    return miner_type, model


async def safe_command(rpc: Any, command: str) -> Reply:
    """One RPC command, {} when refused; an unreachable miner still raises."""
    try:
        reply: Reply = await rpc.command(command)
        return reply
    except DeviceUnreachable:
        raise
    except DeviceError:
        return {}
