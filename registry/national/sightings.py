"""Sightings from DPCs: the last heartbeat of every machine per DPC, duplicates across DPCs, violation episodes.

Heartbeats are upserted without the audit head's lock (many DPCs submit at once). Only when a batch opens, extends
or closes an episode does it take the lock, *before* touching any episode row (so it never waits for the lock while
holding rows the sweep needs): episodes and their feed notices are written in commit order like every other item.

An episode of a kind stays open while sightings keep showing the machine hashing without that right; the first
sighting that shows it stopped (sleeping, offline) or with the right closes it at that instant. It is never deleted
or "resolved" after the fact: its start, end, duration, energy and peak power remain evidence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col

from registry import audit
from registry.contract.v1 import RegistrationStatus, Sighting, SightingBatch, SightingConflict, SightingReceipt
from registry.models import AccreditedPool, Dpc, Licensee
from registry.national import feed
from registry.national.models import Allowance, Episode, EpisodeKind, Heartbeat, Registration
from registry.national.rules import AccreditedEndpoints, LicenceFacts, MachineFacts, missing_rights
from serverkit.timeutil import astana_date, utc

if TYPE_CHECKING:
    from registry.national.service import NationalRegistry


def identity_of(s: Sighting) -> str | None:
    if s.serial:
        return s.serial
    if s.mac:
        return f"mac:{s.mac.lower()}"
    if s.placement and s.placement.ip:
        return f"ip:{s.placement.gateway or '-'}/{s.placement.ip}"
    return None


@dataclass
class _Context:
    dpc: Dpc
    regs: dict[str, Any]  # serial -> (serial, dpc_id, status, owner_id) rows
    licences: dict[int, LicenceFacts]
    allowances: dict[str, list[Allowance]]
    pools: list[tuple[list[str], date, date, bool]]
    conflicts: dict[str, SightingConflict]
    dpc_codes: dict[int, str]
    _accredited: dict[date, AccreditedEndpoints]

    def accredited(self, day: date) -> AccreditedEndpoints:
        if day not in self._accredited:
            self._accredited[day] = AccreditedEndpoints.on(day, self.pools)
        return self._accredited[day]

    def facts(self, s: Sighting) -> MachineFacts:
        reg = self.regs.get(s.serial) if s.serial else None
        if reg is None:
            status = "unknown"
        elif reg.dpc_id != self.dpc.id:
            status = RegistrationStatus.MOVED.value if reg.status in ("included", "suspended") else "elsewhere"
        else:
            status = reg.status
        running = any(a.revoked_at is None and utc(a.starts_at) <= utc(s.seen_at) < utc(a.ends_at)
                      for a in self.allowances.get(s.serial or "", []))
        owner = reg.owner_id if reg is not None else None
        return MachineFacts(serial=s.serial, included_here=status == RegistrationStatus.INCLUDED.value,
                            status_here=status, allowance_running=running,
                            licence=self.licences.get(owner) if owner is not None else None,
                            pools=tuple(p.strip() for p in s.pools if p.strip()))


def _load(session: Session, dpc: Dpc, latest: dict[str, Sighting], fresh_for: timedelta) -> _Context:
    serials = {s.serial for s in latest.values() if s.serial}
    regs = {r.serial: r for r in session.execute(
        select(col(Registration.serial), col(Registration.dpc_id), col(Registration.status),
               col(Registration.owner_id)).where(col(Registration.serial).in_(serials))).all()} if serials else {}
    owners = {r.owner_id for r in regs.values()}
    licences = {lic.id: LicenceFacts(lic.status, lic.valid_from, lic.valid_to) for lic in session.execute(
        select(Licensee).where(col(Licensee.id).in_(owners))).scalars() if lic.id is not None} if owners else {}
    allowances: dict[str, list[Allowance]] = {}
    if serials:
        for a in session.execute(select(Allowance).where(col(Allowance.serial).in_(serials),
                                                         col(Allowance.dpc_id) == dpc.id)).scalars():
            allowances.setdefault(a.serial, []).append(a)
    pools = [(list(p.endpoints), p.valid_from, p.valid_to, False) for p in session.execute(select(AccreditedPool))
             .scalars()]
    ctx = _Context(dpc, regs, licences, allowances, pools, {}, {}, {})
    ctx.conflicts = _duplicates(session, ctx, latest, fresh_for)
    return ctx


def _duplicates(session: Session, ctx: _Context, latest: dict[str, Sighting],
                fresh_for: timedelta) -> dict[str, SightingConflict]:
    """Identities of this batch that another DPC reported within `fresh_for` (by serial or by MAC)."""
    serials = {s.serial: ident for ident, s in latest.items() if s.serial}
    macs = {s.mac.lower(): ident for ident, s in latest.items() if s.mac}
    if not serials and not macs:
        return {}
    since = min(utc(s.seen_at) for s in latest.values()) - fresh_for
    clauses = []
    if serials:
        clauses.append(col(Heartbeat.serial).in_(serials))
    if macs:
        clauses.append(col(Heartbeat.mac).in_(macs))
    stmt = select(col(Heartbeat.serial), col(Heartbeat.mac), col(Heartbeat.dpc_id)).where(
        col(Heartbeat.dpc_id) != ctx.dpc.id, col(Heartbeat.seen_at) >= since, or_(*clauses))
    found: dict[str, SightingConflict] = {}
    hits = session.execute(stmt).all()
    if hits:
        ctx.dpc_codes = {int(i): c or n for i, c, n in session.execute(
            select(col(Dpc.id), col(Dpc.code), col(Dpc.name)).where(col(Dpc.id).in_({h[2] for h in hits}))).all()}
    for serial, mac, other in hits:
        ident = serials.get(serial) if serial else None
        ident = ident or (macs.get(mac) if mac else None)
        if ident is not None and ident not in found:
            s = latest[ident]
            found[ident] = SightingConflict(serial=s.serial, mac=s.mac, other_dpc=ctx.dpc_codes.get(other, str(other)))
    return found


def _upsert_heartbeats(session: Session, dpc_id: int, site: str, latest: dict[str, Sighting], actor: str) -> None:
    rows: list[dict[str, Any]] = []
    for ident, s in latest.items():
        at = utc(s.seen_at)
        rows.append({"dpc_id": dpc_id, "identity": ident, "serial": s.serial, "mac": s.mac.lower() if s.mac else None,
                     "site": site, "hashing": s.hashing, "state": s.state, "power_w": s.power_w,
                     "hashrate_ths": s.hashrate_ths, "pools": list(s.pools),
                     "placement": s.placement.model_dump(exclude_none=True) if s.placement else {},
                     "make": s.make, "model": s.model, "firmware": s.firmware, "first_seen_at": at, "seen_at": at,
                     "reported_by": actor})
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        _upsert_postgres(session, rows)
        return
    dialect = sqlite
    stmt = dialect.insert(Heartbeat.__table__)  # type: ignore[attr-defined]
    keep = ("site", "hashing", "state", "power_w", "hashrate_ths", "pools", "placement", "make", "model", "firmware",
            "seen_at", "serial", "mac", "reported_by")
    stmt = stmt.on_conflict_do_update(index_elements=["dpc_id", "identity"],
                                      set_={k: stmt.excluded[k] for k in keep},
                                      where=Heartbeat.__table__.c.seen_at <= stmt.excluded.seen_at)  # type: ignore[attr-defined]
    session.execute(stmt, rows)


HB_COLUMNS = ("dpc_id", "identity", "serial", "mac", "site", "hashing", "state", "power_w", "hashrate_ths", "pools",
              "placement", "make", "model", "firmware", "first_seen_at", "seen_at", "reported_by")
HB_UPDATE = [c for c in HB_COLUMNS if c not in ("dpc_id", "identity", "first_seen_at")]


def _upsert_postgres(session: Session, rows: list[dict[str, Any]]) -> None:
    """One INSERT .. VALUES (..), (..) ON CONFLICT per batch (psycopg2's executemany would be a round trip a row)."""
    from psycopg2.extras import execute_values

    sql = (f"INSERT INTO heartbeat ({', '.join(HB_COLUMNS)}) VALUES %s ON CONFLICT (dpc_id, identity) DO UPDATE SET "
           + ", ".join(f"{c} = EXCLUDED.{c}" for c in HB_UPDATE) + " WHERE heartbeat.seen_at <= EXCLUDED.seen_at")
    values = [tuple(json.dumps(r[c]) if c in ("pools", "placement") else r[c] for c in HB_COLUMNS) for r in rows]
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        execute_values(cursor, sql, values, page_size=1000)
    finally:
        cursor.close()


def record(reg: NationalRegistry, session: Session, dpc: Dpc, batch: SightingBatch, actor: str) -> SightingReceipt:
    latest: dict[str, Sighting] = {}
    for s in batch.sightings:
        ident = identity_of(s)
        if ident is not None and (ident not in latest or utc(latest[ident].seen_at) <= utc(s.seen_at)):
            latest[ident] = s
    assert dpc.id is not None
    ctx = _load(session, dpc, latest, reg.fresh_for)
    _upsert_heartbeats(session, dpc.id, batch.site, latest, actor)
    found = {ident: _found(ctx, ident, s) for ident, s in latest.items()}
    _episodes(reg, session, ctx, latest, found, actor)
    unknown = sorted(s.serial for s in latest.values() if s.serial and s.serial not in ctx.regs)
    return SightingReceipt(accepted=len(latest), unknown=unknown[:1000], conflicts=list(ctx.conflicts.values()))


def _found(ctx: _Context, ident: str, s: Sighting) -> dict[EpisodeKind, str]:
    kinds: dict[EpisodeKind, str] = {}
    if s.hashing:
        day = astana_date(s.seen_at)
        kinds = missing_rights(ctx.facts(s), day, ctx.accredited(day))
    if ident in ctx.conflicts:
        kinds[EpisodeKind.DUPLICATE] = f"also reported by DPC {ctx.conflicts[ident].other_dpc}"
    return kinds


def _episodes(reg: NationalRegistry, session: Session, ctx: _Context, latest: dict[str, Sighting],
              found: dict[str, dict[EpisodeKind, str]], actor: str) -> None:
    idents = list(latest)
    open_q = select(col(Episode.identity)).where(col(Episode.dpc_id) == ctx.dpc.id, col(Episode.ended_at).is_(None),
                                            col(Episode.identity).in_(idents)).limit(1)
    if not any(found.values()) and session.execute(open_q).first() is None:
        return
    audit.lock_head(session)  # before any episode row: see the module docstring
    open_eps: dict[tuple[str, str], Episode] = {(e.identity, e.kind): e for e in session.execute(
        select(Episode).where(col(Episode.dpc_id) == ctx.dpc.id, col(Episode.ended_at).is_(None),
                              col(Episode.identity).in_(idents))).scalars()}
    for ident, s in latest.items():
        at = utc(s.seen_at)
        kinds = found[ident]
        for (ep_ident, kind), ep in list(open_eps.items()):
            if ep_ident == ident and EpisodeKind(kind) not in kinds and at >= utc(ep.last_hashing_at):
                close(reg, session, ep, at, actor)
        for kind, detail in kinds.items():
            running = open_eps.get((ident, kind.value))
            if running is None:
                _open(reg, session, ctx, ident, s, kind, detail, actor)
            else:
                _extend(running, s)


def _open(reg: NationalRegistry, session: Session, ctx: _Context, ident: str, s: Sighting, kind: EpisodeKind,
          detail: str, actor: str) -> None:
    at = utc(s.seen_at)
    conflict = ctx.conflicts.get(ident)
    other = next((i for i, c in ctx.dpc_codes.items() if conflict and c == conflict.other_dpc), None)
    ep = Episode(kind=kind.value, dpc_id=ctx.dpc.id, identity=ident, serial=s.serial,  # type: ignore[arg-type]
                 mac=s.mac.lower() if s.mac else None, detail=detail, started_at=at, last_hashing_at=at,
                 max_power_w=s.power_w, other_dpc_id=other if kind == EpisodeKind.DUPLICATE else None)
    session.add(ep)
    session.flush()
    audit.append(session, actor=actor, ts=at, entity="episode", entity_id=ep.id, action="opened", before=None,
                 after=audit.snapshot("episode", ep, full=True))
    feed.emit_episode(session, ep, reg.now())


def _extend(ep: Episode, s: Sighting) -> None:
    at = utc(s.seen_at)
    last = utc(ep.last_hashing_at)
    if at <= last:
        return
    ep.energy_wh += (s.power_w or 0.0) * (at - last).total_seconds() / 3600.0
    ep.last_hashing_at = at
    ep.duration_s = (at - utc(ep.started_at)).total_seconds()
    if s.power_w is not None:
        ep.max_power_w = max(ep.max_power_w or 0.0, s.power_w)


def close(reg: NationalRegistry, session: Session, ep: Episode, at: datetime, actor: str) -> None:
    """End an episode at `at` (the sighting that showed it stopped, or its last hashing sighting when unseen)."""
    before = audit.snapshot("episode", ep, full=True)
    ep.ended_at = at
    ep.duration_s = (at - utc(ep.started_at)).total_seconds()
    session.add(ep)
    session.flush()
    audit.append(session, actor=actor, ts=at, entity="episode", entity_id=ep.id, action="closed", before=before,
                 after=audit.snapshot("episode", ep, full=True))
    feed.emit_episode(session, ep, reg.now())


def close_unseen(reg: NationalRegistry, now: datetime) -> int:
    """Close open episodes whose machine no DPC has reported for `fresh_for`: at its last hashing sighting."""
    with reg.transaction() as s:
        stale = list(s.execute(select(Episode).where(col(Episode.ended_at).is_(None),
                                                     col(Episode.last_hashing_at) < utc(now) - reg.fresh_for))
                     .scalars())
        for ep in stale:
            close(reg, s, ep, utc(ep.last_hashing_at), "registry:unseen")
        return len(stale)


def open_episode_keys(session: Session, dpc_id: int) -> Sequence[tuple[str, str]]:
    return [(i, k) for i, k in session.execute(select(col(Episode.identity), col(Episode.kind)).where(
        col(Episode.dpc_id) == dpc_id, col(Episode.ended_at).is_(None))).all()]
