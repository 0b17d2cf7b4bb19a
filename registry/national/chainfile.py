"""A downloaded audit feed, checked on a regulator's own machine: no server, no database, only the file and the
registry's public key. Also rebuilds the registry's state AS OF any instant from the chain alone.

The feed file is JSON Lines (GET /api/v1/audit/events.jsonl): one ``{"type": "event", ...}`` line per audit event
from seq 1, then one ``{"type": "head", ...}`` line: the head's seq and hash signed with the registry's Ed25519 key.
Each event's hash is sha256 of the canonical JSON of [seq, prev_hash, actor, ts, entity, entity_id, action, before,
after] (registry/audit.py: the same recipe, kept in step by a test), so

- an event edited in the database (its content no longer matches its hash, or its hash breaks the next link),
- events removed or the tail cut (the head names a seq or hash the events do not reach),
- a chain rewritten and re-signed without the registry's private key (the signature does not verify),

are each found, naming the first broken link. With a current-state export (GET /api/v1/national/export.jsonl) it also
compares every exported row with the state its chain last recorded: a row changed behind the application's back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kuat.canonical import canonical
from registry.national.signing import load_public_key, signature_valid
from serverkit.timeutil import utc

GENESIS = "0" * 64


def event_hash(ev: dict[str, Any]) -> str:
    body = canonical([ev["seq"], ev["prev_hash"], ev["actor"], utc(datetime.fromisoformat(ev["ts"])).isoformat(),
                      ev["entity"], ev["entity_id"], ev["action"], ev["before"], ev["after"]])
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class ChainCheck:
    ok: bool = True
    events: int = 0
    head_seq: int | None = None
    signed_at: str | None = None
    first_broken: dict[str, Any] | None = None
    rows_compared: int = 0

    def broken(self, reason: str, seq: int | None = None, **where: Any) -> None:
        if self.first_broken is None:
            self.ok = False
            self.first_broken = {"reason": reason, "seq": seq, **where}

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "head_seq": self.head_seq, "signed_at": self.signed_at,
                "rows_compared": self.rows_compared, "first_broken": self.first_broken}


@dataclass
class _State:
    last: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)


def parse_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                yield {"type": "unreadable", "line": number, "error": str(exc)}


def verify_feed(lines: Iterable[str], public_key_pem: bytes, state: _State | None = None) -> ChainCheck:
    """Check every link and the signed head; `state` (if given) collects each subject's last recorded state."""
    report = ChainCheck()
    key = load_public_key(public_key_pem)
    prev, expected, head = GENESIS, 1, None
    for item in parse_lines(lines):
        kind = item.get("type")
        if kind == "head":
            head = item
            continue
        if kind != "event" or head is not None:
            report.broken(f"line {item.get('line', '?')}: not an event line before the head", None)
            continue
        report.events += 1
        seq = item.get("seq")
        if seq != expected:
            report.broken(f"sequence jumps from {expected - 1} to {seq} (events removed or reordered)", seq)
        elif item.get("prev_hash") != prev:
            report.broken("prev_hash does not match the previous event's hash", seq, entity=item.get("entity"),
                          entity_id=item.get("entity_id"))
        elif event_hash(item) != item.get("hash"):
            report.broken("event content does not match its hash (edited)", seq, entity=item.get("entity"),
                          entity_id=item.get("entity_id"))
        prev, expected = str(item.get("hash")), int(seq or 0) + 1
        if state is not None:
            state.last[(str(item["entity"]), str(item["entity_id"]))] = (int(seq or 0), item.get("after"))
    if head is None:
        report.broken("no signed head line at the end of the feed (download cut short?)")
        return report
    report.head_seq, report.signed_at = int(head.get("seq", -1)), head.get("signed_at")
    if not signature_valid(key, head):
        report.broken("the head's signature does not verify with the registry's public key (re-signed without "
                      "the registry's key, or another registry's feed)", report.head_seq)
    elif report.head_seq != expected - 1 or head.get("hash") != prev:
        report.broken(f"the signed head is seq {report.head_seq} but the events end at seq {expected - 1} "
                      "(tail cut, or events rewritten after signing)", report.head_seq)
    return report


def verify_with_export(feed_lines: Iterable[str], public_key_pem: bytes, export_lines: Iterable[str],
                       entity: str = "registration") -> ChainCheck:
    """`verify_feed`, then every row of a current-state export against the state its chain last recorded."""
    state = _State()
    report = verify_feed(feed_lines, public_key_pem, state)
    for row in parse_lines(export_lines):
        audited = row.get("audited")
        if not isinstance(audited, dict):
            continue
        report.rows_compared += 1
        recorded = state.last.get((entity, str(audited.get("id"))))
        if recorded is None:
            report.broken(f"{entity} {audited.get('id')} has no history in the chain (inserted behind the app)",
                          None, entity=entity, entity_id=str(audited.get("id")))
        elif recorded[1] is None or json.loads(recorded[1]) != audited:
            report.broken(f"{entity} {audited.get('id')} differs from the state its last audit event (seq "
                          f"{recorded[0]}) recorded: changed behind the app", recorded[0], entity=entity,
                          entity_id=str(audited.get("id")))
    return report


def state_as_of(lines: Iterable[str], at: datetime, entity: str = "registration") -> dict[str, dict[str, Any]]:
    """Every subject of `entity` as the chain recorded it at instant `at` (deleted subjects left out)."""
    at = utc(at)
    rows: dict[str, dict[str, Any]] = {}
    for item in parse_lines(lines):
        if item.get("type") != "event" or item.get("entity") != entity:
            continue
        if utc(datetime.fromisoformat(item["ts"])) > at:
            continue  # events are in seq order, but a later seq may carry an earlier sighting time: keep scanning
        after = item.get("after")
        if after is None:
            rows.pop(str(item["entity_id"]), None)
        else:
            rows[str(item["entity_id"])] = json.loads(after)
    return rows
