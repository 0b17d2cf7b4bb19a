"""Tamper-evident history: an append-only hash chain of audit events, and its verification.

Each event stores ``prev_hash`` and ``hash = sha256(canonical JSON of (seq, prev_hash, actor, ts, entity,
entity_id, action, before, after))``. A single head row (`AuditHead`) is locked while appending, so two
writers cannot fork the chain (and ``seq`` is the primary key: a fork could not commit anyway).

Verification recomputes every link and then cross-checks the current rows of the audited tables against the last
``after`` state the chain holds for them: a row changed behind the application's back (raw SQL) no longer matches
its chain and is named, with the event it departs from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, select
from sqlmodel import Session, SQLModel, col

from kuat.canonical import canonical
from kuat.canonical import jsonable as _jsonable
from registry.models import AUDIT_EXCLUDED, AccreditedPool, AuditEvent, AuditHead, Dpc, Hsc, Licensee
from registry.national.models import NATIONAL_AUDIT_EXCLUDED, NATIONAL_AUDITED
from serverkit.timeutil import utc

GENESIS = "0" * 64
AUDITED: dict[str, type[SQLModel]] = {"licensee": Licensee, "dpc": Dpc, "pool": AccreditedPool, "hsc": Hsc,
                                      **NATIONAL_AUDITED}
EXCLUDED: dict[str, frozenset[str]] = {**AUDIT_EXCLUDED, **NATIONAL_AUDIT_EXCLUDED}
_TABLE_OF_ENTITY = {"licensee": "licensee", "dpc": "dpc", "pool": "accredited_pool", "hsc": "hsc",
                    **{name: model.__tablename__ for name, model in NATIONAL_AUDITED.items()}}


def _column_value(column: Any, value: Any) -> Any:
    """A value as the database gives it back (a float column returns 3000.0 for an int 3000 written)."""
    if value is not None and isinstance(column.type, Float):
        return float(value)
    return _jsonable(value)


def snapshot(entity: str, row: SQLModel, full: bool = False) -> dict[str, Any]:
    """The audited state of a row: every column but the heartbeat ones (all of them when `full`), JSON-ready."""
    excluded = frozenset() if full else EXCLUDED.get(entity, frozenset())
    columns = type(row).__table__.columns  # type: ignore[attr-defined]
    return {c.name: _column_value(c, getattr(row, c.name)) for c in columns if c.name not in excluded}


def event_hash(seq: int, prev_hash: str, actor: str, ts: datetime, entity: str, entity_id: str, action: str,
               before: str | None, after: str | None) -> str:
    body = canonical([seq, prev_hash, actor, utc(ts).isoformat(), entity, entity_id, action, before, after])
    return hashlib.sha256(body.encode()).hexdigest()


def lock_head(session: Session) -> AuditHead:
    """The chain head, row-locked until the transaction ends (created on first use)."""
    stmt = select(AuditHead).where(col(AuditHead.id) == 1).with_for_update()
    head = session.execute(stmt).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    return head


def append(session: Session, *, actor: str, ts: datetime, entity: str, entity_id: object, action: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (commits with the change it records)."""
    head = lock_head(session)
    before_text = None if before is None else canonical(before)
    after_text = None if after is None else canonical(after)
    seq = head.seq + 1
    digest = event_hash(seq, head.hash, actor, ts, entity, str(entity_id), action, before_text, after_text)
    event = AuditEvent(seq=seq, prev_hash=head.hash, hash=digest, actor=actor, ts=utc(ts), entity=entity,
                       entity_id=str(entity_id), action=action, before=before_text, after=after_text)
    session.add(event)
    head.seq, head.hash = seq, digest
    session.add(head)
    session.flush()
    return event


def record_change(session: Session, *, actor: str, ts: datetime, entity: str, row: SQLModel, action: str,
                  before: dict[str, Any] | None) -> AuditEvent:
    """Flush `row` (so it has its id) and append the event with its new state as ``after``."""
    session.add(row)
    session.flush()
    return append(session, actor=actor, ts=ts, entity=entity, entity_id=row.id,  # type: ignore[attr-defined]
                  action=action, before=before, after=snapshot(entity, row))


@dataclass
class Break:
    """One broken link: where (event seq and/or entity row) and why."""

    reason: str
    seq: int | None = None
    entity: str | None = None
    entity_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "seq": self.seq, "entity": self.entity, "entity_id": self.entity_id}


@dataclass
class VerifyReport:
    ok: bool = True
    events: int = 0
    rows_checked: int = 0
    first_broken: Break | None = None
    problems: list[Break] = field(default_factory=list)

    def add(self, problem: Break, keep: int = 100) -> None:
        self.ok = False
        if self.first_broken is None:
            self.first_broken = problem
        if len(self.problems) < keep:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "rows_checked": self.rows_checked,
                "first_broken": self.first_broken.as_dict() if self.first_broken else None,
                "problems": [p.as_dict() for p in self.problems]}


def _events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch)  # type: ignore[arg-type]
    for event in session.execute(stmt).scalars():
        yield event
        session.expunge(event)


def _check_links(session: Session, report: VerifyReport) -> dict[tuple[str, str], tuple[int, str | None]]:
    """Recompute the chain; return, per (entity, id), the seq and ``after`` of its last event."""
    last: dict[tuple[str, str], tuple[int, str | None]] = {}
    prev_hash, expected_seq = GENESIS, 1
    for ev in _events(session):
        report.events += 1
        if ev.seq != expected_seq:
            report.add(Break(f"sequence jumps from {expected_seq - 1} to {ev.seq} (events removed)", ev.seq))
        elif ev.prev_hash != prev_hash:
            report.add(Break("prev_hash does not match the previous event's hash", ev.seq, ev.entity, ev.entity_id))
        elif event_hash(ev.seq, ev.prev_hash, ev.actor, ev.ts, ev.entity, ev.entity_id, ev.action, ev.before,
                        ev.after) != ev.hash:
            report.add(Break("event content does not match its hash (edited)", ev.seq, ev.entity, ev.entity_id))
        prev_hash, expected_seq = ev.hash, ev.seq + 1
        last[(ev.entity, ev.entity_id)] = (ev.seq, ev.after)
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        report.add(Break(f"chain ends at seq {expected_seq - 1} but its head says {head_seq} (tail cut or edited)",
                         head_seq))
    return last


def _check_rows(session: Session, report: VerifyReport, last: dict[tuple[str, str], tuple[int, str | None]]) -> None:
    for entity, model in AUDITED.items():
        seen: set[str] = set()
        stmt = select(model).order_by(model.id).execution_options(yield_per=5000)  # type: ignore[attr-defined]
        for row in session.execute(stmt).scalars():
            report.rows_checked += 1
            key = str(row.id)
            seen.add(key)
            recorded = last.get((entity, key))
            current = canonical(snapshot(entity, row))
            session.expunge(row)
            if recorded is None:
                report.add(Break(f"{_TABLE_OF_ENTITY[entity]} row has no audit history (inserted behind the app)",
                                 None, entity, key))
            elif _comparable(entity, recorded[1]) != current:
                report.add(Break(f"{_TABLE_OF_ENTITY[entity]} row differs from the state its last audit event "
                                 f"(seq {recorded[0]}) recorded: changed behind the app", recorded[0], entity, key))
        for (ev_entity, ev_id), (seq, after) in last.items():
            if ev_entity == entity and ev_id not in seen and after is not None:
                report.add(Break(f"{_TABLE_OF_ENTITY[entity]} row is gone but its chain never recorded a deletion",
                                 seq, entity, ev_id))


def _comparable(entity: str, after: str | None) -> str | None:
    """A recorded state without the columns that change between audited events (an episode's running totals)."""
    excluded = EXCLUDED.get(entity)
    if after is None or not excluded:
        return after
    return canonical({k: v for k, v in json.loads(after).items() if k not in excluded})


def verify(session: Session) -> VerifyReport:
    """Check every link, then every audited row against its chain. `first_broken` names the first problem."""
    report = VerifyReport()
    last = _check_links(session, report)
    _check_rows(session, report, last)
    return report
