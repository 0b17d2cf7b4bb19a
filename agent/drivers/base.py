"""The contract every device driver meets, and the registries drivers add themselves to.

A driver turns one device into Kuat's own model (`kuat.wire.v1.MinerSample` / `PduSample`) and carries out
power commands on it. Parsing is done by pure functions that take raw replies (testable without a network);
transports (TCP 4028, HTTP, SNMP) are separate from drivers.

Errors: a driver raises `DeviceUnreachable` when the device does not answer (the poll loop marks it offline),
`CommandUnsupported` when the firmware cannot do what is asked (the ack says `rejected` with the reason), and
`DeviceError` for everything else the device got wrong (ack `failed`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Literal

from agent.errors import CommandUnsupported, DeviceError, DeviceUnreachable
from kuat.wire import v1

__all__ = [
    "MINER_DRIVERS",
    "PDU_DRIVERS",
    "CommandUnsupported",
    "DeviceError",
    "DeviceUnreachable",
    "MinerDriver",
    "OutletAction",
    "PduDriver",
    "register_miner",
    "register_pdu",
]


OutletAction = Literal["on", "off", "cycle"]


class MinerDriver(abc.ABC):
    """One miner. `read()` is called every poll cycle; control calls return once the firmware accepted them."""

    ip: str

    @abc.abstractmethod
    async def read(self) -> v1.MinerSample: ...

    @abc.abstractmethod
    async def sleep(self) -> None: ...

    @abc.abstractmethod
    async def wake(self) -> None: ...

    @abc.abstractmethod
    async def reboot(self) -> None: ...

    @abc.abstractmethod
    async def set_power_target(self, watts: float | None) -> None:
        """Cap the miner at `watts`; None restores full power (the firmware's default/nominal)."""

    async def set_boards(self, count: int | None) -> None:
        """Hash on the first `count` boards and switch the others off; None switches every board on. Only
        firmware that can (`Capabilities.boards`: Braiins OS) overrides this; the others refuse."""
        raise CommandUnsupported(f"{self.ip}: this firmware cannot switch single hash boards")


class PduDriver(abc.ABC):
    ip: str

    @abc.abstractmethod
    async def read(self) -> v1.PduSample: ...

    @abc.abstractmethod
    async def switch(self, outlet: int, action: OutletAction) -> None: ...


# family name -> factory; drivers register themselves at import time
MinerFactory = Callable[..., MinerDriver]
PduFactory = Callable[..., PduDriver]
MINER_DRIVERS: dict[str, MinerFactory] = {}
PDU_DRIVERS: dict[str, PduFactory] = {}


def register_miner(name: str) -> Callable[[MinerFactory], MinerFactory]:
    def deco(factory: MinerFactory) -> MinerFactory:
        MINER_DRIVERS[name] = factory
        return factory

    return deco


def register_pdu(name: str) -> Callable[[PduFactory], PduFactory]:
    def deco(factory: PduFactory) -> PduFactory:
        PDU_DRIVERS[name] = factory
        return factory

    return deco
