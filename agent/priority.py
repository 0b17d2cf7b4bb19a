"""Commands before polls: while the agent applies commands, device reads not yet started wait for it.

Why: on the simulated 1,000-miner site (two gateways of ~500 miners, 2 s polls) a poll cycle takes the whole
interval of the agent's event loop and of the devices' answering side. A setpoint batch that arrived mid-cycle had
its ~500 device actions interleaved with ~500 reads: the first action ran about a second after the batch arrived
and the last five seconds later, so an emergency cap took 6-8 s (20 s on a loaded machine) to show at the meter
instead of one poll plus the firmware's actuation (docs/agent.md, "Site response"). A read is worth nothing while
the plant is being changed under it: it describes the old setpoints. So reads queue behind the commands, each for at
most `max_wait_s` (a stream of commands never starves telemetry for longer than that), and the cycle that follows
reports the new state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class CommandsFirst:
    """A gate between the command processor (`acting`) and the poll loop (`before_read`)."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._acting = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.reads_held = 0  # reads that waited for commands (agent health, tests)

    @property
    def busy(self) -> bool:
        return self._acting > 0

    @contextlib.contextmanager
    def acting(self) -> Iterator[None]:
        """Hold new reads back while the block runs (nests: several commands at once hold them until the last)."""
        self._acting += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._acting -= 1
            if self._acting == 0:
                self._idle.set()

    async def before_read(self) -> None:
        """Wait until no command is being applied, for at most `max_wait_s`."""
        if self._acting == 0:
            return
        self.reads_held += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.max_wait_s)
