"""Values by the method in force, computed by hand on small data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from money.assets import published, requested
from money.calendar import kazakhstan
from money.errors import MissingInput
from money.market import CmcDay, Conventions, FxRate, MarketData, NbkDate, Quote
from money.valuation import methods_in_force, value_of
from money.valuation.table import build_table


def quote(asset: str, day: date, close: str, mcap: str, volume: str, supply: str | None = None) -> Quote:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Quote(asset, day, start, start + timedelta(days=1) - timedelta(milliseconds=1), D(close), D(close),
                 D(close), D(close), D(volume), D(mcap), D(supply) if supply else None)


def data(conventions: Conventions | None = None) -> MarketData:
    m = MarketData(kazakhstan(), conventions=conventions or Conventions())
    m.add_rates([FxRate("USD", date(2023, 7, 6), D("450.25"), 1),  # set on 5 July, in force 6 July
                 FxRate("USD", date(2023, 7, 5), D("449.00"), 1),
                 FxRate("USD", date(2024, 5, 10), D("442.5"), 1),
                 FxRate("USD", date(2024, 5, 11), D("443.1"), 1)])
    m.add_quotes([quote("BTC", date(2023, 7, 10), "30000", "582000000000", "14550000000"),
                  quote("BTC", date(2024, 5, 10), "60000.5", "1181000000000", "25000000000")])
    return m


def test_methods_by_effective_date() -> None:
    cat = methods_in_force()
    assert cat.method_on(date(2023, 5, 31)).id == "rules-2023"
    assert cat.method_on(date(2024, 4, 14)).id == "rules-2023"
    assert cat.method_on(date(2024, 4, 15)).id == "rules-2024"
    assert cat.method_on(date(2025, 12, 31)).id == "rules-2024"
    assert cat.method_on(date(2026, 1, 1)).id == "rules-2026"
    with pytest.raises(MissingInput):
        cat.method_on(date(2023, 5, 30))


def test_2023_both_readings_and_every_input_kept() -> None:
    btc = published().get("BTC")
    v = value_of(btc, date(2023, 7, 10), data())
    # K: last working day before Mon 10.07.2023 is Wed 05.07 (7th moved off, 6th Capital Day); its rate is the
    # feed's 06.07 entry (nbk_date = effective): 450.25
    assert (v.inputs["K"], v.inputs["K_working_day"], v.inputs["K_feed_date"]) == ("450.25", "2023-07-05",
                                                                                  "2023-07-06")
    # literal: Mcap / V x K = 582e9 / 14.55e9 x 450.25 = 40 x 450.25 = 18,010
    assert v.inputs["literal_kzt"] == "18010.0000"
    # price: Mcap / supply x K, supply = Mcap / close = 19,400,000 -> 30,000 x 450.25 = 13,507,500
    assert v.inputs["circulating_supply"] == "19400000"
    assert v.value_kzt == D("13507500.0000") and v.reading == "price" and v.method == "rules-2023"
    assert v.inputs["cmc_utc_day"] == "2023-07-10"
    assert any("differ" in f for f in v.flags) and any("derived" in f for f in v.flags)
    literal = value_of(btc, date(2023, 7, 10), data(Conventions(reading_2023="literal")))
    assert literal.value_kzt == D("18010.0000") and literal.reading == "literal"


def test_2023_rate_under_the_determined_reading_of_the_feed_date() -> None:
    v = value_of(published().get("BTC"), date(2023, 7, 10), data(Conventions(nbk_date=NbkDate.DETERMINED)))
    assert v.inputs["K_feed_date"] == "2023-07-05" and v.value_kzt == D("30000") * D("449.00")


def test_2024_non_working_day_carries_the_previous_working_day() -> None:
    # Sat 11.05.2024 -> Fri 10.05: close 60,000.5 USD x 442.5 = 26,550,221.25 KZT
    v = value_of(published().get("BTC"), date(2024, 5, 11), data())
    assert v.value_kzt == D("26550221.2500") and v.method == "rules-2024"
    assert v.inputs["working_day"] == "2024-05-10" and v.inputs["rate_feed_date"] == "2024-05-10"
    assert v.flags == ("non-working day (Saturday): value of 2024-05-10",)


def test_pegged_asset_uses_the_rate_on_the_date_of_receipt() -> None:
    usdt = requested("USDT", "Tether", date(2024, 5, 1), pegged_to="USD")
    assert usdt.published_from == date(2024, 5, 2) and usdt.published_to == date(2025, 5, 1)
    v = value_of(usdt, date(2024, 5, 11), data())
    assert v.value_kzt == D("443.1000") and v.reading == "pegged"


def test_cmc_day_convention_is_stored() -> None:
    m = data(Conventions(cmc_day=CmcDay.PREVIOUS))
    with pytest.raises(MissingInput, match="UTC day 2024-05-09"):
        value_of(published().get("BTC"), date(2024, 5, 11), m)


def test_month_table_src_authority_difference_and_readiness() -> None:
    m = MarketData(kazakhstan())
    m.add_rates([FxRate("USD", date(2026, 7, d), D("470"), 1) for d in range(1, 32)])
    m.add_quotes([quote("BTC", date(2026, 7, d), "100", "1", "1") for d in range(1, 32)])
    btc_only = published().with_requests([])
    from money.assets import AssetList
    assets = AssetList((btc_only.get("BTC"),))
    table = build_table(2026, 7, assets, m, {("BTC", date(2026, 7, 31)): D("47100")})
    assert table.complete and len(table.cells) == 31
    last = table.value("BTC", date(2026, 7, 31))
    assert last is not None and last.value is not None
    # computed 100 x 470 = 47,000; the SRC published 47,100: the SRC's is the value, the difference -100 (-0.2123 %)
    assert last.value.value_kzt == D("47100") and last.difference == D("-100") and last.difference_pct == D("-0.2123")
    # 4 July 2026 is a Saturday: the value of Friday 3 July
    sat = table.value("BTC", date(2026, 7, 4))
    assert sat is not None and sat.computed is not None and sat.computed.inputs["working_day"] == "2026-07-03"
    m.rates.pop(("USD", date(2026, 7, 15)))
    gap = build_table(2026, 7, assets, m)
    assert not gap.complete and gap.missing() == ["BTC 2026-07-15: National Bank USD rate dated 2026-07-15 "
                                                  "(in force on 2026-07-15)"]
    assert [gap.readiness(date(2026, 8, d)) for d in (7, 8, 10, 11)] == ["pending", "warning", "warning", "late"]
    assert table.readiness(date(2026, 8, 11)) == "ready"


def test_the_eleven_published_assets() -> None:
    assert published().symbols() == ["BTC", "BCH", "DASH", "DOGE", "ETC", "ZEN", "LTC", "XMR", "SC", "TRX", "ZEC"]
