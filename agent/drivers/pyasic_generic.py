"""Any miner pyasic supports but Kuat has no lean parser for (ePIC, Vnish, Goldshell, IceRiver, Auradine,
Whatsminer API v3, ...): read through pyasic's `get_data()` (slower: several requests), control through pyasic.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.control.pyasic import pyasic_call
from kuat.wire import v1

from . import state
from .base import CommandUnsupported, DeviceError, DeviceUnreachable, MinerDriver, register_miner
from .parsers import Reading, plausible_temp

log = logging.getLogger(__name__)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def reading_from_pyasic(data: Any) -> Reading:
    """pyasic `MinerData` -> Reading (attribute access only, so any pyasic data object fits)."""
    boards = [
        v1.Board(
            index=i,
            hashrate_ths=_float(getattr(b, "hashrate", None)),
            chips=getattr(b, "chips", None),
            expected_chips=getattr(b, "expected_chips", None),
            temp_c=plausible_temp(_float(getattr(b, "temp", None))),
            chip_temp_c=plausible_temp(_float(getattr(b, "chip_temp", None))),
            ok=not getattr(b, "missing", False) and (_float(getattr(b, "hashrate", None)) or 0) > 0,
        )
        for i, b in enumerate(getattr(data, "hashboards", []) or [])
    ]
    pools = [
        v1.Pool(url=str(getattr(p, "url", "") or ""), user=str(getattr(p, "user", "") or ""),
                status="Alive" if getattr(p, "alive", False) else "", active=bool(getattr(p, "active", False)))
        for p in getattr(data, "pools", []) or []
        if getattr(p, "url", None)
    ]  # fmt: skip
    fans = [int(f.speed) for f in getattr(data, "fans", []) or [] if getattr(f, "speed", None)]
    errors = [str(getattr(e, "error_message", None) or e) for e in getattr(data, "errors", []) or []]
    temps = [b.temp_c for b in boards if b.temp_c is not None]
    return Reading(
        make=getattr(data, "make", None),
        model=getattr(data, "model", None),
        firmware=" ".join(x for x in (getattr(data, "firmware", None), getattr(data, "fw_ver", None)) if x) or None,
        serial=getattr(data, "serial_number", None),
        mac=(getattr(data, "mac", None) or "").lower() or None,
        hostname=getattr(data, "hostname", None),
        hashrate_ths=_float(getattr(data, "hashrate", None)),
        power_w=_float(getattr(data, "wattage", None)) or None,
        power_limit_w=_float(getattr(data, "wattage_limit", None)),
        temp_c=max(temps) if temps else None,
        fans_rpm=fans,
        boards=boards,
        pools=pools,
        errors=errors,
        uptime_s=getattr(data, "uptime", None),
        sleeping=None if getattr(data, "is_mining", True) else True,
    )


def pyasic_capabilities(miner: Any, model: str | None) -> v1.Capabilities:
    from pyasic.miners.base import BaseMiner

    caps = state.capabilities_for("unknown", model)
    caps.sleep = bool(getattr(miner, "supports_shutdown", False))
    caps.power_target = type(miner).set_power_limit is not BaseMiner.set_power_limit
    return caps


class PyasicMiner(MinerDriver):
    def __init__(self, ip: str, *, pyasic_miner: Any, device_id: str | None = None, **_: Any) -> None:
        self.ip = ip
        self.miner = pyasic_miner
        self.device_id = device_id

    async def read(self) -> v1.MinerSample:
        try:
            data = await self.miner.get_data()
        except (OSError, TimeoutError) as exc:
            raise DeviceUnreachable(f"{self.ip}: {exc}") from exc
        except Exception as exc:  # pyasic raises its own APIError family
            raise DeviceError(f"{self.ip}: pyasic get_data failed: {exc.__class__.__name__}: {exc}") from exc
        reading = reading_from_pyasic(data)
        sample = state.build_sample(self.ip, reading, "unknown", device_id=self.device_id)
        sample.capabilities = pyasic_capabilities(self.miner, reading.model)
        return sample

    async def sleep(self) -> None:
        if not getattr(self.miner, "supports_shutdown", False):
            raise CommandUnsupported(f"{self.ip}: pyasic cannot put this firmware to sleep")
        await pyasic_call(self.ip, "sleep", self.miner.stop_mining())

    async def wake(self) -> None:
        await pyasic_call(self.ip, "wake", self.miner.resume_mining())

    async def reboot(self) -> None:
        await pyasic_call(self.ip, "reboot", self.miner.reboot())

    async def set_power_target(self, watts: float | None) -> None:
        caps = pyasic_capabilities(self.miner, getattr(self.miner, "model", None))
        if not caps.power_target:
            raise CommandUnsupported(f"{self.ip}: this firmware has no power target")
        if watts is None:
            watts = caps.power_max_w
        if watts is None:
            raise CommandUnsupported(f"{self.ip}: unknown model, cannot restore its nominal power")
        await pyasic_call(self.ip, f"power target {watts:.0f} W", self.miner.set_power_limit(int(watts)))


register_miner("pyasic")(PyasicMiner)
