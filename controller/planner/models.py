"""SQL tables of the planner: imported series (hashprice, USD rate), published auction results with their imports,
the bid sets exported for submission, and what each site was awarded.

Every row carries its provenance like the quota side's inputs: `actor` (the API key's role:name), `source` (what the
figure came from: a file name, "luxor-index", "nbk", "network: difficulty ..."), `received_at` (kuat.clock). A newer
import of the same day (and zone) supersedes the older one (`replaced_by`), which is kept. Migrated with the
controller's other tables (controller/migrations, revision 0003_planner).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class PlannerSeries(SQLModel, table=True):
    """One day's value of a series: `hashprice` (USD per PH/s per day) or `usd_kzt` (tenge per dollar)."""

    __tablename__ = "planner_series"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, index=True)
    day: date = Field(index=True)
    value: float
    source: str = Field(max_length=200)
    inputs_json: str | None = None  # a computed hashprice: difficulty, subsidy, fees, price
    replaced_by: int | None = None
    actor: str = Field(max_length=200)
    received_at: datetime


class PlannerImport(SQLModel, table=True):
    """One accepted file or document: what it was, how many rows, a digest of its bytes, what it changed."""

    __tablename__ = "planner_import"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # results / hashprice / usd_kzt
    day: date | None = Field(default=None, index=True)
    filename: str | None = Field(default=None, max_length=200)
    sha256: str = Field(max_length=64)
    rows: int
    outcome_json: str = "{}"  # results: the schedules pushed per site, or why a push was refused
    actor: str = Field(max_length=200)
    source: str = Field(max_length=16)  # api / csv
    received_at: datetime


class PlannerResult(SQLModel, table=True):
    """One published zone-hour: the system operator's volume, what miners bought, the lowest accepted price, and
    what this licensee won (and paid)."""

    __tablename__ = "planner_result"
    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(index=True)
    day: date = Field(index=True)
    zone: str = Field(max_length=64)
    hour: int
    offered_mwh: float
    sold_mwh: float | None = None
    clearing_kzt_per_mwh: float | None = None
    won_mwh: float
    paid_kzt: float | None = None
    replaced_by: int | None = None  # the import that superseded this day and zone


class PlannerBidSet(SQLModel, table=True):
    """Bids frozen for submission: every step, the inputs they were made from and their summary."""

    __tablename__ = "planner_bid_set"
    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    steps_json: str
    summary_json: str
    inputs_json: str  # economics with sources, rules, floors
    actor: str = Field(max_length=200)
    created_at: datetime


class PlannerAward(SQLModel, table=True):
    """What one site got of a zone-hour's award (planner.award.split_award), and the schedule it went into."""

    __tablename__ = "planner_award"
    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(index=True)
    bid_set_id: int | None = None
    day: date = Field(index=True)
    site: str = Field(max_length=64, index=True)
    zone: str = Field(max_length=64)
    hour: int
    mwh: float
    cost_kzt: float
    note: str = Field(default="", max_length=200)
    schedule_id: int | None = None


TABLES = [t.__table__ for t in (  # type: ignore[union-attr]
    PlannerSeries, PlannerImport, PlannerResult, PlannerBidSet, PlannerAward,
)]
