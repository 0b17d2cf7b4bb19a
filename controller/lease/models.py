"""The lease row: who is the active controller, since which takeover (epoch), until when by the database's clock.

Times are seconds since the epoch as the database's own clock tells them (PostgreSQL `clock_timestamp()`, SQLite
`julianday('now')`): two controller hosts whose clocks differ still agree on who holds the lease."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class ControllerLease(SQLModel, table=True):
    __tablename__ = "controller_lease"
    name: str = Field(primary_key=True, max_length=64)  # what is leased ("controller": one active per database)
    holder: str = Field(max_length=200)  # the holding process (host:pid:random), "" when never held
    epoch: int = 0  # grows by one on every takeover; every setpoint batch carries it
    expires_at_s: float = 0.0  # database clock
    renewed_at_s: float = 0.0
    acquired_at_s: float = 0.0


TABLES = [ControllerLease.__table__]  # type: ignore[attr-defined]
