"""Per-family PDU OID tables, as data: one TOML file per MIB family in this folder.

A table names, for one family: the sysObjectID prefixes that identify it, a `probe` column that must answer
(several families share an APC sysObjectID; `priority` orders their probes), identity columns, `total` figures
(summed over rows), the outlet columns with their scale factors and state enums, and the control OIDs with the
vendor's real values.
A column is `{oid, scale, map, digits, sensor, fallback, negative_is_none}`; Raritan-style sensor tables give
`digits` (decimal digits column, value / 10^digits) and `sensor` (the sensorType index that ends each row).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTLET_FIELDS = ("name", "state", "current_a", "power_w", "energy_kwh")
TOTAL_FIELDS = ("power_w", "energy_kwh")
ACTIONS = ("on", "off", "cycle")


class TableError(ValueError):
    """An OID table file is malformed."""


@dataclass(frozen=True)
class Column:
    oid: str
    scale: float = 1.0
    states: dict[int, str] = field(default_factory=dict)
    digits: str | None = None
    sensor: int | None = None
    fallback: str | None = None
    negative_is_none: bool = False


@dataclass(frozen=True)
class Control:
    oid: str
    value: int


@dataclass(frozen=True)
class FamilyTable:
    family: str
    vendor: str
    sysobjectid: tuple[str, ...]
    probe: str
    identity: dict[str, str]
    total: dict[str, Column]
    outlets: dict[str, Column]
    key_length: int
    control: dict[str, Control]
    priority: int = 0  # among families sharing a sysObjectID prefix, lower is probed first

    def matches(self, sys_object_id: str) -> int:
        """Length of the longest sysObjectID prefix of this family that matches (0: none)."""
        best = 0
        for prefix in self.sysobjectid:
            if sys_object_id == prefix or sys_object_id.startswith(prefix + "."):
                best = max(best, len(prefix))
        return best


def _column(spec: Any, where: str) -> Column:
    if not isinstance(spec, dict) or "oid" not in spec:
        raise TableError(f"{where}: a column needs an 'oid'")
    states = {int(k): str(v) for k, v in spec.get("map", {}).items()}
    bad = set(states.values()) - {"on", "off", "unknown"}
    if bad:
        raise TableError(f"{where}: state map values must be on/off/unknown, not {sorted(bad)}")
    return Column(
        oid=str(spec["oid"]),
        scale=float(spec.get("scale", 1.0)),
        states=states,
        digits=spec.get("digits"),
        sensor=spec.get("sensor"),
        fallback=spec.get("fallback"),
        negative_is_none=bool(spec.get("negative_is_none", False)),
    )


def parse_table(data: dict[str, Any], source: str) -> FamilyTable:
    try:
        outlets_raw = dict(data.get("outlets", {}))
        key_length = int(outlets_raw.pop("key_length", 1))
        return FamilyTable(
            family=str(data["family"]),
            vendor=str(data.get("vendor", "")),
            sysobjectid=tuple(str(p).strip(".") for p in data["sysobjectid"]),
            probe=str(data["probe"]),
            identity={k: str(v) for k, v in data.get("identity", {}).items()},
            total={k: _column(v, f"{source} total.{k}") for k, v in data.get("total", {}).items()},
            outlets={k: _column(v, f"{source} outlets.{k}") for k, v in outlets_raw.items()},
            key_length=key_length,
            priority=int(data.get("priority", 0)),
            control={k: Control(oid=str(v["oid"]), value=int(v["value"])) for k, v in data.get("control", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TableError(f"{source}: {exc}") from exc


@cache
def load_tables() -> dict[str, FamilyTable]:
    tables = {}
    for path in sorted(HERE.glob("*.toml")):
        with path.open("rb") as fh:
            table = parse_table(tomllib.load(fh), path.name)
        tables[table.family] = table
    return tables


def candidates(sys_object_id: str) -> list[FamilyTable]:
    """Families whose sysObjectID prefix matches, most specific first."""
    scored = [(t.matches(sys_object_id), t) for t in load_tables().values()]
    ordered = sorted(scored, key=lambda s: (-s[0], s[1].priority, s[1].family))
    return [t for score, t in ordered if score > 0]
