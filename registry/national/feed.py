"""The per-DPC change feed: whole-state items (registry.contract.v1) appended under the audit head's lock.

Each function builds one contract item from the current rows and appends it for the DPCs it concerns. Because every
writer of the feed holds the audit head's row lock (the caller's transaction), seq numbers are given out in commit
order: a DPC that has read up to seq N never misses an item committed later with a smaller seq.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select
from sqlmodel import Session, col

from registry.contract.v1 import (
    AllowanceState,
    FeedPage,
    HscDecision,
    LicenceState,
    PoolAccreditation,
    RegistrationStatus,
    ViolationNotice,
)
from registry.models import AccreditedPool, Dpc, Licensee
from registry.national.models import Allowance, Episode, FeedEntry, Registration
from serverkit.timeutil import utc


def append(session: Session, dpc_ids: Iterable[int | None], at: datetime, item: object) -> None:
    data = item.model_dump(mode="json")  # type: ignore[attr-defined]
    for dpc_id in sorted(set(dpc_ids), key=lambda v: -1 if v is None else v):
        session.add(FeedEntry(dpc_id=dpc_id, at=utc(at), data=data))
    session.flush()


def hsc_decision(reg: Registration, owner_bin: str | None, dpc_code: str | None,
                 status: RegistrationStatus | None = None) -> HscDecision:
    return HscDecision(serial=reg.serial, mac=reg.mac, status=status or RegistrationStatus(reg.status),
                       dpc=dpc_code, registry_number=reg.registry_number, owner_bin=owner_bin, reason=reg.reason,
                       decided_at=reg.decided_at)


def emit_registration(session: Session, reg: Registration, at: datetime, old_dpc_id: int | None = None) -> None:
    """The machine's state to its DPC, and `moved` (naming the new DPC) to the DPC it left."""
    owner = session.get(Licensee, reg.owner_id)
    dpc = session.get(Dpc, reg.dpc_id)
    code = dpc.code if dpc else None
    append(session, [reg.dpc_id], at, hsc_decision(reg, owner.bin if owner else None, code))
    if old_dpc_id is not None and old_dpc_id != reg.dpc_id:
        moved = hsc_decision(reg, owner.bin if owner else None, code, RegistrationStatus.MOVED)
        moved.registry_number = None
        append(session, [old_dpc_id], at, moved)
    if owner is not None:
        append(session, [reg.dpc_id], at, licence_state(owner))


def licence_state(lic: Licensee) -> LicenceState:
    return LicenceState(bin=lic.bin, name=lic.name, licence_number=lic.licence_number, subtype=lic.subtype,
                        valid_from=lic.valid_from, valid_to=lic.valid_to, status=lic.status)


def licence_dpcs(session: Session, licensee_id: int) -> set[int]:
    """DPCs a licence concerns: those it operates, and those where it owns machines."""
    operated = session.execute(select(col(Dpc.id)).where(col(Dpc.operator_id) == licensee_id)).scalars()
    owned = session.execute(select(col(Registration.dpc_id)).distinct()
                            .where(col(Registration.owner_id) == licensee_id)).scalars()
    return {int(v) for v in (*operated, *owned) if v is not None}


def emit_licence(session: Session, lic: Licensee, at: datetime) -> None:
    assert lic.id is not None
    append(session, licence_dpcs(session, lic.id), at, licence_state(lic))


def emit_pool(session: Session, pool: AccreditedPool, at: datetime, withdrawn: bool = False) -> None:
    assert pool.id is not None
    append(session, [None], at, PoolAccreditation(
        id=pool.id, name=pool.name, endpoints=list(pool.endpoints), accreditation_number=pool.accreditation_number,
        valid_from=pool.valid_from, valid_to=pool.valid_to, withdrawn=withdrawn))


def emit_episode(session: Session, ep: Episode, at: datetime) -> None:
    assert ep.id is not None
    append(session, [ep.dpc_id], at, ViolationNotice(
        id=ep.id, violation=ep.kind, serial=ep.serial, mac=ep.mac, status="open" if ep.ended_at is None else "closed",
        opened_at=ep.started_at, closed_at=ep.ended_at, detail=ep.detail))


def emit_allowance(session: Session, allowance: Allowance, at: datetime) -> None:
    assert allowance.id is not None
    append(session, [allowance.dpc_id], at, AllowanceState(
        id=allowance.id, serial=allowance.serial, starts_at=allowance.starts_at, ends_at=allowance.ends_at,
        revoked_at=allowance.revoked_at))


def page(session: Session, dpc_id: int, after: int, limit: int) -> FeedPage:
    """Items for one DPC (its own and those for every DPC) after the cursor, oldest first."""
    stmt = (select(col(FeedEntry.seq), col(FeedEntry.at), col(FeedEntry.data))
            .where(col(FeedEntry.seq) > after, or_(col(FeedEntry.dpc_id) == dpc_id, col(FeedEntry.dpc_id).is_(None)))
            .order_by(col(FeedEntry.seq)).limit(limit + 1))
    rows = session.execute(stmt).all()
    head = session.execute(select(col(FeedEntry.seq)).order_by(col(FeedEntry.seq).desc()).limit(1)).scalar() or 0
    more = len(rows) > limit
    rows = rows[:limit]
    return FeedPage.model_validate({"items": [{"seq": seq, "at": at, "data": data} for seq, at, data in rows],
                                    "next_after": rows[-1][0] if rows else after, "has_more": more,
                                    "head_seq": int(head)})
