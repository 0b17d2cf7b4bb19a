"""Per-family PDU OID tables, as data: one TOML file per MIB family in this folder.

A table names, for one family: the sysObjectID prefixes that identify it, `probe` columns of which one must answer
(several families share an APC sysObjectID; `priority` orders their probes; a probe is a column every such PDU
has, not a reading it may lack), identity columns, the unit's own `total` figures, per-phase / per-line / per-cord
`lines` figures (summed when there is no total; line current x voltage when there is not even line power), the
outlet columns with their scale factors and state enums, and the control OIDs with the vendor's real values.
A column is `{oid, scale, map, digits, sensor, fallback, negative_is_none}`; Raritan-style sensor tables give
`digits` (decimal digits column, value / 10^digits) and `sensor` (the sensorType index that ends each row).

Loading is strict, as snmp_exporter's config loader is: an unknown or misspelt key, a value of the wrong type, an
OID that is not dotted numbers or a state that is not on/off/unknown refuses the file, naming it, the key and why.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).resolve().parent
OUTLET_FIELDS = ("name", "state", "current_a", "power_w", "energy_kwh")
TOTAL_FIELDS = ("power_w", "energy_kwh")
LINE_FIELDS = ("power_w", "energy_kwh", "current_a", "voltage_v")
ACTIONS = ("on", "off", "cycle")


class TableError(Exception):
    """An OID table file is malformed: the message names the file, the key and the reason."""


# ---------------------------------------------------------------- the file format (strict)
def _dotted(value: str) -> str:
    text = value.strip().strip(".")
    if not re.fullmatch(r"\d+(\.\d+)+", text):
        raise ValueError(f"{value!r} is not a dotted OID like 1.3.6.1.4.1.318")
    return text


DottedOid = Annotated[str, AfterValidator(_dotted)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ColumnSpec(_Strict):
    oid: DottedOid
    scale: float = Field(1.0, strict=False)
    map: dict[str, Literal["on", "off", "unknown"]] = Field(default_factory=dict)
    digits: DottedOid | None = None
    sensor: int | None = None
    fallback: DottedOid | None = None
    negative_is_none: bool = False


class ControlSpec(_Strict):
    oid: DottedOid
    value: int


class IdentitySpec(_Strict):
    model: DottedOid | None = None
    serial: DottedOid | None = None


class TotalSpec(_Strict):
    power_w: ColumnSpec | None = None
    energy_kwh: ColumnSpec | None = None


class LinesSpec(TotalSpec):
    current_a: ColumnSpec | None = None
    voltage_v: ColumnSpec | None = None


class OutletsSpec(_Strict):
    key_length: int = 1
    name: ColumnSpec | None = None
    state: ColumnSpec | None = None
    current_a: ColumnSpec | None = None
    power_w: ColumnSpec | None = None
    energy_kwh: ColumnSpec | None = None


class ControlsSpec(_Strict):
    on: ControlSpec | None = None
    off: ControlSpec | None = None
    cycle: ControlSpec | None = None


class TableSpec(_Strict):
    family: str
    vendor: str = ""
    sysobjectid: list[DottedOid] = Field(min_length=1)
    probe: DottedOid | list[DottedOid]
    priority: int = 0
    identity: IdentitySpec = Field(default_factory=IdentitySpec)
    total: TotalSpec = Field(default_factory=TotalSpec)
    lines: LinesSpec = Field(default_factory=LinesSpec)
    outlets: OutletsSpec = Field(default_factory=OutletsSpec)
    control: ControlsSpec = Field(default_factory=ControlsSpec)


# ---------------------------------------------------------------- what the driver reads
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
    probe: tuple[str, ...]
    identity: dict[str, str]
    total: dict[str, Column]
    outlets: dict[str, Column]
    key_length: int
    control: dict[str, Control]
    priority: int = 0  # among families sharing a sysObjectID prefix, lower is probed first
    lines: dict[str, Column] = field(default_factory=dict)

    def matches(self, sys_object_id: str) -> int:
        """Length of the longest sysObjectID prefix of this family that matches (0: none)."""
        best = 0
        for prefix in self.sysobjectid:
            if sys_object_id == prefix or sys_object_id.startswith(prefix + "."):
                best = max(best, len(prefix))
        return best

    @property
    def enterprise(self) -> str:
        """The vendor's enterprise OID (1.3.6.1.4.1.N) of its first sysObjectID."""
        return ".".join(self.sysobjectid[0].split(".")[:7])


def _column(spec: ColumnSpec, where: str) -> Column:
    states: dict[int, str] = {}
    for key, state in spec.map.items():
        try:
            states[int(key)] = state
        except ValueError:
            raise TableError(f"{where}.map.{key}: a state map key is the INTEGER the PDU sends, not {key!r}") from None
    return Column(spec.oid, spec.scale, states, spec.digits, spec.sensor, spec.fallback, spec.negative_is_none)


def _columns(spec: BaseModel, where: str) -> dict[str, Column]:
    return {
        name: _column(value, f"{where}.{name}")
        for name, value in spec
        if isinstance(value, ColumnSpec)
    }


def parse_table(data: dict[str, Any], source: str) -> FamilyTable:
    """A validated FamilyTable from a parsed TOML document; TableError naming `source`, the key and the reason."""
    try:
        spec = TableSpec.model_validate(data)
    except ValidationError as exc:
        raise TableError(_explain(exc, source)) from None
    probes = (spec.probe,) if isinstance(spec.probe, str) else tuple(spec.probe)
    if not probes:
        raise TableError(f"{source}: probe: give at least one column")
    if spec.outlets.key_length < 1:
        raise TableError(f"{source}: outlets.key_length: must be 1 or more, not {spec.outlets.key_length}")
    return FamilyTable(
        family=spec.family,
        vendor=spec.vendor,
        sysobjectid=tuple(spec.sysobjectid),
        probe=probes,
        identity={k: v for k, v in spec.identity if v is not None},
        total=_columns(spec.total, f"{source}: total"),
        lines=_columns(spec.lines, f"{source}: lines"),
        outlets=_columns(spec.outlets, f"{source}: outlets"),
        key_length=spec.outlets.key_length,
        priority=spec.priority,
        control={k: Control(v.oid, v.value) for k, v in spec.control if v is not None},
    )


def _explain(exc: ValidationError, source: str) -> str:
    """The first problem, as `file: key.path: reason` (with a did-you-mean for a misspelt key)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not str(part).startswith(("function-", "str", "list["))]
    where = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = list(model.model_fields) if model is not None else []
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        return f"{source}: {where}: unknown key{suggestion} (known here: {', '.join(known)})"
    if error["type"] == "missing":
        return f"{source}: {where}: required key missing"
    reason = str(error["msg"]).removeprefix("Value error, ")
    return f"{source}: {where}: {reason}"


def _model_at(path: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = TableSpec
    for part in path:
        info = model.model_fields.get(part)
        if info is None:
            return None
        nested = next((a for a in getattr(info.annotation, "__args__", (info.annotation,))
                       if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model


def load_file(path: Path) -> FamilyTable:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise TableError(f"{path.name}: not valid TOML: {exc}") from None
    return parse_table(data, path.name)


@cache
def load_tables() -> dict[str, FamilyTable]:
    tables: dict[str, FamilyTable] = {}
    for path in sorted(HERE.glob("*.toml")):
        table = load_file(path)
        if table.family in tables:
            raise TableError(f"{path.name}: family: {table.family!r} is defined twice")
        tables[table.family] = table
    return tables


def candidates(sys_object_id: str) -> list[FamilyTable]:
    """Families whose sysObjectID prefix matches, most specific first."""
    scored = [(t.matches(sys_object_id), t) for t in load_tables().values()]
    ordered = sorted(scored, key=lambda s: (-s[0], s[1].priority, s[1].family))
    return [t for score, t in ordered if score > 0]


def same_vendor(sys_object_id: str) -> list[FamilyTable]:
    """Families under the same enterprise as `sys_object_id` (1.3.6.1.4.1.N), in priority order: the ones to
    probe when no family's sysObjectID prefix fits (a model newer than the table, another product line)."""
    enterprise = ".".join(sys_object_id.split(".")[:7])
    tables = [t for t in load_tables().values() if t.enterprise == enterprise]
    return sorted(tables, key=lambda t: (t.priority, t.family))
