"""Carrying out one action on one device: the per-device timeout, one control action at a time per device, the
driver's outcome turned into an item ack (`applied`, `rejected` for what the firmware does not support or a value
out of its published range, `failed` for what was tried and did not happen). Used by the command path
(agent.commands) and by the failsafe (agent.failsafe), which must act on devices the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agent.coordinator import DriverOpener, Fleet, MinerDevice, PduDevice
from agent.drivers.base import CommandUnsupported, DeviceError, MinerDriver, OutletAction
from kuat.wire import v1

log = logging.getLogger(__name__)
LIMIT_TOLERANCE_W = 1.0  # published limits are whole watts


class Actuator:
    """Carries out one action on one device with the per-device timeout and turns the outcome into an ItemAck."""

    def __init__(self, fleet: Fleet, opener: DriverOpener, timeout_s: float) -> None:
        self.fleet = fleet
        self.opener = opener
        self.timeout_s = timeout_s
        self._locks: dict[str, asyncio.Lock] = {}  # one control action at a time per device (LuxOS: one session)

    async def on_miner(self, dev: MinerDevice, what: str, act: Callable[[MinerDriver], Awaitable[None]]) -> v1.ItemAck:
        async def run() -> None:
            if dev.driver is None:
                dev.driver = await self.opener.open_miner(dev.cfg)
            await act(dev.driver)

        return await self._outcome(dev.device_id, what, run())

    async def sleep(self, dev: MinerDevice) -> v1.ItemAck:
        return await self.on_miner(dev, "sleep", lambda d: d.sleep())

    async def wake(self, dev: MinerDevice) -> v1.ItemAck:
        return await self.on_miner(dev, "wake", lambda d: d.wake())

    async def reboot(self, dev: MinerDevice) -> v1.ItemAck:
        return await self.on_miner(dev, "reboot", lambda d: d.reboot())

    async def power_target(self, dev: MinerDevice, watts: float | None) -> v1.ItemAck:
        caps = dev.last.capabilities if dev.last else None
        if watts is not None and caps is not None:
            # Limits are published rounded to whole watts: a target within the rounding of a limit is clamped
            # to it, not refused (the engine computes with the unrounded curve).
            if caps.power_min_w is not None and watts < caps.power_min_w:
                if watts < caps.power_min_w - LIMIT_TOLERANCE_W:
                    return rejected(dev.device_id,
                                     f"{watts:.1f} W is below this miner's minimum {caps.power_min_w:.0f} W")
                watts = caps.power_min_w
            if caps.power_max_w is not None and watts > caps.power_max_w:
                if watts > caps.power_max_w + LIMIT_TOLERANCE_W:
                    return rejected(dev.device_id,
                                     f"{watts:.1f} W is above this miner's maximum {caps.power_max_w:.0f} W")
                watts = caps.power_max_w
        return await self.on_miner(dev, f"power target {watts} W", lambda d: d.set_power_target(watts))

    async def boards(self, dev: MinerDevice, count: int | None) -> v1.ItemAck:
        what = "all boards on" if count is None else f"{count} boards on"
        return await self.on_miner(dev, what, lambda d: d.set_boards(count))

    async def outlet(self, pdu: PduDevice, outlet: int, action: OutletAction, device_id: str) -> v1.ItemAck:
        async def run() -> None:
            if pdu.driver is None:
                pdu.driver = await self.opener.open_pdu(pdu.cfg)
            await pdu.driver.switch(outlet, action)

        return await self._outcome(device_id, f"outlet {pdu.device_id}/{outlet} {action}", run())

    async def miner_outlet(self, dev: MinerDevice, action: OutletAction) -> v1.ItemAck:
        ref = self.fleet.outlets.outlet_of(dev.device_id)
        pdu = self.fleet.pdu(ref.pdu) if ref else None
        if ref is None or pdu is None:
            return rejected(dev.device_id, "no PDU outlet is mapped for this miner")
        return await self.outlet(pdu, ref.outlet, action, dev.device_id)

    async def _outcome(self, device_id: str, what: str, work: Awaitable[None]) -> v1.ItemAck:
        lock = self._locks.setdefault(device_id, asyncio.Lock())
        try:
            async with lock:
                await asyncio.wait_for(work, self.timeout_s)
        except CommandUnsupported as exc:
            log.info("%s on %s rejected: %s", what, device_id, exc)
            return rejected(device_id, f"unsupported: {exc}")
        except TimeoutError:
            log.warning("%s on %s failed: no answer within %.1fs", what, device_id, self.timeout_s)
            return v1.ItemAck(device_id=device_id, status=v1.AckStatus.FAILED, reason=f"timeout ({self.timeout_s}s)")
        except (DeviceError, OSError) as exc:
            log.warning("%s on %s failed: %s", what, device_id, exc)
            return v1.ItemAck(device_id=device_id, status=v1.AckStatus.FAILED, reason=str(exc) or type(exc).__name__)
        except Exception as exc:  # a driver bug must not take the agent down; the ack says what happened
            log.exception("%s on %s failed with an internal error", what, device_id)
            return v1.ItemAck(device_id=device_id, status=v1.AckStatus.FAILED, reason=f"internal error: {exc!r}")
        log.info("%s on %s applied", what, device_id)
        return v1.ItemAck(device_id=device_id, status=v1.AckStatus.APPLIED)


def rejected(device_id: str, reason: str) -> v1.ItemAck:
    return v1.ItemAck(device_id=device_id, status=v1.AckStatus.REJECTED, reason=reason)
