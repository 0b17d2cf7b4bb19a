"""The controller's copy of the registry's decisions for its DPC, followed from the feed by cursor.

Every feed item is the whole current state of one subject (registry.contract.v1), so applying a page is an upsert
per subject (a replayed or older item is ignored by its `seq`) and the cursor moves in the same transaction: a crash
between two pages re-reads at most one page. `synced_at` is set when a read reached the feed's head: the rule
(quota.rights) trusts the mirror for the trust window from then, so an outage keeps what was decided working for
that long and no longer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from controller.registry_link.models import CommissioningAllowance, RegistryCursor, RegistryMirror, RegistryOutbox
from quota import rights as r
from registry.contract import v1 as c
from serverkit.db import SQLITE_BEGIN
from serverkit.timeutil import utc

DATA = TypeAdapter(c.FeedData)


def subject_of(data: c.HscDecision | c.LicenceState | c.PoolAccreditation | c.ViolationNotice | c.AllowanceState
               ) -> str:
    if isinstance(data, c.HscDecision):
        return data.serial
    if isinstance(data, c.LicenceState):
        return data.bin
    return str(data.id)


class MirrorStore:
    def __init__(self, engine: Engine, dpc: str, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self._write = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self.dpc = dpc
        self.now = now
        self.version = 0  # moves whenever the mirror (or a local allowance) changes: the power gate rebuilds then
        self._lock = threading.Lock()
        self._cached: tuple[int, r.Mirror] | None = None

    def cursor(self) -> RegistryCursor:
        with Session(self.engine) as s:
            row = s.get(RegistryCursor, self.dpc)
        if row is None:
            return RegistryCursor(dpc=self.dpc)
        if row.synced_at is not None:
            row.synced_at = utc(row.synced_at)  # SQLite hands back naive UTC
        return row

    def apply(self, page: c.FeedPage) -> int:
        """Apply one page and move the cursor; returns how many subjects changed."""
        changed = 0
        with Session(self._write) as s:
            newest: dict[tuple[str, str], c.FeedItem] = {}
            for item in page.items:
                key = (item.data.kind, subject_of(item.data))
                if key not in newest or newest[key].seq < item.seq:
                    newest[key] = item
            existing = self._rows(s, newest)
            for (kind, subject), item in newest.items():
                row = existing.get((kind, subject))
                if row is not None and row.seq >= item.seq:
                    continue
                if row is None:
                    row = RegistryMirror(dpc=self.dpc, kind=kind, subject=subject, seq=item.seq, data="", at=item.at)
                row.seq, row.at, row.data = item.seq, item.at, item.data.model_dump_json()
                s.add(row)
                changed += 1
            cursor = s.get(RegistryCursor, self.dpc) or RegistryCursor(dpc=self.dpc)
            cursor.after = max(cursor.after, page.next_after)
            cursor.head_seq = page.head_seq
            if not page.has_more:
                cursor.synced_at = self.now()
            cursor.last_error = None
            s.add(cursor)
            s.commit()
        if changed:
            self.touch()
        return changed

    def _rows(self, s: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RegistryMirror]:
        by_kind: dict[str, list[str]] = {}
        for kind, subject in keys:
            by_kind.setdefault(kind, []).append(subject)
        found: dict[tuple[str, str], RegistryMirror] = {}
        for kind, subjects in by_kind.items():
            for chunk in range(0, len(subjects), 500):
                stmt = select(RegistryMirror).where(col(RegistryMirror.dpc) == self.dpc,
                                                    col(RegistryMirror.kind) == kind,
                                                    col(RegistryMirror.subject).in_(subjects[chunk:chunk + 500]))
                found.update({(row.kind, row.subject): row for row in s.execute(stmt).scalars()})
        return found

    def failed(self, error: str) -> None:
        with Session(self._write) as s:
            cursor = s.get(RegistryCursor, self.dpc) or RegistryCursor(dpc=self.dpc)
            cursor.last_error = error[:500]
            s.add(cursor)
            s.commit()

    def touch(self) -> None:
        with self._lock:
            self.version += 1
            self._cached = None

    def items(self, kind: str | None = None) -> list[c.HscDecision | c.LicenceState | c.PoolAccreditation |
                                                     c.ViolationNotice | c.AllowanceState]:
        stmt = select(col(RegistryMirror.data)).where(col(RegistryMirror.dpc) == self.dpc)
        if kind is not None:
            stmt = stmt.where(col(RegistryMirror.kind) == kind)
        with Session(self.engine) as s:
            return [DATA.validate_json(text) for text in s.execute(stmt).scalars()]

    def load(self) -> tuple[int, r.Mirror]:
        """(version, the mirror as the rule reads it), rebuilt only after a change."""
        with self._lock:
            cached, version = self._cached, self.version
        if cached is not None and cached[0] == version:
            return cached
        mirror = self._build()
        with self._lock:
            if self.version == version:
                self._cached = (version, mirror)
        return version, mirror

    def _build(self) -> r.Mirror:
        decisions: dict[str, r.Decision] = {}
        licences: dict[str, r.Licence] = {}
        pools: list[r.Pool] = []
        feed_allowances: dict[int, c.AllowanceState] = {}
        for data in self.items():
            if isinstance(data, c.HscDecision):
                decisions[data.serial] = r.Decision(data.serial, data.status.value, data.dpc, data.owner_bin,
                                                    data.registry_number, data.reason)  # fmt: skip
            elif isinstance(data, c.LicenceState):
                licences[data.bin] = r.Licence(data.bin, data.licence_number, data.valid_from, data.valid_to,
                                               data.status == c.LicenceStatus.ACTIVE)  # fmt: skip
            elif isinstance(data, c.PoolAccreditation):
                pools.append(r.Pool(data.name, tuple(data.endpoints), data.valid_from, data.valid_to, data.withdrawn))
            elif isinstance(data, c.AllowanceState):
                feed_allowances[data.id] = data
        allowances = self._allowances(feed_allowances)
        return r.Mirror(self.dpc, decisions, licences, tuple(pools), allowances, self.cursor().synced_at)

    def _allowances(self, feed: dict[int, c.AllowanceState]) -> dict[str, list[r.Allowance]]:
        """Local grants (in force at once, also while the registry is down), with the registry's revocation when
        the feed shows one; grants the feed knows and this database does not (an earlier database) too."""
        out: dict[str, list[r.Allowance]] = {}
        refused = select(col(RegistryOutbox.idempotency_key)).where(col(RegistryOutbox.refused_status).is_not(None))
        with Session(self.engine) as s:
            local = list(s.execute(select(CommissioningAllowance).where(
                col(CommissioningAllowance.dpc) == self.dpc,
                col(CommissioningAllowance.outbox_key).not_in(refused))).scalars())  # refused by the registry: void
        known = set()
        for a in local:
            remote = feed.get(a.registry_id) if a.registry_id is not None else None
            known.add(a.registry_id)
            revoked = a.revoked_at or (remote.revoked_at if remote is not None else None)
            out.setdefault(a.serial, []).append(r.Allowance(a.serial, utc(a.starts_at), utc(a.ends_at), revoked))
        for allowance_id, state in feed.items():
            if allowance_id not in known:
                out.setdefault(state.serial, []).append(r.Allowance(state.serial, state.starts_at, state.ends_at,
                                                                    state.revoked_at))  # fmt: skip
        return out
