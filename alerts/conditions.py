"""What each condition sees: `observe(rule, facts)` gives, per subject in the rule's scope, whether the condition
holds (True), does not (False) or cannot be told (None: a figure is missing), with the value and a sentence.

Subjects are stable keys ("machine:<site>/<device>", "site:<site>", "gateway:<site>/<gw>", "violation:<id>"): the
evaluator keeps one alert per (rule, subject).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from alerts.facts import Facts, GatewayFact, MachineFact, SiteFact, ViolationFact
from alerts.rules import Condition, Rule, Scope


@dataclass(frozen=True, slots=True)
class Observation:
    holds: bool | None
    value: float | None
    message: str
    site: str | None = None


def observe(rule: Rule, facts: Facts, keep: AbstractSet[str] | None = None) -> dict[str, Observation]:
    """Every subject of `rule`'s scope with what the condition says about it. With `keep` (the subjects that have
    an open alert), machines whose condition does not hold and who have none are left out: on a large fleet
    that is nearly all of them, and the evaluator would do nothing with them anyway."""
    c = rule.condition
    if c in MACHINE_TESTS:
        check, say = MACHINE_TESTS[c]
        out = {}
        for m in _machines(rule.scope, facts.machines):
            subject = f"machine:{m.site}/{m.device_id}"
            holds, value = check(rule, m)
            if holds or keep is None or subject in keep:
                out[subject] = Observation(holds, value, say(rule, m), m.site)
        return out
    if c in SITE_TESTS:
        site_test = SITE_TESTS[c]
        return {f"site:{s.site}": site_test(rule, s) for s in facts.sites if _site_in(rule.scope, s.site)}
    if c is Condition.GATEWAY_SILENT:
        return {f"gateway:{g.site}/{g.gateway}": _gateway_silent(rule, g) for g in facts.gateways
                if _site_in(rule.scope, g.site)}  # fmt: skip
    assert c is Condition.COMPLIANCE_VIOLATION
    if facts.violations is None:
        return {}
    return {f"violation:{v.id}": _violation(v) for v in facts.violations if _violation_in(rule.scope, v)}


# ------------------------------------------------------------------ scope


def _site_in(scope: Scope, site: str) -> bool:
    return not scope.sites or site in scope.sites


def _machines(scope: Scope, machines: Iterable[MachineFact]) -> Iterable[MachineFact]:
    models = {m.lower() for m in scope.models}
    for m in machines:
        if scope.sites and m.site not in scope.sites:
            continue
        if scope.racks and m.rack not in scope.racks:
            continue
        if scope.owners and m.owner not in scope.owners and m.owner_name not in scope.owners:
            continue
        if models and (m.model or "").lower() not in models:
            continue
        if scope.machines and m.device_id not in scope.machines and m.serial not in scope.machines:
            continue
        yield m


def _violation_in(scope: Scope, v: ViolationFact) -> bool:
    if scope.sites and v.site not in scope.sites:
        return False
    return not scope.machines or v.device_id in scope.machines or v.serial in scope.machines


# ------------------------------------------------------------------ machines


def _name(m: MachineFact) -> str:
    return f"{m.model or 'machine'} {m.serial or m.device_id}" + (f" (rack {m.rack})" if m.rack else "")


Check = Callable[[Rule, MachineFact], tuple[bool | None, float | None]]
Say = Callable[[Rule, MachineFact], str]


def _offline(rule: Rule, m: MachineFact) -> tuple[bool | None, float | None]:
    return not m.online, None


def _say_offline(rule: Rule, m: MachineFact) -> str:
    return f"{_name(m)} is {'online' if m.online else 'offline'}"


def _hashrate_low(rule: Rule, m: MachineFact) -> tuple[bool | None, float | None]:
    assert rule.threshold is not None
    if not m.online or not m.mining:  # offline has its own condition; sleeping on purpose is no fault
        return (False if m.online else None), m.hashrate_ths
    if m.hashrate_ths is None or not m.nominal_ths:
        return None, m.hashrate_ths
    share = m.hashrate_ths / m.nominal_ths
    return share < rule.threshold, round(share, 4)


def _say_hashrate(rule: Rule, m: MachineFact) -> str:
    assert rule.threshold is not None
    if not m.online or not m.mining:
        return f"{_name(m)} is not mining"
    if m.hashrate_ths is None or not m.nominal_ths:
        return f"{_name(m)}: hash rate or nominal unknown"
    share = m.hashrate_ths / m.nominal_ths
    return (f"{_name(m)} hashes {m.hashrate_ths:.1f} TH/s, {share:.0%} of its nominal {m.nominal_ths:.1f} "
            f"(threshold {rule.threshold:.0%})")


def _temperature_high(rule: Rule, m: MachineFact) -> tuple[bool | None, float | None]:
    assert rule.threshold is not None
    if m.temp_c is None or not m.online:
        return None, m.temp_c
    return m.temp_c > rule.threshold, m.temp_c


def _say_temperature(rule: Rule, m: MachineFact) -> str:
    if m.temp_c is None or not m.online:
        return f"{_name(m)}: temperature unknown"
    return f"{_name(m)} at {m.temp_c:.1f} °C (threshold {rule.threshold:g} °C)"


def _board_dead(rule: Rule, m: MachineFact) -> tuple[bool | None, float | None]:
    assert rule.threshold is not None
    if m.boards_dead is None or not m.online:
        return None, None
    return m.boards_dead >= rule.threshold, float(m.boards_dead)


def _say_boards(rule: Rule, m: MachineFact) -> str:
    if m.boards_dead is None or not m.online:
        return f"{_name(m)}: boards unknown"
    return f"{_name(m)} has {m.boards_dead} dead hash board(s)"


MACHINE_TESTS: dict[Condition, tuple[Check, Say]] = {
    Condition.MACHINE_OFFLINE: (_offline, _say_offline),
    Condition.HASHRATE_LOW: (_hashrate_low, _say_hashrate),
    Condition.TEMPERATURE_HIGH: (_temperature_high, _say_temperature),
    Condition.BOARD_DEAD: (_board_dead, _say_boards),
}


# ------------------------------------------------------------------ sites


def _kw(w: float) -> str:
    return f"{w / 1000:,.1f} kW"


def _site_power(rule: Rule, s: SiteFact) -> Observation:
    assert rule.threshold is not None
    if s.power_w is None or s.limit_w is None:
        return Observation(None, s.power_w, f"{s.site}: power or limit unknown", s.site)
    allowed = rule.threshold * s.limit_w
    return Observation(s.power_w > allowed, s.power_w,
                       f"{s.site} draws {_kw(s.power_w)} against {_kw(allowed)} "
                       f"({rule.threshold:.0%} of the {_kw(s.limit_w)} limit)", s.site)  # fmt: skip


def projected_hour_kwh(s: SiteFact) -> float | None:
    """Used so far plus the present power for the rest of the hour."""
    if s.hour_used_kwh is None or s.power_w is None or s.hour_remaining_s is None:
        return None
    return s.hour_used_kwh + s.power_w * max(0.0, s.hour_remaining_s) / 3600 / 1000


def _hour_overrun(rule: Rule, s: SiteFact) -> Observation:
    assert rule.threshold is not None
    projected = projected_hour_kwh(s)
    if projected is None or s.hour_purchased_kwh is None:
        return Observation(None, projected, f"{s.site}: the hour's energy or purchase unknown", s.site)
    allowed = rule.threshold * s.hour_purchased_kwh
    return Observation(projected > allowed, round(projected, 3),
                       f"{s.site} is on course for {projected:,.1f} kWh this hour against {allowed:,.1f} kWh "
                       f"({rule.threshold:.0%} of {s.hour_purchased_kwh:,.1f} purchased)", s.site)  # fmt: skip


def _grid_stale(rule: Rule, s: SiteFact) -> Observation:
    if s.grid_stale is None:
        return Observation(None, None, f"{s.site} has no grid-signal contract", s.site)
    return Observation(s.grid_stale, None, f"{s.site}: the grid signal is {'stale' if s.grid_stale else 'fresh'}",
                       s.site)


def _excursion(rule: Rule, s: SiteFact) -> Observation:
    assert rule.threshold is not None
    if s.excursion_kwh is None:
        return Observation(None, None, f"{s.site}: no ledger", s.site)
    return Observation(s.excursion_kwh > rule.threshold, s.excursion_kwh,
                       f"{s.site} is {s.excursion_kwh:,.3f} kWh above its allotment this hour", s.site)  # fmt: skip


def _meter(rule: Rule, s: SiteFact) -> Observation:
    assert rule.threshold is not None
    if s.meter_diff_pct is None:
        return Observation(None, None, f"{s.site}: no hour compared with the commercial meter", s.site)
    return Observation(abs(s.meter_diff_pct) > rule.threshold, s.meter_diff_pct,
                       f"{s.site}: the commercial meter and Kuat's sum are {s.meter_diff_pct:+.2f} % apart "
                       f"(hour {s.meter_hour}, threshold {rule.threshold:g} %)", s.site)  # fmt: skip


SITE_TESTS: dict[Condition, Callable[[Rule, SiteFact], Observation]] = {
    Condition.SITE_POWER_HIGH: _site_power,
    Condition.HOUR_ENERGY_OVERRUN: _hour_overrun,
    Condition.GRID_SIGNAL_STALE: _grid_stale,
    Condition.EXCURSION: _excursion,
    Condition.METER_MISMATCH: _meter,
}


# ------------------------------------------------------------------ gateways, violations


def _gateway_silent(rule: Rule, g: GatewayFact) -> Observation:
    assert rule.threshold is not None
    if g.silent_s is None:
        return Observation(not g.online or None, None, f"gateway {g.gateway} never heard", g.site)
    holds = not g.online or g.silent_s >= rule.threshold
    return Observation(holds, round(g.silent_s, 1),
                       f"gateway {g.gateway} at {g.site}: {'offline, ' if not g.online else ''}last message "
                       f"{g.silent_s:,.0f} s ago (threshold {rule.threshold:g} s)", g.site)  # fmt: skip


def _violation(v: ViolationFact) -> Observation:
    what = v.serial or v.device_id or f"{v.subject} {v.id}"
    return Observation(True, None, f"compliance violation {v.kind} on {what}", v.site)
