"""The valuation methods' code. Which one applies on a date is data (data/methods.toml, see `catalog`).

rules-2023 (seed para 4): P from CoinMarketCap's 24 h market capitalisation Mcap (USD) and 24 h volume V, times K,
the market exchange rate of the last working day before the income date. The formula itself is an image missing
from every copy; both readings are computed and kept:
  - `literal`: P = Mcap / V x K, as the draft was reported [S2 bizmedia.kz, 20.04.2023]. Dimensionally a turnover
    ratio times a rate, not a price (BTC: ~20 x 450 = 9,000 tenge).
  - `price`: P = Mcap / circulating supply x K = CoinMarketCap's price x K, the only reading that yields a price
    and the one the 2024 rules spell out. The circulating supply is taken from the quote when imported, else
    derived as Mcap / close (flagged).
  Which reading is the value is a setting (`Conventions.reading_2023`, default `price`); the other is in the inputs.
  Assets pegged to a currency: peg x that currency's rate of the last working day before (para 6).

end_of_day_price (rules-2024 and rules-2026): CoinMarketCap's weighted-average value formed at the end of the day
(`Conventions.price_field`, default the day's close), set on working days; a non-working day takes the value of
the preceding working day. Converted at the National Bank's USD rate in force on that working day; pegged assets at
the rate of their currency in force on the date of receipt itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from money.assets import Asset
from money.market import MarketData
from money.numbers import q
from money.valuation.base import VALUE_STEP, Valuation, text

DIFFERENCE_FLAG = Decimal("0.01")  # readings that differ by more than 1 % are flagged


@dataclass(frozen=True)
class McapVolume2023:
    id: str
    act: str

    def value(self, asset: Asset, day: date, data: MarketData) -> Valuation:
        cal = data.calendar
        k_day = cal.last_working_before(day)
        currency = asset.pegged_to or "USD"
        k_rate, k_feed = data.rate_set_on(currency, k_day)
        k = k_rate.per_unit
        inputs: dict[str, object] = {"K": text(k), "K_currency": currency, "K_working_day": k_day.isoformat(),
                                     "K_feed_date": k_feed.isoformat(), "K_description": text(k_rate.description),
                                     "K_quant": k_rate.quant, "conventions": data.conventions.as_dict()}
        if asset.pegged_to:
            return Valuation(asset.symbol, day, q(k, VALUE_STEP), self.id, self.act, "pegged", inputs,
                             (f"pegged to {currency}: 1 x K",))
        qt = data.quote_for(asset.symbol, day)
        flags: list[str] = []
        supply = qt.circulating_supply
        if supply is None:
            supply = qt.market_cap / qt.close
            flags.append("circulating supply derived as Mcap / close (not in the quote)")
        literal = qt.market_cap / qt.volume * k
        price = qt.market_cap / supply * k
        inputs.update({"Mcap": text(qt.market_cap), "V": text(qt.volume), "circulating_supply": text(supply),
                       "price_usd": text(qt.close), "cmc_utc_day": qt.utc_day.isoformat(),
                       "cmc_time_close": qt.time_close.isoformat(), "literal_kzt": text(q(literal, VALUE_STEP)),
                       "price_kzt": text(q(price, VALUE_STEP))})
        if price and abs(literal - price) / price > DIFFERENCE_FLAG:
            flags.append(f"the two readings of the 2023 formula differ: literal {q(literal)} vs price {q(price)} KZT")
        reading = data.conventions.reading_2023
        chosen = literal if reading == "literal" else price
        return Valuation(asset.symbol, day, q(chosen, VALUE_STEP), self.id, self.act, reading, inputs,
                         tuple(flags))


@dataclass(frozen=True)
class EndOfDayPrice:
    id: str
    act: str

    def value(self, asset: Asset, day: date, data: MarketData) -> Valuation:
        working = data.calendar.last_working_on_or_before(day)
        flags: list[str] = []
        if working != day:
            flags.append(f"non-working day ({data.calendar.why_not_working(day)}): value of {working.isoformat()}")
        inputs: dict[str, object] = {"working_day": working.isoformat(), "conventions": data.conventions.as_dict()}
        if asset.pegged_to:
            rate, feed = data.rate_in_force(asset.pegged_to, day)
            inputs.update({"rate": text(rate.per_unit), "rate_currency": asset.pegged_to,
                           "rate_feed_date": feed.isoformat(), "rate_quant": rate.quant})
            return Valuation(asset.symbol, day, q(rate.per_unit, VALUE_STEP), self.id, self.act, "pegged", inputs,
                             (f"pegged to {asset.pegged_to}: the rate on the date of receipt",))
        qt = data.quote_for(asset.symbol, working)
        price = qt.price(data.conventions.price_field)
        rate, feed = data.rate_in_force("USD", working)
        inputs.update({"price_usd": text(price), "price_field": data.conventions.price_field.value,
                       "cmc_utc_day": qt.utc_day.isoformat(), "cmc_time_close": qt.time_close.isoformat(),
                       "Mcap": text(qt.market_cap), "V": text(qt.volume), "rate": text(rate.per_unit),
                       "rate_feed_date": feed.isoformat(), "rate_quant": rate.quant})
        return Valuation(asset.symbol, day, q(price * rate.per_unit, VALUE_STEP), self.id, self.act,
                         "end_of_day_price", inputs, tuple(flags))


KINDS: dict[str, type[McapVolume2023] | type[EndOfDayPrice]] = {
    "mcap_volume_2023": McapVolume2023, "end_of_day_price": EndOfDayPrice}
