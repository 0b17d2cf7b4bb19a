"""Whatsminer (btminer, API v2): recognition, poll, parsers.

Recognised by "btminer"/"whatsminer" in the STATUS Description of `version` or `devdetails` (firmware from 2023 on
refuses `version`); pyasic class BTMinerV2. A poll asks `summary` + `edevs` + `pools` (MH/s; `summary` reports
`Power` and `Power Limit`), plus `status` when the miner does not hash (btmineroff says it sleeps). Identity:
`devdetails` Model, `get_miner_info` serial and MAC. Control: AES-encrypted writes with a token (agent.control).
A power limit change reboots the miner.
"""

from __future__ import annotations

from typing import Any

from agent.control.pyasic import whatsminer_model
from agent.control.whatsminer_v2 import whatsminer_v2_control
from agent.drivers.parsers import (
    MH_PER_TH,
    Reading,
    Reply,
    clean_firmware_string,
    first,
    model_name,
    parse_pools,
    pick,
    section,
)
from agent.firmware.record import Firmware, MinerIO
from agent.transport.jsonfix import integer, num
from kuat.wire import v1


def version_identity(entry: dict[str, Any], description: str) -> Reading | None:
    if "btminer" not in description.lower() and "whatsminer" not in description.lower():
        return None
    return Reading(make="Whatsminer", firmware="btminer", model=model_name(entry.get("Type")))


def parse_whatsminer_summary(reply: Reply | None) -> Reading:
    entry = first(reply, "SUMMARY")
    mhs = pick(entry, "MHS 1m", "MHS 5s", "MHS av")
    fans = [integer(entry.get(k)) for k in ("Fan Speed In", "Fan Speed Out")]
    errors = [
        f"error code {integer(v)}"
        for k, v in entry.items()
        if k.startswith("Error Code ") and k != "Error Code Count" and integer(v) is not None
    ]
    return Reading(
        make="Whatsminer",
        firmware=_whatsminer_firmware(entry.get("Firmware Version")),
        mac=entry.get("MAC") if isinstance(entry.get("MAC"), str) else None,
        hashrate_ths=None if mhs is None else mhs / MH_PER_TH,
        power_w=pick(entry, "Power", "Power_RT"),
        power_limit_w=pick(entry, "Power Limit"),
        temp_c=pick(entry, "Chip Temp Max", "Temperature"),
        fans_rpm=[f for f in fans if f],
        uptime_s=integer(entry.get("Elapsed")),
        errors=errors,
    )


def _whatsminer_firmware(value: Any) -> str | None:
    version = clean_firmware_string(value)
    return f"btminer {version}" if version else "btminer"


def parse_whatsminer_devs(reply: Reply | None) -> list[v1.Board]:
    """`edevs`/`devs`: one entry per hash board, MH/s."""
    boards = []
    for index, entry in enumerate(section(reply, "DEVS")):
        mhs = pick(entry, "MHS 1m", "MHS 5s", "MHS av")
        chips = integer(entry.get("Effective Chips"))
        alive = str(entry.get("Status", "Alive")) == "Alive" and str(entry.get("Enabled", "Y")) == "Y"
        boards.append(
            v1.Board(
                index=index,
                hashrate_ths=None if mhs is None else mhs / MH_PER_TH,
                chips=chips,  # Whatsminer chip counts vary by variant (105/111/156 seen): no expectation
                temp_c=num(entry.get("Temperature")),
                chip_temp_c=num(entry.get("Chip Temp Max")),
                ok=alive and (mhs or 0) > 0,
            )
        )
    return boards


def parse_whatsminer_status(reply: Reply | None) -> bool | None:
    """`status` -> True when btminer is off (the miner sleeps: power_off), False when on, None if unknown."""
    if not reply:
        return None
    msg = reply.get("Msg")
    if isinstance(msg, dict) and "btmineroff" in msg:
        return str(msg["btmineroff"]).lower() == "true"
    return None


def parse(replies: dict[str, Reply], model: str | None = None) -> Reading:
    reading = parse_whatsminer_summary(replies.get("summary"))
    reading.model = model
    reading.boards = parse_whatsminer_devs(replies.get("edevs") or replies.get("devs"))
    reading.pools = parse_pools(replies.get("pools"))
    reading.sleeping = parse_whatsminer_status(replies.get("status"))
    return reading


def whatsminer_miner_info(info: Reply | None) -> tuple[str | None, str | None]:
    """Whatsminer API v2 `get_miner_info`: Msg.minersn and Msg.mac -> (serial, MAC lower case)."""
    msg = info.get("Msg") if isinstance(info, dict) else None
    if not isinstance(msg, dict):
        return None, None
    serial, mac = msg.get("minersn"), msg.get("mac")
    serial = serial.strip() or None if isinstance(serial, str) else None
    mac = mac.strip().lower() or None if isinstance(mac, str) else None
    return serial, mac


def hashing(replies: dict[str, Reply]) -> bool:
    summary = first(replies.get("summary"), "SUMMARY")
    return (pick(summary, "MHS 1m", "MHS 5s", "MHS av") or 0) > 0


async def extra_reads(io: MinerIO, replies: dict[str, Reply]) -> None:
    """Not hashing: is btminer off (asleep) or faulted? `status` says."""
    if not hashing(replies):
        replies["status"] = await io.optional_command("status")


async def identify(io: MinerIO, identity: Reading) -> None:
    identity.model = whatsminer_model(await io.optional_command("devdetails")) or identity.model
    serial, mac = whatsminer_miner_info(await io.optional_command("get_miner_info"))
    identity.serial, identity.mac = serial or identity.serial, mac or identity.mac


FIRMWARE = Firmware(
    name="whatsminer",
    make="Whatsminer",
    version_identity=version_identity,
    version_needles=("BTMINER", "WHATSMINER"),
    pyasic_classes=("BTMinerV2",),
    priority=30,
    read_commands=("summary", "edevs", "pools"),
    parse=parse,
    recordings=("foreman_whatsminer_*",),
    capabilities=v1.Capabilities(sleep=True, power_target=True, power_target_reboots=True),
    control=whatsminer_v2_control,
    identify=identify,
    extra_reads=extra_reads,
)
