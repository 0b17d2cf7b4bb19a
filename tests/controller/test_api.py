"""The controller's HTTP API on real services (SQLite, registry keys) and, for commands, a real mosquitto."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.runtime import Services, build_services
from kuat.wire import v1
from tests.controller.conftest import make_settings
from tests.controller.test_ingest_mqtt import wait_for
from tests.controller.wire import T0, Agent, batch, miner, pdu, random_site
from tests.support.servers import Mosquitto

OPERATOR = "op-" + "k" * 30
REGULATOR = "reg-" + "r" * 30
KEYS = [
    {"name": "ops", "role": "operator", "key": OPERATOR},
    {"name": "inspector", "role": "regulator", "key": REGULATOR},
]


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    """The app with services but no broker: reads, validation, auth."""
    settings = make_settings(tmp_path, api_keys=KEYS)
    svc = build_services(settings, with_ingest=False)
    for seq, ts in enumerate([T0, T0 + timedelta(seconds=30)], start=1):
        svc.telemetry.ingest(batch(seq, ts, [miner(1, 3000.0), miner(2, 1000.0, model="S21")], [pdu(1)]))
    with TestClient(create_app(settings, svc)) as client:
        yield client, svc
    svc.close()


def test_keys_and_roles(offline: tuple[TestClient, Services]) -> None:
    client, _ = offline
    assert client.get("/api/v1/fleet").status_code == 401
    assert client.get("/api/v1/fleet", headers=auth("nope-" + "x" * 20)).status_code == 401
    assert client.get("/api/v1/fleet", headers=auth(REGULATOR)).status_code == 200
    denied = client.post("/api/v1/commands", json={"device_id": "x", "kind": "reboot"}, headers=auth(REGULATOR))
    assert denied.status_code == 403


def test_fleet_filter_sort_search_and_one_device(offline: tuple[TestClient, Services]) -> None:
    client, _ = offline
    h = auth(OPERATOR)
    body = client.get("/api/v1/fleet", params={"kind": "miner", "sort": "power_w", "desc": True}, headers=h).json()
    assert [d["power_w"] for d in body["devices"]] == [3000.0, 1000.0]
    found = client.get("/api/v1/fleet", params={"q": "s21"}, headers=h).json()
    assert found["total"] == 1 and found["devices"][0]["serial"] == "SN000002"
    assert client.get("/api/v1/fleet", params={"sort": "nonsense"}, headers=h).status_code == 422
    one = client.get(f"/api/v1/fleet/{miner(1).device_id}", params={"minutes": 600_000}, headers=h).json()
    assert one["device"]["serial"] == "SN000001"
    assert one["history"] and one["history"][0]["samples"] == 2 and one["history"][0]["power_w"] == 3000.0
    assert client.get("/api/v1/fleet/aa:bb", headers=h).status_code == 404


def test_site_gateways_energy(offline: tuple[TestClient, Services]) -> None:
    client, _ = offline
    h = auth(OPERATOR)
    site = client.get("/api/v1/site", headers=h).json()
    totals = site["sites"][0]
    assert totals["site"] == "kz1" and totals["miners"] == 2 and totals["pdus"] == 1
    assert totals["power_w_by_source"]["grid"] == 4000.0
    assert site["energy_by_source"] == [{"source": "grid", "energy_kwh": pytest.approx(4000 * 30 / 3.6e6, abs=1e-6),
                                         "gap_s": 0.0}]
    owners = client.get("/api/v1/site/energy", params={"group": "owner"}, headers=h).json()
    assert owners["rows"][0]["owner"] == "unassigned"
    assert client.get("/api/v1/site/energy", params={"group": "planet"}, headers=h).status_code == 422
    gws = client.get("/api/v1/gateways", headers=h).json()["gateways"]
    assert gws[0]["gateway"] == "gw1" and gws[0]["online"] and gws[0]["seq"] == 2


def test_bad_command_payloads_name_the_field(offline: tuple[TestClient, Services]) -> None:
    client, _ = offline
    h = auth(OPERATOR)
    r = client.post("/api/v1/commands", json={"device_id": miner(1).device_id, "kind": "explode"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    r = client.post("/api/v1/commands", json={"device_id": miner(1).device_id, "kind": "set_power_target",
                                              "power_w": -5}, headers=h)  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "power_w"]
    r = client.post("/api/v1/commands", json={"device_id": miner(1).device_id, "kind": "set_power_target"},
                    headers=h)  # fmt: skip
    assert r.status_code == 422 and "power_w" in str(r.json()["detail"])
    r = client.post("/api/v1/commands", json={"device_id": "ghost", "kind": "reboot"}, headers=h)
    assert r.status_code == 404
    r = client.post("/api/v1/commands", json={"device_id": miner(1).device_id, "kind": "reboot"}, headers=h)
    assert r.status_code == 503  # no broker connection in this fixture


def test_health_and_metrics_need_no_key(offline: tuple[TestClient, Services]) -> None:
    client, _ = offline
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["devices_live"] == 3
    text = client.get("/metrics").text
    assert "kuat_ingest_samples_total 6" in text and "kuat_ingest_queue_depth 0" in text
    assert "kuat_db_flush_seconds_count" in text
    assert client.get("/docs").status_code == 200
    assert "/api/v1/registry/licensees" in client.get("/openapi.json").json()["paths"]  # registry mounted


def test_command_round_trip_through_mosquitto(tmp_path: Path, broker: Mosquitto) -> None:
    site = random_site()
    settings = make_settings(tmp_path, api_keys=KEYS, sites=[site],
                             broker={"port": broker.port, "client_id": f"ctl-{random.random()}"})  # fmt: skip
    svc = build_services(settings)
    assert svc.ingest is not None
    svc.ingest.start()
    agent = Agent(broker.port, site, "gw3")
    try:
        assert svc.ingest.wait_connected(10)
        time.sleep(0.2)
        svc.ingest.handle(v1.topic(site, "gw3", "telemetry"),
                          v1.dumps(batch(1, T0, [miner(1)], site=site, gateway="gw3")), time.time())  # fmt: skip
        with TestClient(create_app(settings, svc)) as client:
            h = auth(OPERATOR)
            r = client.post("/api/v1/commands", json={"device_id": miner(1).device_id, "kind": "set_power_target",
                                                      "power_w": 2500}, headers=h)  # fmt: skip
            assert r.status_code == 202, r.text
            cid = r.json()["id"]
            wait_for(lambda: client.get(f"/api/v1/commands/{cid}", headers=h).json()["status"] == "applied",
                     what="the agent's ack")  # fmt: skip
            assert agent.received[0].power_w == 2500 and agent.received[0].issued_by == "operator:ops"
            assert client.get(f"/api/v1/fleet/{miner(1).device_id}", headers=h).json()["commands"][0]["id"] == cid
            assert client.get("/api/v1/commands/unknown", headers=h).status_code == 404
    finally:
        agent.close()
        svc.close()


def test_healthz_says_degraded_without_the_broker(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    settings = make_settings(tmp_path, api_keys=KEYS, broker={"port": free_port(), "client_id": "ctl-nobroker"})
    svc = build_services(settings)  # ingest built but not connected: nothing listens on that port
    try:
        with TestClient(create_app(settings, svc)) as client:
            r = client.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "degraded"
            assert r.json()["broker_connected"] is False
    finally:
        svc.close()
