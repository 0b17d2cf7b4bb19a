"""Where every machine sits (hall, rack, slot) and what each rack's PDU feeds can carry: the rack view's data.

Placement comes from the gateway agents' config, carried by `MinerSample.placement` (an additive wire field). The
controller keeps the newest placement of every machine it has seen in `device_placement`, so the layout survives a
restart and a machine that went silent keeps its slot (shown offline). The table is written only when a placement
changes: the store remembers what it wrote and compares on each sync, so a sync of an unchanged fleet writes
nothing. Sync runs when the layout is read (the rack view polls it), not on the telemetry hot path.

Feed capacity (watts per PDU feed of a rack) is entered by an operator (PUT /api/v1/dashboard/racks/{rack}/feeds)
and kept in `rack_feed`. Both tables come from revision 0007_placement.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, delete, insert
from sqlmodel import Field, Session, SQLModel, col, select

from kuat.wire import v1


class DevicePlacement(SQLModel, table=True):
    """The newest known placement of one machine (one row per site and device id)."""

    __tablename__ = "device_placement"
    site: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(primary_key=True, max_length=128)
    hall: str | None = Field(default=None, max_length=64)
    rack: str | None = Field(default=None, max_length=64, index=True)
    slot: int | None = None
    updated_at: datetime


class RackFeed(SQLModel, table=True):
    """One PDU feed of a rack and the power it may carry (breaker rating x derating, as the site decides)."""

    __tablename__ = "rack_feed"
    site: str = Field(primary_key=True, max_length=64)
    rack: str = Field(primary_key=True, max_length=64)
    feed: str = Field(primary_key=True, max_length=32)
    capacity_w: float
    actor: str = Field(max_length=200)
    updated_at: datetime


TABLES = (DevicePlacement.__table__, RackFeed.__table__)  # type: ignore[attr-defined]

Spot = tuple[str | None, str | None, int | None]  # hall, rack, slot


@dataclass(frozen=True)
class Feed:
    name: str
    capacity_w: float


class PlacementStore:
    """The placement and rack-feed tables, with a cache of what was written (so unchanged syncs write nothing)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._written: dict[tuple[str, str], Spot] | None = None
        self._lock = threading.Lock()

    def _load(self, session: Session) -> dict[tuple[str, str], Spot]:
        rows = session.exec(select(DevicePlacement)).all()
        return {(r.site, r.device_id): (r.hall, r.rack, r.slot) for r in rows}

    def sync(self, seen: Iterable[tuple[str, str, v1.Placement]], now: datetime) -> int:
        """Store the placements of live machines that changed since the last sync; the number of rows written."""
        with self._lock, Session(self.engine) as session:
            written = self._cache(session)
            changed = {}
            for site, device_id, p in seen:
                spot: Spot = (p.hall, p.rack, p.slot)
                if written.get((site, device_id)) != spot:
                    changed[(site, device_id)] = spot
            if not changed:
                return 0
            moved = [{"s": site, "d": device_id} for site, device_id in changed if (site, device_id) in written]
            if moved:  # one DELETE and one INSERT per batch of rows, not a SELECT per machine (session.merge)
                one = delete(DevicePlacement).where(col(DevicePlacement.site) == bindparam("s"),
                                                    col(DevicePlacement.device_id) == bindparam("d"))  # fmt: skip
                session.connection().execute(one, moved)
            session.execute(insert(DevicePlacement), [
                {"site": site, "device_id": device_id, "hall": hall, "rack": rack, "slot": slot, "updated_at": now}
                for (site, device_id), (hall, rack, slot) in changed.items()])  # fmt: skip
            session.commit()
            written.update(changed)
            return len(changed)

    def _cache(self, session: Session) -> dict[tuple[str, str], Spot]:
        if self._written is None:
            self._written = self._load(session)
        return self._written

    def placements(self, site: str) -> dict[str, Spot]:
        """device id -> (hall, rack, slot) of every machine ever placed on `site` (from the cache of what this store
        read and wrote: one controller process writes the table)."""
        with self._lock, Session(self.engine) as session:
            return {d: spot for (s, d), spot in self._cache(session).items() if s == site}

    def feeds(self, site: str) -> dict[str, list[Feed]]:
        """rack -> its feeds, by name."""
        with Session(self.engine) as session:
            rows = session.exec(select(RackFeed).where(col(RackFeed.site) == site).order_by(col(RackFeed.feed))).all()
        out: dict[str, list[Feed]] = {}
        for r in rows:
            out.setdefault(r.rack, []).append(Feed(r.feed, r.capacity_w))
        return out

    def set_feeds(self, site: str, rack: str, feeds: list[Feed], actor: str, now: datetime) -> list[Feed]:
        """Replace the feeds of one rack (an empty list removes them)."""
        with Session(self.engine) as session:
            session.execute(delete(RackFeed).where(col(RackFeed.site) == site, col(RackFeed.rack) == rack))
            for f in feeds:
                session.add(RackFeed(site=site, rack=rack, feed=f.name, capacity_w=f.capacity_w, actor=actor,
                                     updated_at=now))  # fmt: skip
            session.commit()
        return feeds
