"""Every write records its actor, on every write route of every app (the controller with its registry, the
standalone national registry): each route is sent one accepted request (tests/contract/writes.py) with a key of a
role it allows, and what the request wrote must name that key's actor (`role:name`): the audit chain, the quota
input log, the money and planner tables, the alert deliveries, the command on the wire.

The write routes come from the apps, so a new one fails `test_every_write_route_is_walked` until it gets a request
in writes.py or an entry in NO_TRAIL, with the reason it writes nothing that names anyone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry import auth
from registry.models import Role
from serverkit.auth import Scope
from tests.contract.apps import KEYS, controller_app, operations, registry_app
from tests.contract.seed import seed_controller, seed_registry
from tests.contract.writes import DPC_CODE, ZONE, Write, controller_writes, national_writes, registry_writes

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
NO_TRAIL = {  # write routes that legitimately record no actor, each with why; each must then write nothing at all
    "POST /api/v1/session": "trades the caller's key for a signed session cookie: no row, nothing changes",
    "DELETE /api/v1/session": "clears this browser's own session cookie: no row, nothing changes",
    "POST /api/v1/dashboard/schedule/preview": "a POST only to carry the CSV: it plans the day and stores nothing",
}
DPC_KEY = "dpc-bound-contract-key-0123456789"  # a dpc key bound to the DPC the authority makes in the walk
FLOOR = {"zone": ZONE, "valid_from": "2024-01-01", "kzt_per_mwh": 18000.0, "source": "test floor (not official)"}
PLANNER = {"zone_floors": [FLOOR], "mining_fee_kzt_per_kwh": 2.0, "mining_fee_source": "test: flat 2 KZT/kWh"}


class Walk:
    """One app under the walk: its client, the keys by role, and the trail it leaves (database rows, commands)."""

    def __init__(self, app: FastAPI, client: TestClient, database: str, keys: dict[str, tuple[str, str]]) -> None:
        self.app, self.client, self.database, self.keys = app, client, database, keys
        self.published: list[str] = []
        self.kept: dict[str, Any] = {}

    def trail(self) -> set[str]:
        with sqlite3.connect(self.database) as conn:
            rows = set(conn.iterdump())
        return rows | {f"published {p}" for p in self.published}

    def send(self, w: Write) -> Any:
        token, _ = self.keys[w.role]
        headers = {"X-API-Key": token}
        if w.content_type:
            headers["content-type"] = w.content_type
        if w.idempotency_key:
            headers["Idempotency-Key"] = w.idempotency_key
        url = w.url.format(**{k: v["id"] for k, v in self.kept.items()})
        response = self.client.request(w.label.split()[0], url, json=w.json, content=w.content, params=w.params,
                                       headers=headers)  # fmt: skip
        assert 200 <= response.status_code < 300, f"{w.label}: {response.status_code} {response.text[:500]}"
        if w.keep:
            body = response.json()
            self.kept[w.keep] = body["items"][0] if "items" in body else body
        return response


def key_names(prefix: str) -> dict[str, tuple[str, str]]:
    return {role: (key, f"{role}:{prefix}-{role}") for role, key in KEYS.items()}


@pytest.fixture
def controller_walk(tmp_path: Path) -> Iterator[Walk]:
    with controller_app(tmp_path, planner=PLANNER) as (app, services), TestClient(app) as client:
        seed_controller(services)
        walk = Walk(app, client, str(services.engine.url.database), key_names("contract"))
        services.commands.publish = lambda topic, payload: walk.published.append(payload.decode())
        assert services.alerts is not None
        services.alerts.create_rule({"name": "warm", "condition": "temperature_high", "threshold": 60}, "seed")
        services.alerts.evaluate()
        walk.kept["alert"] = services.alerts.alerts()[0]
        yield walk


@pytest.fixture
def registry_walk(tmp_path: Path) -> Iterator[Walk]:
    with registry_app(tmp_path) as (app, service), TestClient(app) as client:
        seed_registry(service)
        with service.transaction() as session:
            auth.store_key(session, "contract-dpc-a", Role.DPC, DPC_KEY, Scope.of(dpcs=[DPC_CODE]))
        keys = key_names("contract") | {"dpc": (DPC_KEY, "dpc:contract-dpc-a")}
        yield Walk(app, client, str(tmp_path / "registry.sqlite"), keys)


def write_labels(app: FastAPI) -> set[str]:
    return {op.label for op in operations(app) if op.method in WRITES}


def walk_all(walk: Walk, writes: list[Write]) -> dict[str, str]:
    """Send every write; what is wrong with each that records no actor (or, in NO_TRAIL, writes anything)."""
    bad = {}
    for w in writes:
        before = walk.trail()
        walk.send(w)
        written = walk.trail() - before
        actor = walk.keys[w.role][1]
        if w.label in NO_TRAIL:
            if written:
                bad[w.label] = f"listed in NO_TRAIL but wrote {sorted(written)[:3]}"
        elif not written:
            bad[w.label] = "accepted but wrote nothing (a no-op request is no test)"
        elif not any(actor in line for line in written):
            bad[w.label] = f"wrote {len(written)} row(s), none naming {actor}: {sorted(written)[:2]}"
    return bad


def test_every_write_route_is_walked(controller_walk: Walk, registry_walk: Walk) -> None:
    """Each write route of each app has a request in writes.py or a NO_TRAIL entry, and no entry is stale."""
    walked = {w.label for w in registry_writes() + controller_writes() + national_writes()}
    routes = write_labels(controller_walk.app) | write_labels(registry_walk.app)
    assert len(routes) >= 60
    assert not routes - walked - NO_TRAIL.keys(), "write routes neither walked nor in NO_TRAIL (with a reason)"
    assert not (walked | NO_TRAIL.keys()) - routes, "entries for routes no app serves"


def test_every_controller_write_records_its_actor(controller_walk: Walk) -> None:
    writes = registry_writes() + controller_writes()
    assert {w.label for w in writes} >= write_labels(controller_walk.app) - NO_TRAIL.keys()
    bad = walk_all(controller_walk, writes)
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


def test_every_registry_write_records_its_actor(registry_walk: Walk) -> None:
    writes = registry_writes() + national_writes()
    assert {w.label for w in writes} == write_labels(registry_walk.app)
    bad = walk_all(registry_walk, writes)
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())
