"""SQL tables of the money side (migrated with the controller's: controller/migrations, revision 0002).

Every imported record is one `money_input` row: its kind, its natural key (unique per kind), the Astana day and
licensee it concerns (for queries), the record itself as canonical JSON, and the import and line it came from.
One generic table keeps the storage as simple as the records (money/records.py, money/market.py) and lets every
figure be recomputed from exactly what was imported. `money_import` is the provenance of each file (name, sha256,
who, when); `money_chain` is the append-only hash chain of imports and published reports; `money_report` holds
each published report as the canonical JSON that was hashed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Column, Field, SQLModel


def utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class MoneyImport(SQLModel, table=True):
    __tablename__ = "money_import"
    __table_args__ = (UniqueConstraint("kind", "sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    file_name: str = Field(max_length=300)
    sha256: str = Field(max_length=64)
    size: int
    actor: str = Field(max_length=200)
    imported_at: datetime
    records: int
    chain_seq: int | None = None


class MoneyInput(SQLModel, table=True):
    __tablename__ = "money_input"
    __table_args__ = (UniqueConstraint("kind", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    key: str = Field(max_length=400)
    day: date = Field(index=True)  # the Astana date the record concerns (UTC day for CMC quotes)
    licensee: str | None = Field(default=None, max_length=12, index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON of the record
    import_id: int = Field(foreign_key="money_import.id", index=True)
    line: int


class MoneyChain(SQLModel, table=True):
    """One link: hash = sha256(canonical [seq, prev_hash, ts, actor, kind, subject, body])."""

    __tablename__ = "money_chain"
    seq: int = Field(primary_key=True)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    ts: datetime
    actor: str = Field(max_length=200)
    kind: str = Field(max_length=32)  # import / report
    subject: str = Field(max_length=300)
    body: str = Field(sa_column=Column(Text, nullable=False))


class MoneyChainHead(SQLModel, table=True):
    __tablename__ = "money_chain_head"
    id: int = Field(default=1, primary_key=True)
    seq: int
    hash: str = Field(max_length=64)


class MoneyReport(SQLModel, table=True):
    __tablename__ = "money_report"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # licensee-month / values-table
    licensee: str | None = Field(default=None, max_length=12, index=True)
    month: str = Field(max_length=7, index=True)
    sha256: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    published_at: datetime
    actor: str = Field(max_length=200)
    chain_seq: int


TABLES = [t.__table__ for t in (MoneyImport, MoneyInput, MoneyChain, MoneyChainHead, MoneyReport)]  # type: ignore[union-attr]
