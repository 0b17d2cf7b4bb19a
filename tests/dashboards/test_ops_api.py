"""The rack view, feeds, schedule preview, machine rules and bulk commands on the real controller app (SQLite,
registry, quota service; no broker): telemetry goes in through the controller's own ingest (TelemetryService)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.app import create_app
from controller.dashboard.placement import DevicePlacement
from controller.runtime import Services, build_services
from controller.settings import load_settings
from kuat import clock
from kuat.wire import v1
from quota.timebase import ASTANA
from tests.dashboards.test_dashboard_api import KEYS, SITE, as_, ingest, miner


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'kuat.sqlite'}", sites=[SITE],
                             api_keys=[{"name": f"t-{r}", "role": r, "key": k} for r, k in KEYS.items()])  # fmt: skip
    svc = build_services(settings, with_ingest=False)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.settings, services)) as c:
        yield c


def placed(n: int, rack: str | None, slot: int | None, power_w: float = 3000.0, hall: str = "H1") -> v1.MinerSample:
    m = miner(n, f"SER-{n}", power_w)
    if rack is not None:
        m.placement = v1.Placement(hall=hall, rack=rack, slot=slot)
    return m


def test_racks_group_machines_by_hall_rack_and_slot(services: Services, client: TestClient) -> None:
    ingest(services, [placed(3, "A01", 2), placed(1, "A01", 1), placed(2, "B01", 1, hall="H2"), placed(4, None, None)])
    doc = client.get("/api/v1/dashboard/racks", headers=as_("regulator")).json()
    assert doc["site"] == SITE and doc["machines"] == 4 and doc["placed"] == 3
    halls = {h["hall"]: {r["rack"]: r for r in h["racks"]} for h in doc["halls"]}
    assert set(halls) == {"H1", "H2", "unplaced"}
    a01 = halls["H1"]["A01"]
    assert [s["slot"] for s in a01["slots"]] == [1, 2]  # by slot number, whatever the order on the wire
    assert [s["serial"] for s in a01["slots"]] == ["SER-1", "SER-3"]
    assert a01["power_w"] == 6000.0 and a01["status"] == "unknown" and a01["capacity_w"] is None
    assert halls["H2"]["B01"]["slots"][0]["state"] == "mining"
    assert halls["unplaced"]["unplaced"]["slots"][0]["device_id"] == placed(4, None, None).device_id
    fleet = {r["serial"]: r for r in client.get("/api/v1/dashboard/fleet", headers=as_("operator")).json()}
    assert (fleet["SER-2"]["hall"], fleet["SER-2"]["rack"], fleet["SER-2"]["slot"]) == ("H2", "B01", 1)


def test_placements_are_stored_and_only_rewritten_when_they_change(services: Services, client: TestClient) -> None:
    ingest(services, [placed(1, "A01", 1), placed(2, "A01", 2)])
    client.get("/api/v1/dashboard/racks", headers=as_("operator"))
    with Session(services.engine) as s:
        first = {r.device_id: (r.rack, r.slot, r.updated_at) for r in s.exec(select(DevicePlacement))}
    assert {k: v[:2] for k, v in first.items()} == {placed(1, "A01", 1).device_id: ("A01", 1),
                                                    placed(2, "A01", 2).device_id: ("A01", 2)}  # fmt: skip
    ingest(services, [placed(1, "A01", 1), placed(2, "A02", 7)], seq=2)  # machine 2 moved
    client.get("/api/v1/dashboard/racks", headers=as_("operator"))
    with Session(services.engine) as s:
        second = {r.device_id: (r.rack, r.slot, r.updated_at) for r in s.exec(select(DevicePlacement))}
    one, two = placed(1, "A01", 1).device_id, placed(2, "A01", 2).device_id
    assert second[one] == first[one]  # unchanged: not rewritten (same updated_at)
    assert second[two][:2] == ("A02", 7)
    services.live.devices.clear()  # a controller restart: nothing live, a new store reads the table
    client.app.state.placements = None  # type: ignore[attr-defined]
    doc = client.get("/api/v1/dashboard/racks", headers=as_("operator")).json()
    slots = [s for h in doc["halls"] for r in h["racks"] for s in r["slots"]]
    assert {(s["device_id"], s["state"], s["live"]) for s in slots} == {(one, "offline", False),
                                                                       (two, "offline", False)}  # fmt: skip


def test_rack_power_against_its_feeds(services: Services, client: TestClient) -> None:
    ingest(services, [placed(n, "A01", n, 3000.0) for n in range(1, 5)])  # 12 kW
    url = "/api/v1/dashboard/racks/A01/feeds"
    bad = client.put(url, json={"feeds": [{"name": "A", "capacity_w": -1}, {"name": "bad name", "capacity_w": 5}]},
                     headers=as_("operator"))  # fmt: skip
    assert bad.status_code == 422
    assert {tuple(d["loc"]) for d in bad.json()["detail"]} == {("body", "feeds", 0, "capacity_w"),
                                                               ("body", "feeds", 1, "name")}  # fmt: skip
    dup = client.put(url, json={"feeds": [{"name": "A", "capacity_w": 9000}, {"name": "A", "capacity_w": 9000}]},
                     headers=as_("operator"))  # fmt: skip
    assert dup.status_code == 422 and dup.json()["detail"][0]["loc"] == ["body", "feeds"]
    assert client.put(url, json={"feeds": []}, headers=as_("regulator")).status_code == 403
    ok = client.put(url, json={"feeds": [{"name": "A", "capacity_w": 8000}, {"name": "B", "capacity_w": 8000}]},
                    headers=as_("operator"))  # fmt: skip
    assert ok.status_code == 200 and [f["name"] for f in ok.json()["feeds"]] == ["A", "B"]
    rack = client.get("/api/v1/dashboard/racks", headers=as_("operator")).json()["halls"][0]["racks"][0]
    assert rack["capacity_w"] == 16000 and rack["load_pct"] == 75.0 and rack["status"] == "ok"
    assert any("not redundant: losing feed" in w for w in rack["warnings"])  # 12 kW on one 8 kW feed
    client.put(url, json={"feeds": [{"name": "A", "capacity_w": 10000}]}, headers=as_("operator"))
    rack = client.get("/api/v1/dashboard/racks", headers=as_("operator")).json()["halls"][0]["racks"][0]
    assert rack["status"] == "over" and "exceeds" in rack["warnings"][0]


def test_schedule_preview_against_the_fleet(services: Services, client: TestClient) -> None:
    quota = services.quota
    assert quota is not None
    quota.set_site_limits(SITE, connection_kw=100, actor="test")
    ingest(services, [placed(n, "A01", n) for n in range(1, 4)])  # 3 x S19j Pro, 3068 W nominal each
    quota.set_machine_rule(SITE, placed(1, "A01", 1).device_id, protected=True, priority=0, actor="test")
    day = clock.now().astimezone(ASTANA).date().isoformat()
    rows = ["hour,kwh"] + [f"{h},{5.0}" for h in range(1, 25)]
    rows[1], rows[2] = "1,50", "2,1"  # hour 1: more than 3 machines can use; hour 2: less than the protected one
    r = client.post(f"/api/v1/dashboard/schedule/preview?day={day}", content="\n".join(rows),
                    headers={**as_("operator"), "Content-Type": "text/csv"})  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["machines"] == 3 and doc["connection_kw"] == 100
    hours = {h["hour"]: h for h in doc["hours"]}
    assert hours[1]["status"] == "unused" and hours[1]["label"] == "00:00-01:00 Astana"
    assert hours[1]["can_draw_kwh"] == pytest.approx(doc["fleet_max_w"] / 1000)
    assert hours[2]["status"] == "short" and "protected" in hours[2]["warnings"][0]
    assert hours[3]["status"] == "ok" and hours[3]["warnings"] == [] and doc["warnings"] == 2
    bad = client.post(f"/api/v1/dashboard/schedule/preview?day={day}", content="hour,kwh\n1,x\n",
                      headers={**as_("operator"), "Content-Type": "text/csv"})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == "line 2"  # the quota API's own parser


def test_machine_rules_list(services: Services, client: TestClient) -> None:
    quota = services.quota
    assert quota is not None
    quota.set_site_limits(SITE, connection_kw=100, actor="test")
    ingest(services, [placed(1, "A01", 1), placed(2, "A01", 2)])
    quota.set_machine_rule(SITE, placed(2, "A01", 2).device_id, protected=True, priority=5, actor="test")
    doc = client.get("/api/v1/dashboard/machine-rules", headers=as_("operator")).json()
    rules = {m["serial"]: (m["protected"], m["priority"], m["rule"]) for m in doc["machines"]}
    assert doc["quota"] is True and rules == {"SER-1": (False, 0, False), "SER-2": (True, 5, True)}


def test_bulk_validation_and_machines_that_cannot_be_sent_to(services: Services, client: TestClient) -> None:
    ingest(services, [placed(1, "A01", 1)])
    url = "/api/v1/commands/bulk"
    bad = client.post(url, json={"device_ids": ["a", "a"], "kind": "setpoints"}, headers=as_("operator"))
    assert bad.status_code == 422
    assert {d["loc"][-1] for d in bad.json()["detail"]} == {"device_ids", "kind"}  # every bad field at once
    no_power = client.post(url, json={"device_ids": ["a"], "kind": "set_power_target"}, headers=as_("operator"))
    assert no_power.status_code == 422 and "power_w" in no_power.text
    assert client.post(url, json={"device_ids": ["a"], "kind": "sleep"}, headers=as_("grid")).status_code == 403
    known = placed(1, "A01", 1).device_id
    r = client.post(url, json={"device_ids": [known, "nope"], "kind": "sleep"}, headers=as_("operator"))
    assert r.status_code == 202
    doc = r.json()
    items = {i["device_id"]: i for i in doc["items"]}
    assert doc["total"] == 2 and doc["failed"] == 2  # this controller has no broker: nothing can be sent
    assert "no MQTT connection" in items[known]["reason"] and "no device 'nope'" in items["nope"]["reason"]
    again = client.get(f"/api/v1/commands/bulk/{doc['batch_id']}", headers=as_("regulator"))
    assert again.status_code == 200 and again.json()["items"] == doc["items"]
    assert client.get("/api/v1/commands/bulk/unknown", headers=as_("operator")).status_code == 404


def test_ledger_csv_hours_in_astana_time() -> None:
    from controller.dashboard.views import with_astana_hours

    text = "hour,period_end,kind\n2026-12-02T19:00:00+00:00,2026-12-02T20:00:00+00:00,site\n"
    assert with_astana_hours(text).splitlines() == [
        "hour_astana,hour,period_end,kind",
        "2026-12-03 00:00,2026-12-02T19:00:00+00:00,2026-12-02T20:00:00+00:00,site",  # 19:00 UTC is Astana midnight
    ]
