"""The evaluator: facts in, state transitions out.

One alert per (rule, subject). Its life:

    (condition holds)  -> pending  (sustain_s > 0; pending_since kept, so a restart keeps the timer)
    pending, held for sustain_s          -> firing     notify "firing"
    firing, unacknowledged, repeat_s     -> firing     notify "repeat", no more often than repeat_s
    pending, condition no longer holds   -> cleared    no notification (it never fired)
    firing, condition no longer holds    -> resolved   notify "resolved" (unless the rule says not to)
    pending or firing, rule gone or off  -> closed     no notification
    acknowledged (by someone)            -> same status, repeats stop, recorded in the history

A condition that cannot be told (a figure missing, a subject not seen since a restart) changes nothing: an alert
neither fires nor resolves on missing data. A compliance violation that is no longer open has been resolved by
the registry, so its alert resolves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from alerts.conditions import Observation, observe
from alerts.facts import Facts
from alerts.rules import Level, Rule


class Status(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"  # fired, then cleared
    CLEARED = "cleared"  # cleared before it fired
    CLOSED = "closed"  # its rule was deleted or disabled while it was open


class Event(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    CLEARED = "cleared"
    CLOSED = "closed"
    ACKNOWLEDGED = "acknowledged"


NOTIFY = frozenset({Event.FIRING, Event.REPEAT, Event.RESOLVED})
OPEN = frozenset({Status.PENDING, Status.FIRING})


@dataclass(frozen=True, slots=True)
class AlertState:
    rule_id: int
    subject: str
    status: Status
    since: datetime  # when the condition was first seen holding (pending_since)
    site: str | None = None
    value: float | None = None
    message: str = ""
    fired_at: datetime | None = None
    ended_at: datetime | None = None
    last_notified_at: datetime | None = None
    notifications: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    id: int | None = None  # the store's id (None until stored)

    @property
    def open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True, slots=True)
class Transition:
    event: Event
    state: AlertState  # after the transition
    notify: bool  # deliver to the rule's channels


@dataclass(frozen=True, slots=True)
class Evaluation:
    transitions: list[Transition]
    updated: list[AlertState]  # open alerts whose value or message changed without a transition


def evaluate(rules: Iterable[Rule], facts: Facts, open_states: Mapping[tuple[int, str], AlertState],
             now: datetime) -> Evaluation:
    """Every enabled rule over `facts`, against the alerts open now (keyed by (rule id, subject))."""
    transitions: list[Transition] = []
    updated: list[AlertState] = []
    by_rule: dict[int, dict[str, AlertState]] = {}
    for (rule_id, subject), st in open_states.items():
        by_rule.setdefault(rule_id, {})[subject] = st
    live = set()
    for rule in rules:
        if not rule.enabled:
            continue
        live.add(rule.id)
        absent_clears = rule.level is Level.VIOLATION and facts.violations is not None
        states = by_rule.get(rule.id, {})
        t, u = step(rule, observe(rule, facts, states.keys()), states, now, absent_clears)
        transitions += t
        updated += u
    for rule_id, states in by_rule.items():
        if rule_id not in live:
            transitions += [close(st, now) for st in states.values()]
    return Evaluation(transitions, updated)


def step(rule: Rule, observed: Mapping[str, Observation], states: Mapping[str, AlertState], now: datetime,
         absent_clears: bool = False) -> tuple[list[Transition], list[AlertState]]:
    """One rule: what its subjects' observations do to their open alerts."""
    transitions: list[Transition] = []
    updated: list[AlertState] = []
    for subject, obs in observed.items():
        st = states.get(subject)
        if obs.holds is None:
            continue
        if st is None:
            if obs.holds:
                transitions.append(_open(rule, subject, obs, now))
            continue
        t = _advance(rule, st, obs, now)
        if t is not None:
            transitions.append(t)
        elif obs.holds and (st.value != obs.value or st.message != obs.message):
            updated.append(replace(st, value=obs.value, message=obs.message))
    if absent_clears:
        for subject, st in states.items():
            if subject not in observed:
                gone = Observation(False, st.value, st.message + " (no longer open)", st.site)
                t = _advance(rule, st, gone, now)
                if t is not None:
                    transitions.append(t)
    return transitions, updated


def _open(rule: Rule, subject: str, obs: Observation, now: datetime) -> Transition:
    st = AlertState(rule.id, subject, Status.PENDING, now, obs.site, obs.value, obs.message)
    if rule.sustain_s <= 0:
        return _fire(st, now)
    return Transition(Event.PENDING, st, False)


def _fire(st: AlertState, now: datetime) -> Transition:
    fired = replace(st, status=Status.FIRING, fired_at=now, last_notified_at=now, notifications=st.notifications + 1)
    return Transition(Event.FIRING, fired, True)


def _advance(rule: Rule, st: AlertState, obs: Observation, now: datetime) -> Transition | None:
    if obs.holds and st.status is Status.FIRING and (rule.repeat_s is None or st.acknowledged_by is not None):
        return None  # the common case on a large fleet: still firing, nothing to say
    fresh = replace(st, value=obs.value, message=obs.message)
    if not obs.holds:
        if st.status is Status.PENDING:
            return Transition(Event.CLEARED, replace(fresh, status=Status.CLEARED, ended_at=now), False)
        return Transition(Event.RESOLVED, replace(fresh, status=Status.RESOLVED, ended_at=now), rule.notify_resolved)
    if st.status is Status.PENDING:
        if (now - st.since).total_seconds() >= rule.sustain_s:
            return _fire(fresh, now)
        return None
    if rule.repeat_s is None or st.acknowledged_by is not None:
        return None
    last = st.last_notified_at or st.fired_at or st.since
    if (now - last).total_seconds() >= rule.repeat_s:
        again = replace(fresh, last_notified_at=now, notifications=st.notifications + 1)
        return Transition(Event.REPEAT, again, True)
    return None


def close(st: AlertState, now: datetime) -> Transition:
    """An open alert whose rule was deleted or disabled: closed without a notification."""
    return Transition(Event.CLOSED, replace(st, status=Status.CLOSED, ended_at=now), False)


class NotOpen(Exception):
    """Raised by `acknowledge` for an alert that has ended (the service maps it to its Conflict)."""


def acknowledge(st: AlertState, who: str, now: datetime) -> Transition:
    """Someone takes the alert: recorded, and its repeats stop. Only an open alert can be acknowledged; a second
    acknowledgement keeps the first one's name and time."""
    if not st.open:
        raise NotOpen(f"alert {st.id} is {st.status.value}: only an open alert can be acknowledged")
    if st.acknowledged_by is not None:
        return Transition(Event.ACKNOWLEDGED, st, False)
    return Transition(Event.ACKNOWLEDGED, replace(st, acknowledged_by=who, acknowledged_at=now), False)
