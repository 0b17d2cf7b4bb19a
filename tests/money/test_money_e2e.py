"""End to end through the HTTP API: a month of rates, quotes, the Committee's table, distributions, sales, meter
readings and feeds for two licensees at one DPC (tests/money/month.py), the reports against hand-computed figures,
who sees what, bad files refused with nothing left behind, idempotent imports, the hash chain."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select, text
from sqlmodel import Session

from controller.app import create_app
from controller.money.models import MoneyChain, MoneyImport, MoneyInput
from tests.money.month import BIN_A, BIN_B, KEYS, Month, build, nbk_files


def h(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Month, TestClient]]:
    m = build(tmp_path_factory.mktemp("money"))
    client = TestClient(create_app(m.services.settings, m.services))
    for name, data in nbk_files():
        r = client.post("/api/v1/money/imports/nbk", params={"file_name": name}, content=data, headers=h("operator"))
        assert r.status_code == 200, r.text
    for kind, (name, data) in m.files.items():
        r = client.post(f"/api/v1/money/imports/{kind}", params={"file_name": name}, content=data,
                        headers=h("operator"))
        assert r.status_code == 200, (kind, r.text)
    yield m, client
    m.services.close()


def report(client: TestClient, bin_: str, role: str = "regulator") -> dict[str, Any]:
    r = client.get(f"/api/v1/money/reports/2026-07/{bin_}", headers=h(role))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_energy_per_licensee_on_astana_days(month: tuple[Month, TestClient]) -> None:
    _, client = month
    # 744 hourly intervals in July (Astana): A 3 kW x 744 h = 2,232 kWh; B 2 kW x 744 h = 1,488 kWh
    assert report(client, BIN_A)["energy"] == [{"source": "grid", "kwh": "2232.000"}]
    assert report(client, BIN_B)["energy_total_kwh"] == "1488.000"


def test_income_uses_the_src_table_where_imported(month: tuple[Month, TestClient]) -> None:
    _, client = month
    income = report(client, BIN_A)["income"]
    # 04.07 (Sat) takes Fri 03.07: close 60,300 x 470 = 28,341,000; 0.01 BTC -> 283,410.00
    # 10.07: the SRC published 28,700,000 (computed 61,000 x 470 = 28,670,000); 0.02 BTC -> 574,000.00
    assert [(x["day"], x["value_kzt"], x["method"], x["income_kzt"]) for x in income["lines"]] == [
        ("2026-07-04", "28341000.0000", "rules-2026", "283410.00"),
        ("2026-07-10", "28700000", "src-table", "574000.00")]
    assert income["by_asset"] == [{"asset": "BTC", "units": "0.03", "kzt": "857410.00"}]
    # B: 15.07, 61,500 x 470 = 28,905,000; 0.012 BTC -> 346,860.00
    assert report(client, BIN_B)["income"]["total_kzt"] == "346860.00"


def test_sale_share_against_75_pct(month: tuple[Month, TestClient]) -> None:
    _, client = month
    (a,) = report(client, BIN_A)["sale_share"]
    # sold 0.03, through AIFC 0.02 (66.67 %); required 0.75 x 0.03 = 0.0225: short 0.0025 BTC, valued at the
    # offshore sale's value on 25.07 (Sat -> 24.07: 62,400 x 470 = 29,328,000): 73,320.00
    assert (a["sold"], a["via_aifc"], a["share"], a["status"], a["shortfall_units"], a["shortfall_kzt"]) == (
        "0.03", "0.02", "0.6667", "shortfall", "0.00250000", "73320.00")
    (b,) = report(client, BIN_B)["sale_share"]
    assert (b["share"], b["status"]) == ("1.0000", "compliant")


def test_fee_by_price_band_and_the_faulty_meter_hour(month: tuple[Month, TestClient]) -> None:
    _, client = month
    fee_a = report(client, BIN_A)["fee"]
    # A bought at 12.5 tenge/kWh: 18 tenge/kWh on 2,229 metered kWh = 40,122; the faulty hour (02.07 hour 5):
    # 3 kWh at the highest rate 25 = 75; total 40,197.00
    assert sorted((x["rate"], x["kwh"], x["fee_kzt"]) for x in fee_a["lines"]) == [
        ("18", "2229.000", "40122.00"), ("25", "3.000", "75.00")]
    assert fee_a["total_kzt"] == "40197.00"
    # B at 27 tenge/kWh: 5 x 1,486 = 7,430 + 2 kWh x 25 = 50 -> 7,480.00
    assert report(client, BIN_B)["fee"]["total_kzt"] == "7480.00"


def test_expected_against_distributed(month: tuple[Month, TestClient]) -> None:
    _, client = month
    (a,) = report(client, BIN_A)["expected_vs_distributed"]
    # 100 TH/s x 31 days x 0.00001 BTC x (1 - 2 % pool fee) = 0.03038; got 0.03: -1.2508 %, within 10 %
    assert (a["ths_days"], a["expected"], a["deviation_pct"], a["flagged"]) == ("3100.0000", "0.03038000",
                                                                                "-1.2508", False)
    (b,) = report(client, BIN_B)["expected_vs_distributed"]
    # 50 x 31 x 0.00001 x 0.98 = 0.01519; got 0.012: -21.0007 %: flagged
    assert (b["expected"], b["deviation_pct"], b["flagged"]) == ("0.01519000", "-21.0007", True)


def test_who_sees_what(month: tuple[Month, TestClient]) -> None:
    _, client = month
    assert [x["bin"] for x in client.get("/api/v1/money/licensees", headers=h("tenant")).json()] == [BIN_B]
    assert {x["bin"] for x in client.get("/api/v1/money/licensees", headers=h("regulator")).json()} == {BIN_A, BIN_B}
    assert report(client, BIN_B, "tenant")["licensee"] == BIN_B
    assert client.get(f"/api/v1/money/reports/2026-07/{BIN_A}", headers=h("tenant")).status_code == 403
    assert client.get(f"/api/v1/money/reports/2026-07/{BIN_A}.xlsx", headers=h("tenant")).status_code == 403
    assert client.post("/api/v1/money/imports/nbk", params={"file_name": "x.xml"}, content=b"<rates/>",
                       headers=h("tenant")).status_code == 403
    assert client.get("/api/v1/fleet", headers=h("tenant")).status_code == 403  # nothing else of the DPC
    assert client.get(f"/api/v1/money/reports/2026-07/{BIN_A}").status_code == 401


def counts(m: Month) -> tuple[int, int, int]:
    with Session(m.services.engine) as s:
        return tuple(s.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (MoneyImport, MoneyInput, MoneyChain))


def test_bad_files_are_refused_with_line_and_reason_and_leave_nothing(month: tuple[Month, TestClient]) -> None:
    m, client = month
    before = counts(m)
    bad = b"meter,date,hour,kwh\nM-GRID,2026-07-03,1,5.1\nM-GRID,2026-07-03,2,five\n"
    r = client.post("/api/v1/money/imports/meter", params={"file_name": "bad.csv"}, content=bad, headers=h("operator"))
    assert r.status_code == 422
    (detail,) = r.json()["detail"]
    assert (detail["file"], detail["line"], detail["msg"]) == ("bad.csv", 3, "kwh: 'five' is not a number")
    # a record that contradicts a stored one (the SRC's 10 July value) is refused too, naming its line
    other = b"asset,date,value_kzt\nBTC,2026-07-09,28600000\nBTC,2026-07-10,28800000\n"
    r = client.post("/api/v1/money/imports/src", params={"file_name": "src2.csv"}, content=other, headers=h("operator"))
    assert r.status_code == 422 and r.json()["detail"][0]["line"] == 3, r.text
    assert "corrections of stored records are not accepted" in r.json()["detail"][0]["msg"]
    assert counts(m) == before


def test_imports_are_idempotent_with_provenance(month: tuple[Month, TestClient]) -> None:
    m, client = month
    before = counts(m)
    name, data = m.files["distributions"]
    r = client.post("/api/v1/money/imports/distributions", params={"file_name": name}, content=data,
                    headers=h("operator"))
    assert r.status_code == 200 and r.json()["repeated"] is True and counts(m) == before
    listing = client.get("/api/v1/money/imports", headers=h("regulator")).json()
    first = next(i for i in listing if i["kind"] == "distributions")
    assert (first["file_name"], first["actor"], first["records"], len(first["sha256"])) == (name, "operator:ops", 3, 64)


def test_downloads_csv_and_xlsx(month: tuple[Month, TestClient]) -> None:
    _, client = month
    r = client.get(f"/api/v1/money/reports/2026-07/{BIN_A}.csv", headers=h("regulator"))
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert "Mining fee" in r.text and "40197.00" in r.text and "857410.00" in r.text
    r = client.get(f"/api/v1/money/reports/2026-07/{BIN_B}.xlsx", headers=h("tenant"))
    wb = load_workbook(io.BytesIO(r.content))
    fee = [row for row in wb["Mining fee"].iter_rows(values_only=True)]
    assert fee[-1][0] == "total" and fee[-1][5] == 7480.0
    r = client.get(f"/api/v1/money/reports/2026-07/{BIN_A}/evidence.xlsx", headers=h("regulator"))
    wb = load_workbook(io.BytesIO(r.content))
    assert {"Sale share", "Distributions", "Trade confirmations", "Imports (provenance)"} <= set(wb.sheetnames)
    assert wb["Trade confirmations"].max_row == 3  # header + T-1 + T-2


def test_values_table_and_readiness(month: tuple[Month, TestClient]) -> None:
    _, client = month
    v = client.get("/api/v1/money/values/2026-07", headers=h("tenant")).json()
    btc = [c for c in v["cells"] if c["asset"] == "BTC"]
    assert len(btc) == 31 and all(c["value_kzt"] for c in btc)
    ten = next(c for c in btc if c["day"] == "2026-07-10")
    assert (ten["source"], ten["computed_kzt"], ten["published_kzt"], ten["difference_kzt"]) == (
        "src", "28670000.0000", "28700000", "-30000.0000")
    # the other ten assets have no quotes: the table is incomplete and, long after 10 August, late
    assert not v["complete"] and v["readiness"] == "late" and v["due"] == "2026-08-10"
    assert sum(1 for c in v["cells"] if c["missing"]) == 310
    assert "value KZT" in client.get("/api/v1/money/values/2026-07.csv", headers=h("regulator")).text


def test_meter_reconciliation_and_the_quota_margin(month: tuple[Month, TestClient]) -> None:
    m, client = month
    r = client.get("/api/v1/money/meter/kz1", params={"start": "2026-07-01", "end": "2026-07-01"},
                   headers=h("operator")).json()
    (grid,) = r["sources"]
    # each hour: the meter 5.1 kWh, Kuat 3 + 2 = 5 kWh: +0.1 kWh, 1.9608 % of the meter
    assert len(grid["rows"]) == 24 and {(x["diff_kwh"], x["diff_pct"]) for x in grid["rows"]} == {("0.100", "1.9608")}
    assert (grid["totals"]["meter_kwh"], grid["totals"]["kuat_kwh"], grid["totals"]["diff_kwh"]) == (
        "122.400", "120.000", "2.400")
    svc = m.services
    assert svc.money is not None
    svc.money.now = lambda: datetime(2026, 7, 3, 6, tzinfo=UTC)
    assert svc.money.update_meter_margins() == {"kz1": pytest.approx(0.019608)}
    assert svc.settings.quota.margin_for("kz1") == pytest.approx(0.019608)  # the loop's floor (was 0.0025)


def test_published_report_is_chained_and_recomputes(month: tuple[Month, TestClient]) -> None:
    m, client = month
    r = client.post(f"/api/v1/money/reports/2026-07/{BIN_A}/publish", headers=h("operator"))
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert client.get(f"/api/v1/money/published/{rid}/recompute", headers=h("regulator")).json()["same"] is True
    assert client.get(f"/api/v1/money/published/{rid}", headers=h("tenant")).status_code == 403
    assert client.get("/api/v1/money/published", headers=h("tenant")).json() == []
    ok = client.get("/api/v1/money/chain/verify", headers=h("regulator")).json()
    assert ok["ok"] and ok["links"] >= 46, ok
    with m.services.engine.begin() as conn:  # behind the application's back
        conn.execute(text("UPDATE money_input SET body = replace(body, '0.02', '0.002') WHERE kind='distributions'"))
    bad = client.get("/api/v1/money/chain/verify", headers=h("regulator")).json()
    assert not bad["ok"] and any("changed behind the app" in p for p in bad["problems"]), bad
    assert client.get(f"/api/v1/money/published/{rid}/recompute", headers=h("regulator")).json()["same"] is False
    with m.services.engine.begin() as conn:
        conn.execute(text("UPDATE money_input SET body = replace(body, '0.002', '0.02') WHERE kind='distributions'"))
    assert client.get("/api/v1/money/chain/verify", headers=h("regulator")).json()["ok"]


def test_incomplete_inputs_warn_from_the_8th(month: tuple[Month, TestClient], caplog: pytest.LogCaptureFixture) -> None:
    m, client = month
    assert m.services.money is not None
    m.services.money.now = lambda: datetime(2026, 8, 7, 6, tzinfo=UTC)
    assert client.get("/api/v1/money/status", headers=h("tenant")).json()["state"] == "pending"
    m.services.money.now = lambda: datetime(2026, 8, 8, 6, tzinfo=UTC)
    with caplog.at_level("WARNING", logger="controller.money.service"):
        body = client.get("/api/v1/money/status", headers=h("tenant")).json()
    assert (body["month"], body["state"], body["due"], body["missing"]) == ("2026-07", "warning", "2026-08-10", 310)
    assert "values table of 2026-07 is incomplete (due 2026-08-10): 310 cell(s) lack inputs" in caplog.text
