"""One record per miner firmware family: how it is recognised, what a poll asks, its parser, its capabilities and
its control path, in one module per family (`antminer`, `luxos`, `whatsminer`, `braiins`, `avalon`).

Why: these facts used to be spread over seven tables in four files (READ_COMMANDS, _parse, firmware_family,
CAPABILITIES, family_of and two dead ones); adding a firmware meant finding all of them. Now a new firmware is one
module with one `Firmware` record, registered in `FAMILIES` below (docs/development.md, "Adding a firmware").
"""

from __future__ import annotations

from agent.drivers.parsers import Reading, Reply, first, model_name
from agent.firmware import antminer, avalon, braiins, luxos, whatsminer, whatsminer_v3
from agent.firmware.record import Firmware, MinerIO

__all__ = [
    "FAMILIES", "Firmware", "MinerIO", "by_name", "family_from_reply", "family_of_pyasic", "parse_version",
]

FAMILIES: dict[str, Firmware] = {
    fw.name: fw
    for fw in (luxos.FIRMWARE, braiins.FIRMWARE, whatsminer.FIRMWARE, whatsminer_v3.FIRMWARE, avalon.FIRMWARE,
               antminer.FIRMWARE)
}
# recognition order: the most specific first (LuxOS and Braiins OS run on Antminers and mention them)
_ORDER = sorted(FAMILIES.values(), key=lambda fw: fw.priority)


def by_name(name: str) -> Firmware:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown miner family {name!r}; known: {', '.join(sorted(FAMILIES))}") from None


def family_from_reply(reply: object) -> str | None:
    """Which family a `version` (or `devdetails`) reply belongs to, by the words its firmware writes in it."""
    text = str(reply or "").upper()
    for fw in _ORDER:
        if any(needle in text for needle in fw.version_needles):
            return fw.name
    return None


def family_of_pyasic(miner: object) -> str:
    """Which Kuat driver handles this pyasic miner object: a lean family, or "pyasic" for the long tail."""
    names = {cls.__name__ for cls in type(miner).__mro__}
    for fw in _ORDER:
        if names & set(fw.pyasic_classes) and not names & set(fw.pyasic_excludes):
            return fw.name
    return "pyasic"


def parse_version(reply: Reply | None) -> Reading:
    """make/model/firmware from a `version` reply, by the first family that recognises it (the model alone else)."""
    entry = first(reply, "VERSION")
    description = str(first(reply, "STATUS").get("Description", ""))
    for fw in _ORDER:
        reading = fw.version_identity(entry, description)
        if reading is not None:
            return reading
    return Reading(model=model_name(entry.get("Type")))
