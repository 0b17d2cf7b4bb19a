"""The rule model and its checking: one pass over a plain document that reports every bad field at once.

A rule is checked from a plain mapping (the API's JSON body) rather than a typed model so that a refusal names all
the problems together (a typed model stops at type errors before the cross-field checks run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

StrEnumT = TypeVar("StrEnumT", bound=StrEnum)


class Level(StrEnum):
    """What a condition is about: one alert per machine, per site, per gateway or per compliance violation."""

    MACHINE = "machine"
    SITE = "site"
    GATEWAY = "gateway"
    VIOLATION = "violation"


class Condition(StrEnum):
    MACHINE_OFFLINE = "machine_offline"
    HASHRATE_LOW = "hashrate_low"
    TEMPERATURE_HIGH = "temperature_high"
    BOARD_DEAD = "board_dead"
    SITE_POWER_HIGH = "site_power_high"
    HOUR_ENERGY_OVERRUN = "hour_energy_overrun"
    COMPLIANCE_VIOLATION = "compliance_violation"
    GATEWAY_SILENT = "gateway_silent"
    GRID_SIGNAL_STALE = "grid_signal_stale"
    EXCURSION = "excursion"
    METER_MISMATCH = "meter_mismatch"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    level: Level
    threshold: str | None  # what the threshold means (None: the condition takes none)
    default: float | None = None
    low: float | None = None  # bounds of the threshold
    high: float | None = None
    low_open: bool = False  # the low bound itself is refused
    integer: bool = False


SPECS: dict[Condition, ConditionSpec] = {
    Condition.MACHINE_OFFLINE: ConditionSpec(Level.MACHINE, None),
    Condition.HASHRATE_LOW: ConditionSpec(Level.MACHINE, "share of the machine's nominal hash rate (0.8: below 80 %)",
                                          0.8, 0.0, 1.0, low_open=True),
    Condition.TEMPERATURE_HIGH: ConditionSpec(Level.MACHINE, "degrees Celsius of the hottest board", 85.0, 0.0, 150.0),
    Condition.BOARD_DEAD: ConditionSpec(Level.MACHINE, "hash boards dead, at least", 1, 1, 16, integer=True),
    Condition.SITE_POWER_HIGH: ConditionSpec(Level.SITE, "share of the effective limit (1.0: above the limit)",
                                             1.0, 0.0, 2.0, low_open=True),
    Condition.HOUR_ENERGY_OVERRUN: ConditionSpec(Level.SITE, "share of the hour's purchased kWh the hour is on course "
                                                 "to exceed", 1.0, 0.0, 2.0, low_open=True),
    Condition.COMPLIANCE_VIOLATION: ConditionSpec(Level.VIOLATION, None),
    Condition.GATEWAY_SILENT: ConditionSpec(Level.GATEWAY, "seconds without a message from the gateway", 90.0, 1.0,
                                            86_400.0),
    Condition.GRID_SIGNAL_STALE: ConditionSpec(Level.SITE, None),
    Condition.EXCURSION: ConditionSpec(Level.SITE, "kWh above the allotment in the current hour, more than", 0.0, 0.0,
                                       1e9),
    Condition.METER_MISMATCH: ConditionSpec(Level.SITE, "percent between the commercial meter and Kuat's sum in the "
                                            "last compared hour, more than", 2.0, 0.0, 100.0, low_open=True),
}

SCOPE_KEYS = ("sites", "racks", "owners", "models", "machines")
# which scope dimensions narrow which level (a rack means nothing to a site-wide condition)
SCOPE_FOR: dict[Level, frozenset[str]] = {
    Level.MACHINE: frozenset(SCOPE_KEYS),
    Level.SITE: frozenset({"sites"}),
    Level.GATEWAY: frozenset({"sites"}),
    Level.VIOLATION: frozenset({"sites", "machines"}),
}
RULE_KEYS = frozenset({"name", "condition", "threshold", "sustain_s", "scope", "severity", "channels", "repeat_s",
                       "enabled", "notify_resolved", "description"})
MAX_SUSTAIN_S = 7 * 86_400
MIN_REPEAT_S = 60
MAX_SCOPE_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class Scope:
    """What a rule watches; an empty dimension does not narrow."""

    sites: frozenset[str] = frozenset()
    racks: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()  # a licensee's BIN or name
    models: frozenset[str] = frozenset()  # compared case-insensitively
    machines: frozenset[str] = frozenset()  # device ids (MAC) or serials

    def to_json(self) -> dict[str, list[str]]:
        return {k: sorted(getattr(self, k)) for k in SCOPE_KEYS if getattr(self, k)}

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[str]]) -> Scope:
        return cls(**{k: frozenset(data.get(k) or ()) for k in SCOPE_KEYS})


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    name: str
    condition: Condition
    threshold: float | None
    sustain_s: float
    scope: Scope = field(default_factory=Scope)
    severity: Severity = Severity.WARNING
    channels: tuple[str, ...] = ("dashboard",)
    repeat_s: float | None = None  # a firing, unacknowledged alert is notified again this often (None: never)
    enabled: bool = True
    notify_resolved: bool = True
    description: str = ""

    @property
    def level(self) -> Level:
        return SPECS[self.condition].level


@dataclass(frozen=True, slots=True)
class Issue:
    field: str
    reason: str


def check_rule(doc: Mapping[str, Any], channels: set[str], rule_id: int = 0) -> tuple[Rule | None, list[Issue]]:
    """The rule `doc` describes, or every problem with it (field, reason). `channels`: the names that exist."""
    issues: list[Issue] = []
    bad = issues.append
    if not isinstance(doc, Mapping):
        return None, [Issue("body", "must be a JSON object")]
    for k in sorted(set(doc) - RULE_KEYS):
        bad(Issue(k, "unknown field"))
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        bad(Issue("name", "required: a text of 1 to 200 characters"))
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        bad(Issue("description", "must be a text of at most 2000 characters"))
    condition = _enum(Condition, doc.get("condition"), "condition", issues, required=True)
    severity = _enum(Severity, doc.get("severity", "warning"), "severity", issues, required=False)
    threshold = _threshold(condition, doc.get("threshold"), issues)
    sustain = _number(doc.get("sustain_s", 0), "sustain_s", 0, MAX_SUSTAIN_S, issues)
    repeat = None if doc.get("repeat_s") is None else _number(doc["repeat_s"], "repeat_s", MIN_REPEAT_S, 30 * 86_400,
                                                              issues)
    scope = _scope(doc.get("scope") or {}, condition, issues)
    chosen = _channels(doc.get("channels", ["dashboard"]), channels, issues)
    flags = {}
    for k, default in (("enabled", True), ("notify_resolved", True)):
        v = doc.get(k, default)
        if not isinstance(v, bool):
            bad(Issue(k, "must be true or false"))
        flags[k] = bool(v)
    if issues:
        return None, issues
    assert condition is not None and severity is not None and sustain is not None and isinstance(name, str)
    return Rule(rule_id, name.strip(), condition, threshold, sustain, scope, severity, chosen, repeat,
                flags["enabled"], flags["notify_resolved"], description), []  # fmt: skip


def _enum(kind: type[StrEnumT], value: Any, name: str, issues: list[Issue], required: bool) -> StrEnumT | None:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        issues.append(Issue(name, ("required: " if required and value is None else "") + f"one of {choices}"))
        return None


def _number(value: Any, name: str, low: float, high: float, issues: list[Issue]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        issues.append(Issue(name, "must be a finite number"))
        return None
    if not low <= value <= high:
        issues.append(Issue(name, f"must be from {low:g} to {high:g}"))
        return None
    return float(value)


def _threshold(condition: Condition | None, value: Any, issues: list[Issue]) -> float | None:
    if condition is None:
        return None
    spec = SPECS[condition]
    if spec.threshold is None:
        if value is not None:
            issues.append(Issue("threshold", f"{condition.value} takes no threshold"))
        return None
    if value is None:
        return spec.default
    assert spec.low is not None and spec.high is not None
    number = _number(value, "threshold", spec.low, spec.high, issues)
    if number is None:
        return None
    if spec.low_open and number <= spec.low:
        issues.append(Issue("threshold", f"must be above {spec.low:g} ({spec.threshold})"))
        return None
    if spec.integer and number != int(number):
        issues.append(Issue("threshold", f"must be a whole number ({spec.threshold})"))
        return None
    return number


def _scope(value: Any, condition: Condition | None, issues: list[Issue]) -> Scope:
    if not isinstance(value, Mapping):
        issues.append(Issue("scope", "must be an object with any of " + ", ".join(SCOPE_KEYS)))
        return Scope()
    allowed = SCOPE_FOR[SPECS[condition].level] if condition is not None else frozenset(SCOPE_KEYS)
    parts: dict[str, frozenset[str]] = {}
    for k, items in value.items():
        where = f"scope.{k}"
        if k not in SCOPE_KEYS:
            issues.append(Issue(where, "unknown scope dimension (" + ", ".join(SCOPE_KEYS) + ")"))
            continue
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            issues.append(Issue(where, "must be a list of non-empty texts"))
            continue
        if len(items) > MAX_SCOPE_ITEMS:
            issues.append(Issue(where, f"at most {MAX_SCOPE_ITEMS} items"))
            continue
        if items and k not in allowed:
            assert condition is not None
            issues.append(Issue(where, f"does not apply to {condition.value} (a {SPECS[condition].level.value} "
                                       f"condition: {', '.join(sorted(allowed))})"))
            continue
        parts[k] = frozenset(i.strip() for i in items)
    return Scope(**parts)


def _channels(value: Any, known: set[str], issues: list[Issue]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        issues.append(Issue("channels", "must be a non-empty list of channel names"))
        return ()
    unknown = [c for c in value if c not in known]
    if unknown:
        issues.append(Issue("channels", f"no such channel: {', '.join(unknown)} (known: {', '.join(sorted(known))})"))
    return tuple(dict.fromkeys(value))

