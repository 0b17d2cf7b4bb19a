"""Response models of /api/v1/planner (one family per resource; OpenAPI at /docs shows them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Detail(_Out):
    loc: str
    msg: str


class EconomicsOut(_Out):
    hashprice_usd_per_ph_day: float
    hashprice_source: str
    usd_kzt: float
    usd_source: str
    pool_fee: float
    mining_fee_kzt_per_kwh: float
    mining_fee_source: str
    kzt_per_ths_hour: float = Field(description="net revenue of 1 TH/s for one hour, after the pool fee")


class BlockOut(_Out):
    start_mwh: float
    mwh: float
    ths: float = Field(description="hash rate the block adds (hour average)")
    ths_per_w: float
    value_kzt_per_mwh: float = Field(description="net of pool fee and mining fee, per MWh used")


class CurveHourOut(_Out):
    hour: int = Field(description="Astana hour 1..24")
    start: datetime
    machines: int
    fleet_mwh: float = Field(description="what the fleet could draw in the hour at full")
    connection_mwh: float
    floor_mwh: float = Field(description="idle draws that cannot be switched off")
    blocks: list[BlockOut]


class CurveOut(_Out):
    site: str
    zone: str
    day: date
    economics: EconomicsOut
    hours: list[CurveHourOut]
    notes: list[str]


class StepOut(_Out):
    zone: str
    hour: int
    step: int
    price_kzt_per_mwh: float
    quantity_mwh: float
    value_kzt_per_mwh: float = Field(description="the least valuable MWh of the step: the price never exceeds it")
    avg_value_kzt_per_mwh: float
    ths: float
    win_probability: float
    price_rule: str
    sites: dict[str, float]


class HourLimitsOut(_Out):
    zone: str
    hour: int
    fleet_mwh: float
    connection_mwh: float
    above_floor_mwh: float
    volume_mwh: float | None
    bid_mwh: float
    binding: str


class FloorOut(_Out):
    kzt_per_mwh: float
    source: str
    history_days: int


class SummaryOut(_Out):
    bid_mwh: float
    prepayment_kzt: float
    expected_mwh: float
    expected_cost_kzt: float
    expected_revenue_kzt: float
    expected_fee_kzt: float
    expected_margin_kzt: float
    expected_avg_ths: float
    all_win_avg_ths: float
    constraint_costs_kzt: dict[str, float] = Field(description="expected margin gained if that constraint alone "
                                                               "were lifted")


class BidsOut(_Out):
    day: date
    phase: str
    zones: list[str]
    floors: dict[str, FloorOut]
    economics: EconomicsOut
    rules: dict[str, Any]
    steps: list[StepOut]
    hours: list[HourLimitsOut]
    summary: SummaryOut
    notes: list[str]


class BidSetOut(_Out):
    id: int
    day: date
    created_at: datetime
    actor: str
    summary: SummaryOut
    steps: list[StepOut]
    exports: dict[str, str]


class SeriesImportOut(_Out):
    import_id: int
    kind: str
    rows: int
    days: list[str]


class SeriesOut(_Out):
    day: date
    value: float
    source: str
    inputs: dict[str, float] | None
    actor: str
    received_at: datetime


class SiteScheduleOut(_Out):
    schedule_id: int | None
    kwh: float | None = None
    reference: str
    refused: list[Detail] | None = None


class ResultsImportOut(_Out):
    import_id: int
    day: date
    rows: int
    won_mwh: float
    bid_set_id: int | None
    sites: dict[str, SiteScheduleOut]


class ResultOut(_Out):
    day: date
    zone: str
    hour: int
    offered_mwh: float
    sold_mwh: float | None
    clearing_kzt_per_mwh: float | None
    won_mwh: float
    paid_kzt: float | None
    import_id: int


class LedgerHourOut(_Out):
    hour: int
    start: datetime
    bid_mwh: float
    bid_cost_kzt: float
    won_mwh: float | None = Field(description="None: no results imported for the day")
    won_cost_kzt: float | None
    used_mwh: float | None
    allotted_mwh: float | None


class LedgerOut(_Out):
    site: str
    day: date
    bid_set_id: int | None
    hours: list[LedgerHourOut]


class PlanViewOut(_Out):
    site: str
    day: date
    now: datetime
    phase: str = Field(description="bidding until the session closes (10:00 Astana the day before), then results")
    session_close: datetime
    curve: CurveOut | None
    bids: BidsOut | None
    bid_set_id: int | None
    results_published: bool
    ledger: LedgerOut | None
    errors: list[Detail]
