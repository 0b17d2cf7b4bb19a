"""Tables of the national registry (revision 0003): what one registry for many DPCs keeps beyond the reference rows.

A machine's national record (`Registration`) is separate from the site-era `hsc` table: it carries the lifecycle of
the law's public service (submitted, included, rejected, suspended, excluded; `moved` is what the old DPC sees), the
registry number the authority issued and the DPC it is included at. Applications are the requests that move it;
heartbeats are the last sighting of each machine per DPC (outside the audit chain: they change every minute);
violation episodes record when a machine hashed without the right to, for how long and at what power; the feed is
one whole-state item per change and DPC (`dpc_id` NULL = every DPC, e.g. the accredited pool list).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class EpisodeKind(StrEnum):
    UNREGISTERED = "unregistered_mining"  # hashing while not included at this DPC (any other status, or unknown)
    NO_SERIAL = "no_serial"  # hashing, and the firmware never told its serial: it can never be included
    UNACCREDITED_POOL = "unaccredited_pool"  # an endpoint no accredited, currently valid pool serves
    NO_POOLS = "no_pools"  # hashing with no pool reported: the pool check cannot pass
    LICENCE = "owner_licence"  # the owner's licence is not valid today (Astana date) or not active
    DUPLICATE = "duplicate_identity"  # the same serial or MAC seen at two DPCs within the freshness window


class Registration(SQLModel, table=True):
    """A machine in the national registry: one row per serial, wherever it is."""

    __tablename__ = "registration"
    __table_args__ = (Index("ix_registration_dpc_status", "dpc_id", "status"),
                      Index("ix_registration_changed", "changed_at", "id"))

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=100, unique=True)
    mac: str | None = Field(default=None, max_length=17, index=True)
    make: str | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=200)
    nominal_ths: float | None = None
    rated_w: float | None = None
    owner_id: int = Field(foreign_key="licensee.id", index=True)
    dpc_id: int = Field(foreign_key="dpc.id")
    placement: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=20)
    registry_number: str | None = Field(default=None, max_length=100, unique=True)
    reason: str | None = Field(default=None, max_length=500)
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=200)
    created_at: datetime
    changed_at: datetime


class Application(SQLModel, table=True):
    """An application by a DPC operator for a machine's owner: inclusion, a move in, or an exclusion."""

    __tablename__ = "application"
    __table_args__ = (Index("ix_application_status", "status", "id"), Index("ix_application_dpc", "dpc_id", "id"))

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    serial: str = Field(max_length=100, index=True)
    dpc_id: int = Field(foreign_key="dpc.id")
    owner_id: int = Field(foreign_key="licensee.id")
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str | None = Field(default=None, max_length=500)
    submitted_by: str = Field(max_length=200)
    submitted_at: datetime
    status: str = Field(max_length=20)
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=200)
    decision_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime
    changed_at: datetime


class Allowance(SQLModel, table=True):
    """A time-boxed commissioning allowance (burn-in before inclusion) for a named machine at one DPC."""

    __tablename__ = "allowance"
    __table_args__ = (Index("ix_allowance_serial", "serial", "dpc_id"),)

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=100)
    dpc_id: int = Field(foreign_key="dpc.id")
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(max_length=500)
    granted_by: str = Field(max_length=200)
    revoked_at: datetime | None = None
    created_at: datetime
    changed_at: datetime


class Heartbeat(SQLModel, table=True):
    """The last sighting of one machine at one DPC (identity = serial, else mac:..., else ip:site/ip)."""

    __tablename__ = "heartbeat"
    __table_args__ = (UniqueConstraint("dpc_id", "identity", name="uq_heartbeat_identity"),
                      Index("ix_heartbeat_serial", "serial", "seen_at"), Index("ix_heartbeat_mac", "mac", "seen_at"))

    id: int | None = Field(default=None, primary_key=True)
    dpc_id: int = Field(foreign_key="dpc.id")
    identity: str = Field(max_length=120)
    serial: str | None = Field(default=None, max_length=100)
    mac: str | None = Field(default=None, max_length=17)
    site: str = Field(max_length=100)
    hashing: bool
    state: str = Field(max_length=20)
    power_w: float | None = None
    hashrate_ths: float | None = None
    pools: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    placement: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    make: str | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=200)
    first_seen_at: datetime
    seen_at: datetime
    reported_by: str | None = Field(default=None, max_length=200)  # the key that sent the last sighting


class Episode(SQLModel, table=True):
    """A machine hashed without the right to, from `started_at` to `ended_at` (open while `ended_at` is NULL).

    Putting the machine to sleep closes an episode at the sighting that shows it stopped; it never erases it."""

    __tablename__ = "violation_episode"
    __table_args__ = (Index("ix_episode_open", "dpc_id", "identity", "kind", "ended_at"),
                      Index("ix_episode_started", "started_at", "id"))

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    dpc_id: int = Field(foreign_key="dpc.id")
    identity: str = Field(max_length=120)
    serial: str | None = Field(default=None, max_length=100)
    mac: str | None = Field(default=None, max_length=17)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    other_dpc_id: int | None = Field(default=None, foreign_key="dpc.id")
    started_at: datetime
    last_hashing_at: datetime
    ended_at: datetime | None = None
    duration_s: float = 0.0
    energy_wh: float = 0.0
    max_power_w: float | None = None


class FeedEntry(SQLModel, table=True):
    """One whole-state item of a DPC's change feed (`dpc_id` NULL: for every DPC). Written under the audit head's
    lock, so seq order is commit order and a reader never skips an item committed late."""

    __tablename__ = "feed_entry"
    __table_args__ = (Index("ix_feed_dpc_seq", "dpc_id", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    dpc_id: int | None = Field(default=None, foreign_key="dpc.id")
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# Columns that change while an episode runs: its open and close are audited, not every heartbeat.
NATIONAL_AUDIT_EXCLUDED: dict[str, frozenset[str]] = {
    "episode": frozenset({"last_hashing_at", "duration_s", "energy_wh", "max_power_w"}),
}
NATIONAL_AUDITED: dict[str, type[SQLModel]] = {
    "registration": Registration, "application": Application, "allowance": Allowance, "episode": Episode,
}
