"""alerts.evaluate: pending -> firing after the sustain time, repeats no more often than the interval, resolution,
acknowledgement, missing data changing nothing, closed rules. Times are hand-picked seconds from T0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.evaluate import AlertState, Event, NotOpen, Status, acknowledge, evaluate
from alerts.facts import Facts, MachineFact, ViolationFact
from alerts.rules import Condition, Rule

T0 = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def hot(temp: float | None, online: bool = True) -> Facts:
    return Facts(machines=[MachineFact("kz1", "mac1", online, True, serial="S1", temp_c=temp)])


class Run:
    """Feeds evaluate() like the service does: keeps the open states between calls."""

    def __init__(self, *rules: Rule) -> None:
        self.rules = list(rules)
        self.open: dict[tuple[int, str], AlertState] = {}

    def __call__(self, facts: Facts, t: float) -> list[tuple[Event, bool]]:
        ev = evaluate(self.rules, facts, self.open, at(t))
        for tr in ev.transitions:
            key = (tr.state.rule_id, tr.state.subject)
            if tr.state.open:
                self.open[key] = tr.state
            else:
                self.open.pop(key, None)
        for st in ev.updated:
            self.open[(st.rule_id, st.subject)] = st
        return [(tr.event, tr.notify) for tr in ev.transitions]


def temp_rule(sustain: float = 60, repeat: float | None = None, notify_resolved: bool = True) -> Rule:
    return Rule(1, "hot", Condition.TEMPERATURE_HIGH, 85, sustain, repeat_s=repeat, notify_resolved=notify_resolved)


def test_pending_then_firing_after_the_sustain_time_then_resolved() -> None:
    run = Run(temp_rule(sustain=60))
    assert run(hot(90), 0) == [(Event.PENDING, False)]
    assert run(hot(91), 59) == []  # 59 s < 60 s
    assert run.open[(1, "machine:kz1/mac1")].value == 91  # the value follows
    assert run(hot(92), 60) == [(Event.FIRING, True)]
    st = run.open[(1, "machine:kz1/mac1")]
    assert (st.status, st.since, st.fired_at, st.notifications) == (Status.FIRING, at(0), at(60), 1)
    assert run(hot(92), 3600) == []  # no repeat interval: one notification only
    assert run(hot(80), 3700) == [(Event.RESOLVED, True)]
    assert run.open == {}


def test_a_pending_alert_that_clears_never_notifies() -> None:
    run = Run(temp_rule(sustain=60))
    assert run(hot(90), 0) == [(Event.PENDING, False)]
    assert run(hot(84), 30) == [(Event.CLEARED, False)]
    assert run(hot(90), 40) == [(Event.PENDING, False)]  # a new pending period starts from 40 s
    assert run(hot(90), 99) == []
    assert run(hot(90), 100) == [(Event.FIRING, True)]


def test_zero_sustain_fires_at_once() -> None:
    assert Run(temp_rule(sustain=0))(hot(90), 0) == [(Event.FIRING, True)]


def test_repeat_no_more_often_than_the_interval_and_not_after_acknowledgement() -> None:
    run = Run(temp_rule(sustain=0, repeat=600))
    assert run(hot(90), 0) == [(Event.FIRING, True)]
    assert run(hot(90), 599) == []
    assert run(hot(90), 600) == [(Event.REPEAT, True)]
    assert run(hot(90), 900) == []  # 300 s after the repeat
    assert run(hot(90), 1200) == [(Event.REPEAT, True)]
    key = (1, "machine:kz1/mac1")
    assert run.open[key].notifications == 3
    ack = acknowledge(run.open[key], "operator:anna", at(1300))
    assert ack.event is Event.ACKNOWLEDGED and not ack.notify
    run.open[key] = ack.state
    assert run(hot(90), 5000) == []  # acknowledged: no more repeats
    again = acknowledge(run.open[key], "operator:bob", at(5001)).state
    assert (again.acknowledged_by, again.acknowledged_at) == ("operator:anna", at(1300))  # the first one stays
    assert run(hot(70), 5100) == [(Event.RESOLVED, True)]


def test_missing_data_neither_fires_nor_resolves() -> None:
    run = Run(temp_rule(sustain=60))
    run(hot(90), 0)
    assert run(hot(None), 30) == []  # temperature unknown
    assert run(Facts(), 90) == []  # the machine not seen at all (a controller restart)
    assert run(hot(90), 100) == [(Event.FIRING, True)]  # the sustain timer kept counting from 0
    assert run(hot(90, online=False), 200) == []  # offline: its temperature is unknown, the alert stays
    assert run.open[(1, "machine:kz1/mac1")].status is Status.FIRING


def test_resolved_notification_can_be_turned_off() -> None:
    run = Run(temp_rule(sustain=0, notify_resolved=False))
    run(hot(90), 0)
    assert run(hot(80), 10) == [(Event.RESOLVED, False)]


def test_a_deleted_or_disabled_rule_closes_its_alerts_quietly() -> None:
    run = Run(temp_rule(sustain=0))
    run(hot(90), 0)
    run.rules = []
    assert run(hot(90), 10) == [(Event.CLOSED, False)]
    assert run.open == {}


def test_violations_resolve_when_no_longer_open_but_not_when_unknown() -> None:
    rule = Rule(2, "compliance", Condition.COMPLIANCE_VIOLATION, None, 0)
    run = Run(rule)
    v = ViolationFact(9, "unaccredited_pool", "hsc", "kz1", "mac1", "S1")
    assert run(Facts(violations=[v]), 0) == [(Event.FIRING, True)]
    assert run(Facts(violations=None), 10) == []  # the registry could not be read
    assert run(Facts(violations=[]), 20) == [(Event.RESOLVED, True)]


def test_only_open_alerts_can_be_acknowledged() -> None:
    st = AlertState(1, "site:kz1", Status.RESOLVED, T0, id=4)
    with pytest.raises(NotOpen):
        acknowledge(st, "operator:anna", at(1))
