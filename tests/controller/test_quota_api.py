"""Quota inputs through the HTTP API on real services (SQLite, registry keys): validation names the field, accepted
pushes return their id and plan, roles are enforced, everything is persisted with its provenance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.runtime import Services, build_services
from kuat import clock
from quota.timebase import ASTANA, local_day_and_hour
from tests.controller.conftest import make_settings

OPERATOR = "op-" + "k" * 30
REGULATOR = "reg-" + "r" * 30
GRID = "grid-" + "g" * 30
KEYS = [
    {"name": "ops", "role": "operator", "key": OPERATOR},
    {"name": "inspector", "role": "regulator", "key": REGULATOR},
    {"name": "kegoc", "role": "grid", "key": GRID},
]
SITE = "dpc-a"


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    settings = make_settings(tmp_path, api_keys=KEYS)
    svc = build_services(settings, with_ingest=False)
    with TestClient(create_app(settings, svc)) as client:
        r = client.put(f"/api/v1/quota/{SITE}/limits", json={"connection_kw": 5000, "reserved_headroom_kw": 200,
                                                              "zone": "north"}, headers=auth(OPERATOR))
        assert r.status_code == 200, r.text
        yield client, svc
    svc.close()


def today() -> str:
    return local_day_and_hour(clock.now())[0].isoformat()


def locs(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    # our own refusals name the field as a dotted path; FastAPI's body validation as a list ("body", field)
    return {d["loc"] if isinstance(d["loc"], str) else ".".join(str(p) for p in d["loc"][1:]): d["msg"]
            for d in r.json()["detail"]}


def test_schedule_json_accepted_with_id_and_plan(app: tuple[TestClient, Services]) -> None:
    client, svc = app
    r = client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [3000.0] * 24,
                                                               "reference": "KOREM-1"}, headers=auth(GRID))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] > 0 and body["source"] == "api"
    assert [h["purchased_kwh"] for h in body["plan"]["hours"]] == [3000.0] * 24
    # the connection (5000 - 200 kW) caps each hour at 4800 kWh; the plan uses what was bought
    assert body["plan"]["hours"][0]["planned_kwh"] == pytest.approx(3000.0)
    status = client.get(f"/api/v1/quota/{SITE}/status", headers=auth(REGULATOR)).json()
    assert status["effective_limit_w"] == pytest.approx(3_000_000.0)
    assert "schedule" in status["limit_reason"] and "KOREM" not in status["limit_reason"]
    assert [h["kwh"] for h in status["schedule"]] == [3000.0] * 24
    assert sum(h["current"] for h in status["schedule"]) == 1
    # a second push for the same day replaces the first (kept, marked replaced)
    r2 = client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [1000.0] * 24},
                     headers=auth(OPERATOR))
    assert r2.status_code == 201
    listed = client.get(f"/api/v1/quota/{SITE}/schedules", headers=auth(OPERATOR)).json()["schedules"]
    assert [(s["id"], s["replaced_by"]) for s in listed] == [(body["id"], r2.json()["id"]), (r2.json()["id"], None)]
    assert listed[0]["actor"] == "grid:kegoc" and listed[1]["actor"] == "operator:ops"
    assert svc.quota is not None and svc.quota.status(SITE)["effective_limit_w"] == pytest.approx(1_000_000.0)


def test_schedule_refusals_name_the_field_and_are_logged(app: tuple[TestClient, Services]) -> None:
    client, svc = app
    bad = [100.0] * 24
    bad[3] = -5.0
    r = client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": bad}, headers=auth(GRID))
    assert "hours[3].kwh" in locs(r)
    assert "24 hours" in locs(client.post(f"/api/v1/quota/{SITE}/schedules",
                                          json={"day": today(), "hours_kwh": [1.0] * 23}, headers=auth(GRID)))["hours"]
    r = client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [1.0] * 24,
                                                              "area": "south"}, headers=auth(GRID))
    assert "unknown site or zone" in locs(r)["area"]
    past = (datetime.now(ASTANA).date() - timedelta(days=3)).isoformat()
    assert "already over" in locs(client.post(f"/api/v1/quota/{SITE}/schedules",
                                              json={"day": past, "hours_kwh": [1.0] * 24}, headers=auth(GRID)))["day"]
    assert "day" in locs(client.post(f"/api/v1/quota/{SITE}/schedules", json={"hours_kwh": [1.0] * 24},
                                     headers=auth(GRID)))
    assert client.post("/api/v1/quota/nowhere/schedules", json={"day": today(), "hours_kwh": [1.0] * 24},
                       headers=auth(GRID)).status_code == 422
    # nothing was stored, every refusal was logged with the document and its reasons
    assert svc.quota is not None and svc.quota.schedules(SITE) == []
    log = client.get(f"/api/v1/quota/{SITE}/inputs", headers=auth(REGULATOR)).json()["inputs"]
    refused = [e for e in log if e["action"] == "refused"]
    assert len(refused) == 4 and refused[-1]["detail"]["hours_kwh"][3] == -5.0
    assert refused[-1]["actor"] == "grid:kegoc" and refused[-1]["source"] == "api"


def test_schedule_csv_upload(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    text = "hour,kwh\n" + "".join(f"{h},{1000 + h}\n" for h in range(1, 25))
    r = client.post(f"/api/v1/quota/{SITE}/schedules", params={"day": today(), "reference": "upload-7"},
                    content=text, headers={**auth(OPERATOR), "content-type": "text/csv"})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "csv" and r.json()["plan"]["hours"][23]["purchased_kwh"] == 1024.0
    broken = text.replace("3,1003", "3,lots")
    r = client.post(f"/api/v1/quota/{SITE}/schedules", params={"day": today()}, content=broken,
                    headers={**auth(OPERATOR), "content-type": "text/csv"})
    assert "line 4" in locs(r)
    r = client.post(f"/api/v1/quota/{SITE}/schedules", content=text,
                    headers={**auth(OPERATOR), "content-type": "text/csv"})
    assert "day" in locs(r)
    r = client.post(f"/api/v1/quota/{SITE}/schedules", params={"day": today()}, content="h,k\n1,2\n",
                    headers={**auth(OPERATOR), "content-type": "text/csv"})
    assert "line 1" in locs(r)


def test_emergency_share_then_lift(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [4000.0] * 24},
                headers=auth(GRID))
    r = client.post(f"/api/v1/quota/{SITE}/emergencies", json={"reference": "KEGOC-17", "cap_pct": 30},
                    headers=auth(GRID))
    assert r.status_code == 201, r.text
    order = r.json()
    assert "30 % of the schedule" in order["describe"] and "until lifted" in order["describe"]
    assert order["status"]["effective_limit_w"] == pytest.approx(1_200_000.0)
    assert "KEGOC-17" in order["status"]["limit_reason"]
    assert order["plan"][0]["source"] == "emergency"
    emergencies = client.get(f"/api/v1/quota/{SITE}/status", headers=auth(OPERATOR)).json()["emergencies"]
    assert [(e["id"], e["active"]) for e in emergencies] == [(order["id"], True)]
    assert client.post(f"/api/v1/quota/emergencies/{order['id']}/lift", headers=auth(REGULATOR)).status_code == 403
    lifted = client.post(f"/api/v1/quota/emergencies/{order['id']}/lift", headers=auth(GRID))
    assert lifted.status_code == 200 and "lifted" in lifted.json()["describe"]
    assert lifted.json()["status"]["effective_limit_w"] == pytest.approx(4_000_000.0)
    again = client.post(f"/api/v1/quota/emergencies/{order['id']}/lift", headers=auth(GRID))
    assert again.status_code == 409 and "no longer in force" in again.text
    assert client.post("/api/v1/quota/emergencies/99999/lift", headers=auth(GRID)).status_code == 404


def test_emergency_cap_mw_window_and_refusals(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [4000.0] * 24},
                headers=auth(GRID))
    r = client.post(f"/api/v1/quota/{SITE}/emergencies", json={"reference": "ORD-2", "cap_mw": 0.5, "minutes": 30},
                    headers=auth(OPERATOR))
    assert r.status_code == 201 and r.json()["status"]["effective_limit_w"] == pytest.approx(500_000.0)
    plan = r.json()["plan"]
    assert plan[0]["source"] == "emergency" and plan[1]["source"] == "connection"
    assert (datetime.fromisoformat(plan[0]["end"]) - datetime.fromisoformat(plan[0]["start"])).total_seconds() == \
        pytest.approx(1800, abs=2)

    def push(**body: Any) -> dict[str, str]:
        return locs(client.post(f"/api/v1/quota/{SITE}/emergencies", json={"reference": "X", **body},
                                headers=auth(GRID)))

    assert "exactly one" in push(cap_mw=1, cap_pct=10)["cap_mw"]
    assert "0..100" in push(cap_pct=130)["cap_pct"]
    assert "not both" in push(cap_pct=10, minutes=5, end="2030-01-01T00:00:00+05:00")["minutes"]
    assert "time zone" in push(cap_pct=10, start="2030-01-01T00:00:00")["start"]
    assert "already over" in push(cap_pct=10, start="2020-01-01T00:00:00+00:00", end="2020-01-01T01:00:00+00:00")[
        "end"]
    assert "reference" in push(cap_pct=10, reference=" ")
    assert client.post(f"/api/v1/quota/{SITE}/emergencies", json={"reference": "X", "cap_pct": 5},
                       headers=auth(REGULATOR)).status_code == 403


def test_site_limits_tenants_grid_contract_rules(app: tuple[TestClient, Services]) -> None:
    client, svc = app
    h = auth(OPERATOR)
    assert client.put(f"/api/v1/quota/{SITE}/limits", json={"connection_kw": 100, "reserved_headroom_kw": 100},
                      headers=h).status_code == 422
    assert "connection_kw" in locs(client.put(f"/api/v1/quota/{SITE}/limits", json={"connection_kw": -1}, headers=h))
    assert client.put(f"/api/v1/quota/{SITE}/limits", json={"connection_kw": 100}, headers=auth(GRID)).status_code \
        == 403
    assert client.put(f"/api/v1/quota/{SITE}/tenants/BIN-1", json={"share_pct": 60}, headers=h).status_code == 200
    r = client.put(f"/api/v1/quota/{SITE}/tenants/BIN-2", json={"share_pct": 50}, headers=h)
    assert "more than the whole" in locs(r)["share_pct"]
    assert "share_pct" in locs(client.put(f"/api/v1/quota/{SITE}/tenants/BIN-2", json={"share_pct": 120}, headers=h))
    limits = client.get(f"/api/v1/quota/{SITE}/limits", headers=auth(REGULATOR)).json()
    assert limits["tenants"] == {"BIN-1": pytest.approx(60.0)} and limits["connection_kw"] == 5000
    r = client.put(f"/api/v1/quota/{SITE}/grid-contract", json={"contract_mw": 4, "stale_after_s": 60, "safe_pct": 10},
                   headers=auth(GRID))
    assert r.status_code == 200 and r.json()["grid_contract"]["contract_mw"] == 4
    status = client.get(f"/api/v1/quota/{SITE}/status", headers=h).json()
    assert status["grid"]["stale"] and status["limit_source"] in ("grid_stale", "no_schedule")
    assert status["tenants"][0]["tenant"] == "BIN-1"
    assert client.put(f"/api/v1/quota/{SITE}/machines/aa:bb", json={"protected": True, "priority": 2},
                      headers=h).status_code == 200
    assert svc.quota is not None and svc.quota.machine_rules(SITE)["aa:bb"].protected
    assert client.delete(f"/api/v1/quota/{SITE}/machines/aa:bb", headers=h).status_code == 204
    assert client.delete(f"/api/v1/quota/{SITE}/machines/aa:bb", headers=h).status_code == 404
    assert client.delete(f"/api/v1/quota/{SITE}/tenants/BIN-1", headers=h).status_code == 204
    assert client.delete(f"/api/v1/quota/{SITE}/grid-contract", headers=auth(GRID)).status_code == 204
    assert client.get(f"/api/v1/quota/{SITE}/status", headers=h).json()["grid"] is None
    kinds = [(e["kind"], e["action"]) for e in svc.quota.input_log(SITE)]
    assert ("grid_contract", "deleted") in kinds and ("tenant", "refused") in kinds
    assert client.get("/api/v1/quota/elsewhere/status", headers=h).status_code == 404


def test_inputs_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_keys=KEYS)
    svc = build_services(settings, with_ingest=False)
    assert svc.quota is not None
    svc.quota.set_site_limits(SITE, connection_kw=3000, actor="operator:ops")
    sid, _ = svc.quota.push_schedule(SITE, local_day_and_hour(clock.now())[0], [2000.0] * 24, "grid:kegoc")
    order = svc.quota.push_emergency(SITE, cap_pct=None, cap_mw=1.0, start=None, end=None, minutes=None,
                                     reference="R-1", actor="grid:kegoc")
    svc.close()
    again = build_services(settings, with_ingest=False)
    assert again.quota is not None
    status = again.quota.status(SITE)
    assert status["effective_limit_w"] == pytest.approx(1_000_000.0)
    assert [e["id"] for e in status["emergencies"]] == [order.id]
    assert again.quota.schedules(SITE)[0]["id"] == sid
    start = again.quota.emergencies(SITE)[0]["start"]
    assert start.tzinfo is not None and start <= datetime.now(UTC)
    again.close()


def test_zone_schedule_applies_by_the_sites_share(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    h = auth(OPERATOR)
    assert client.put(f"/api/v1/quota/{SITE}/limits", json={"connection_kw": 5000, "zone": "north",
                                                            "zone_share": 0.5}, headers=h).status_code == 200
    r = client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [4000.0] * 24,
                                                              "area": "north"}, headers=auth(GRID))
    assert r.status_code == 201 and r.json()["area"] == "north"
    status = client.get(f"/api/v1/quota/{SITE}/status", headers=h).json()
    assert status["effective_limit_w"] == pytest.approx(2_000_000.0) and status["limit_source"] == "zone_schedule"
    # a site schedule lower than the zone's share wins
    client.post(f"/api/v1/quota/{SITE}/schedules", json={"day": today(), "hours_kwh": [1500.0] * 24},
                headers=auth(GRID))
    assert client.get(f"/api/v1/quota/{SITE}/status", headers=h).json()["effective_limit_w"] == \
        pytest.approx(1_500_000.0)
    # an order for the zone caps the site at the order x its share
    r = client.post(f"/api/v1/quota/{SITE}/emergencies", json={"reference": "Z-1", "cap_mw": 2.0, "area": "north"},
                    headers=auth(GRID))
    assert r.status_code == 201 and r.json()["status"]["effective_limit_w"] == pytest.approx(1_000_000.0)
    ledger = client.get(f"/api/v1/quota/{SITE}/ledger", params={"kind": "zone"}, headers=auth(REGULATOR))
    assert ledger.status_code == 200 and ledger.json()["kind"] == "zone"
