"""Single hash boards in a fleet setpoint (`Setpoint.boards_on`, the quota engine's board option).

Why apart from the setpoint path (agent.commands): `boards_on` is one more step after a setpoint's mode is applied,
and "no `boards_on`" must undo an earlier one - so the agent remembers which devices it limited, and also trusts a
reading that shows a board switched off (after an agent restart that memory is gone). Only firmware whose
capabilities say `boards` (Braiins OS, where the capability matrix verified it) is asked; for the rest the item is
rejected without touching the miner.
"""

from __future__ import annotations

from typing import Protocol

from agent.coordinator import MinerDevice
from kuat.wire import v1

UNSUPPORTED = "unsupported: this firmware cannot switch single hash boards"


class SwitchesBoards(Protocol):
    async def boards(self, dev: MinerDevice, count: int | None) -> v1.ItemAck: ...


class BoardSetpoints:
    def __init__(self, actuator: SwitchesBoards) -> None:
        self.actuator = actuator
        self.limited: set[str] = set()  # devices this agent told to hash on fewer than all their boards

    async def follow(self, sp: v1.Setpoint, dev: MinerDevice, item: v1.ItemAck) -> v1.ItemAck:
        """After the setpoint's mode was applied (`item`): `boards_on` k hashes on k boards; without it, boards
        switched off earlier are switched back on (`run` means every board)."""
        caps = dev.last.capabilities if dev.last else v1.Capabilities()
        if sp.boards_on is None:
            if not caps.boards or not (dev.device_id in self.limited or switched_off(dev)):
                return item
            on = await self.actuator.boards(dev, None)
            if on.status == v1.AckStatus.APPLIED:
                self.limited.discard(dev.device_id)
            return on
        if not caps.boards:
            return v1.ItemAck(device_id=dev.device_id, status=v1.AckStatus.REJECTED, reason=UNSUPPORTED)
        done = await self.actuator.boards(dev, sp.boards_on)
        if done.status == v1.AckStatus.APPLIED:
            self.limited.add(dev.device_id)
        return done


def switched_off(dev: MinerDevice) -> bool:
    """The miner reports a board switched off (by this agent before a restart, or by hand)."""
    return bool(dev.last and any(not b.enabled for b in dev.last.boards))


def drifted(sp: v1.Setpoint, dev: MinerDevice) -> bool:
    """More boards hash than the setpoint asked (switched back on by hand, or by a firmware restart)."""
    return sp.boards_on is not None and dev.last is not None \
        and sum(b.enabled for b in dev.last.boards) > sp.boards_on
