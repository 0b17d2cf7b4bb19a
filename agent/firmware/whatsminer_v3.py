"""Whatsminer with API v3 (btminer firmware from about 2024.11 on): recognition, poll, parser.

Not a cgminer-family API: TCP 4433, length-prefixed JSON (agent.transport.btminer_v3). Recognised by
`get.device.info` answering with a `miner` section (as pyasic's factory does; pyasic class BTMinerV3), tried when
the cgminer port refuses. A poll asks `get.miner.status` for summary, edevs and pools (TH/s; `power-realtime`,
`power-limit`); identity (model code, serial, MAC, firmware) comes from `get.device.info`, once.
"""

from __future__ import annotations

from typing import Any

from agent.control.whatsminer_v3 import whatsminer_v3_control
from agent.drivers.parsers import Reading, Reply, plausible_temp
from agent.firmware.record import Firmware
from agent.transport.jsonfix import integer, num
from kuat.wire import v1


def version_identity(entry: dict[str, Any], description: str) -> Reading | None:
    return None  # no cgminer `version` on this firmware: identity comes from get.device.info


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_device_info(msg: Any) -> Reading:
    """`get.device.info` msg: miner.type (M60_VK10 -> M60), miner-sn, network.mac/hostname, system.fwversion."""
    info = _dict(msg)
    miner, network, system = _dict(info.get("miner")), _dict(info.get("network")), _dict(info.get("system"))
    code = miner.get("type")
    model = code.split("_")[0].strip() or None if isinstance(code, str) else None
    mac = network.get("mac")
    fw = system.get("fwversion")
    return Reading(
        make="Whatsminer",
        model=model,
        firmware=f"btminer {fw}" if isinstance(fw, str) and fw else "btminer (API v3)",
        serial=miner.get("miner-sn") if isinstance(miner.get("miner-sn"), str) else None,
        mac=mac.lower() if isinstance(mac, str) and mac else None,
        hostname=network.get("hostname") if isinstance(network.get("hostname"), str) else None,
    )


def parse(replies: dict[str, Reply], model: str | None = None) -> Reading:
    """replies: the `msg` of get.miner.status summary / edevs / pools under those keys."""
    summary = _dict(_dict(replies.get("summary")).get("summary"))
    edevs = _dict(replies.get("edevs")).get("edevs")
    pools = _dict(replies.get("pools")).get("pools")
    boards = [
        v1.Board(
            index=i,
            hashrate_ths=num(b.get("hash-average")),
            chips=integer(b.get("effective-chips")),
            temp_c=plausible_temp(num(b.get("chip-temp-min"))),
            chip_temp_c=plausible_temp(num(b.get("chip-temp-max"))),
            ok=str(b.get("status", "alive")) == "alive" and (num(b.get("hash-average")) or 0) > 0,
        )
        for i, b in enumerate(x for x in (edevs if isinstance(edevs, list) else []) if isinstance(x, dict))
    ]
    fans = [integer(summary.get(k)) for k in ("fan-speed-in", "fan-speed-out")]
    hashing = summary.get("working")
    ths = num(summary.get("hash-realtime"))
    return Reading(
        make="Whatsminer",
        model=model,
        hashrate_ths=ths,
        power_w=num(summary.get("power-realtime")),
        power_limit_w=num(summary.get("power-limit")),
        temp_c=plausible_temp(num(summary.get("chip-temp-max"))),
        fans_rpm=[f for f in fans if f],
        boards=boards,
        pools=[
            v1.Pool(url=str(p.get("url")), user=str(p.get("account") or ""), status=str(p.get("status") or ""),
                    active=p.get("stratum-active") is True)
            for p in (pools if isinstance(pools, list) else []) if isinstance(p, dict) and p.get("url")
        ],
        uptime_s=integer(summary.get("elapsed")),
        sleeping=True if hashing is False and not ths else None,
    )


def _driver(ip: str, **kwargs: Any) -> Any:
    from agent.drivers.whatsminer_v3 import WhatsminerV3Miner

    return WhatsminerV3Miner(ip, **kwargs)


FIRMWARE = Firmware(
    name="whatsminer3",
    make="Whatsminer",
    version_identity=version_identity,
    version_needles=(),  # never answers the cgminer `version`
    pyasic_classes=("BTMinerV3",),
    priority=25,
    read_commands=("summary", "edevs", "pools"),
    parse=parse,
    recordings=(),
    capabilities=v1.Capabilities(sleep=True, power_target=True, power_target_reboots=True),
    control=whatsminer_v3_control,
    driver=_driver,
)
