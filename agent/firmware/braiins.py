"""Braiins OS / BOS+ (BOSminer on Antminers): recognition, poll, parsers.

Recognised by a `BOSminer*` key in `version` (pyasic class BOSMiner). A poll asks the legacy cgminer RPC for
`summary`, `devs`, `temps`, `fans`, `pools` and `tunerstatus` (MH/s; the tuner gives the approximate power and the
power limit). Control: power targets, pause/resume and hash boards through Braiins OS's public API (agent.control).
"""

from __future__ import annotations

import logging
from typing import Any

from agent.control.braiins import BraiinsControl, braiins_control
from agent.drivers.parsers import MH_PER_TH, Reading, Reply, first, hottest, model_name, parse_pools, pick, section
from agent.errors import DeviceError
from agent.firmware.record import Firmware, MinerIO
from agent.transport.jsonfix import integer, num
from kuat import catalog
from kuat.wire import v1


def version_identity(entry: dict[str, Any], description: str) -> Reading | None:
    key = next((k for k in entry if k.startswith("BOSminer")), None)
    if key is None:
        return None
    return Reading(make="Antminer", model=model_name(entry.get("Type")), firmware=f"Braiins OS {entry[key]}")


def parse(replies: dict[str, Reply], model: str | None = None) -> Reading:
    summary = first(replies.get("summary"), "SUMMARY")
    mhs = pick(summary, "MHS 1m", "MHS 5s", "MHS av")
    description = str(first(replies.get("summary"), "STATUS").get("Description", ""))
    temps = section(replies.get("temps"), "TEMPS")
    spec = catalog.lookup(model)
    boards = []
    for index, dev in enumerate(section(replies.get("devs"), "DEVS")):
        dev_mhs = pick(dev, "MHS 1m", "MHS 5s", "MHS av")
        temp = temps[index] if index < len(temps) else {}
        enabled = str(dev.get("Enabled", "Y")).upper() != "N"  # switched off through the REST API: not a fault
        boards.append(
            v1.Board(
                index=index,
                hashrate_ths=None if dev_mhs is None else dev_mhs / MH_PER_TH,
                expected_chips=spec.chips_per_board if spec else None,
                temp_c=num(temp.get("Board")) or None,
                chip_temp_c=num(temp.get("Chip")) or None,
                ok=not enabled or (str(dev.get("Status", "Alive")) == "Alive" and (dev_mhs or 0) > 0),
                enabled=enabled,
            )
        )
    tuner = first(replies.get("tunerstatus"), "TUNERSTATUS")
    fans = [integer(f.get("RPM")) for f in section(replies.get("fans"), "FANS")]
    return Reading(
        make="Antminer",
        model=model,
        firmware=f"Braiins OS {description.split()[-1]}" if description.startswith("BOSminer") else None,
        hashrate_ths=None if mhs is None else mhs / MH_PER_TH,
        power_w=pick(tuner, "ApproximateMinerPowerConsumption"),
        power_limit_w=pick(tuner, "PowerLimit"),
        temp_c=hottest([b.temp_c for b in boards] + [b.chip_temp_c for b in boards]),
        fans_rpm=[f for f in fans if f],
        boards=boards,
        pools=parse_pools(replies.get("pools")),
        uptime_s=integer(summary.get("Elapsed")),
    )


log = logging.getLogger(__name__)


def parse_details(details: dict[str, Any]) -> Reading:
    """REST `GET /api/v1/miner/details`: serial, MAC, hostname, model (`miner_identity.miner_model`)."""
    identity = details.get("miner_identity") if isinstance(details.get("miner_identity"), dict) else {}
    assert isinstance(identity, dict)
    text = {k: v.strip() for k, v in details.items() if isinstance(v, str) and v.strip()}
    return Reading(make="Antminer", model=model_name(identity.get("miner_model") or identity.get("name")),
                   serial=text.get("serial_number"), mac=(text.get("mac_address") or "").lower() or None,
                   hostname=text.get("hostname"))


async def identify(io: MinerIO, identity: Reading) -> None:
    """The legacy RPC has no serial, MAC or model: the REST API's miner details have them."""
    control = getattr(io, "control", None)
    if not isinstance(control, BraiinsControl):
        return
    try:
        identity.merge(parse_details(await control.details()))
    except DeviceError as exc:
        log.info("%s: no Braiins identity (serial, MAC): %s", io.ip, exc)


FIRMWARE = Firmware(
    name="braiins",
    make="Antminer",
    version_identity=version_identity,
    version_needles=("BOSMINER",),
    pyasic_classes=("BOSMiner", "BOSer"),  # BOSer: pyasic's gRPC class for newer BOS+ models
    priority=20,
    read_commands=("summary", "devs", "temps", "fans", "pools", "tunerstatus"),
    parse=parse,
    recordings=("foreman_antminer_s9_bosplus_*",),
    capabilities=v1.Capabilities(sleep=True, power_target=True, boards=True),
    control=braiins_control,
    identify=identify,
)
