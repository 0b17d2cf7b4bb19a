"""The validated records the importers produce and the computations read (beyond market data: market.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class Distribution:
    """One distribution by a pool to a miner (the fields of the pool's report to the tax authority)."""

    licensee: str  # IIN/BIN of the miner
    licence_number: str
    licence_date: date
    wallet: str
    day: date  # date of distribution (Astana)
    asset: str
    quantity: Decimal
    pool: str = ""
    reference: str = ""  # the pool's id of the payout; with the other fields, the record's natural key
    name: str = ""


@dataclass(frozen=True)
class Disposal:
    """A sale or other disposal of mined assets. `aifc_licence` set: through that AIFC-licensed exchange."""

    licensee: str
    day: date
    asset: str
    quantity: Decimal
    kind: str = "sale"  # sale / transfer / payment / other
    exchange: str = ""
    aifc_licence: str = ""
    account: str = ""
    price: Decimal | None = None  # per unit, in `currency`
    currency: str = ""
    reference: str = ""

    @property
    def via_aifc(self) -> bool:
        return bool(self.aifc_licence)


@dataclass(frozen=True)
class MeterReading:
    """Commercial meter: kWh in the hour starting at `hour` (UTC), at a connection point."""

    meter: str
    hour: datetime
    kwh: Decimal
    status: str = "ok"  # ok / estimated / faulty / missing


@dataclass(frozen=True)
class MeterFeed:
    """Which energy source a commercial meter (or feed) measures, for which site, from when."""

    meter: str
    site: str
    source: str  # grid / renewables / own_generation (controller.settings.EnergySource)
    valid_from: date
    valid_to: date | None = None


@dataclass(frozen=True)
class RewardPoint:
    """Network reward for a day: asset units per TH/s per day (a hashprice in units), or difficulty and block
    reward from which it is derived."""

    asset: str
    day: date
    units_per_ths_day: Decimal
    difficulty: Decimal | None = None
    block_reward: Decimal | None = None


@dataclass(frozen=True)
class PurchasePrice:
    """Average price of the electricity a licensee bought in a month (tenge/kWh, the fee scale's input)."""

    licensee: str
    year: int
    month: int
    price_kzt_per_kwh: Decimal
