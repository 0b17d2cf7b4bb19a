"""SQL tables of the alerts side: channels, rules, alerts (one row per alert with its state, so a restart keeps the
sustain timers), their history of events, and deliveries (one row per notification and channel, with attempts).

Migrated with the controller's other tables (controller/migrations, revision 0004_alerts).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class AlertChannel(SQLModel, table=True):
    """A webhook (URL, shared secret) or an e-mail list. The dashboard channel is built in and has no row. A deleted
    channel keeps its row (deleted_at, and who deleted it in actor) until a PUT of the same name makes it anew."""

    __tablename__ = "alert_channel"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    kind: str = Field(max_length=16)  # webhook / email
    url: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, max_length=500)  # write-only in the API
    recipients_json: str = "[]"
    enabled: bool = True
    actor: str = Field(max_length=200)
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class AlertRule(SQLModel, table=True):
    """A rule as defined (alerts.rules.Rule). Deleted rules keep their row (deleted_at) so history names them."""

    __tablename__ = "alert_rule"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    description: str = ""
    condition: str = Field(max_length=40)
    threshold: float | None = None
    sustain_s: float
    scope_json: str = "{}"
    severity: str = Field(max_length=16)
    channels_json: str = '["dashboard"]'
    repeat_s: float | None = None
    enabled: bool = True
    notify_resolved: bool = True
    actor: str = Field(max_length=200)
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class AlertInstance(SQLModel, table=True):
    """One alert: a rule's condition on one subject, from pending to its end."""

    __tablename__ = "alert_instance"
    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(index=True)
    subject: str = Field(max_length=300)
    site: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16, index=True)
    since: datetime  # pending since: the first time the condition was seen holding
    fired_at: datetime | None = None
    ended_at: datetime | None = None
    last_notified_at: datetime | None = None
    notifications: int = 0
    acknowledged_by: str | None = Field(default=None, max_length=200)
    acknowledged_at: datetime | None = None
    value: float | None = None
    message: str = ""
    updated_at: datetime


class AlertEvent(SQLModel, table=True):
    """The history: every transition of an alert (pending, firing, repeat, resolved, cleared, closed, acknowledged)."""

    __tablename__ = "alert_event"
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(index=True)
    at: datetime = Field(index=True)
    event: str = Field(max_length=16)
    status: str = Field(max_length=16)
    actor: str | None = Field(default=None, max_length=200)
    value: float | None = None
    message: str = ""


class AlertDelivery(SQLModel, table=True):
    """A notification to one channel: written with the transition that caused it, then sent, retried with backoff,
    and marked sent or failed. At most one row per (event, channel): nothing is queued twice."""

    __tablename__ = "alert_delivery"
    __table_args__ = (UniqueConstraint("event_id", "channel", name="uq_alert_delivery_event_channel"),)
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int | None = Field(default=None, index=True)  # None: a test send
    event_id: int | None = None
    channel: str = Field(max_length=100)
    kind: str = Field(max_length=16)
    event: str = Field(max_length=16)
    status: str = Field(max_length=16, index=True)  # pending / sent / failed
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    payload_json: str
    created_at: datetime
    sent_at: datetime | None = None


TABLES = tuple(m.__table__ for m in (AlertChannel, AlertRule, AlertInstance, AlertEvent,  # type: ignore[union-attr]
                                     AlertDelivery))
