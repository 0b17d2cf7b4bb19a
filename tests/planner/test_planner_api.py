"""/api/v1/planner on the real controller app (SQLite, registry, quota service; no broker): series in, the curve,
the bids against every constraint, a frozen set exported as CSV and JSON, the results imported into each site's
schedule through the quota service with provenance, refusals that write nothing, won vs bid vs used, derating from
the minute rollups, roles.

Values by hand (kuat/catalog.py; 50 USD/PH/day, 500 KZT/USD, pool fee 2 %, mining fee 2 KZT/kWh): a MWh of S21 energy
(200/3500 TH/s per W) is worth 200/3500 x 1e6 x 50/24000 x 500 x 0.98 - 2000 = 56,333 KZT; S9 (13.5/1323) 8,416,
below the 18,000 floor.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from controller.app import create_app
from controller.history import device_minute
from controller.runtime import Services, build_services
from kuat import clock
from quota.timebase import hour_window, local_day_and_hour
from tests.planner.site_support import (
    CONNECTION_KW,
    FLOOR,
    SITE,
    ZONE,
    as_,
    planner_settings,
    results_csv,
    seed,
    series_csv,
)

V_S21 = 200 / 3500 * 1e6 * 50 / 24000 * 500 * 0.98 - 2000
CSV = {"content-type": "text/csv"}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = build_services(planner_settings(tmp_path), with_ingest=False)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.settings, services)) as c:
        yield c


def post_csv(client: TestClient, path: str, body: bytes, role: str = "operator") -> object:
    return client.post(path, content=body, headers={**as_(role), **CSV})


def ready(services: Services, client: TestClient) -> None:
    seed(services)
    hp, usd = series_csv(clock.now().date())
    assert post_csv(client, "/api/v1/planner/hashprice", hp).status_code == 201  # type: ignore[attr-defined]
    assert post_csv(client, "/api/v1/planner/usd-rates", usd).status_code == 201  # type: ignore[attr-defined]


def test_missing_inputs_are_named(services: Services, client: TestClient) -> None:
    seed(services)
    r = client.get("/api/v1/planner/bids", headers=as_("operator"))
    assert r.status_code == 422
    assert {d["loc"] for d in r.json()["detail"]} == {"hashprice", "usd_kzt"}
    view = client.get(f"/api/v1/planner/view?site={SITE}", headers=as_("regulator")).json()
    assert {e["loc"] for e in view["errors"]} >= {"hashprice", "usd_kzt"} and view["bids"] is None


def test_curve_and_bids_hold_every_constraint(services: Services, client: TestClient) -> None:
    ready(services, client)
    curve = client.get(f"/api/v1/planner/curve?site={SITE}", headers=as_("grid")).json()
    assert len(curve["hours"]) == 24 and curve["zone"] == ZONE
    blocks = curve["hours"][0]["blocks"]
    values = [b["value_kzt_per_mwh"] for b in blocks]
    assert values == sorted(values, reverse=True)
    # the first block is the S21s, less the sleep draws of the others spread over it
    assert values[0] == pytest.approx(V_S21, rel=0.02) and values[0] <= V_S21
    assert curve["economics"]["hashprice_source"].startswith("test series")
    bids = client.get("/api/v1/planner/bids", headers=as_("operator")).json()
    assert bids["floors"][ZONE]["kzt_per_mwh"] == FLOOR
    by_hour: dict[int, float] = {}
    for s in bids["steps"]:
        assert FLOOR <= s["price_kzt_per_mwh"] <= s["value_kzt_per_mwh"]
        by_hour[s["hour"]] = by_hour.get(s["hour"], 0.0) + s["quantity_mwh"]
        assert s["sites"] == {SITE: pytest.approx(s["quantity_mwh"])}
    assert len(by_hour) == 24
    assert all(q <= CONNECTION_KW / 1000 + 1e-9 for q in by_hour.values())
    # S21 35 kW + S19j Pro 30.7 kW exceed the 60 kW connection; the S9s are worth less than the floor
    assert {h["binding"] for h in bids["hours"]} == {"connection"}
    s = bids["summary"]
    assert s["constraint_costs_kzt"]["connection"] > 0 and s["constraint_costs_kzt"]["prepayment"] == 0
    assert s["prepayment_kzt"] == pytest.approx(sum(x["price_kzt_per_mwh"] * x["quantity_mwh"]
                                                    for x in bids["steps"]), rel=1e-4)  # fmt: skip
    with_budget = client.get("/api/v1/planner/bids?budget_kzt=10000", headers=as_("operator")).json()
    assert with_budget["summary"]["prepayment_kzt"] <= 10_000 + 1e-6


def test_freeze_export_import_results_into_the_schedule(services: Services, client: TestClient) -> None:
    ready(services, client)
    assert client.post("/api/v1/planner/bids", json={}, headers=as_("regulator")).status_code == 403
    made = client.post("/api/v1/planner/bids", json={}, headers=as_("operator"))
    assert made.status_code == 201, made.text
    bid = made.json()
    day = bid["day"]
    exported = client.get(f"/api/v1/planner/bids/{bid['id']}/export?format=csv", headers=as_("grid"))
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"kuat-bids-{day}-{bid['id']}.csv" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(rows[0]) == ["day", "zone", "hour", "step", "price_kzt_per_mwh", "quantity_mwh"]
    assert len(rows) == len(bid["steps"]) and {r["day"] for r in rows} == {day}
    doc = json.loads(client.get(f"/api/v1/planner/bids/{bid['id']}/export?format=json", headers=as_("grid")).text)
    assert doc["format"] == "kuat-bids/1" and doc["inputs"]["economics"]["usd_kzt"] == 500
    assert doc["steps"][0]["sites"] == {SITE: pytest.approx(doc["steps"][0]["quantity_mwh"])}

    won = [0.05] * 12 + [0.0] * 12
    imported = post_csv(client, "/api/v1/planner/results", results_csv(day, won), role="grid")
    assert imported.status_code == 201, imported.text  # type: ignore[attr-defined]
    out = imported.json()  # type: ignore[attr-defined]
    assert out["bid_set_id"] == bid["id"] and out["won_mwh"] == pytest.approx(0.6)
    pushed = out["sites"][SITE]
    assert pushed["schedule_id"] is not None and pushed["kwh"] == pytest.approx(600.0)
    quota = services.quota
    assert quota is not None
    (sched,) = [s for s in quota.schedules(SITE) if s["replaced_by"] is None and str(s["day"]) == day]
    assert sched["hours_kwh"] == [50.0] * 12 + [0.0] * 12
    assert sched["source"] == "korem" and sched["actor"].startswith("grid")
    assert f"results import {out['import_id']}" in sched["reference"] and f"bid set {bid['id']}" in sched["reference"]

    ledger = client.get(f"/api/v1/planner/ledger?site={SITE}&day={day}", headers=as_("operator")).json()
    hours = ledger["hours"]
    assert ledger["bid_set_id"] == bid["id"]
    assert hours[0]["won_mwh"] == pytest.approx(0.05) and hours[23]["won_mwh"] == 0.0
    bid_h1 = sum(s["quantity_mwh"] for s in bid["steps"] if s["hour"] == 1)
    assert hours[0]["bid_mwh"] == pytest.approx(bid_h1)
    # won 0.05 MWh of what was bid: filled from the top step at its own price
    top = max((s for s in bid["steps"] if s["hour"] == 1), key=lambda s: s["price_kzt_per_mwh"])
    if top["quantity_mwh"] >= 0.05:
        assert hours[0]["won_cost_kzt"] == pytest.approx(0.05 * top["price_kzt_per_mwh"], rel=1e-6)
    assert hours[0]["used_mwh"] is None  # the day has not run yet

    results = client.get(f"/api/v1/planner/results?day={day}", headers=as_("regulator")).json()
    assert len(results) == 24 and results[0]["offered_mwh"] == 80.0


def test_a_bad_results_file_is_refused_whole(services: Services, client: TestClient) -> None:
    ready(services, client)
    day = (local_day_and_hour(clock.now())[0] + timedelta(days=1)).isoformat()
    good = results_csv(day, [0.05] * 24).decode().splitlines()  # type: ignore[arg-type]
    bad = [*good]
    bad[2] = bad[1]  # hour 1 twice (line 3)
    bad[4] = bad[4].replace(",0.05,", ",lots,")  # line 5
    r = post_csv(client, "/api/v1/planner/results", ("\n".join(bad) + "\n").encode())
    assert r.status_code == 422  # type: ignore[attr-defined]
    locs = {d["loc"]: d["msg"] for d in r.json()["detail"]}  # type: ignore[attr-defined]
    assert "given twice" in locs["line 3"] and "not a number" in locs["line 5"] and "hour" in locs
    other_zone = results_csv(day, [0.0] * 24, zone="west")  # type: ignore[arg-type]
    r2 = post_csv(client, "/api/v1/planner/results", other_zone)
    assert r2.status_code == 422 and "west" in r2.text  # type: ignore[attr-defined]
    assert client.post("/api/v1/planner/results", content=b"{}", headers=as_("operator")).status_code == 415
    assert client.get(f"/api/v1/planner/results?day={day}", headers=as_("operator")).json() == []
    quota = services.quota
    assert quota is not None and [s for s in quota.schedules(SITE) if str(s["day"]) == day] == []


def test_series_refusals_name_the_line(services: Services, client: TestClient) -> None:
    seed(services)
    r = post_csv(client, "/api/v1/planner/hashprice", b"day,usd_per_ph_day,source\n2026-11-20,-3,x\n2026-11-21,50,\n")
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert {d["loc"] for d in r.json()["detail"]} == {"line 2", "line 3"}  # type: ignore[attr-defined]
    net = b"day,difficulty,subsidy_btc,fees_btc_per_block,btc_usd,source\n2026-11-20,1.2e14,3.125,0.03,100000,net\n"
    assert post_csv(client, "/api/v1/planner/hashprice", net).status_code == 201  # type: ignore[attr-defined]
    got = client.get("/api/v1/planner/series/hashprice?since=2026-11-01", headers=as_("operator")).json()
    assert got[0]["value"] == pytest.approx(52.89, abs=0.01) and got[0]["inputs"]["btc_usd"] == 100000
    bad_col = post_csv(client, "/api/v1/planner/usd-rates", b"day,kzt_per_usd,sourse\n2026-11-20,500,nbk\n")
    assert bad_col.status_code == 422 and "sourse" in bad_col.text  # type: ignore[attr-defined]


def test_derating_from_the_minute_rollups_lowers_the_hot_hour(services: Services, client: TestClient) -> None:
    """The S21s hashed at 90 % of their model's TH/s in hour 15 of the last three days: in hour 15 the whole fleet
    at full gives 10 x 20 TH/s less (2,000 + 1,040 + 67.5 TH/s in other hours), and its best energy is no longer the
    S21s' (0.9 x 200/3500 = 0.0514 TH/s per W) but the S19j Pros' deepest underclock (52 / 985.8 = 0.0527)."""
    ready(services, client)
    tomorrow = local_day_and_hour(clock.now())[0] + timedelta(days=1)
    rows = []
    for back in range(1, 4):
        start, _ = hour_window(tomorrow - timedelta(days=back), 15)
        for n in range(1, 11):
            for minute in range(0, 60, 10):
                rows.append({"site": SITE, "device_id": f"02:00:00:00:01:{n:02x}",
                             "minute": start + timedelta(minutes=minute), "kind": "miner", "gateway": "gw1",
                             "owner": "unassigned", "source": "grid", "samples": 6, "available_samples": 6,
                             "power_w_sum": 3500.0 * 6, "power_samples": 6, "power_w_max": 3500.0,
                             "hashrate_ths_sum": 180.0 * 6, "hashrate_samples": 6, "temp_c_max": 88.0,
                             "energy_kwh": 0.058, "gap_s": 0.0})  # fmt: skip
    with services.engine.begin() as conn:
        conn.execute(insert(device_minute), rows)
    curve = client.get(f"/api/v1/planner/curve?site={SITE}", headers=as_("operator")).json()
    full = {h["hour"]: sum(b["ths"] for b in h["blocks"]) for h in curve["hours"]}
    assert full[3] == pytest.approx(2000 + 1040 + 67.5, rel=1e-4)
    assert full[15] == pytest.approx(full[3] - 200, rel=1e-4)
    assert full[14] == full[3]
    top = {h["hour"]: h["blocks"][0]["ths_per_w"] for h in curve["hours"]}
    # (the first block also carries the sleep draw of the machines it does not run, so it sits a little under)
    assert top[15] < top[3] and 0.9 * 52 / 985.82 < top[15] < 52 / 985.82


def test_machines_down_now_and_degraded_ones(services: Services, client: TestClient, tmp_path: Path) -> None:
    from kuat.wire import v1
    from tests.planner.site_support import fleet, ingest

    miners = fleet()
    miners[0] = miners[0].model_copy(update={"available": False, "state": v1.MinerState.OFFLINE})
    boards = [v1.Board(index=i, hashrate_ths=66.0 if i else 0.0) for i in range(3)]
    miners[1] = miners[1].model_copy(update={"state": v1.MinerState.DEGRADED, "boards": boards})
    seed(services, [])
    ingest(services, miners)
    hp, usd = series_csv(clock.now().date())
    post_csv(client, "/api/v1/planner/hashprice", hp)
    post_csv(client, "/api/v1/planner/usd-rates", usd)
    curve = client.get(f"/api/v1/planner/curve?site={SITE}", headers=as_("operator")).json()
    assert curve["hours"][0]["machines"] == 24
    assert any("not answering now" in n for n in curve["notes"])
    assert any("degraded" in n for n in curve["notes"])
    # 8 whole S21s and one at 2/3: the S21 block holds 8 x 3.5 kW + 3.5 kW at 2/3 the TH/s per W
    assert curve["hours"][0]["fleet_mwh"] < (9 * 3.5 + 10 * 3.068 + 5 * 1.323) / 1000 * 1.01


def test_mining_fee_from_the_money_sides_rate_table_and_usd_from_its_nbk_feed(tmp_path: Path) -> None:
    """With no override the fee is the money side's rate table (money/data/fee_rates.toml, set scale-2023) read at
    the average price paid this month; before any purchase at the zone's floor: 18 KZT/kWh falls in the band up to
    20 KZT/kWh, 15 KZT/kWh. With no planner USD series, the National Bank rate the money side imported is used."""
    svc = build_services(planner_settings(tmp_path, mining_fee_kzt_per_kwh=None), with_ingest=False)
    try:
        seed(svc)
        planner, money = svc.planner, svc.money
        assert planner is not None and money is not None
        hp, _usd = series_csv(clock.now().date())
        planner.import_series("hashprice", hp, "operator:test")
        day = local_day_and_hour(clock.now())[0] + timedelta(days=1)
        feed_day = day - timedelta(days=1)
        xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<rates>\n <date>{feed_day:%d.%m.%Y}</date>\n <item>\n'
               "  <fullname>ДОЛЛАР США</fullname>\n  <title>USD</title>\n  <description>512.34</description>\n"
               "  <quant>1</quant>\n  <index></index>\n  <change>0.00</change>\n </item>\n</rates>\n").encode()
        money.import_file("nbk", f"nbk-{feed_day}.xml", xml, "operator:test")
        econ = planner.economics(day)
        assert econ.mining_fee_kzt_per_kwh == 15.0
        assert "scale-2023" in econ.fee_source and "zone floor" in econ.fee_source
        assert econ.usd_kzt == pytest.approx(512.34) and "National Bank" in econ.usd_source
        # once something was bought this month, its average price is the basis: 40 KZT/kWh is the top band, 1
        from sqlmodel import Session

        from controller.planner.models import PlannerAward

        if day.day > 1:
            with Session(svc.engine) as s:
                s.add(PlannerAward(import_id=0, day=day.replace(day=1), site=SITE, zone=ZONE, hour=1, mwh=1.0,
                                   cost_kzt=40_000.0))
                s.commit()
            econ = planner.economics(day)
            assert econ.mining_fee_kzt_per_kwh == 1.0 and "average price paid" in econ.fee_source
    finally:
        svc.engine.dispose()
