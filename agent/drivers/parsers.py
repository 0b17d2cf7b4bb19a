"""What every firmware's parser shares: the `Reading` a poll produces and the helpers to pick cgminer-family replies.

The parsers themselves live with their firmware (`agent.firmware.<family>`: one module per family). No I/O here,
so every real capture in ../shared/fixtures/miners can be fed straight in. Units: stock Antminer,
LuxOS and Antminer-based firmware give GH/s (`GHS 5s`, `chain_rateN`); Whatsminer, BOSminer and Avalon `MHS *`
fields are MH/s; Avalon's `MM ID0` string carries GH/s (`GHSmm`, `MGHS[...]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.transport.jsonfix import num
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


def hottest(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None and v > 0]
    return max(real) if real else None


def clean_firmware_string(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip().strip("'\"").strip() or None


def model_name(type_field: Any) -> str | None:
    """'Antminer S19j Pro' -> 'S19j Pro' (catalogue spelling when it is a catalogue model), else as given."""
    if not isinstance(type_field, str) or not type_field.strip():
        return None
    name = type_field.strip().splitlines()[0].strip()
    for prefix in ("Antminer ", "ANTMINER ", "WhatsMiner ", "Whatsminer "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.removesuffix(" Hiveon").strip()
    spec = catalog.lookup(name)
    if spec is not None and squash(spec.key) == squash(name):
        return spec.key
    return name


def squash(name: str) -> str:
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


def plausible_temp(value: float | None) -> float | None:
    """A sensor figure that can be a temperature (0 means "no sensor", negatives are broken sensors)."""
    return value if value is not None and 0 < value < 150 else None

