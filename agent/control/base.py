"""The contract of a control path, and the connection facts every path gets (`Target`).

A control path is built once per miner driver and lives as long as it: that is what lets it keep a LuxOS session
or a Whatsminer token between setpoints instead of paying for them at every command.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from agent.drivers.parsers import Reading
from agent.errors import CommandUnsupported


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach one miner (ports already offset; credentials as configured, None for the default)."""

    ip: str
    rpc_port: int = 4028
    web_port: int = 80
    timeout: float = 5.0
    username: str | None = None
    password: str | None = None


class Control(abc.ABC):
    """One miner's control channel. Each call returns once the firmware accepted the order, else raises
    `CommandUnsupported` (the firmware cannot), `DeviceUnreachable` or `DeviceError` (it did not)."""

    name = "base"

    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def ip(self) -> str:
        return self.target.ip

    def warm(self) -> None:
        """Called after every good read: a chance to prepare (identify, log on) before the first command."""
        return None

    @abc.abstractmethod
    async def sleep(self) -> None: ...

    @abc.abstractmethod
    async def wake(self) -> None: ...

    @abc.abstractmethod
    async def reboot(self) -> None: ...

    @abc.abstractmethod
    async def set_power_target(self, watts: float, identity: Reading) -> None:
        """Cap the miner at `watts` (already checked against the capability range by the driver)."""

    async def set_boards(self, enabled: list[int], identity: Reading) -> None:
        """Hash the boards whose indexes are in `enabled`, switch the others off (Braiins OS)."""
        raise CommandUnsupported(f"{self.ip}: this firmware cannot switch single hash boards")

    async def close(self) -> None:
        """Release what the path keeps open (a session); the driver is going away."""
        return None
