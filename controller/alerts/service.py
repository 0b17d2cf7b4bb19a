"""AlertService: rules and channels (CRUD), evaluation (facts -> alerts/ -> stored transitions and queued
deliveries), delivery with retries and backoff, acknowledgement, history and test sends.

Evaluation and acknowledgement take one lock, so an acknowledgement is never overwritten by an evaluation that
read the alert before it. Deliveries are sent outside any transaction, one at a time per channel in the order
queued; a channel whose oldest delivery waits for its retry holds the later ones back (a "resolved" never
overtakes its "firing").
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from alerts.evaluate import Event, NotOpen, acknowledge, evaluate
from alerts.facts import Facts
from alerts.rules import Rule, check_rule
from controller.alerts import channels as chan
from controller.alerts import store
from controller.alerts.checks import InvalidFields, check_channel
from controller.alerts.models import AlertChannel, AlertDelivery, AlertEvent, AlertInstance, AlertRule
from controller.alerts.settings import AlertSettings
from controller.alerts.views import channel_view, delivery_view, event_view, instance_view, payload, rule_view
from kuat import clock
from serverkit.errors import Conflict, NotFound
from serverkit.timeutil import utc

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """Figures for /metrics, kept from the last runs (a scrape never queries the database)."""

    evaluations: int = 0
    facts_s: float = 0.0
    rules_s: float = 0.0
    firing: int = 0
    pending: int = 0
    queued: int = 0
    sent_total: int = 0
    failed_total: int = 0
    retries_total: int = 0


class AlertService:
    def __init__(self, engine: Engine, settings: AlertSettings, collect: Callable[[], Facts],
                 now: Callable[[], datetime] = clock.now) -> None:
        self.engine, self.settings, self.collect, self.now = engine, settings, collect, now
        self.lock = threading.Lock()
        self.counters = Counters()

    # ------------------------------------------------------------ channels

    def channels(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = list(s.exec(select(AlertChannel).where(col(AlertChannel.deleted_at).is_(None))
                               .order_by(col(AlertChannel.name))))
        return [{"name": "dashboard", "kind": "dashboard", "enabled": True, "url": None, "recipients": [],
                 "has_secret": False, "builtin": True}] + [channel_view(r) for r in rows]  # fmt: skip

    def put_channel(self, name: str, doc: Any, actor: str) -> dict[str, Any]:
        """Create or replace channel `name`; a webhook's secret may be left out to keep the stored one."""
        doc = {**doc, "name": name} if isinstance(doc, dict) else doc
        with store.writing(self.engine) as s:
            row = s.exec(select(AlertChannel).where(col(AlertChannel.name) == name)).first()
            kept = {"secret": row.secret} if row is not None and row.secret else None
            if row is not None and (row.deleted_at is not None
                                    or (isinstance(doc, dict) and doc.get("kind", row.kind) != row.kind)):
                kept = None  # a deleted channel's secret does not come back with its name
            fields, issues = check_channel(doc, kept)
            if issues:
                raise InvalidFields(issues)
            now = self.now()
            if row is None:
                row = AlertChannel(name=name, kind=fields["kind"], actor=actor, created_at=now, updated_at=now)
            row.kind, row.url, row.secret = fields["kind"], fields.get("url"), fields.get("secret")
            row.recipients_json = json.dumps(fields.get("recipients") or [])
            row.enabled, row.actor, row.updated_at = fields.get("enabled", True), actor, now
            if row.deleted_at is not None:
                row.created_at, row.deleted_at = now, None
            s.add(row)
            s.commit()
            log.info("%s saved alert channel %s (%s)", actor, name, row.kind)
            return channel_view(row)

    def delete_channel(self, name: str, actor: str) -> None:
        with store.writing(self.engine) as s:
            row = s.exec(select(AlertChannel).where(col(AlertChannel.name) == name,
                                                    col(AlertChannel.deleted_at).is_(None))).first()
            if row is None:
                raise NotFound("alert channel", name)
            users = [r.name for r in store.live_rules(s) if name in r.channels]
            if users:
                raise Conflict(f"channel {name} is used by rule(s) {', '.join(users)}: change them first")
            row.deleted_at, row.actor = self.now(), actor  # the row stays: who deleted it, and when
            s.add(row)
            s.commit()
        log.info("%s deleted alert channel %s", actor, name)

    def _targets(self, s: Session) -> dict[str, tuple[chan.Target, bool]]:
        live = s.exec(select(AlertChannel).where(col(AlertChannel.deleted_at).is_(None)))
        return {r.name: (chan.Target(r.name, r.kind, r.url, r.secret, tuple(json.loads(r.recipients_json))),
                         r.enabled) for r in live}  # fmt: skip

    # ------------------------------------------------------------ rules

    def rules(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = list(s.exec(select(AlertRule).where(col(AlertRule.deleted_at).is_(None))
                               .order_by(col(AlertRule.id))))
        return [rule_view(r) for r in rows]

    def rule(self, rule_id: int) -> dict[str, Any]:
        with Session(self.engine) as s:
            return rule_view(self._live_rule(s, rule_id))

    @staticmethod
    def _live_rule(s: Session, rule_id: int) -> AlertRule:
        row = s.get(AlertRule, rule_id)
        if row is None or row.deleted_at is not None:
            raise NotFound("alert rule", rule_id)
        return row

    def _checked(self, s: Session, doc: Any, rule_id: int = 0) -> Rule:
        rule, issues = check_rule(doc, set(store.channel_kinds(s)), rule_id)
        if issues:
            raise InvalidFields(issues)
        assert rule is not None
        return rule

    def create_rule(self, doc: Any, actor: str) -> dict[str, Any]:
        with store.writing(self.engine) as s:
            rule = self._checked(s, doc)
            now = self.now()
            row = store.fill_rule(AlertRule(name=rule.name, condition=rule.condition.value, sustain_s=0,
                                            severity=rule.severity.value, actor=actor, created_at=now,
                                            updated_at=now), rule)  # fmt: skip
            s.add(row)
            s.commit()
            log.info("%s created alert rule %d %s (%s)", actor, row.id, rule.name, rule.condition.value)
            return rule_view(row)

    def replace_rule(self, rule_id: int, doc: Any, actor: str) -> dict[str, Any]:
        """PUT: the whole rule anew. Its open alerts go on under the new definition (sustain timers kept)."""
        with store.writing(self.engine) as s:
            row = self._live_rule(s, rule_id)
            rule = self._checked(s, doc, rule_id)
            store.fill_rule(row, rule)
            row.actor, row.updated_at = actor, self.now()
            s.add(row)
            s.commit()
            return rule_view(row)

    def delete_rule(self, rule_id: int, actor: str) -> None:
        """The rule stops; its open alerts are closed at the next evaluation. The row stays for the history."""
        with store.writing(self.engine) as s:
            row = self._live_rule(s, rule_id)
            row.deleted_at, row.actor = self.now(), actor
            s.add(row)
            s.commit()
        log.info("%s deleted alert rule %d", actor, rule_id)

    # ------------------------------------------------------------ evaluation

    def evaluate(self) -> dict[str, Any]:
        """Collect the facts, run every rule, store the transitions and queue their notifications."""
        started = time.perf_counter()
        facts = self.collect()
        collected = time.perf_counter()
        with self.lock:
            now = self.now()
            with Session(self.engine) as s:
                rules = store.live_rules(s)
                names = {r.id: r.name for r in s.exec(select(AlertRule))}
                opened = store.open_states(s)
            ev = evaluate(rules, facts, opened, now)
            by_id = store.rules_by_id(rules)
            queued = store.apply(self.engine, ev, by_id, now, lambda st, rule, event, event_id: payload(
                st, rule, event, now, names.get(st.rule_id, "")))
        done = time.perf_counter()
        c = self.counters
        c.evaluations += 1
        c.facts_s, c.rules_s = collected - started, done - collected
        after = dict(opened)
        for tr in ev.transitions:
            key = (tr.state.rule_id, tr.state.subject)
            if tr.state.open:
                after[key] = tr.state
            else:
                after.pop(key, None)
        c.firing = sum(st.status.value == "firing" for st in after.values())
        c.pending = len(after) - c.firing
        if ev.transitions:
            log.info("alerts: %d transition(s), %d deliver(ies) queued", len(ev.transitions), queued)
        return {"transitions": [(t.event.value, t.state.subject) for t in ev.transitions], "queued": queued,
                "facts_s": round(c.facts_s, 4), "rules_s": round(c.rules_s, 4)}

    # ------------------------------------------------------------ acknowledgement

    def acknowledge(self, alert_id: int, actor: str) -> dict[str, Any]:
        with self.lock, store.writing(self.engine) as s:
            row = s.get(AlertInstance, alert_id)
            if row is None:
                raise NotFound("alert", alert_id)
            try:
                tr = acknowledge(store.state_of(row), actor, self.now())
            except NotOpen as exc:
                raise Conflict(str(exc)) from None
            if row.acknowledged_by is None:
                store.fill_instance(row, tr.state, self.now())
                s.add(row)
                store.record_event(s, alert_id, Event.ACKNOWLEDGED, row.status, self.now(), actor,
                                   f"acknowledged by {actor}")
                s.commit()
                log.info("%s acknowledged alert %d", actor, alert_id)
            return self._alert_view(s, row)

    # ------------------------------------------------------------ reading

    def alerts(self, status: str | None = "open", site: str | None = None, limit: int = 500,
               offset: int = 0) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            stmt = select(AlertInstance)
            if status == "open":
                stmt = stmt.where(col(AlertInstance.status).in_(store.OPEN_STATUSES))
            elif status:
                stmt = stmt.where(col(AlertInstance.status) == status)
            if site:
                stmt = stmt.where(col(AlertInstance.site) == site)
            rows = list(s.exec(stmt.order_by(col(AlertInstance.id).desc()).limit(limit).offset(offset)))
            rules = {r.id: r for r in s.exec(select(AlertRule))}
            return [instance_view(r, rules.get(r.rule_id)) for r in rows]

    def alert(self, alert_id: int) -> dict[str, Any]:
        with Session(self.engine) as s:
            row = s.get(AlertInstance, alert_id)
            if row is None:
                raise NotFound("alert", alert_id)
            return self._alert_view(s, row)

    def _alert_view(self, s: Session, row: AlertInstance) -> dict[str, Any]:
        view = instance_view(row, s.get(AlertRule, row.rule_id))
        events = s.exec(select(AlertEvent).where(col(AlertEvent.alert_id) == row.id).order_by(col(AlertEvent.id)))
        deliveries = s.exec(select(AlertDelivery).where(col(AlertDelivery.alert_id) == row.id)
                            .order_by(col(AlertDelivery.id)))
        view["events"] = [event_view(e) for e in events]
        view["deliveries"] = [delivery_view(d) for d in deliveries]
        return view

    def events(self, after_id: int = 0, limit: int = 500, since: datetime | None = None) -> list[dict[str, Any]]:
        """The history across alerts, oldest first after `after_id` (the live stream resumes from the last id)."""
        with Session(self.engine) as s:
            stmt = select(AlertEvent, AlertInstance).join(
                AlertInstance, col(AlertInstance.id) == col(AlertEvent.alert_id)).where(col(AlertEvent.id) > after_id)
            if since is not None:
                stmt = stmt.where(col(AlertEvent.at) >= since)
            rows = list(s.exec(stmt.order_by(col(AlertEvent.id)).limit(limit)))
            rules = {r.id: r for r in s.exec(select(AlertRule))}
            return [{**event_view(e), "rule_id": a.rule_id, "rule": getattr(rules.get(a.rule_id), "name", None),
                     "severity": getattr(rules.get(a.rule_id), "severity", None), "subject": a.subject,
                     "site": a.site} for e, a in rows]  # fmt: skip

    def last_event_id(self) -> int:
        with Session(self.engine) as s:
            return int(s.exec(select(func.max(AlertEvent.id))).one() or 0)

    def deliveries(self, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            stmt = select(AlertDelivery)
            if status:
                stmt = stmt.where(col(AlertDelivery.status) == status)
            return [delivery_view(d) for d in s.exec(stmt.order_by(col(AlertDelivery.id).desc()).limit(limit))]

    # ------------------------------------------------------------ delivery

    def deliver(self) -> dict[str, int]:
        """Send what is due, oldest first, one channel's deliveries in order; failures retried with backoff."""
        now = self.now()
        with Session(self.engine) as s:
            due = list(s.exec(select(AlertDelivery).where(col(AlertDelivery.status) == "pending")
                              .order_by(col(AlertDelivery.id)).limit(500)))
            targets = self._targets(s)
        held: set[str] = set()
        out = {"sent": 0, "retry": 0, "failed": 0}
        for d in due:
            if d.channel in held:
                continue
            if utc(d.next_attempt_at) > now:
                held.add(d.channel)
                continue
            result = self._attempt(d, targets.get(d.channel), now)
            out[result] += 1
            if result != "sent":
                held.add(d.channel)
        with Session(self.engine) as s:
            self.counters.queued = int(s.exec(select(func.count()).select_from(AlertDelivery)
                                              .where(col(AlertDelivery.status) == "pending")).one())
        return out

    def _attempt(self, d: AlertDelivery, target: tuple[chan.Target, bool] | None, now: datetime) -> str:
        assert d.id is not None
        try:
            if target is None:
                raise chan.SendFailed(f"channel {d.channel} no longer exists")
            if not target[1]:
                raise chan.SendFailed(f"channel {d.channel} is disabled")
            note = chan.send(target[0], json.loads(d.payload_json), d.id, self.settings)
        except chan.SendFailed as exc:
            final = target is None or not target[1]
            return self._record_failure(d.id, exc.reason, now, final)
        with store.writing(self.engine) as s:
            row = s.get(AlertDelivery, d.id)
            assert row is not None
            row.status, row.sent_at, row.attempts, row.last_error = "sent", self.now(), row.attempts + 1, note
            s.add(row)
            s.commit()
        self.counters.sent_total += 1
        return "sent"

    def _record_failure(self, delivery_id: int, reason: str, now: datetime, final: bool) -> str:
        with store.writing(self.engine) as s:
            row = s.get(AlertDelivery, delivery_id)
            assert row is not None
            row.attempts += 1
            row.last_error = reason
            if final or row.attempts >= self.settings.max_attempts:
                row.status = "failed"
            else:
                wait = min(self.settings.backoff_s * 2 ** (row.attempts - 1), self.settings.backoff_max_s)
                row.next_attempt_at = now + timedelta(seconds=wait)
            s.add(row)
            s.commit()
            status = row.status
        log.warning("alert delivery %d (%s): %s", delivery_id, status, reason)
        if status == "failed":
            self.counters.failed_total += 1
            return "failed"
        self.counters.retries_total += 1
        return "retry"

    def test_send(self, channel: str, actor: str) -> dict[str, Any]:
        """A test message to one channel, sent now and recorded like any delivery (not retried)."""
        now = self.now()
        with store.writing(self.engine) as s:
            target = self._targets(s).get(channel)
            if target is None:
                raise NotFound("alert channel", channel)
            body = {"kuat": "alert/1", "event": "test", "at": now.isoformat(), "channel": channel, "actor": actor}
            row = AlertDelivery(channel=channel, kind=target[0].kind, event="test", status="pending",
                                next_attempt_at=now, payload_json=json.dumps(body), created_at=now)  # fmt: skip
            s.add(row)
            s.commit()
            assert row.id is not None
            delivery_id = row.id
        try:
            note = chan.send(target[0], body, delivery_id, self.settings)
            status, error = "sent", note
        except chan.SendFailed as exc:
            status, error = "failed", exc.reason
        with store.writing(self.engine) as s:
            done = s.get(AlertDelivery, delivery_id)
            assert done is not None
            done.status, done.attempts, done.last_error = status, 1, error
            done.sent_at = self.now() if status == "sent" else None
            s.add(done)
            s.commit()
            return delivery_view(done)
