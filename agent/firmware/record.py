"""The shape of a firmware record, and what a firmware's hooks may ask of the driver that runs them (`MinerIO`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent.drivers.parsers import Reading, Reply
from kuat.wire import v1

if TYPE_CHECKING:
    from agent.control.base import Control


class MinerIO(Protocol):
    """The I/O a firmware's identification and extra reads use (implemented by `agent.drivers.miner.RpcMiner`)."""

    ip: str

    async def optional_command(self, command: str) -> Reply:
        """One RPC command; {} when the firmware refuses it (an unreachable miner still raises)."""
        ...

    async def web_json(self, path: str) -> dict[str, Any]: ...


Parse = Callable[[dict[str, Reply], "str | None"], Reading]
VersionIdentity = Callable[[dict[str, Any], str], "Reading | None"]
Identify = Callable[[MinerIO, Reading], Awaitable[None]]
ExtraReads = Callable[[MinerIO, dict[str, Reply]], Awaitable[None]]
ControlFactory = Callable[..., "Control"]


async def _nothing_to_identify(io: MinerIO, identity: Reading) -> None:
    return None


async def _no_extra_reads(io: MinerIO, replies: dict[str, Reply]) -> None:
    return None


@dataclass(frozen=True)
class Firmware:
    """Everything Kuat knows about one firmware family.

    - recognition: `version_identity` (VERSION[0] and the STATUS Description -> make/model/firmware, or None
      when the reply is not this firmware's), `version_needles` (upper-case words of its `version`/`devdetails`
      reply), `pyasic_classes` (pyasic class names in the miner object's MRO; `pyasic_excludes` vetoes),
      `priority` (lower is tried first);
    - a poll: `read_commands` (one multi-command when the firmware takes it), `extra_reads` (e.g. Whatsminer
      `status` when not hashing), `parse` (replies -> Reading, pure);
    - identity fetched once: `identify` fills model/serial/MAC/presets beyond the `version` reply;
    - `capabilities`: what the firmware can be told (the model narrows the power range, `state.capabilities_for`);
    - `control`: the lean control path (`agent.control`), built once per driver.
    """

    name: str
    make: str | None
    version_needles: tuple[str, ...]
    version_identity: VersionIdentity
    pyasic_classes: tuple[str, ...]
    read_commands: tuple[str, ...]
    parse: Parse
    capabilities: v1.Capabilities
    control: ControlFactory
    priority: int = 50
    pyasic_excludes: tuple[str, ...] = ()
    identify: Identify = _nothing_to_identify
    extra_reads: ExtraReads = _no_extra_reads
    web_fallback: bool = False  # stock Antminer: read the web API when the RPC is switched off
    recordings: tuple[str, ...] = ()  # name patterns of its real replies in ../shared/fixtures/miners
    driver: Callable[..., Any] | None = None  # a firmware off the cgminer RPC brings its own driver class
    notes: tuple[str, ...] = field(default=())
