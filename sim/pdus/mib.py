"""The shape of a simulated PDU's MIB, as data: objects (OID, SNMP type, which rows, how to read, what a SET does).

A family module (sim/pdus/families/*.py) lists its objects as `Obj` values; `build_layout` expands them over the
rows of one PDU (device, inlet, phase, outlets, sensors...) into the lexicographically sorted instance list the
responder walks with GETNEXT/GETBULK. Getters run at request time against a `PduState`, so every reading is live.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sim.pdus.state import PduState

Oid = tuple[int, ...]
Value = int | str | Oid
Action = Literal["on", "off", "reboot", "none"]


def oid(dotted: str) -> Oid:
    """'1.3.6.1.4.1.318' -> (1, 3, 6, 1, 4, 1, 318); the tables are written with dotted strings for readability."""
    return tuple(int(part) for part in dotted.strip(".").split("."))


class Syntax(Enum):
    """SNMP base types the simulated MIBs use (SMIv2 names)."""

    INTEGER = "Integer32"  # also enumerated INTEGERs
    UNSIGNED = "Unsigned32"
    GAUGE = "Gauge32"
    COUNTER32 = "Counter32"
    COUNTER64 = "Counter64"
    OCTETS = "OctetString"  # DisplayString
    OID = "ObjectIdentifier"
    TICKS = "TimeTicks"


@dataclass(frozen=True)
class Row:
    """One instance row: its index suffix and what it stands for (an outlet number, a sensor type)."""

    index: Oid
    outlet: int = 0  # 1-based outlet number, 0 for device-level rows
    sensor: int = 0  # sensor type (Raritan) or 0


@dataclass(frozen=True)
class Command:
    """What writing one enum value to a control object does: an outlet action, after `delay_s` simulated seconds."""

    action: Action
    delay_s: float = 0.0


@dataclass(frozen=True)
class EnumControl:
    """A writable enumerated INTEGER: `commands` maps every accepted value to its effect; other values are
    rejected with wrongValue. `all_outlets` applies the command to every outlet (device-wide control)."""

    commands: Mapping[int, Command]
    all_outlets: bool = False


@dataclass(frozen=True)
class NameControl:
    """A writable outlet name (DisplayString of at most `max_len` characters)."""

    max_len: int = 32


Control = EnumControl | NameControl
Getter = Callable[["PduState", Row], "float | Value"]


@dataclass(frozen=True)
class Obj:
    """One MIB object (a scalar or a table column). `get` returns a physical value (W, A, Wh, V...) that is
    multiplied by `scale` and rounded when `scale` is set, or the wire value itself when it is None."""

    oid: Oid
    name: str
    syntax: Syntax
    rows: str  # key into the family's row generators ("scalar", "outlet", ...)
    get: Getter
    scale: float | None = None
    control: Control | None = None


RowsFn = Callable[[int], Sequence[Row]]  # number of outlets -> rows


@dataclass(frozen=True)
class Family:
    name: str
    sys_object_id: Oid
    sys_descr: Callable[[PduState], str]
    objects: tuple[Obj, ...]
    rows: Mapping[str, RowsFn]


@dataclass(frozen=True)
class Instance:
    oid: Oid
    obj: Obj
    row: Row


@dataclass
class Layout:
    """Every instance of one PDU shape (family x outlet count), sorted for GETNEXT."""

    instances: list[Instance]
    by_oid: dict[Oid, Instance] = field(default_factory=dict)
    oids: list[Oid] = field(default_factory=list)
    columns: frozenset[Oid] = frozenset()

    def __post_init__(self) -> None:
        self.instances.sort(key=lambda i: i.oid)
        self.oids = [i.oid for i in self.instances]
        self.by_oid = {i.oid: i for i in self.instances}
        if len(self.by_oid) != len(self.instances):
            raise ValueError("two MIB objects produce the same instance OID")
        self.columns = frozenset(i.obj.oid for i in self.instances)

    def exact(self, name: Oid) -> Instance | None:
        return self.by_oid.get(name)

    def next_after(self, name: Oid) -> Instance | None:
        """The first instance strictly after `name` in lexicographic OID order."""
        pos = bisect.bisect_right(self.oids, name)
        return self.instances[pos] if pos < len(self.instances) else None

    def has_object(self, name: Oid) -> bool:
        """Is `name` inside a known object (so a missing instance is noSuchInstance, not noSuchObject)?"""
        return any(name[:n] in self.columns for n in range(len(name), 0, -1))


def build_layout(family: Family, n_outlets: int) -> Layout:
    instances: list[Instance] = []
    for obj in family.objects:
        for row in family.rows[obj.rows](n_outlets):
            instances.append(Instance(obj.oid + row.index, obj, row))
    return Layout(instances)


SCALAR: RowsFn = lambda n: (Row((0,)),)  # noqa: E731 - a one-line row generator reads best as data


def outlet_rows(prefix: Oid) -> RowsFn:
    """Rows for outlets 1..n with index prefix + (outlet,)."""
    return lambda n: tuple(Row((*prefix, i), outlet=i) for i in range(1, n + 1))


def fixed_rows(*index: int) -> RowsFn:
    return lambda n: (Row(tuple(index)),)
