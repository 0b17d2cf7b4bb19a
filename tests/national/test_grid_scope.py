"""Grid keys scoped to sites or zones (serverkit.auth.Scope from the settings' api_keys): a grid key pushes quotas
only for the sites it reaches (listed, or in a listed zone), lifts only their orders, and reads no registry data
through the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.runtime import Services, build_services
from tests.controller.conftest import make_settings

OPERATOR, REGULATOR = "op-" + "o" * 30, "reg-" + "r" * 30
NORTH_SITE, WEST_ZONE, ANY_GRID = "gn-" + "n" * 30, "gw-" + "w" * 30, "ga-" + "a" * 30
KEYS = [{"name": "ops", "role": "operator", "key": OPERATOR},
        {"name": "insp", "role": "regulator", "key": REGULATOR},
        {"name": "kegoc-north", "role": "grid", "key": NORTH_SITE, "scope": {"sites": ["north1"]}},
        {"name": "kegoc-west", "role": "grid", "key": WEST_ZONE, "scope": {"zones": ["West"]}},
        {"name": "korem", "role": "grid", "key": ANY_GRID}]  # fmt: skip


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, api_keys=KEYS, sites=["north1", "north2", "west1"])
    svc: Services = build_services(settings, with_ingest=False)
    with TestClient(create_app(settings, svc)) as c:
        for site, zone in (("north1", "North-South"), ("north2", "North-South"), ("west1", "West")):
            r = c.put(f"/api/v1/quota/{site}/limits", json={"connection_kw": 1000, "zone": zone},
                      headers={"X-API-Key": OPERATOR})
            assert r.status_code == 200, r.text
        yield c
    svc.close()


def order(client: TestClient, site: str, key: str) -> int:
    r = client.post(f"/api/v1/quota/{site}/emergencies", json={"reference": f"O-{site}", "cap_pct": 50},
                    headers={"X-API-Key": key})
    return r.status_code


def test_a_grid_key_pushes_only_for_its_sites_or_zones(client: TestClient) -> None:
    assert order(client, "north1", NORTH_SITE) == 201
    assert order(client, "north2", NORTH_SITE) == 403
    assert order(client, "west1", NORTH_SITE) == 403
    assert order(client, "west1", WEST_ZONE) == 201
    assert order(client, "north1", WEST_ZONE) == 403
    assert order(client, "north2", ANY_GRID) == 201  # an unscoped grid key reaches every site
    denied = client.put("/api/v1/quota/north2/grid-contract", json={"contract_mw": 1.0},
                        headers={"X-API-Key": NORTH_SITE})
    assert denied.status_code == 403 and "north2" in denied.json()["detail"]


def test_a_grid_key_lifts_only_orders_of_its_sites(client: TestClient) -> None:
    r = client.post("/api/v1/quota/west1/emergencies", json={"reference": "W-1", "cap_pct": 0},
                    headers={"X-API-Key": WEST_ZONE})
    order_id = r.json()["id"]
    assert client.post(f"/api/v1/quota/emergencies/{order_id}/lift",
                       headers={"X-API-Key": NORTH_SITE}).status_code == 403
    assert client.post(f"/api/v1/quota/emergencies/{order_id}/lift",
                       headers={"X-API-Key": WEST_ZONE}).status_code == 200


def test_grid_keys_read_no_registry_data_through_the_dashboard(client: TestClient) -> None:
    for key in (NORTH_SITE, ANY_GRID):
        assert client.get("/api/v1/dashboard/registry", headers={"X-API-Key": key}).status_code == 403
    assert client.get("/api/v1/dashboard/registry", headers={"X-API-Key": REGULATOR}).status_code == 200
    assert client.get("/api/v1/dashboard/registry", headers={"X-API-Key": OPERATOR}).status_code == 200
