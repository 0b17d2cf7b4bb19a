"""Income, the sale share, the mining fee, expected-vs-distributed and the meter, by hand on small data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

from money.errors import MissingInput
from money.expected import deviation, reward_per_ths_day
from money.fees import EnergyDay, fee
from money.income import statement
from money.meter import reconcile
from money.records import Disposal, Distribution
from money.sales import Period, sale_share
from money.valuation.base import Valuation

BIN_A = "123456789012"
VALUES = {("BTC", date(2024, 5, 11)): D("26550221.2500"), ("BTC", date(2024, 6, 10)): D("30000000"),
          ("BTC", date(2025, 1, 20)): D("50000000"), ("LTC", date(2024, 5, 12)): D("40000")}


def lookup(asset: str, day: date) -> Valuation:
    if (asset, day) not in VALUES:
        raise MissingInput(f"{asset} value of {day}")
    return Valuation(asset, day, VALUES[(asset, day)], "rules-2024", "act", "end_of_day_price")


def dist(day: date, asset: str, qty: str, ref: str, who: str = BIN_A) -> Distribution:
    return Distribution(who, "LIC-1", date(2023, 9, 1), "bc1qxyz", day, asset, D(qty), "pool-kz", ref)


def test_income_per_distribution_and_by_asset() -> None:
    st = statement(BIN_A, [dist(date(2024, 5, 11), "BTC", "0.002", "p1"), dist(date(2024, 5, 12), "LTC", "1.5", "p2"),
                           dist(date(2024, 5, 13), "LTC", "0.5", "p3"),  # no value for 13 May: listed as missing
                           dist(date(2024, 5, 11), "BTC", "9", "other", who="999999999999")], lookup)
    # 0.002 x 26,550,221.25 = 53,100.4425 -> 53,100.44; 1.5 x 40,000 = 60,000.00
    assert [line.income_kzt for line in st.lines] == [D("53100.44"), D("60000.00"), None]
    assert st.total_kzt == D("113100.44")
    assert st.by_asset() == {"BTC": (D("0.002"), D("53100.44")), "LTC": (D("2.0"), D("60000.00"))}
    assert st.missing() == ["LTC 2024-05-13: LTC value of 2024-05-13"]


def sale(day: date, qty: str, licence: str = "", kind: str = "sale", ref: str = "") -> Disposal:
    return Disposal(BIN_A, day, "BTC", D(qty), kind, "EXCH", licence, "acc-1", None, "", ref or f"{day}{qty}{kind}")


def test_sale_share_2024_compliant_at_50_pct() -> None:
    (r,) = sale_share(BIN_A, [sale(date(2024, 6, 3), "1.0", "AIFC-123"), sale(date(2024, 6, 10), "0.5"),
                              sale(date(2024, 6, 11), "0.5", kind="transfer")], Period.MONTH, lookup)
    # sold 1.5 (the transfer between own wallets is not a sale), through AIFC 1.0 = 66.67 %; required 0.75
    assert (r.sold, r.via_aifc, r.share, r.required, r.status) == (D("1.5"), D("1.0"), D("0.6667"), D("0.750"),
                                                                   "compliant")
    assert r.shortfall == 0 and r.shortfall_kzt == D("0.00")


def test_sale_share_2025_shortfall_at_75_pct_in_units_and_tenge() -> None:
    (r,) = sale_share(BIN_A, [sale(date(2025, 1, 5), "1.0", "AIFC-123"), sale(date(2025, 1, 20), "1.0")],
                      Period.MONTH, lookup)
    # required 2.0 x 0.75 = 1.5, through AIFC 1.0: short 0.5 BTC; valued at the outside sale's value 50,000,000
    assert (r.share, r.status, r.shortfall, r.shortfall_kzt) == (D("0.5000"), "shortfall", D("0.5"), D("25000000.00"))


def test_sale_share_not_required_before_2024() -> None:
    (r,) = sale_share(BIN_A, [sale(date(2023, 12, 5), "1.0")], Period.YEAR, lookup)
    assert r.status == "not_required" and r.period == "2023"


def test_fee_by_source_scale_flat_and_no_meter() -> None:
    energy = [EnergyDay(date(2024, 5, 1), "grid", D("600")), EnergyDay(date(2024, 5, 2), "grid", D("400")),
              EnergyDay(date(2024, 5, 1), "renewables", D("200")),
              EnergyDay(date(2024, 5, 3), "grid", D("10"), metered=False)]
    st = fee(BIN_A, energy, D("12.5"))
    # grid 1,000 kWh at 12.5 tenge/kWh bought: band up to 15 -> 18 tenge/kWh = 18,000; renewables 200 x 1 = 200;
    # unmetered 10 kWh at the highest rate 25 = 250; total 18,450
    assert sorted((line.source, line.rate, line.kwh, line.fee_kzt) for line in st.lines) == [
        ("grid", D("18"), D("1000"), D("18000.00")), ("grid", D("25"), D("10"), D("250.00")),
        ("renewables", D("1"), D("200"), D("200.00"))]
    assert st.total_kzt == D("18450.00")
    flat = fee(BIN_A, energy, D("12.5"), extra_sets=["flat-2024-proposed"])
    assert flat.total_kzt == D("2220.00")  # 1,000 x 2 + 200 x 1 + 10 x 2 (the flat set's highest)
    no_price = fee(BIN_A, energy[:1], None)
    assert no_price.total_kzt == D("15000.00") and no_price.flags  # 600 x 25


def test_expected_vs_distributed() -> None:
    # 100 TH/s for 30 days, 0.0000005 BTC per TH/s per day, pool fee 2 %: 3,000 x 5e-7 x 0.98 = 0.00147 BTC
    days = {date(2026, 7, d): D(100) for d in range(1, 31)}
    rewards = dict.fromkeys(days, D("0.0000005"))
    dv = deviation(BIN_A, "BTC", days, rewards, D("0.0012"), D("0.02"), D("0.10"))
    assert dv.expected == D("0.00147000") and dv.flagged
    assert dv.as_dict()["deviation_pct"] == "-18.3673"  # (0.0012 - 0.00147) / 0.00147
    ok = deviation(BIN_A, "BTC", days, rewards, D("0.00145"), D("0.02"), D("0.10"))
    assert not ok.flagged
    # 3.125 BTC x 86,400 s x 1e12 / (1e14 x 2^32) = 270,000 / 429,496,729,600
    assert reward_per_ths_day(D("1e14"), D("3.125")) == D(270000) / D(429496729600)


def test_meter_reconciliation_and_suggested_margin() -> None:
    h = [datetime(2026, 7, 30, 19, tzinfo=UTC) + timedelta(hours=i) for i in range(4)]
    meter = {h[0]: (D("100"), "ok"), h[1]: (D("200"), "ok"), h[2]: (D("50"), "faulty")}
    kuat = {h[0]: D("98.0"), h[1]: D("190.0"), h[2]: D("49.0"), h[3]: D("10.0")}
    rec = reconcile(meter, kuat, h)
    assert [(r.diff_kwh, r.diff_pct, r.status) for r in rec.rows] == [
        (D("2.000"), D("2.0000"), "ok"), (D("10.000"), D("5.0000"), "ok"), (D("1.000"), D("2.0000"), "faulty"),
        (None, None, "missing")]
    t = rec.totals()
    assert (t["meter_kwh"], t["kuat_kwh"], t["diff_kwh"], t["diff_pct"], t["hours_faulty_or_missing"]) == (
        "300.000", "288.000", "12.000", "4.0000", 2)
    assert rec.suggested_margin() == D("0.05")
