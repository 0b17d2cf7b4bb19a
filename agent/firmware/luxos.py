"""LuxOS (LUXminer on Antminers): recognition, poll, parsers.

Recognised by `LUXminer` in `version` (pyasic class LUXMiner). A poll asks `stats` + `pools` + `power`: the stats
are bmminer's (GH/s, chains), `power` gives the wall power (POWER[0].Watts). Identity from `config` (MACAddr,
SerialNumber) and the presets from `profiles` (names and watts). Control: `curtail` sleep/wakeup and profiles,
through a session kept open (agent.control.luxos).
"""

from __future__ import annotations

from typing import Any

from agent.control.luxos import luxos_control
from agent.drivers.parsers import GH_PER_TH, Reading, Reply, first, model_name, parse_pools, pick, section
from agent.firmware.antminer import parse_bmminer_stats
from agent.firmware.record import Firmware, MinerIO
from kuat.wire import v1


def version_identity(entry: dict[str, Any], description: str) -> Reading | None:
    if "LUXminer" not in entry:
        return None
    return Reading(make="Antminer", model=model_name(entry.get("Type")), firmware=f"LuxOS {entry['LUXminer']}")


def parse(replies: dict[str, Reply], model: str | None = None) -> Reading:
    """LuxOS: bmminer-style `stats`, `power` (POWER[0].Watts), `version` LUXminer."""
    reading = parse_bmminer_stats(replies.get("stats"))
    reading.make = "Antminer"
    reading.pools = parse_pools(replies.get("pools"))
    power = pick(first(replies.get("power"), "POWER"), "Watts")
    if power is not None:
        reading.power_w = power
    if replies.get("version"):
        version = version_identity(first(replies["version"], "VERSION"), "") or Reading()
        reading.firmware = version.firmware
        reading.model = reading.model or version.model
    if reading.hashrate_ths is None:
        ghs = pick(first(replies.get("summary"), "SUMMARY"), "GHS 5s", "GHS av")
        reading.hashrate_ths = None if ghs is None else ghs / GH_PER_TH
    return reading


def luxos_presets(profiles: Reply | None) -> list[str]:
    """LuxOS `profiles`: PROFILES[*]."Profile Name" (e.g. 545MHz ... default)."""
    names = [p.get("Profile Name") for p in section(profiles, "PROFILES")]
    return [n for n in names if isinstance(n, str) and n]


def luxos_preset_watts(profiles: Reply | None) -> list[float]:
    """LuxOS `profiles`: PROFILES[*].Watts, the wall power of each preset (its lowest is the lowest target the
    firmware can take: pyasic picks the highest preset at or below a power limit and refuses below the lowest)."""
    watts = (pick(p, "Watts") for p in section(profiles, "PROFILES"))
    return sorted(w for w in watts if w is not None and w > 0)


def luxos_mac(config: Reply | None) -> str | None:
    """LuxOS `config`: CONFIG[0].MACAddr."""
    mac = first(config, "CONFIG").get("MACAddr")
    return mac.strip().lower() or None if isinstance(mac, str) else None


def luxos_serial(config: Reply | None) -> str | None:
    """LuxOS `config`: CONFIG[0].SerialNumber (the control board's serial)."""
    serial = first(config, "CONFIG").get("SerialNumber")
    return serial.strip() or None if isinstance(serial, str) else None


async def identify(io: MinerIO, identity: Reading) -> None:
    config = await io.optional_command("config")
    identity.mac = luxos_mac(config)
    identity.serial = luxos_serial(config) or identity.serial
    profiles = await io.optional_command("profiles")
    identity.presets = luxos_presets(profiles)
    identity.preset_watts = luxos_preset_watts(profiles)


FIRMWARE = Firmware(
    name="luxos",
    make="Antminer",
    version_identity=version_identity,
    version_needles=("LUXMINER",),
    pyasic_classes=("LUXMiner",),
    priority=10,
    read_commands=("stats", "pools", "power"),
    parse=parse,
    recordings=("luxos_*",),
    capabilities=v1.Capabilities(sleep=True, power_target=True, presets=[]),
    control=luxos_control,
    identify=identify,
)
