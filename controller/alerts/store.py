"""Rows <-> the pure objects of alerts/, and the one transaction that applies an evaluation: alert rows, their
events and the deliveries their notifications need are written together, so a notification is never lost (it is
queued in the same commit as the transition) and never queued twice (one delivery per event and channel)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from alerts.evaluate import AlertState, Evaluation, Event, Status, Transition
from alerts.rules import Condition, Rule, Scope, Severity
from controller.alerts.models import AlertChannel, AlertDelivery, AlertEvent, AlertInstance, AlertRule
from serverkit.db import SQLITE_BEGIN
from serverkit.timeutil import utc

DASHBOARD = "dashboard"  # the built-in channel: the Alerts tab and its live stream read the alert rows themselves
OPEN_STATUSES = (Status.PENDING.value, Status.FIRING.value)
Payload = Callable[[AlertState, Rule, Event, int], dict[str, Any]]


def writing(engine: Engine) -> Session:
    return Session(engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}))


def rule_of(row: AlertRule) -> Rule:
    assert row.id is not None
    return Rule(row.id, row.name, Condition(row.condition), row.threshold, row.sustain_s,
                Scope.from_json(json.loads(row.scope_json)), Severity(row.severity),
                tuple(json.loads(row.channels_json)), row.repeat_s, row.enabled, row.notify_resolved,
                row.description)  # fmt: skip


def fill_rule(row: AlertRule, rule: Rule) -> AlertRule:
    row.name, row.description, row.condition = rule.name, rule.description, rule.condition.value
    row.threshold, row.sustain_s, row.severity = rule.threshold, rule.sustain_s, rule.severity.value
    row.scope_json, row.channels_json = json.dumps(rule.scope.to_json()), json.dumps(list(rule.channels))
    row.repeat_s, row.enabled, row.notify_resolved = rule.repeat_s, rule.enabled, rule.notify_resolved
    return row


def state_of(row: AlertInstance) -> AlertState:
    return AlertState(row.rule_id, row.subject, Status(row.status), _aware(row.since), row.site, row.value,
                      row.message, _opt(row.fired_at), _opt(row.ended_at), _opt(row.last_notified_at),
                      row.notifications, row.acknowledged_by, _opt(row.acknowledged_at), row.id)  # fmt: skip


def _aware(t: datetime) -> datetime:
    return utc(t)


def _opt(t: datetime | None) -> datetime | None:
    return None if t is None else utc(t)


def fill_instance(row: AlertInstance, st: AlertState, now: datetime) -> AlertInstance:
    row.rule_id, row.subject, row.site, row.status = st.rule_id, st.subject, st.site, st.status.value
    row.since, row.fired_at, row.ended_at = st.since, st.fired_at, st.ended_at
    row.last_notified_at, row.notifications = st.last_notified_at, st.notifications
    row.acknowledged_by, row.acknowledged_at = st.acknowledged_by, st.acknowledged_at
    row.value, row.message, row.updated_at = st.value, st.message, now
    return row


def live_rules(session: Session) -> list[Rule]:
    rows = session.exec(select(AlertRule).where(col(AlertRule.deleted_at).is_(None)).order_by(col(AlertRule.id)))
    return [rule_of(r) for r in rows]


def open_states(session: Session) -> dict[tuple[int, str], AlertState]:
    rows = session.exec(select(AlertInstance).where(col(AlertInstance.status).in_(OPEN_STATUSES)))
    return {(r.rule_id, r.subject): state_of(r) for r in rows}


def channel_kinds(session: Session) -> dict[str, str]:
    """name -> kind of every channel a rule may name (the dashboard's included)."""
    rows = session.exec(select(AlertChannel.name, AlertChannel.kind).where(col(AlertChannel.deleted_at).is_(None)))
    return {DASHBOARD: DASHBOARD, **{n: k for n, k in rows}}


def apply(engine: Engine, ev: Evaluation, rules: Mapping[int, Rule], now: datetime, payload: Payload) -> int:
    """Write the evaluation in one transaction; returns the deliveries queued. An alert row whose state changed
    since the evaluation read it (acknowledged meanwhile) keeps its acknowledgement. Rows are loaded and written
    in batches (a site-wide outage opens an alert per machine at once)."""
    with writing(engine) as s:
        kinds = channel_kinds(s)
        rows = _load(s, [st.id for st in ev.updated] + [t.state.id for t in ev.transitions])
        for st in ev.updated:
            row = rows.get(st.id or -1)
            if row is not None and row.status in OPEN_STATUSES:
                row.value, row.message, row.updated_at = st.value, st.message, now
                s.add(row)
        written = [(tr, row) for tr in ev.transitions if (row := _transition_row(s, tr, rows, now)) is not None]
        s.flush()  # ids for the new alerts
        events = [(tr, row, AlertEvent(alert_id=_id(row), at=now, event=tr.event.value, status=row.status,
                                       value=tr.state.value, message=tr.state.message)) for tr, row in written]
        s.add_all([e for _, _, e in events])
        s.flush()  # ids for the events
        queued = 0
        for tr, row, event in events:
            rule = rules.get(tr.state.rule_id)
            if tr.notify and rule is not None:
                assert event.id is not None and row.id is not None
                queued += _queue(s, row, rule, tr.event, event.id, kinds, now, payload)
        s.commit()
    return queued


def _id(row: AlertInstance) -> int:
    assert row.id is not None
    return row.id


def _load(s: Session, ids: list[int | None], chunk: int = 5000) -> dict[int, AlertInstance]:
    wanted = sorted({i for i in ids if i is not None})
    out: dict[int, AlertInstance] = {}
    for k in range(0, len(wanted), chunk):
        for row in s.exec(select(AlertInstance).where(col(AlertInstance.id).in_(wanted[k:k + chunk]))):
            assert row.id is not None
            out[row.id] = row
    return out


def _transition_row(s: Session, tr: Transition, rows: Mapping[int, AlertInstance],
                    now: datetime) -> AlertInstance | None:
    st = tr.state
    row = rows.get(st.id) if st.id is not None else None
    if row is None:
        row = AlertInstance(rule_id=st.rule_id, subject=st.subject, status=st.status.value, since=st.since,
                            updated_at=now)  # fmt: skip
    acked_by, acked_at = row.acknowledged_by, row.acknowledged_at
    if acked_by is not None and tr.event is Event.REPEAT:
        return None  # acknowledged after the evaluation read the row: no repeat
    fill_instance(row, st, now)
    if acked_by is not None:
        row.acknowledged_by, row.acknowledged_at = acked_by, acked_at
    s.add(row)
    return row


def _queue(s: Session, row: AlertInstance, rule: Rule, event: Event, event_id: int, kinds: Mapping[str, str],
           now: datetime, payload: Payload) -> int:
    body = json.dumps(payload(state_of(row), rule, event, event_id), default=str)
    for name in rule.channels:
        kind = kinds.get(name, "missing")
        done = kind == DASHBOARD  # the dashboard shows the alert rows: nothing left to send
        s.add(AlertDelivery(alert_id=row.id, event_id=event_id, channel=name, kind=kind, event=event.value,
                            status="sent" if done else "pending", attempts=1 if done else 0, next_attempt_at=now,
                            payload_json=body, created_at=now, sent_at=now if done else None))  # fmt: skip
    return len(rule.channels)


def record_event(s: Session, alert_id: int, event: Event, status: str, now: datetime, actor: str | None,
                 message: str) -> AlertEvent:
    row = AlertEvent(alert_id=alert_id, at=now, event=event.value, status=status, actor=actor, message=message)
    s.add(row)
    return row


def rules_by_id(rules: Iterable[Rule]) -> dict[int, Rule]:
    return {r.id: r for r in rules}
