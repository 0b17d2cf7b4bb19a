"""The importers on recorded data (the National Bank's responses in ../shared/fixtures/valuation/nbk/) and on
small files made here; every bad file is refused with its line and reason."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from money.errors import ImportRefused
from money.importers import parse
from money.importers.nbk import parse_nbk

KNOWN = {"BTC", "LTC", "DOGE"}
BIN_A = "123456789013"  # a valid BIN (check digit 3)


@pytest.fixture
def nbk_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "fixtures" / "valuation" / "nbk"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the National Bank samples are in ../shared (present in CI)")
    return folder


def refused(kind: str, text: str | bytes, name: str = "f.csv") -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        parse(kind, name, text.encode() if isinstance(text, str) else text, KNOWN)
    return info.value


def test_nbk_saturday_response_rates_per_quant(nbk_dir: Path) -> None:
    name = "nbk_rates_2026-08-01_trimmed.xml"
    rates = {r.currency: r for r in parse_nbk(name, (nbk_dir / name).read_bytes())}
    assert set(rates) == {"USD", "RUB", "UZS", "AMD", "IRR"} and all(r.day == date(2026, 8, 1) for r in rates.values())
    assert rates["USD"].per_unit == D("473.59")  # <description>473.59</description> <quant>1</quant>
    assert rates["UZS"].per_unit == D("0.0396")  # 3.96 per 100
    assert rates["AMD"].per_unit == D("1.305")  # 13.05 per 10
    assert rates["IRR"].per_unit == D("0.001124")  # 11.24 per 10,000


def test_nbk_with_header_and_empty_index(nbk_dir: Path) -> None:
    rates = parse_nbk("x", (nbk_dir / "nbk_rates_2024-05-06_trimmed.xml").read_bytes())
    assert [(r.currency, r.day, r.per_unit) for r in rates] == [("AUD", date(2024, 5, 6), D("291.85")),
                                                                ("IRR", date(2024, 5, 6), D("0.0105"))]
    (usd, eur) = parse_nbk("y", (nbk_dir / "nbk_rates_2026-07-31_trimmed.xml").read_bytes())
    assert (usd.currency, usd.description, eur.description) == ("USD", D("474.2"), D("544.5"))


NBK_OK = """<?xml version="1.0" encoding="utf-8"?>
<rates>
    <date>31.07.2026</date>
    <item>
        <title>USD</title>
        <description>474.2</description>
        <quant>1</quant>
    </item>
</rates>
"""


@pytest.mark.parametrize(("text", "line", "reason"), [
    (NBK_OK.replace("474.2", "474,2"), 4, "is not a rate"),
    (NBK_OK.replace("<quant>1</quant>", "<quant>0</quant>"), 4, "<quant> '0'"),
    (NBK_OK.replace("31.07.2026", "2026-07-31"), 3, "is not DD.MM.YYYY"),
    (NBK_OK.replace("</rates>", ""), 10, "bad XML"),
    (NBK_OK.replace("<rates>", '<!DOCTYPE r [<!ENTITY a "b">]>\n<rates>'), 2, "DOCTYPE"),
    (NBK_OK.replace("</item>", "</item>\n<item><title>USD</title><description>1</description><quant>1</quant></item>"),
     9, "USD twice"),
])
def test_nbk_refusals_name_line_and_reason(text: str, line: int, reason: str) -> None:
    err = refused("nbk", text, "rates.xml")
    assert err.line == line and reason in err.reason, err


def cmc_reply(quotes: list[dict[str, object]], symbol: str = "BTC") -> str:
    return json.dumps({"status": {"error_code": 0}, "data": {"id": 1, "name": "Bitcoin", "symbol": symbol,
                                                            "quotes": quotes}}, indent=2)


def cmc_quote(day: str, close: float = 64000.5) -> dict[str, object]:
    return {"time_open": f"{day}T00:00:00.000Z", "time_close": f"{day}T23:59:59.999Z",
            "time_high": f"{day}T13:00:00.000Z", "time_low": f"{day}T02:00:00.000Z",
            "quote": {"USD": {"open": 63000.1, "high": 65000, "low": 62000, "close": close, "volume": 2.5e10,
                              "market_cap": 1.26e12, "timestamp": f"{day}T23:59:59.999Z"}}}


def test_cmc_utc_days() -> None:
    quotes = parse("cmc", "c.json", cmc_reply([cmc_quote("2026-07-30"), cmc_quote("2026-07-31", 65000)]).encode(),
                   KNOWN)
    assert [(q.asset, q.utc_day, q.close) for q in quotes] == [("BTC", date(2026, 7, 30), D("64000.5")),
                                                              ("BTC", date(2026, 7, 31), D("65000"))]
    assert quotes[0].time_close == datetime(2026, 7, 30, 23, 59, 59, 999000, tzinfo=UTC)
    assert quotes[0].market_cap == D("1.26E+12") and quotes[0].circulating_supply is None
    keyed = json.dumps({"data": {"1": {"symbol": "BTC", "quotes": [cmc_quote("2026-07-30")]}}})
    assert len(parse("cmc", "k.json", keyed.encode(), KNOWN)) == 1


def test_cmc_refusals() -> None:
    hourly = cmc_quote("2026-07-30")
    hourly["time_open"] = "2026-07-30T05:00:00.000Z"
    err = refused("cmc", cmc_reply([cmc_quote("2026-07-29"), hourly]), "c.json")
    assert err.line == 28 and "not the start of a UTC day" in err.reason
    zero = cmc_quote("2026-07-30")
    zero["quote"]["USD"]["volume"] = 0  # type: ignore[index]
    assert "volume is 0" in refused("cmc", cmc_reply([zero]), "c.json").reason
    assert "not a published asset" in refused("cmc", cmc_reply([cmc_quote("2026-07-30")], "ETH"), "c.json").reason
    err = refused("cmc", '{"data": {"symbol": "BTC",\n "quotes": [}', "c.json")
    assert err.line == 2 and "bad JSON" in err.reason
    dup = refused("cmc", cmc_reply([cmc_quote("2026-07-30"), cmc_quote("2026-07-30")]), "c.json")
    assert "twice" in dup.reason and dup.line == 28


def test_src_table_csv() -> None:
    rows = parse("src", "src.csv", b"asset;date;value_kzt\nBTC;01.07.2026;31250000,50\nLTC;2026-07-01;40100\n",
                 KNOWN)
    assert [(r.asset, r.day, r.value_kzt) for r in rows] == [("BTC", date(2026, 7, 1), D("31250000.50")),
                                                            ("LTC", date(2026, 7, 1), D("40100"))]
    assert refused("src", "asset,date,value_kzt\nBTC,2026-07-01,1\nBTC,2026-07-01,2\n").line == 3
    err = refused("src", "asset,date,value\nBTC,2026-07-01,1\n")
    assert err.line == 1 and "lacks column(s) value_kzt" in err.reason
    assert "1,000.5" in refused("src", 'asset,date,value_kzt\nBTC,2026-07-01,"1,000.5"\n').reason


DIST = ("licensee_bin,name,licence_number,licence_date,wallet,date,asset,quantity,pool,reference\n"
        f"{BIN_A},Alpha,LIC-1,2025-09-01,bc1qa,2026-07-01,BTC,0.00123456,pool-kz,p-1\n"
        f"{BIN_A},Alpha,LIC-1,2025-09-01,bc1qa,2026-07-02,BTC,0.001,pool-kz,p-2\n")


def test_distributions_csv_and_json() -> None:
    rows = parse("distributions", "d.csv", DIST.encode(), KNOWN)
    assert [(d.licensee, d.day, d.quantity, d.reference) for d in rows] == [
        (BIN_A, date(2026, 7, 1), D("0.00123456"), "p-1"), (BIN_A, date(2026, 7, 2), D("0.001"), "p-2")]
    items = [{"licensee_bin": BIN_A, "licence_number": "LIC-1", "licence_date": "2025-09-01", "wallet": "w",
              "date": "2026-07-03", "asset": "LTC", "quantity": 1.5, "pool": "p", "reference": "r1"},
             {"licensee_bin": BIN_A, "licence_number": "LIC-1", "licence_date": "2025-09-01", "wallet": "w",
              "date": "2026-07-04", "asset": "LTC", "quantity": -1, "pool": "p", "reference": "r2"}]
    with pytest.raises(ImportRefused) as info:
        parse("distributions", "d.json", json.dumps({"distributions": items}, indent=1).encode(), KNOWN)
    assert info.value.line == 15 and "quantity" in info.value.reason
    assert parse("distributions", "d.json", json.dumps(items[:1]).encode(), KNOWN)[0].quantity == D("1.5")


@pytest.mark.parametrize(("bad", "reason"), [
    ("123456789012", "not a BIN/IIN (check digit is 2, expected 3)"),
    ("12345", "must be exactly 12 digits"),
])
def test_distribution_with_a_bad_bin(bad: str, reason: str) -> None:
    err = refused("distributions", DIST.replace(f"{BIN_A},Alpha,LIC-1,2025-09-01,bc1qa,2026-07-02", f"{bad},Alpha,"
                                                "LIC-1,2025-09-01,bc1qa,2026-07-02"))
    assert err.line == 3 and reason in err.reason


def test_distribution_before_its_licence_and_duplicate() -> None:
    assert "before the licence date" in refused("distributions", DIST.replace("2026-07-02", "2025-08-01")).reason
    assert refused("distributions", DIST.replace("p-2", "p-1").replace("2026-07-02", "2026-07-01")).line == 3


def test_trades_skip_buys_and_keep_the_aifc_licence() -> None:
    text = ("exchange,aifc_licence,licensee_bin,account,date,asset,quantity,price,currency,side,reference\n"
            f"AIX,AFSA-A-LA-2021-0001,{BIN_A},acc1,2026-07-10,BTC,0.5,65000,USD,sell,t-1\n"
            f"Abroad,,{BIN_A},acc9,2026-07-11,BTC,0.2,64000,USDT,sell,t-2\n"
            f"AIX,AFSA-A-LA-2021-0001,{BIN_A},acc1,2026-07-12,BTC,0.1,65000,USD,buy,t-3\n")
    rows = parse("trades", "t.csv", text.encode(), KNOWN)
    assert [(d.reference, d.via_aifc, d.quantity) for d in rows] == [("t-1", True, D("0.5")), ("t-2", False, D("0.2"))]
    err = refused("trades", text.replace("sell,t-2", "short,t-2"))
    assert err.line == 3 and "side" in err.reason


def test_disposals() -> None:
    text = f"licensee_bin,date,asset,quantity,kind,counterparty,reference\n{BIN_A},2026-07-15,BTC,0.1,transfer,,x1\n"
    (d,) = parse("disposals", "o.csv", text.encode(), KNOWN)
    assert d.kind == "transfer" and not d.via_aifc
    assert "kind" in refused("disposals", text.replace("transfer", "gift")).reason


def test_meter_hours_in_astana_time() -> None:
    text = "meter,date,hour,kwh,status\nM1,2026-07-01,1,512.5,ok\nM1,2026-07-01,24,500,\nM1,2026-07-02,1,,missing\n"
    rows = parse("meter", "m.csv", text.encode())
    # hour 1 of 1 July (Astana, UTC+5) starts at 19:00 UTC on 30 June
    assert [(r.hour, r.kwh, r.status) for r in rows] == [
        (datetime(2026, 6, 30, 19, tzinfo=UTC), D("512.5"), "ok"),
        (datetime(2026, 7, 1, 18, tzinfo=UTC), D("500"), "ok"),
        (datetime(2026, 7, 1, 19, tzinfo=UTC), D("0"), "missing")]
    err = refused("meter", text.replace(",24,", ",25,"))
    assert err.line == 3 and "not an hour 1-24" in err.reason
    assert refused("meter", text.replace("500,", "-5,")).line == 3
    assert "empty" in refused("meter", text.replace(",,missing", ",,ok")).reason


def test_feeds_prices_rewards() -> None:
    feeds = parse("feeds", "f.csv", b"meter,site,source,valid_from,valid_to\nM1,dpc-1,grid,2026-01-01,\n"
                  b"M2,dpc-1,renewables,2026-01-01,\n")
    assert [(f.meter, f.source) for f in feeds] == [("M1", "grid"), ("M2", "renewables")]
    err = refused("feeds", "meter,site,source,valid_from,valid_to\nM1,s,grid,2026-01-01,\nM1,s,grid,2026-03-01,\n")
    assert err.line == 3 and "overlaps" in err.reason
    (p,) = parse("prices", "p.csv", f"licensee_bin,month,price_kzt_per_kwh\n{BIN_A},2026-07,14.2\n".encode())
    assert (p.year, p.month, p.price_kzt_per_kwh) == (2026, 7, D("14.2"))
    assert "YYYY-MM" in refused("prices", f"licensee_bin,month,price_kzt_per_kwh\n{BIN_A},2026-7,14\n").reason
    r1, r2 = parse("rewards", "r.csv", b"asset,date,units_per_ths_day,difficulty,block_reward\n"
                   b"BTC,2026-07-01,0.0000005,,\nBTC,2026-07-02,,1e14,3.125\n", KNOWN)
    assert r1.units_per_ths_day == D("0.0000005") and r2.units_per_ths_day == D(270000) / D(429496729600)
    assert "not both" in refused("rewards", "asset,date,units_per_ths_day,difficulty,block_reward\n"
                                 "BTC,2026-07-01,1,1,1\n").reason


def test_files_refused_as_a_whole() -> None:
    assert refused("meter", "").reason == "the file is empty"
    assert refused("meter", "meter,date,hour,kwh\n").reason == "no data rows"
    assert refused("meter", b"meter,date,hour,kwh\nM1,2026-07-01,1,\xff\n").line == 2
    err = refused("meter", "meter,date,hour,kwh,colour\nM1,2026-07-01,1,5,red\n")
    assert err.line == 1 and "unknown column(s) colour" in err.reason
    assert "fields" in refused("meter", "meter,date,hour,kwh\nM1,2026-07-01,1\n").reason
