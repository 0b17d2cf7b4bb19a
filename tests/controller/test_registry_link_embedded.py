"""The registry link's embedded transport against the real national registry (registry.dpc_port.InProcessDpcPort on
the controller's own database, SQLite and PostgreSQL): sightings and an application go through the outbox, the
authority includes the machine, the feed brings the decision into the mirror and the power gate opens; an allowance
granted by an operator reaches the registry and comes back through the feed; a resend is applied once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.registry_link.client import RegistryLink
from controller.runtime import Services, build_services
from kuat import clock
from kuat.wire import v1
from registry.contract import v1 as c
from registry.national.service import NationalRegistry
from serverkit.db import session_factory
from tests.controller.conftest import BOTH_DATABASES, make_settings, sqlite_or_postgres
from tests.registry.national_world import ACCREDITED, AUTHORITY, BIN_A, build_world

OPERATOR = "op-" + "k" * 30


@pytest.fixture(params=BOTH_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return sqlite_or_postgres(request, tmp_path)


@pytest.fixture
def embedded(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Services, RegistryLink,
                                                                  NationalRegistry]]:
    settings = make_settings(tmp_path, database_url=database_url, api_keys=[
        {"name": "ops", "role": "operator", "key": OPERATOR}], registry={"mode": "embedded", "dpc": "DPC-A"})
    svc = build_services(settings, with_ingest=False)
    nat = NationalRegistry(session_factory(svc.engine))
    build_world(nat)
    assert svc.registry_link is not None
    with TestClient(create_app(settings, svc)) as client:
        yield client, svc, svc.registry_link, nat
    svc.close()
    svc.engine.dispose()


def sample(dev: str, serial: str) -> v1.MinerSample:
    return v1.MinerSample(device_id=dev, ip="127.0.0.5", available=True, state=v1.MinerState.MINING,
                          model="S19j Pro", serial=serial, power_w=3000.0, hashrate_ths=100.0,
                          pools=[v1.Pool(url=ACCREDITED)])  # fmt: skip


def applied(link: RegistryLink, key: str) -> c.ApplicationReceipt:
    item = link.outbox.items(key)
    assert item is not None and item.sent_at is not None and item.result is not None, item
    return c.ApplicationReceipt.model_validate(json.loads(item.result))


def test_apply_decide_follow_and_power(embedded: tuple[TestClient, Services, RegistryLink, NationalRegistry]
                                       ) -> None:
    client, svc, link, nat = embedded
    svc.telemetry.ingest(v1.TelemetryBatch(site="s1", gateway="gw1", seq=1, ts=clock.now(),
                                           miners=[sample("m1", "SN-1"), sample("m2", "SN-2")]))  # fmt: skip
    svc.sightings.flush()
    h = {"X-API-Key": OPERATOR}
    r = client.post("/api/v1/registry-link/applications", headers=h, json={"applications": [
        {"kind": "inclusion", "device_id": "m1", "owner_bin": BIN_A},
        {"kind": "inclusion", "device_id": "m2", "owner_bin": BIN_A}]})  # fmt: skip
    assert r.status_code == 202, r.text
    sent, changed = link.sync()
    assert sent == 2 and changed > 0
    assert link.outbox.counts().pending == 0
    power = {p["device_id"]: p["reason"] for p in client.get("/api/v1/registry-link/power", headers=h).json()}
    assert power == {"m1": "pending", "m2": "pending"}

    receipt = applied(link, r.json()["submission"])
    first = next(a for a in receipt.items if a.serial == "SN-1")
    nat.decide(first.id, True, None, AUTHORITY)
    link.sync()
    one = client.get("/api/v1/registry-link/power/m1", headers=h).json()
    assert one["powered"] and one["reason"] == "included" and "KZ-HSC-" in one["detail"]

    # burn-in for the pending one: granted here, recorded by the registry, echoed by the feed
    made = client.post("/api/v1/registry-link/allowances", headers=h,
                       json={"device_id": "m2", "hours": 6, "reason": "burn-in"})
    assert made.status_code == 201, made.text
    assert client.get("/api/v1/registry-link/power/m2", headers=h).json()["reason"] == "allowance"
    link.sync()
    listed = client.get("/api/v1/registry-link/allowances", headers=h).json()
    assert listed[0]["registry_id"] is not None
    assert any(isinstance(d, c.AllowanceState) and d.serial == "SN-2" for d in link.mirror.items("allowance"))

    # the outbox resends with the same key after a lost answer: the registry applies it once
    item = link.outbox.items(r.json()["submission"])
    assert item is not None
    again = link.port.submit_applications("DPC-A", c.ApplicationBatch.model_validate_json(item.payload),
                                          item.idempotency_key)
    assert again.replayed and [a.id for a in again.items] == [a.id for a in receipt.items]


def test_a_restarted_link_keeps_its_cursor_and_decisions(embedded: tuple[TestClient, Services, RegistryLink,
                                                                         NationalRegistry]) -> None:
    _, svc, link, nat = embedded
    key = link.apply([c.ApplicationIn(kind=c.ApplicationKind.INCLUSION, serial="SN-9", owner_bin=BIN_A,
                                      submitted_by="t", submitted_at=clock.now())])  # fmt: skip
    link.sync()
    nat.decide(applied(link, key).items[0].id, True, None, AUTHORITY)
    link.sync()
    after = link.mirror.cursor().after
    again = RegistryLink(link.port, svc.engine, link.settings, clock.now)
    assert again.mirror.cursor().after == after
    assert again.mirror.load()[1].decisions["SN-9"].status == "included"
    assert again.sync() == (0, 0)  # nothing new: the cursor did not go back
