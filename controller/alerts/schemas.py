"""Typed request and response models of /api/v1/alerts (OpenAPI at /docs). Rule and channel bodies are checked
in one pass by alerts.rules.check_rule / controller.alerts.checks so that a refusal names every bad field; these
request models document them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from alerts.rules import Condition, Severity


class ScopeIn(BaseModel):
    sites: list[str] = Field(default_factory=list)
    racks: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list, description="licensee BIN or name")
    models: list[str] = Field(default_factory=list)
    machines: list[str] = Field(default_factory=list, description="device ids (MAC) or serials")


class RuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    condition: Condition
    threshold: float | None = Field(None, description="meaning per condition: GET /api/v1/alerts/conditions")
    sustain_s: float = Field(0, ge=0, description="the condition must hold this long before the alert fires")
    scope: ScopeIn = Field(default_factory=ScopeIn)
    severity: Severity = Severity.WARNING
    channels: list[str] = Field(default_factory=lambda: ["dashboard"])
    repeat_s: float | None = Field(None, ge=60, description="notify a firing, unacknowledged alert again this often")
    enabled: bool = True
    notify_resolved: bool = True


class RuleOut(BaseModel):
    id: int
    name: str
    description: str
    condition: str
    level: str
    threshold: float | None
    threshold_means: str | None
    sustain_s: float
    scope: dict[str, list[str]]
    severity: str
    channels: list[str]
    repeat_s: float | None
    enabled: bool
    notify_resolved: bool
    actor: str
    created_at: datetime
    updated_at: datetime


class ConditionOut(BaseModel):
    condition: str
    level: str
    threshold_means: str | None
    default: float | None
    low: float | None
    high: float | None
    scope: list[str]


class ChannelIn(BaseModel):
    kind: Literal["webhook", "email"]
    url: str | None = Field(None, description="webhook: where the JSON is POSTed")
    secret: str | None = Field(None, description="webhook: the HMAC-SHA256 key (write-only; omit to keep it)")
    recipients: list[str] = Field(default_factory=list, description="email: addresses")
    enabled: bool = True


class ChannelOut(BaseModel):
    name: str
    kind: str
    enabled: bool
    url: str | None
    recipients: list[str]
    has_secret: bool
    builtin: bool


class EventOut(BaseModel):
    id: int
    alert_id: int
    at: datetime
    event: str
    status: str
    actor: str | None
    value: float | None
    message: str
    rule_id: int | None = None
    rule: str | None = None
    severity: str | None = None
    subject: str | None = None
    site: str | None = None


class DeliveryOut(BaseModel):
    id: int
    alert_id: int | None
    event_id: int | None
    channel: str
    kind: str
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class AlertOut(BaseModel):
    id: int
    rule_id: int
    rule: str | None
    condition: str | None
    severity: str | None
    rule_deleted: bool
    subject: str
    site: str | None
    status: str
    since: datetime
    fired_at: datetime | None
    ended_at: datetime | None
    last_notified_at: datetime | None
    notifications: int
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    value: float | None
    message: str


class AlertDetailOut(AlertOut):
    events: list[EventOut]
    deliveries: list[DeliveryOut]
