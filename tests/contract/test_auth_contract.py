"""The authentication contract of every route of every app, walked from the apps themselves (a new route is walked
without anyone listing it; one without a guard fails here by name):

- no key -> 401; a key in the URL (`?key=`) counts as no key -> 401;
- a key of a role the route does not allow -> 403 (every such role is tried), and a key it allows gets past the
  check (never 401/403);
- a grid key scoped to another site -> 403 on every route the grid role may use.

That every write records its key as its actor is test_write_actors.py's walk.

The only routes without a key are listed in PUBLIC, each with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry.models import Role
from tests.contract.apps import GRID_ELSEWHERE, KEYS, SITE, Operation, controller_app, operations, registry_app
from tests.contract.seed import HOST_BIN, seed_controller, seed_registry

PUBLIC = {
    "GET /healthz": "monitoring (no data beyond counts)",
    "GET /metrics": "Prometheus scrape (counts only)",
    "GET /ui": "the dashboard page itself (static; its data routes are guarded)",
    "GET /ui/": "the same page",
    "DELETE /api/v1/session": "clears this browser's own session cookie",
    "GET /api/v1/audit/public-key": "the registry's Ed25519 public key: published so anyone can verify the chain",
    "GET /api/v1/public/dpcs": "the public view: registered machines counted per DPC (no machine data)",
    "GET /api/v1/public/registry-numbers/{number}": "the public view: whether a registry number is valid",
}
SELF_GUARDED = {"POST /api/v1/session"}  # checks the key itself (it trades it for a cookie)
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
PATH_VALUES: dict[str, Any] = {"site": SITE, "tenant": HOST_BIN, "ref": "SER-PENDING", "month": "2026-11",
                               "bin_": HOST_BIN, "kind": "hashprice", "device_id": "02:00:00:00:01:01"}


def guard_roles(op: Operation) -> frozenset[str] | None:
    """The roles the route's guard allows (serverkit.auth.Guard.require puts them on its dependency)."""
    stack = [op.route.dependant]
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            return frozenset(roles)
        stack.extend(dep.dependencies)
    return None


def url_of(op: Operation) -> str:
    path = op.path
    for param in op.route.dependant.path_params:
        value = PATH_VALUES.get(param.name, 1 if "int" in str(param.field_info.annotation) else "x")
        path = path.replace("{" + param.name + "}", str(value))
    return path


def call(client: TestClient, op: Operation, headers: dict[str, str] | None = None, query: str = "") -> Any:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if op.method in WRITES and op.route.dependant.body_params:
        kwargs["json"] = {}
    return client.request(op.method, url_of(op) + query, **kwargs)


def send(client: TestClient, op: Operation, headers: dict[str, str] | None = None, query: str = "") -> int:
    return int(call(client, op, headers, query).status_code)


def role_refused(response: Any) -> bool:
    """401, or the guard's 403 for the role (a 403 of a narrower check, a tenant's licensee, is not one)."""
    return response.status_code == 401 or (response.status_code == 403 and "may not do this" in response.text)


@pytest.fixture(params=["controller", "registry"])
def walked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FastAPI, TestClient, list[Operation]]]:
    factory = controller_app if request.param == "controller" else registry_app
    with factory(tmp_path) as (app, svc), TestClient(app) as client:
        if request.param == "controller":
            seed_controller(svc)
        else:
            seed_registry(svc)
        client.cookies.clear()
        ops = [op for op in operations(app) if op.label not in PUBLIC]
        yield app, client, ops


def test_every_route_has_a_guard(walked: tuple[FastAPI, TestClient, list[Operation]]) -> None:
    _, _, ops = walked
    assert len(ops) > 25
    unguarded = [op.label for op in ops if guard_roles(op) is None and op.label not in SELF_GUARDED]
    assert not unguarded, f"routes without a guard (add one, or list them in PUBLIC with a reason): {unguarded}"


def test_no_key_and_a_key_in_the_url_are_401(walked: tuple[FastAPI, TestClient, list[Operation]]) -> None:
    _, client, ops = walked
    bad = {}
    for op in ops:
        for how, query in (("no key", ""), ("?key=", f"?key={KEYS['operator']}")):
            if (code := send(client, op, query=query)) != 401:
                bad[f"{op.label} ({how})"] = code
    assert not bad, bad


def test_wrong_roles_are_403_and_allowed_ones_pass(walked: tuple[FastAPI, TestClient, list[Operation]]) -> None:
    _, client, ops = walked
    bad = {}
    for op in ops:
        roles = guard_roles(op)
        if roles is None:
            continue
        for role in Role:
            response = call(client, op, {"X-API-Key": KEYS[role.value]})
            if role.value not in roles and response.status_code != 403:
                bad[f"{op.label} as {role.value} (not allowed)"] = response.status_code
            if role.value in roles and role_refused(response):
                bad[f"{op.label} as {role.value} (allowed)"] = response.status_code
    assert not bad, bad


def test_a_grid_key_outside_its_sites_is_403(walked: tuple[FastAPI, TestClient, list[Operation]]) -> None:
    _, client, ops = walked
    grid_ops = [op for op in ops if "grid" in (guard_roles(op) or ())]
    bad = {op.label: code for op in grid_ops if (code := send(client, op, {"X-API-Key": GRID_ELSEWHERE})) != 403}
    assert not bad, bad
    if walked[0].title.startswith("Kuat controller"):
        assert len(grid_ops) > 20  # the quota, planner, fleet and dashboard routes the grid reads or pushes
