"""What the API and the notifications show of rules, channels, alerts, events and deliveries (secrets never)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from alerts.evaluate import AlertState, Event
from alerts.rules import SPECS, Rule
from controller.alerts import store
from controller.alerts.models import AlertChannel, AlertDelivery, AlertEvent, AlertInstance, AlertRule
from serverkit.timeutil import utc


def payload(st: AlertState, rule: Rule, event: Event, at: datetime, rule_name: str) -> dict[str, Any]:
    """The notification's body: the same for every channel and every attempt."""
    return {"kuat": "alert/1", "event": event.value, "at": at.isoformat(), "alert": {
        "id": st.id, "rule_id": rule.id, "rule": rule_name or rule.name, "condition": rule.condition.value,
        "threshold": rule.threshold, "severity": rule.severity.value, "subject": st.subject, "site": st.site,
        "status": st.status.value, "since": st.since.isoformat(), "value": st.value, "message": st.message,
        "fired_at": _iso(st.fired_at), "ended_at": _iso(st.ended_at), "acknowledged_by": st.acknowledged_by,
        "acknowledged_at": _iso(st.acknowledged_at), "notifications": st.notifications}}  # fmt: skip


def _iso(t: datetime | None) -> str | None:
    return None if t is None else utc(t).isoformat()


def channel_view(r: AlertChannel) -> dict[str, Any]:
    return {"name": r.name, "kind": r.kind, "enabled": r.enabled, "url": r.url,
            "recipients": json.loads(r.recipients_json), "has_secret": bool(r.secret), "builtin": False}  # fmt: skip


def rule_view(r: AlertRule) -> dict[str, Any]:
    spec = SPECS[store.rule_of(r).condition]
    return {"id": r.id, "name": r.name, "description": r.description, "condition": r.condition,
            "level": spec.level.value, "threshold": r.threshold, "threshold_means": spec.threshold,
            "sustain_s": r.sustain_s, "scope": json.loads(r.scope_json), "severity": r.severity,
            "channels": json.loads(r.channels_json), "repeat_s": r.repeat_s, "enabled": r.enabled,
            "notify_resolved": r.notify_resolved, "actor": r.actor, "created_at": utc(r.created_at),
            "updated_at": utc(r.updated_at)}  # fmt: skip


def instance_view(r: AlertInstance, rule: AlertRule | None) -> dict[str, Any]:
    return {"id": r.id, "rule_id": r.rule_id, "rule": rule.name if rule else None,
            "condition": rule.condition if rule else None, "severity": rule.severity if rule else None,
            "rule_deleted": bool(rule is None or rule.deleted_at is not None), "subject": r.subject, "site": r.site,
            "status": r.status, "since": utc(r.since), "fired_at": _utc(r.fired_at), "ended_at": _utc(r.ended_at),
            "last_notified_at": _utc(r.last_notified_at), "notifications": r.notifications,
            "acknowledged_by": r.acknowledged_by, "acknowledged_at": _utc(r.acknowledged_at), "value": r.value,
            "message": r.message}  # fmt: skip


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else utc(t)


def event_view(e: AlertEvent) -> dict[str, Any]:
    return {"id": e.id, "alert_id": e.alert_id, "at": utc(e.at), "event": e.event, "status": e.status,
            "actor": e.actor, "value": e.value, "message": e.message}  # fmt: skip


def delivery_view(d: AlertDelivery) -> dict[str, Any]:
    return {"id": d.id, "alert_id": d.alert_id, "event_id": d.event_id, "channel": d.channel, "kind": d.kind,
            "event": d.event, "status": d.status, "attempts": d.attempts, "next_attempt_at": utc(d.next_attempt_at),
            "last_error": d.last_error, "created_at": utc(d.created_at), "sent_at": _utc(d.sent_at)}  # fmt: skip
