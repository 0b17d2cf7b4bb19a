"""Pure parsers: raw cgminer-family replies (already JSON-decoded by `agent.transport.jsonfix`) -> `Reading`.

No I/O here, so every real capture in ../shared/fixtures/miners can be fed straight in. Units: stock Antminer,
LuxOS and Antminer-based firmware give GH/s (`GHS 5s`, `chain_rateN`); Whatsminer, BOSminer and Avalon `MHS *`
fields are MH/s; Avalon's `MM ID0` string carries GH/s (`GHSmm`, `MGHS[...]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agent.transport.jsonfix import integer, num
from kuat import catalog
from kuat.wire import v1

Reply = dict[str, Any]

GH_PER_TH = 1000.0
MH_PER_TH = 1_000_000.0


@dataclass
class Reading:
    """What one poll learnt about a miner; `agent.drivers.state.build_sample` turns it into a MinerSample."""

    make: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    mac: str | None = None
    hostname: str | None = None
    hashrate_ths: float | None = None
    power_w: float | None = None  # reported by the firmware; None when it reports none
    power_limit_w: float | None = None
    temp_c: float | None = None
    fans_rpm: list[int] = field(default_factory=list)
    boards: list[v1.Board] = field(default_factory=list)
    pools: list[v1.Pool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    uptime_s: int | None = None
    sleeping: bool | None = None  # the firmware said so (Whatsminer btmineroff, Antminer miner-mode 1)
    presets: list[str] = field(default_factory=list)  # LuxOS profiles
    preset_watts: list[float] = field(default_factory=list)  # their wall power, where the firmware says it

    def merge(self, other: Reading) -> Reading:
        """Fill this reading's gaps from `other` (lists extend only when empty here; errors add up)."""
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "errors":
                mine.extend(e for e in theirs if e not in mine)
            elif isinstance(mine, list):
                if not mine:
                    setattr(self, name, list(theirs))
            elif mine is None:
                setattr(self, name, theirs)
        return self


def section(reply: Reply | None, name: str) -> list[dict[str, Any]]:
    """The list under `name` (STATS, SUMMARY, ...), keeping only dict entries."""
    if not reply:
        return []
    items = reply.get(name)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def first(reply: Reply | None, name: str) -> dict[str, Any]:
    items = section(reply, name)
    return items[0] if items else {}


def pick(entry: dict[str, Any], *keys: str) -> float | None:
    """The first key present with a number."""
    for key in keys:
        if key in entry:
            value = num(entry[key])
            if value is not None:
                return value
    return None


def _hottest(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None and v > 0]
    return max(real) if real else None


def _clean_firmware_string(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip().strip("'\"").strip() or None


def _model_name(type_field: Any) -> str | None:
    """'Antminer S19j Pro' -> 'S19j Pro' (catalogue spelling when it is a catalogue model), else as given."""
    if not isinstance(type_field, str) or not type_field.strip():
        return None
    name = type_field.strip().splitlines()[0].strip()
    for prefix in ("Antminer ", "ANTMINER ", "WhatsMiner ", "Whatsminer "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.removesuffix(" Hiveon").strip()
    spec = catalog.lookup(name)
    if spec is not None and _squash(spec.key) == _squash(name):
        return spec.key
    return name


def _squash(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


# ------------------------------------------------------------------ pools


def parse_pools(reply: Reply | None) -> list[v1.Pool]:
    pools = []
    for entry in section(reply, "POOLS"):
        url = entry.get("URL") or entry.get("url")
        if not isinstance(url, str) or not url:
            continue
        active = entry.get("Stratum Active")
        pools.append(
            v1.Pool(
                url=url,
                user=str(entry.get("User") or ""),
                status=str(entry.get("Status") or ""),
                active=bool(active) if isinstance(active, bool) else False,
            )
        )
    return pools


# ------------------------------------------------------------------ version (identification without pyasic)


def parse_version(reply: Reply | None) -> Reading:
    """make/model/firmware from a `version` reply (stock bmminer, LUXminer, BOSminer, btminer, Avalon cgminer)."""
    entry = first(reply, "VERSION")
    description = str(first(reply, "STATUS").get("Description", ""))
    reading = Reading(model=_model_name(entry.get("Type")))
    if "LUXminer" in entry:
        reading.make, reading.firmware = "Antminer", f"LuxOS {entry['LUXminer']}"
    elif "BMMiner" in entry:
        reading.make, reading.firmware = "Antminer", f"bmminer {entry['BMMiner']}"
        if isinstance(entry.get("Type"), str) and "Hiveon" in entry["Type"]:
            reading.firmware = f"Hiveon bmminer {entry['BMMiner']}"
    elif any(k.startswith("BOSminer") for k in entry):
        key = next(k for k in entry if k.startswith("BOSminer"))
        reading.make, reading.firmware = "Antminer", f"Braiins OS {entry[key]}"
    elif "btminer" in description.lower() or "whatsminer" in description.lower():
        reading.make, reading.firmware = "Whatsminer", "btminer"
    elif isinstance(entry.get("PROD"), str) or "AVA" in str(entry.get("MODEL", "")).upper():
        reading.make, reading.model = "Avalon", str(entry.get("MODEL") or entry.get("PROD") or "") or None
        reading.firmware = f"cgminer {entry.get('CGMiner', '')}".strip()
    return reading


def firmware_family(version_reply: Reply | None) -> str | None:
    """Which parser family a `version` reply belongs to: antminer, luxos, braiins, whatsminer, avalon."""
    text = str(version_reply or "").upper()
    for needle, family in (
        ("LUXMINER", "luxos"),
        ("BOSMINER", "braiins"),
        ("BTMINER", "whatsminer"),
        ("WHATSMINER", "whatsminer"),
        ("AVALON", "avalon"),
        ("BMMINER", "antminer"),
        ("ANTMINER", "antminer"),
    ):
        if needle in text:
            return family
    return None


# ------------------------------------------------------------------ bmminer-style stats (stock, Hiveon, MSK, LuxOS)


_CHAIN_KEY = re.compile(r"^chain_acn(\d+)$")


def parse_bmminer_stats(reply: Reply | None) -> Reading:
    """Stock Antminer (and LuxOS/Hiveon/MSKminer) `stats`: STATS[0] identity, STATS[1] the figures."""
    stats = section(reply, "STATS")
    head = stats[0] if stats else {}
    body = next((s for s in stats if "Elapsed" in s or "GHS 5s" in s), {})
    reading = Reading(model=_model_name(head.get("Type")))
    if "BMMiner" in head:
        hiveon = "Hiveon" in str(head.get("Type", ""))
        reading.make, reading.firmware = "Antminer", f"{'Hiveon ' if hiveon else ''}bmminer {head['BMMiner']}"
    ghs = pick(body, "GHS 5s", "GHS av")
    reading.hashrate_ths = None if ghs is None else ghs / GH_PER_TH
    reading.uptime_s = integer(body.get("Elapsed"))
    reading.fans_rpm = _bmminer_fans(body)
    reading.boards = _bmminer_boards(body, catalog.lookup(reading.model))
    reading.temp_c = _hottest([b.temp_c for b in reading.boards]) or num(body.get("temp_max")) or None
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


def plausible_temp(value: float | None) -> float | None:
    """A sensor figure that can be a temperature (0 means "no sensor", negatives are broken sensors)."""
    return value if value is not None and 0 < value < 150 else None


def _temp_from_dashed(value: Any) -> float | None:
    """'39-37-40-39' -> 40 (hottest of the sensors)."""
    if not isinstance(value, str):
        return None
    return _hottest([plausible_temp(num(part)) for part in value.split("-")])


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


# ------------------------------------------------------------------ Whatsminer (btminer)


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
    version = _clean_firmware_string(value)
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


def parse_whatsminer(replies: dict[str, Reply], model: str | None = None) -> Reading:
    reading = parse_whatsminer_summary(replies.get("summary"))
    reading.model = model
    reading.boards = parse_whatsminer_devs(replies.get("edevs") or replies.get("devs"))
    reading.pools = parse_pools(replies.get("pools"))
    reading.sleeping = parse_whatsminer_status(replies.get("status"))
    return reading


# ------------------------------------------------------------------ stock Antminer / LuxOS / MSKminer / Hiveon


def parse_antminer(replies: dict[str, Reply]) -> Reading:
    reading = parse_bmminer_stats(replies.get("stats"))
    reading.pools = parse_pools(replies.get("pools"))
    if replies.get("version"):
        reading.merge(parse_version(replies["version"]))
    return reading


def parse_luxos(replies: dict[str, Reply]) -> Reading:
    """LuxOS: bmminer-style `stats`, `power` (POWER[0].Watts), `version` LUXminer."""
    reading = parse_bmminer_stats(replies.get("stats"))
    reading.make = "Antminer"
    reading.pools = parse_pools(replies.get("pools"))
    power = pick(first(replies.get("power"), "POWER"), "Watts")
    if power is not None:
        reading.power_w = power
    if replies.get("version"):
        version = parse_version(replies["version"])
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


def whatsminer_miner_info(info: Reply | None) -> tuple[str | None, str | None]:
    """Whatsminer API v2 `get_miner_info`: Msg.minersn and Msg.mac -> (serial, MAC lower case)."""
    msg = info.get("Msg") if isinstance(info, dict) else None
    if not isinstance(msg, dict):
        return None, None
    serial, mac = msg.get("minersn"), msg.get("mac")
    serial = serial.strip() or None if isinstance(serial, str) else None
    mac = mac.strip().lower() or None if isinstance(mac, str) else None
    return serial, mac


# ------------------------------------------------------------------ Braiins OS (legacy RPC)


def parse_braiins(replies: dict[str, Reply], model: str | None = None) -> Reading:
    summary = first(replies.get("summary"), "SUMMARY")
    mhs = pick(summary, "MHS 1m", "MHS 5s", "MHS av")
    description = str(first(replies.get("summary"), "STATUS").get("Description", ""))
    temps = section(replies.get("temps"), "TEMPS")
    spec = catalog.lookup(model)
    boards = []
    for index, dev in enumerate(section(replies.get("devs"), "DEVS")):
        dev_mhs = pick(dev, "MHS 1m", "MHS 5s", "MHS av")
        temp = temps[index] if index < len(temps) else {}
        boards.append(
            v1.Board(
                index=index,
                hashrate_ths=None if dev_mhs is None else dev_mhs / MH_PER_TH,
                expected_chips=spec.chips_per_board if spec else None,
                temp_c=num(temp.get("Board")) or None,
                chip_temp_c=num(temp.get("Chip")) or None,
                ok=str(dev.get("Status", "Alive")) == "Alive" and (dev_mhs or 0) > 0,
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
        temp_c=_hottest([b.temp_c for b in boards] + [b.chip_temp_c for b in boards]),
        fans_rpm=[f for f in fans if f],
        boards=boards,
        pools=parse_pools(replies.get("pools")),
        uptime_s=integer(summary.get("Elapsed")),
    )


# ------------------------------------------------------------------ Avalon (cgminer + MM ID string)

_BRACKETS = re.compile(r"(\w+)\[([^\]]*)\]")


def parse_avalon_mm(text: str) -> dict[str, str]:
    """'Ver[1047-...] Fan1[2896] MGHS[12362.61 12812.16]' -> {'Ver': '1047-...', 'Fan1': '2896', ...}."""
    return {key: value.strip() for key, value in _BRACKETS.findall(text)}


def parse_avalon(replies: dict[str, Reply]) -> Reading:
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
        model=f"Avalon {version.split('-')[0]}" if version else None,
        firmware=f"cgminer {version}" if version else None,
        hashrate_ths=hashrate,
        power_w=num(mm.get("WALLPOWER")),
        temp_c=num(mm.get("TMax")),
        fans_rpm=[f for f in fans if f],
        boards=boards,
        pools=parse_pools(replies.get("pools")),
        uptime_s=integer(stats.get("Elapsed")) or integer(summary.get("Elapsed")),
    )


# ------------------------------------------------------------------ Antminer web API (identity, work mode)


def parse_system_info(info: dict[str, Any]) -> Reading:
    """`/cgi-bin/get_system_info.cgi`: serial, MAC, hostname, model."""

    def text(key: str) -> str | None:
        value = info.get(key)
        return value.strip() or None if isinstance(value, str) else None

    return Reading(
        make="Antminer",
        model=_model_name(info.get("minertype")),
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
    spec = catalog.lookup(_model_name(info.get("type")))
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
                temp_c=_hottest([plausible_temp(num(t)) for t in chain.get("temp_pcb", [])]),
                chip_temp_c=_hottest([plausible_temp(num(t)) for t in chain.get("temp_chip", [])]),
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
        model=_model_name(info.get("type")),
        firmware=f"bmminer {info['miner_version']}" if info.get("miner_version") else None,
        hashrate_ths=None if rate is None else rate * to_ths,
        temp_c=_hottest([b.temp_c for b in boards]),
        fans_rpm=[f for f in (integer(x) for x in entry.get("fan", [])) if f],
        boards=boards,
        errors=errors,
        uptime_s=integer(entry.get("elapsed")),
    )


def parse_miner_conf_sleeping(conf: dict[str, Any]) -> bool | None:
    """`get_miner_conf.cgi` `bitmain-work-mode` (pyasic's miner-mode): 1 = sleep, 0 normal, 3 low power."""
    mode = integer(conf.get("bitmain-work-mode", conf.get("miner-mode")))
    return None if mode is None else mode == 1


PARSERS_BY_FAMILY = {"antminer", "luxos", "whatsminer", "braiins", "avalon"}
