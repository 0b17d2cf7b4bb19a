"""Market inputs as records: National Bank exchange rates and CoinMarketCap daily quotes, with the lookups the
valuation rules need. Which feed date a rate belongs to, and which CMC UTC day an Astana date uses, are explicit
settings (`Conventions`), stored with every value computed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from money.calendar import Calendar
from money.errors import MissingInput


class NbkDate(StrEnum):
    """What the `<date>` of the National Bank's feed means.

    EFFECTIVE: the day the rate is in force; a rate set at the KASE session on working day W is the feed's W+1
    entry (the feed answers for Saturdays and holidays too: `nbk_rates_2026-08-01` is a Saturday).
    DETERMINED: the day the rate was set (no entry, or a repeat, on non-working days)."""

    EFFECTIVE = "effective"
    DETERMINED = "determined"


class CmcDay(StrEnum):
    """Which CoinMarketCap UTC day stands for Astana date D (00:00 UTC is 05:00 in Astana, 06:00 before 03.2024).

    SAME_DATE: the UTC day with the same date (it covers 05:00 D .. 05:00 D+1 Astana; its close is 5 h after the
    Astana day ends). PREVIOUS: UTC day D-1, the last day complete when the Astana day D begins."""

    SAME_DATE = "same_date"
    PREVIOUS = "previous"


class PriceField(StrEnum):
    CLOSE = "close"
    OPEN = "open"
    HIGH = "high"
    LOW = "low"


@dataclass(frozen=True)
class Conventions:
    nbk_date: NbkDate = NbkDate.EFFECTIVE
    cmc_day: CmcDay = CmcDay.SAME_DATE
    price_field: PriceField = PriceField.CLOSE  # 2024/2026: CMC's value formed at the end of the day = close
    reading_2023: str = "price"  # which reading of the missing 2023 formula is the value (the other is kept)

    def as_dict(self) -> dict[str, str]:
        return {"nbk_date": self.nbk_date.value, "cmc_day": self.cmc_day.value,
                "price_field": self.price_field.value, "reading_2023": self.reading_2023}


@dataclass(frozen=True)
class FxRate:
    """One `<item>` of the National Bank's feed: tenge per `quant` units of `currency`, for the feed's date."""

    currency: str
    day: date
    description: Decimal  # tenge per `quant` units, as published
    quant: int

    @property
    def per_unit(self) -> Decimal:
        return self.description / self.quant


@dataclass(frozen=True)
class Quote:
    """One CoinMarketCap day (UTC) of one asset, in USD, as returned by /v2/cryptocurrency/ohlcv/historical."""

    asset: str
    utc_day: date
    time_open: datetime
    time_close: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    market_cap: Decimal
    circulating_supply: Decimal | None = None  # not in the OHLCV reply; from /quotes/historical when imported

    def price(self, which: PriceField) -> Decimal:
        value: Decimal = getattr(self, which.value)
        return value


@dataclass
class MarketData:
    """What the methods read: the calendar, rates, quotes (lookups raise MissingInput naming what is absent)."""

    calendar: Calendar
    rates: dict[tuple[str, date], FxRate] = field(default_factory=dict)
    quotes: dict[tuple[str, date], Quote] = field(default_factory=dict)
    conventions: Conventions = field(default_factory=Conventions)

    def add_rates(self, rates: list[FxRate]) -> None:
        for r in rates:
            self.rates[(r.currency, r.day)] = r

    def add_quotes(self, quotes: list[Quote]) -> None:
        for qt in quotes:
            self.quotes[(qt.asset, qt.utc_day)] = qt

    def _rate(self, currency: str, feed_day: date, why: str) -> FxRate:
        found = self.rates.get((currency, feed_day))
        if found is None:
            raise MissingInput(f"National Bank {currency} rate dated {feed_day.isoformat()} ({why})")
        return found

    def rate_set_on(self, currency: str, working_day: date) -> tuple[FxRate, date]:
        """The rate determined on `working_day`, and the feed date it is found under."""
        feed_day = working_day + timedelta(days=1) if self.conventions.nbk_date is NbkDate.EFFECTIVE else working_day
        return self._rate(currency, feed_day, f"set on {working_day.isoformat()}"), feed_day

    def rate_in_force(self, currency: str, day: date) -> tuple[FxRate, date]:
        """The rate in force on `day` (2024 rules: 'the National Bank rate on the date'), and its feed date."""
        effective = self.conventions.nbk_date is NbkDate.EFFECTIVE
        feed_day = day if effective else self.calendar.last_working_before(day)
        return self._rate(currency, feed_day, f"in force on {day.isoformat()}"), feed_day

    def quote_for(self, asset: str, day: date) -> Quote:
        utc_day = day if self.conventions.cmc_day is CmcDay.SAME_DATE else day - timedelta(days=1)
        found = self.quotes.get((asset, utc_day))
        if found is None:
            raise MissingInput(f"CoinMarketCap {asset} quote of UTC day {utc_day.isoformat()} "
                               f"(for {day.isoformat()})")
        return found
