"""Imports and stored inputs.

An import is idempotent and all-or-nothing: the same file (same kind and sha256) imported again returns the first
import; a file the parser refuses, or one with a record that contradicts a stored one, writes nothing and raises
`ImportRefused` naming the file, the line and the reason. A record already stored with the same values (the same
day in two overlapping files) is kept once. Each import's provenance (file name, sha256, size, who, when, how many
records and the sha256 of what was stored) is one link of the money chain, in the same transaction.
Corrections of stored records are not accepted (a later version may add them as chained supersessions).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controller.money import chain
from controller.money.codec import CODECS, from_body, to_body
from controller.money.models import MoneyImport, MoneyInput, utc
from kuat.canonical import canonical
from money.errors import ImportRefused
from money.importers import parse
from serverkit.db import SQLITE_BEGIN

log = logging.getLogger(__name__)
KEY_CHUNK = 500


@dataclass(frozen=True)
class ImportResult:
    id: int
    kind: str
    file_name: str
    sha256: str
    actor: str
    imported_at: datetime
    records: int  # new records stored by this import
    already_stored: int  # records of the file that were stored already, with the same values
    repeated: bool  # the same file was imported before: nothing new happened
    chain_seq: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "file_name": self.file_name, "sha256": self.sha256,
                "actor": self.actor, "imported_at": self.imported_at.isoformat(), "records": self.records,
                "already_stored": self.already_stored, "repeated": self.repeated, "chain_seq": self.chain_seq}


def _result(imp: MoneyImport, already: int, repeated: bool) -> ImportResult:
    assert imp.id is not None
    return ImportResult(imp.id, imp.kind, imp.file_name, imp.sha256, imp.actor, utc(imp.imported_at), imp.records,
                        already, repeated, imp.chain_seq)


class MoneyStore:
    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.now = now

    def _writing(self) -> Session:
        return Session(self.engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}))

    def find_import(self, kind: str, sha: str) -> MoneyImport | None:
        with Session(self.engine) as s:
            return s.exec(select(MoneyImport).where(col(MoneyImport.kind) == kind,
                                                    col(MoneyImport.sha256) == sha)).first()

    def import_file(self, kind: str, name: str, data: bytes, actor: str,
                    known_assets: set[str] | None = None) -> ImportResult:
        sha = hashlib.sha256(data).hexdigest()
        found = self.find_import(kind, sha)
        if found is not None:
            return _result(found, 0, True)
        records = parse(kind, name, data, known_assets)
        codec = CODECS[kind]
        rows = [(records.line_of(i) if hasattr(records, "line_of") else 0, codec.key(r), r, canonical(to_body(r)))
                for i, r in enumerate(records)]
        try:
            with self._writing() as s:
                stored = self._stored(s, kind, [k for _, k, _, _ in rows])
                new: list[MoneyInput] = []
                already = 0
                for line, key, record, body in rows:
                    old = stored.get(key)
                    if old is None:
                        new.append(MoneyInput(kind=kind, key=key, day=codec.day(record),
                                              licensee=codec.licensee(record), body=body, import_id=0, line=line))
                    elif old.body == body:
                        already += 1
                    else:
                        raise ImportRefused(name, line, f"{key.replace('|', ' ')} was imported by import "
                                            f"#{old.import_id} with other values ({_diff(old.body, body)}); "
                                            "corrections of stored records are not accepted")
                at = self.now()
                imp = MoneyImport(kind=kind, file_name=name[:300], sha256=sha, size=len(data), actor=actor,
                                  imported_at=at, records=len(new))
                s.add(imp)
                s.flush()
                assert imp.id is not None
                for row in new:
                    row.import_id = imp.id
                s.add_all(new)
                link = chain.append(s, ts=at, actor=actor, kind="import", subject=str(imp.id), body={
                    "kind": kind, "file_name": imp.file_name, "sha256": sha, "size": len(data), "actor": actor,
                    "imported_at": at.isoformat(), "records": len(new), "already_stored": already,
                    "records_sha256": chain.records_digest([r.body for r in new])})
                imp.chain_seq = link.seq
                s.add(imp)
                s.commit()
                s.refresh(imp)
        except IntegrityError:
            found = self.find_import(kind, sha)  # the same file imported at the same moment by someone else
            if found is None:
                raise
            return _result(found, 0, True)
        log.info("money import #%s %s %s by %s: %d new record(s), %d already stored (sha256 %s)", imp.id, kind,
                 name, actor, len(new), already, sha[:12])
        return _result(imp, already, False)

    @staticmethod
    def _stored(s: Session, kind: str, keys: list[str]) -> dict[str, MoneyInput]:
        out: dict[str, MoneyInput] = {}
        unique = sorted(set(keys))
        for i in range(0, len(unique), KEY_CHUNK):
            chunk = unique[i : i + KEY_CHUNK]
            for row in s.exec(select(MoneyInput).where(col(MoneyInput.kind) == kind, col(MoneyInput.key).in_(chunk))):
                out[row.key] = row
        return out

    # ---------------------------------------------------------------- reading
    def records(self, kinds: Iterable[str], start: date | None = None, end: date | None = None,
                licensee: str | None = None) -> list[Any]:
        """Stored records of `kinds` whose day is in [start, end] (inclusive), decoded."""
        kinds = list(kinds)
        query = select(MoneyInput).where(col(MoneyInput.kind).in_(kinds))
        if start is not None:
            query = query.where(col(MoneyInput.day) >= start)
        if end is not None:
            query = query.where(col(MoneyInput.day) <= end)
        if licensee is not None:
            query = query.where(col(MoneyInput.licensee) == licensee)
        query = query.order_by(col(MoneyInput.day), col(MoneyInput.key))
        with Session(self.engine) as s:
            rows = list(s.exec(query))
        return [from_body(CODECS[r.kind].cls, json.loads(r.body)) for r in rows]

    def imports(self, limit: int = 200) -> list[ImportResult]:
        with Session(self.engine) as s:
            rows = s.exec(select(MoneyImport).order_by(col(MoneyImport.id).desc()).limit(limit)).all()
        return [_result(r, 0, False) for r in rows]

    def licensees(self) -> list[str]:
        with Session(self.engine) as s:
            rows = s.exec(select(MoneyInput.licensee).where(col(MoneyInput.licensee).is_not(None)).distinct())
            return sorted(str(r) for r in rows if r)


def _diff(old: str, new: str) -> str:
    a, b = json.loads(old), json.loads(new)
    changed = [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "; ".join(changed[:3])
