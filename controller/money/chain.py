"""The money side's own tamper-evident history: an append-only hash chain of imports and published reports.

Same recipe as the registry's audit chain (kuat.canonical: canonical JSON, sha256), separate chain: the registry
is its own service. The head row is locked while appending (SELECT ... FOR UPDATE on PostgreSQL; SQLite
serialises writers), and `seq` is the primary key, so the chain cannot fork. `verify` recomputes every link, then
checks that every import's stored records and every published report still hash to what the chain recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from controller.money.models import MoneyChain, MoneyChainHead, MoneyImport, MoneyInput, MoneyReport, utc
from kuat.canonical import canonical, digest

GENESIS = "0" * 64


def link_hash(seq: int, prev_hash: str, ts: datetime, actor: str, kind: str, subject: str, body: str) -> str:
    return digest([seq, prev_hash, utc(ts).isoformat(), actor, kind, subject, body])


def append(session: Session, *, ts: datetime, actor: str, kind: str, subject: str, body: dict[str, Any]) -> MoneyChain:
    head = session.execute(select(MoneyChainHead).where(col(MoneyChainHead.id) == 1).with_for_update()
                           ).scalar_one_or_none()
    if head is None:
        head = MoneyChainHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    text = canonical(body)
    seq = head.seq + 1
    link = MoneyChain(seq=seq, prev_hash=head.hash, ts=utc(ts), actor=actor, kind=kind, subject=subject, body=text,
                      hash=link_hash(seq, head.hash, ts, actor, kind, subject, text))
    session.add(link)
    head.seq, head.hash = seq, link.hash
    session.add(head)
    session.flush()
    return link


def records_digest(bodies: list[str]) -> str:
    """sha256 over an import's stored records (canonical JSON bodies, in key order)."""
    return digest(sorted(bodies))


@dataclass
class Verification:
    ok: bool = True
    links: int = 0
    problems: list[str] = field(default_factory=list)

    def bad(self, what: str) -> None:
        self.ok = False
        if len(self.problems) < 100:
            self.problems.append(what)


def verify(session: Session) -> Verification:
    out = Verification()
    prev, expected = GENESIS, 1
    recorded: dict[str, dict[str, Any]] = {}
    for link in session.execute(select(MoneyChain).order_by(col(MoneyChain.seq))).scalars():
        out.links += 1
        if link.seq != expected:
            out.bad(f"sequence jumps from {expected - 1} to {link.seq} (links removed)")
        elif link.prev_hash != prev:
            out.bad(f"link {link.seq}: prev_hash does not match link {link.seq - 1}")
        elif link_hash(link.seq, link.prev_hash, link.ts, link.actor, link.kind, link.subject, link.body) != link.hash:
            out.bad(f"link {link.seq}: content does not match its hash (edited)")
        prev, expected = link.hash, link.seq + 1
        recorded[f"{link.kind}:{link.subject}"] = json.loads(link.body)
    head = session.get(MoneyChainHead, 1)
    if (head.seq if head else 0) != expected - 1 or (head.hash if head else GENESIS) != prev:
        out.bad(f"the chain ends at link {expected - 1} but its head says {head.seq if head else 0} (cut or edited)")
    for imp in session.execute(select(MoneyImport)).scalars():
        body = recorded.get(f"import:{imp.id}")
        if body is None:
            out.bad(f"import {imp.id} ({imp.file_name}) is not in the chain")
            continue
        if body.get("sha256") != imp.sha256:
            out.bad(f"import {imp.id}: file hash differs from the chain's")
    by_import: dict[int, list[str]] = {}
    for row in session.execute(select(MoneyInput)).scalars():
        by_import.setdefault(row.import_id, []).append(row.body)
    for key, body in recorded.items():
        if key.startswith("import:") and "records_sha256" in body:
            imp_id = int(key.split(":")[1])
            current = records_digest(by_import.get(imp_id, []))
            if current != body["records_sha256"]:
                out.bad(f"import {imp_id}: stored records differ from what was imported (changed behind the app)")
    for rep in session.execute(select(MoneyReport)).scalars():
        body = recorded.get(f"report:{rep.id}")
        if body is None or body.get("sha256") != rep.sha256 or digest(json.loads(rep.body)) != rep.sha256:
            out.bad(f"report {rep.id} ({rep.kind} {rep.licensee or ''} {rep.month}) differs from its chain link")
    return out
