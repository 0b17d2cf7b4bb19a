"""Stretches the ledger does not cover, said as such: the controller was down (or its loop stalled longer than
`MAX_GAP_S`), so nothing measured the site's energy between `start` and `end`. A gap is flagged, never filled with
made-up figures (docs/guarantees.md)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class QuotaLedgerGap(SQLModel, table=True):
    __tablename__ = "quota_ledger_gap"
    id: int | None = Field(default=None, primary_key=True)
    site: str = Field(max_length=64, index=True)
    start: datetime = Field(index=True)  # the end of the last period stored (or the last loop sample)
    end: datetime  # where the ledger starts again
    reason: str = Field(max_length=200)
    detected_at: datetime


TABLES = [QuotaLedgerGap.__table__]  # type: ignore[attr-defined]
