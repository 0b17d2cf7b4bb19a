"""Stock Antminer firmware (bmminer; also Hiveon and MSKminer, which keep its replies): recognition, poll, parsers.

Recognised by `BMMiner` in `version` (pyasic class BMMiner, but not VNish). A poll asks `stats` + `pools` over the
cgminer RPC; when the RPC is switched off it reads the web API (`stats.cgi`, `summary.cgi`). Identity (serial, MAC,
hostname) comes from the web API's `get_system_info.cgi` (digest auth, root/root unless configured). Units: GH/s.
Stock firmware reports no power (MSKminer's `total_power` and some builds' `chain_power` excepted). Control: the
web API's `miner-mode` (sleep, normal, low power); no power target.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from agent.control.antminer_web import antminer_web_control
from agent.drivers.parsers import (
    GH_PER_TH,
    Reading,
    Reply,
    first,
    hottest,
    model_name,
    parse_pools,
    pick,
    plausible_temp,
    section,
)
from agent.errors import DeviceError
from agent.firmware.record import Firmware, MinerIO
from agent.transport.jsonfix import integer, num
from kuat import catalog
from kuat.wire import v1

log = logging.getLogger(__name__)


def version_identity(entry: dict[str, Any], description: str) -> Reading | None:
    """make/model/firmware from VERSION[0] when it is bmminer's (Hiveon says so in its Type)."""
    if "BMMiner" not in entry:
        return None
    reading = Reading(make="Antminer", model=model_name(entry.get("Type")), firmware=f"bmminer {entry['BMMiner']}")
    if isinstance(entry.get("Type"), str) and "Hiveon" in entry["Type"]:
        reading.firmware = f"Hiveon bmminer {entry['BMMiner']}"
    return reading


# ------------------------------------------------------------------ bmminer-style stats (stock, Hiveon, MSK, LuxOS)

_CHAIN_KEY = re.compile(r"^chain_acn(\d+)$")


def parse_bmminer_stats(reply: Reply | None) -> Reading:
    """Stock Antminer (and LuxOS/Hiveon/MSKminer) `stats`: STATS[0] identity, STATS[1] the figures."""
    stats = section(reply, "STATS")
    head = stats[0] if stats else {}
    body = next((s for s in stats if "Elapsed" in s or "GHS 5s" in s), {})
    reading = Reading(model=model_name(head.get("Type")))
    if "BMMiner" in head:
        hiveon = "Hiveon" in str(head.get("Type", ""))
        reading.make, reading.firmware = "Antminer", f"{'Hiveon ' if hiveon else ''}bmminer {head['BMMiner']}"
    ghs = pick(body, "GHS 5s", "GHS av")
    reading.hashrate_ths = None if ghs is None else ghs / GH_PER_TH
    reading.uptime_s = integer(body.get("Elapsed"))
    reading.fans_rpm = _bmminer_fans(body)
    reading.boards = _bmminer_boards(body, catalog.lookup(reading.model))
    reading.temp_c = hottest([b.temp_c for b in reading.boards]) or num(body.get("temp_max")) or None
    reading.power_w = _bmminer_power(body)
    reading.errors = _chip_errors(body, reading.hashrate_ths)
    return reading


def _bmminer_fans(body: dict[str, Any]) -> list[int]:
    fans = []
    for n in range(1, 17):
        rpm = integer(body.get(f"fan{n}"))
        if rpm:
            fans.append(rpm)
    return fans


def _chain_numbers(body: dict[str, Any]) -> list[int]:
    """Chains the firmware reports as fitted: chips counted or a rate given (S9 uses 6..8, S19 1..4)."""
    numbers = []
    for key in body:
        match = _CHAIN_KEY.match(key)
        if not match:
            continue
        n = int(match.group(1))
        chips = integer(body.get(key)) or 0
        rate = body.get(f"chain_rate{n}")
        if chips > 0 or (rate not in (None, "") and (num(rate) or 0) > 0):
            numbers.append(n)
    return sorted(numbers)


def _temp_from_dashed(value: Any) -> float | None:
    """'39-37-40-39' -> 40 (hottest of the sensors)."""
    if not isinstance(value, str):
        return None
    return hottest([plausible_temp(num(part)) for part in value.split("-")])


def _bmminer_boards(body: dict[str, Any], spec: catalog.ModelSpec | None) -> list[v1.Board]:
    boards = []
    for index, n in enumerate(_chain_numbers(body)):
        rate = num(body.get(f"chain_rate{n}"))
        chips = integer(body.get(f"chain_acn{n}"))
        board_temp = plausible_temp(num(body.get(f"temp{n}"))) or _temp_from_dashed(body.get(f"temp_pcb{n}"))
        chip_temp = plausible_temp(num(body.get(f"temp2_{n}"))) or _temp_from_dashed(body.get(f"temp_chip{n}"))
        expected = spec.chips_per_board if spec else None
        boards.append(
            v1.Board(
                index=index,
                hashrate_ths=None if rate is None else rate / GH_PER_TH,
                chips=chips,
                expected_chips=expected,
                temp_c=board_temp,
                chip_temp_c=chip_temp,
                ok=chips is not None and chips > 0 and (expected is None or chips >= expected),
            )
        )
    return boards


def _bmminer_power(body: dict[str, Any]) -> float | None:
    """MSKminer `total_power` (W); some firmware `chain_power` "3250 W". Hiveon's "34.65 (AB)" is not watts."""
    total = num(body.get("total_power"))
    if total:
        return total
    chain_power = body.get("chain_power")
    if isinstance(chain_power, str) and chain_power.strip().upper().endswith("W"):
        return num(chain_power)
    return None


def _chip_errors(body: dict[str, Any], hashrate_ths: float | None) -> list[str]:
    """Chips flagged 'x' in chain_acsN (only meaningful while hashing: a sleeping miner flags every chip)."""
    if not hashrate_ths:
        return []
    errors = []
    for n in _chain_numbers(body):
        bad = str(body.get(f"chain_acs{n}", "")).count("x")
        if bad:
            errors.append(f"chain {n}: {bad} chip(s) flagged x")
    return errors



# ------------------------------------------------------------------ the poll


def parse(replies: dict[str, Reply]) -> Reading:
    reading = parse_bmminer_stats(replies.get("stats"))
    reading.pools = parse_pools(replies.get("pools"))
    if replies.get("version"):
        reading.merge(_version(replies["version"]))
    return reading


def parse_with_model(replies: dict[str, Reply], model: str | None = None) -> Reading:
    return parse(replies)


def _version(reply: Reply) -> Reading:
    from agent.firmware import parse_version  # the generic one: a Hiveon or MSK reply may not be bmminer's

    return parse_version(reply)


# ------------------------------------------------------------------ web API (identity, work mode, RPC switched off)


def parse_system_info(info: dict[str, Any]) -> Reading:
    """`/cgi-bin/get_system_info.cgi`: serial, MAC, hostname, model."""

    def text(key: str) -> str | None:
        value = info.get(key)
        return value.strip() or None if isinstance(value, str) else None

    return Reading(
        make="Antminer",
        model=model_name(info.get("minertype")),
        serial=text("serinum"),
        mac=(text("macaddr") or "").lower() or None,
        hostname=text("hostname"),
    )


_TH_PER_UNIT = {"MH/S": 1e-6, "MH": 1e-6, "GH/S": 1e-3, "GH": 1e-3, "TH/S": 1.0, "TH": 1.0}


def parse_antminer_web_stats(stats: dict[str, Any], summary: dict[str, Any] | None = None) -> Reading:
    """`/cgi-bin/stats.cgi` (+ `summary.cgi` for its status list): newer stock firmware, also with RPC disabled.

    STATUS is an object here, not a list; `rate_unit` says GH/s; per chain `rate_real`, `asic_num`, temp arrays.
    """
    entry = first(stats, "STATS")
    raw_info = stats.get("INFO")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    to_ths = _TH_PER_UNIT.get(str(entry.get("rate_unit", "GH/s")).upper(), 1e-3)
    rate = pick(entry, "rate_5s", "rate_avg")
    spec = catalog.lookup(model_name(info.get("type")))
    boards = []
    for index, chain in enumerate(c for c in entry.get("chain", []) if isinstance(c, dict)):
        chip_rate = num(chain.get("rate_real"))
        chips = integer(chain.get("asic_num"))
        boards.append(
            v1.Board(
                index=index,
                hashrate_ths=None if chip_rate is None else chip_rate * to_ths,
                chips=chips,
                expected_chips=spec.chips_per_board if spec else None,
                temp_c=hottest([plausible_temp(num(t)) for t in chain.get("temp_pcb", [])]),
                chip_temp_c=hottest([plausible_temp(num(t)) for t in chain.get("temp_chip", [])]),
                ok=(chips or 0) > 0 and (spec is None or (chips or 0) >= spec.chips_per_board),
            )
        )
    errors = [
        f"{s.get('type')}: {s.get('msg') or s.get('status')} (code {s.get('code')})"
        for s in (first(summary, "SUMMARY").get("status", []) if summary else [])
        if isinstance(s, dict) and str(s.get("status", "s")).lower() != "s"
    ]
    return Reading(
        make="Antminer",
        model=model_name(info.get("type")),
        firmware=f"bmminer {info['miner_version']}" if info.get("miner_version") else None,
        hashrate_ths=None if rate is None else rate * to_ths,
        temp_c=hottest([b.temp_c for b in boards]),
        fans_rpm=[f for f in (integer(x) for x in entry.get("fan", [])) if f],
        boards=boards,
        errors=errors,
        uptime_s=integer(entry.get("elapsed")),
    )


def parse_miner_conf_sleeping(conf: dict[str, Any]) -> bool | None:
    """`get_miner_conf.cgi` `bitmain-work-mode` (pyasic's miner-mode): 1 = sleep, 0 normal, 3 low power."""
    mode = integer(conf.get("bitmain-work-mode", conf.get("miner-mode")))
    return None if mode is None else mode == 1



async def identify(io: MinerIO, identity: Reading) -> None:
    """Serial, MAC and hostname from `get_system_info.cgi` (stock firmware has them nowhere in the RPC)."""
    identity.merge(await web_identity(io))


async def web_identity(io: MinerIO) -> Reading:
    try:
        info = await io.web_json("/cgi-bin/get_system_info.cgi")
    except DeviceError as exc:
        log.info("%s: no web identity (serial, MAC): %s", io.ip, exc)
        return Reading()
    return parse_system_info(info)


FIRMWARE = Firmware(
    name="antminer",
    make="Antminer",
    version_identity=version_identity,
    version_needles=("BMMINER", "ANTMINER"),
    pyasic_classes=("BMMiner",),
    pyasic_excludes=("VNish",),
    priority=90,  # last: LuxOS and Braiins OS replies also say "Antminer"
    read_commands=("stats", "pools"),
    parse=parse_with_model,
    recordings=("foreman_antminer_s1*", "foreman_antminer_t17*", "foreman_antminer_s9_hiveon*",
                "foreman_antminer_s9_bad*", "protofleet_antminer_*", "pyasic_mskminer_*"),
    capabilities=v1.Capabilities(sleep=True),  # web miner-mode sleep; no power target
    control=antminer_web_control,
    identify=identify,
    web_fallback=True,
)
