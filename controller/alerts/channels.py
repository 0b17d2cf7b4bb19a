"""The channels a notification leaves by: a webhook (JSON, signed with HMAC-SHA256 over the exact body with the
channel's shared secret) and e-mail (SMTP through the configured relay). The dashboard channel needs no sending:
the Alerts tab reads the alert rows and their events (controller/alerts/api.py, its stream).

Receivers check a webhook like this (the body as received, before any JSON parsing):

    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-Kuat-Signature-256"])

`X-Kuat-Delivery` is the same on every attempt of one notification: a receiver that saw it already can drop a
repeat (a retry after a reply that was lost).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import httpx

from controller.alerts.settings import AlertSettings
from serverkit.timeutil import ASTANA, utc

SIGNATURE_HEADER = "X-Kuat-Signature-256"
DELIVERY_HEADER = "X-Kuat-Delivery"
EVENT_HEADER = "X-Kuat-Event"
USER_AGENT = "kuat-alerts/1"


class SendFailed(Exception):
    """A channel did not take a notification (the delivery is retried); `reason` is what gets recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:500]


@dataclass(frozen=True, slots=True)
class Target:
    """Where one channel sends: a webhook's URL and secret, or an e-mail list."""

    name: str
    kind: str
    url: str | None = None
    secret: str | None = None
    recipients: tuple[str, ...] = ()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(target: Target, payload: dict[str, Any], delivery_id: int, settings: AlertSettings) -> str | None:
    """Send one notification; a note (recipients the relay refused while it took the others) or None."""
    if target.kind == "webhook":
        send_webhook(target, payload, delivery_id, settings.webhook_timeout_s)
        return None
    if target.kind == "email":
        return send_email(target, payload, delivery_id, settings)
    raise SendFailed(f"channel {target.name!r} does not exist (deleted after the alert was queued)")


def send_webhook(target: Target, payload: dict[str, Any], delivery_id: int, timeout_s: float) -> None:
    assert target.url is not None
    body = json.dumps({**payload, "delivery_id": delivery_id}, sort_keys=True, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: str(delivery_id),
               EVENT_HEADER: str(payload.get("event", ""))}  # fmt: skip
    if target.secret:
        headers[SIGNATURE_HEADER] = sign(target.secret, body)
    try:
        reply = httpx.post(target.url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise SendFailed(f"webhook {target.name}: {type(exc).__name__}: {exc}") from None
    if not 200 <= reply.status_code < 300:
        raise SendFailed(f"webhook {target.name}: HTTP {reply.status_code} {reply.text[:200]}")


def astana(value: Any) -> str:
    """An ISO instant as Astana time, labelled (UTC+5 all year since 2024-03-01)."""
    if not value:
        return "—"
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return utc(t).astimezone(ASTANA).strftime("%Y-%m-%d %H:%M:%S") + " Astana (UTC+5)"


def subject_line(payload: dict[str, Any]) -> str:
    a = payload.get("alert") or {}
    if payload.get("event") == "test":
        return f"[Kuat] test message from channel {payload.get('channel')}"
    sev = str(a.get("severity", "")).upper()
    return f"[Kuat {sev}] {str(payload.get('event', '')).upper()}: {a.get('rule')} — {a.get('message', '')}"[:250]


def text_body(payload: dict[str, Any], link: str | None) -> str:
    a = payload.get("alert") or {}
    if payload.get("event") == "test":
        return f"A test message sent by {payload.get('actor')} at {astana(payload.get('at'))}.\n"
    lines = [f"{a.get('message', '')}", "",
             f"Rule:       {a.get('rule')} ({a.get('condition')}, threshold {a.get('threshold')})",
             f"Severity:   {a.get('severity')}", f"Status:     {a.get('status')} ({payload.get('event')})",
             f"Subject:    {a.get('subject')}", f"Site:       {a.get('site') or '—'}",
             f"Since:      {astana(a.get('since'))}", f"Fired:      {astana(a.get('fired_at'))}"]
    if a.get("ended_at"):
        lines.append(f"Ended:      {astana(a.get('ended_at'))}")
    if a.get("acknowledged_by"):
        lines.append(f"Acknowledged by {a['acknowledged_by']} at {astana(a.get('acknowledged_at'))}")
    lines.append(f"Alert id:   {a.get('id')}")
    if link:
        lines.append(f"\n{link.rstrip('/')}#alerts")
    return "\n".join(lines) + "\n"


def send_email(target: Target, payload: dict[str, Any], delivery_id: int, settings: AlertSettings) -> str | None:
    relay = settings.smtp
    if relay is None:
        raise SendFailed("no SMTP relay configured (alerts.smtp in the controller's settings)")
    msg = EmailMessage()
    msg["From"] = relay.sender
    msg["To"] = ", ".join(target.recipients)
    msg["Subject"] = subject_line(payload)
    msg["Date"] = format_datetime(utc(datetime.fromisoformat(str(payload["at"]))))
    msg["Message-ID"] = make_msgid(f"kuat-delivery-{delivery_id}")
    msg["X-Kuat-Delivery"] = str(delivery_id)
    msg.set_content(text_body(payload, settings.dashboard_url))
    try:
        refused = _smtp_send(relay, msg, target.recipients)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(f"e-mail {target.name}: {type(exc).__name__}: {exc}") from None
    # some recipients refused while the others took it: not retried (the others would get it twice)
    return f"refused by the relay: {', '.join(sorted(refused))}" if refused else None


def _smtp_send(relay: Any, msg: EmailMessage, recipients: Sequence[str]) -> dict[str, Any]:
    context = ssl.create_default_context()
    cls = smtplib.SMTP_SSL if relay.ssl else smtplib.SMTP
    kwargs: dict[str, Any] = {"timeout": relay.timeout_s}
    if relay.ssl:
        kwargs["context"] = context
    with cls(relay.host, relay.port, **kwargs) as smtp:
        if relay.starttls and not relay.ssl:
            smtp.starttls(context=context)
        if relay.username:
            smtp.login(relay.username, relay.password or "")
        return dict(smtp.send_message(msg, to_addrs=list(recipients)))
