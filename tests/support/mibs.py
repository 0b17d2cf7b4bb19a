"""Read OIDs and enumerations by name from the vendors' MIB files in ../shared/mibs (SMIv2 text), for tests.

Not a MIB compiler: enough to resolve `name ::= { parent n }` chains from `enterprises` down, and the named values
of an INTEGER syntax (inline, or through a TEXTUAL-CONVENTION). Tests build synthetic walks with it, so the OIDs
and enum values in them come from the vendor's MIB and not from Kuat's own tables (which they check).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ROOTS = {"iso": "1", "org": "1.3", "dod": "1.3.6", "internet": "1.3.6.1", "mib-2": "1.3.6.1.2.1",
         "enterprises": "1.3.6.1.4.1", "private": "1.3.6.1.4"}  # fmt: skip
_DEFINITION = re.compile(
    r"([a-zA-Z][\w-]*)\s+(OBJECT-TYPE|OBJECT IDENTIFIER|MODULE-IDENTITY|OBJECT-IDENTITY|NOTIFICATION-TYPE)\b"
    r"(.*?)::=\s*\{\s*([a-zA-Z][\w-]*)\s+(\d+)\s*\}",
    re.S,
)
_TC = re.compile(r"([A-Z][\w-]*)\s*::=\s*TEXTUAL-CONVENTION(.*?)(?=[A-Za-z][\w-]*\s*::=|\Z)", re.S)
_ENUM = re.compile(r"SYNTAX\s+(?:INTEGER|Integer32)?\s*\{([^}]*)\}")
_SYNTAX_NAME = re.compile(r"SYNTAX\s+([A-Z][\w-]*)")
_NAMED = re.compile(r"([a-zA-Z][\w-]*)\s*\(\s*(-?\d+)\s*\)")
_KEYWORDS = {"SYNTAX", "OBJECT", "TYPE"}


def _clean(text: str) -> str:
    text = re.sub(r'"[^"]*"', '""', text)  # descriptions may hold "--"
    text = re.sub(r"--.*?(?:--|$)", "", text, flags=re.M)
    return re.sub(r"\bIMPORTS\b.*?;", "", text, count=1, flags=re.S)  # imported names are no definitions


class MibTree:
    """Names of one or more MIB files -> OIDs and enumerations."""

    def __init__(self, *paths: Path) -> None:
        self.parent: dict[str, tuple[str, int]] = {}
        self.enums: dict[str, dict[str, int]] = {}
        self.tcs: dict[str, dict[str, int]] = {}
        tcs = self.tcs
        syntax_of: dict[str, str] = {}
        for path in paths:
            text = _clean(path.read_text(errors="replace"))
            for match in _TC.finditer(text):
                enum = _ENUM.search(match.group(2))
                if enum:
                    tcs[match.group(1)] = {n: int(v) for n, v in _NAMED.findall(enum.group(1))}
            for name, kind, body, parent, number in _DEFINITION.findall(text):
                if name in _KEYWORDS:
                    continue
                self.parent[name] = (parent, int(number))
                if kind == "OBJECT-TYPE":
                    enum = _ENUM.search(body)
                    if enum:
                        self.enums[name] = {n: int(v) for n, v in _NAMED.findall(enum.group(1))}
                    elif named := _SYNTAX_NAME.search(body):
                        syntax_of[name] = named.group(1)
        for name, tc in syntax_of.items():
            if tc in tcs:
                self.enums[name] = tcs[tc]

    def oid(self, name: str) -> str:
        """The dotted OID of `name`; KeyError naming it when the MIB does not define it."""
        parts: list[str] = []
        node = name
        for _ in range(64):
            if node in ROOTS:
                return ".".join([ROOTS[node], *reversed(parts)])
            parent, number = self.parent[node]
            parts.append(str(number))
            node = parent
        raise KeyError(f"{name}: no root within 64 levels")

    def tc(self, name: str, label: str) -> int:
        """The number of `label` in the TEXTUAL-CONVENTION `name` (e.g. tc('SensorTypeEnumeration', 'activePower'))."""
        return self.tcs[name][label]

    def enum(self, name: str, label: str) -> int:
        """The number of the named value `label` of object `name` (e.g. enum('outletSwitchingState', 'on'))."""
        return self.enums[name][label]


@cache
def mib(*relative: str, root: Path) -> MibTree:
    return MibTree(*(root / r for r in relative))
