"""The contract's HTTP binding on the standalone registry app: dpc keys bound to DPC codes, Idempotency-Key required
and honoured, the feed paged by cursor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from registry.app import create_app
from registry.contract.v1 import FeedPage
from registry.models import Role
from registry.national.service import NationalRegistry
from registry.national.setup import bind_dpc_key, create_key
from registry.service import RegistryService
from registry.settings import RegistrySettings
from serverkit.db import session_factory
from tests.registry.conftest import StepClock, bearer
from tests.registry.national_world import application, batch, build_world, sighting


@pytest.fixture
def app_client(engine: Engine, clock: StepClock) -> Iterator[tuple[TestClient, NationalRegistry]]:
    sessions = session_factory(engine)
    nat = NationalRegistry(sessions, clock)
    build_world(nat)
    app = create_app(RegistrySettings(compliance_interval_s=0), service=RegistryService(sessions, clock),
                     national=nat)
    with TestClient(app) as c:
        yield c, nat


def test_dpc_routes(app_client: tuple[TestClient, NationalRegistry], engine: Engine, clock: StepClock) -> None:
    client, _nat = app_client
    key = bind_dpc_key(session_factory(engine), "site-a", ["DPC-A"])
    regulator = create_key(session_factory(engine), "tax", Role.REGULATOR)
    who = client.get("/api/v1/dpc/whoami", headers=bearer(key))
    assert who.status_code == 200 and who.json() == {"key_name": "site-a", "dpcs": ["DPC-A"]}
    body = application("SN1").model_dump(mode="json")
    missing = client.post("/api/v1/dpc/DPC-A/applications", json=body, headers=bearer(key))
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    headers = {**bearer(key), "Idempotency-Key": "app-1"}
    first = client.post("/api/v1/dpc/DPC-A/applications", json=body, headers=headers)
    again = client.post("/api/v1/dpc/DPC-A/applications", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["replayed"] and again.json()["items"] == first.json()["items"]
    other = client.post("/api/v1/dpc/DPC-B/applications", json=body, headers={**headers, "Idempotency-Key": "x"})
    assert other.status_code == 403
    assert client.get("/api/v1/dpc/DPC-A/feed", headers=bearer(regulator)).status_code == 403
    bad = client.post("/api/v1/dpc/DPC-A/applications", headers={**headers, "Idempotency-Key": "app-2"},
                      json={"applications": [{**body["applications"][0], "owner_bin": "222222222220"}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "applications", "0", "owner_bin"]
    sight = client.post("/api/v1/dpc/DPC-A/sightings", json=batch(sighting("SN1", clock.now)).model_dump(mode="json"),
                        headers={**bearer(key), "Idempotency-Key": "s-1"})
    assert sight.status_code == 200 and sight.json()["accepted"] == 1
    page = FeedPage.model_validate(client.get("/api/v1/dpc/DPC-A/feed", params={"after": 0, "limit": 2},
                                              headers=bearer(key)).json())
    assert len(page.items) == 2 and page.has_more
    rest = FeedPage.model_validate(client.get("/api/v1/dpc/DPC-A/feed", params={"after": page.next_after},
                                              headers=bearer(key)).json())
    assert rest.items and rest.items[0].seq > page.next_after
    assert {"violation", "hsc"} <= {i.data.kind for i in rest.items}
