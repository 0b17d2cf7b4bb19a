"""The planner's settings (`planner:` in the controller's settings, `KUAT_CONTROLLER_PLANNER__...`).

Figures that are law or market data (zone floors, the mining fee) are data with effective dates and a source. The
mining fee comes from the money side's rate table unless `mining_fee_kzt_per_kwh` overrides it, read in one place
(controller.planner.inputs.mining_fee_rate).
"""

from __future__ import annotations

from datetime import date, time

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneFloor(_Section):
    """The zone's floor from a date on: the highest generator price cap of the zone (Ministry of Energy order
    No. 514 of 14.12.2018, as amended), KZT per MWh, with where the figure comes from."""

    zone: str
    valid_from: date
    kzt_per_mwh: float = Field(gt=0)
    source: str = Field(min_length=1)


class PlannerSettings(_Section):
    enabled: bool = True
    pool_fee: float = Field(0.02, ge=0, lt=1)  # share of revenue the pool keeps (FPPS pools quote 1-3 %)
    # None: the money side's rate table (money/data/fee_rates.toml) at the month's average price paid; a number
    # overrides it (for example the flat 2 KZT/kWh reported as proposed in Dec 2023 [?])
    mining_fee_kzt_per_kwh: float | None = Field(None, ge=0)
    mining_fee_source: str = "setting planner.mining_fee_kzt_per_kwh"
    prepayment_kzt: float | None = Field(None, ge=0)  # the day's prepayment; None: bids are not limited by it
    max_steps: int = Field(5, ge=1, le=50)  # steps per zone-hour bid
    price_tick_kzt: float = Field(1.0, gt=0)
    lot_mwh: float = Field(0.001, gt=0)
    shade: float = Field(0.5, ge=0, le=1)  # price without clearing history: floor + shade x (value - floor)
    history_days: int = Field(30, ge=1)  # published results kept in the outlook (volumes, clearing prices)
    volume_quantile: float = Field(0.5, ge=0, le=1)  # of the past offered volumes of the hour: the expected one
    derate_days: int = Field(3, ge=1, le=31)  # days of minute rollups read for thermal derating
    min_available: float = Field(0.5, ge=0, le=1)  # hours a machine answered less than this are left out
    curve_points: int = Field(48, ge=4, le=400)  # allocator runs per distinct hour fleet
    curve_cache_s: float = Field(900.0, ge=0)  # real seconds a site's curves are reused (100k machines: minutes)
    session_close: time = time(10, 0)  # Astana time: the session ends, results follow
    zone_floors: list[ZoneFloor] = Field(default_factory=list)
