"""Avalon (Canaan's cgminer): recognition, poll, parsers.

Recognised by "AVALON" in `version` (PROD / MODEL fields; pyasic class AvalonMiner). A poll asks `summary` +
`stats` + `pools`; the figures are in the `MM ID0` string of `stats` (`GHSmm` GH/s, `MGHS[...]` per board,
`WALLPOWER`, `TMax`, fans). Control: `ascset` work levels and soft-off/soft-on over the cgminer API (agent.control).
"""

from __future__ import annotations

import re
from typing import Any

from agent.control.avalon import avalon_control
from agent.drivers.parsers import GH_PER_TH, MH_PER_TH, Reading, Reply, first, parse_pools, pick
from agent.firmware.record import Firmware
from agent.transport.jsonfix import integer, num
from kuat import catalog
from kuat.wire import v1


def version_identity(entry: dict[str, Any], description: str) -> Reading | None:
    if not isinstance(entry.get("PROD"), str) and "AVA" not in str(entry.get("MODEL", "")).upper():
        return None
    model = catalog_model(str(entry.get("MODEL") or entry.get("PROD") or "")) or None
    mac = entry.get("MAC")
    return Reading(make="Avalon", model=model, firmware=f"cgminer {entry.get('CGMiner', '')}".strip(),
                   serial=entry.get("DNA") if isinstance(entry.get("DNA"), str) else None,
                   mac=_mac(mac) if isinstance(mac, str) else None)


def catalog_model(name: str) -> str:
    """'1246' or 'AvalonMiner 1246-N' -> 'A1246' when the catalogue has it, else the name as given."""
    digits = re.search(r"(\d{3,4})", name)
    if digits:
        spec = catalog.lookup(f"A{digits.group(1)}")
        if spec is not None:
            return spec.key
    return name


def _mac(text: str) -> str | None:
    """'0a1b2c3d4e5f' or '0A:1B:...' -> '0a:1b:2c:3d:4e:5f'."""
    hexes = re.sub(r"[^0-9a-fA-F]", "", text).lower()
    return ":".join(hexes[i:i + 2] for i in range(0, 12, 2)) if len(hexes) == 12 else None


_BRACKETS = re.compile(r"(\w+)\[([^\]]*)\]")


def parse_avalon_mm(text: str) -> dict[str, str]:
    """'Ver[1047-...] Fan1[2896] MGHS[12362.61 12812.16]' -> {'Ver': '1047-...', 'Fan1': '2896', ...}."""
    return {key: value.strip() for key, value in _BRACKETS.findall(text)}


def parse(replies: dict[str, Reply], model: str | None = None) -> Reading:
    stats = first(replies.get("stats"), "STATS")
    mm = parse_avalon_mm(str(stats.get("MM ID0", "")))
    summary = first(replies.get("summary"), "SUMMARY")
    ghs = num(mm.get("GHSmm"))
    mhs = pick(summary, "MHS 1m", "MHS 30s", "MHS av")
    hashrate = ghs / GH_PER_TH if ghs is not None else (None if mhs is None else mhs / MH_PER_TH)
    board_rates = [num(x) for x in mm.get("MGHS", "").split()]
    board_temps = [num(x) for x in mm.get("MTmax", "").split()]
    boards = [
        v1.Board(
            index=i,
            hashrate_ths=None if rate is None else rate / GH_PER_TH,
            chip_temp_c=board_temps[i] if i < len(board_temps) else None,
            ok=(rate or 0) > 0,
        )
        for i, rate in enumerate(board_rates)
    ]
    fans = [integer(v) for k, v in sorted(mm.items()) if re.fullmatch(r"Fan\d+", k)]
    version = mm.get("Ver", "")
    return Reading(
        make="Avalon",
        model=model or (catalog_model(f"Avalon {version.split('-')[0]}") if version else None),
        firmware=f"cgminer {version}" if version else None,
        hashrate_ths=hashrate,
        power_w=num(mm.get("WALLPOWER")),
        temp_c=num(mm.get("TMax")),
        fans_rpm=[f for f in fans if f],
        boards=boards,
        pools=parse_pools(replies.get("pools")),
        uptime_s=integer(stats.get("Elapsed")) or integer(summary.get("Elapsed")),
    )


FIRMWARE = Firmware(
    name="avalon",
    make="Avalon",
    version_identity=version_identity,
    version_needles=("AVALON",),
    pyasic_classes=("AvalonMiner",),
    priority=40,
    read_commands=("summary", "stats", "pools"),
    parse=parse,
    recordings=("foreman_avalon_*",),
    capabilities=v1.Capabilities(sleep=True),
    control=avalon_control,
)
