"""The apps the contract, schema and fuzz tests walk, built for real: the controller (SQLite, its registry, quota,
money and planner services; no broker) and the standalone registry; one key of every role, and scoped keys.

Routes are always enumerated from the app (`operations`), never from a hand list, so a route added later is walked
by every test here without anyone remembering to add it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from controller.app import create_app
from controller.runtime import Services, build_services
from controller.settings import load_settings
from registry import auth
from registry.app import build_service
from registry.app import create_app as create_registry_app
from registry.models import Role
from registry.settings import RegistrySettings
from serverkit.auth import Scope

SITE = "kz1"
OTHER_SITE = "kz-elsewhere"
KEYS = {role.value: f"{role.value}-contract-key-0123456789" for role in Role}
GRID_ELSEWHERE = "grid-elsewhere-contract-key-0123456789"  # a grid key scoped to another site only


@dataclass(frozen=True)
class Operation:
    """One method of one route as the app serves it."""

    method: str
    path: str
    route: Any  # fastapi RouteContext (its attributes are the APIRoute's, with the include prefix applied)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: FastAPI) -> list[Operation]:
    """Every method of every FastAPI route of `app`, the documented ones (include_in_schema) and the others."""
    found = []
    for ctx in iter_route_contexts(app.routes):
        if not isinstance(ctx.original_route, APIRoute):
            continue
        for method in sorted(ctx.methods or ()):
            if method != "HEAD":
                found.append(Operation(method, str(ctx.path), ctx))
    return found


def _store_scoped_keys(registry: Any) -> None:
    with registry.transaction() as session:
        auth.store_key(session, "grid-elsewhere", Role.GRID, GRID_ELSEWHERE, Scope.of(sites=[OTHER_SITE]))


@contextmanager
def controller_app(tmp_path: Path, **over: Any) -> Iterator[tuple[FastAPI, Services]]:
    """The controller's app as `kuat controller run` builds it, minus the broker (ingest off)."""
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'kuat.sqlite'}", sites=[SITE],
                             api_keys=[{"name": f"contract-{r}", "role": r, "key": k} for r, k in KEYS.items()],
                             **over)  # fmt: skip
    services = build_services(settings, with_ingest=False)
    assert services.registry is not None
    _store_scoped_keys(services.registry)
    app = create_app(settings, services)
    app.state.dashboard.stream_max_s = 0.2  # a walk opens the live stream many times: it ends as on a disconnect
    app.state.alerts_stream_max_s = 0.2  # the same for the alerts stream
    try:
        yield app, services
    finally:
        services.close()
        services.engine.dispose()


@contextmanager
def registry_app(tmp_path: Path) -> Iterator[tuple[FastAPI, Any]]:
    """The registry as its own service (`kuat registry serve`), without its compliance timer."""
    settings = RegistrySettings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}", compliance_interval_s=0)
    service = build_service(settings)
    with service.transaction() as session:
        for role, key in KEYS.items():
            auth.store_key(session, f"contract-{role}", Role(role), key)
    _store_scoped_keys(service)
    yield create_registry_app(settings, service), service
