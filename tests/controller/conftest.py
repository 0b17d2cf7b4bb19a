"""Controller fixtures: settings on a temp SQLite file, and fully built services (real registry, real SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.runtime import Services, build_services
from controller.settings import ControllerSettings, load_settings
from tests.support.postgres import PostgresCluster


def make_settings(tmp_path: Path, **over: object) -> ControllerSettings:
    """Settings of a test controller. Without a `registry` given they are a lab's (`registry: {mode: none_lab}`):
    the tests that use them are of ingest, the quota loop and the API, not of power rights, which the ones that
    are set themselves (a link, or `registry=None` for the fail-closed default: tests/national/test_loop_rights.py)."""
    over.setdefault("database_url", f"sqlite:///{tmp_path / 'kuat.sqlite'}")
    over.setdefault("registry", {"mode": "none_lab"})
    return load_settings(None, **over)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite by default; test modules that must hold on PostgreSQL too override this with
    `@pytest.fixture(params=BOTH_DATABASES)` returning `sqlite_or_postgres(request, tmp_path)`."""
    return f"sqlite:///{tmp_path / 'kuat.sqlite'}"


BOTH_DATABASES = ["sqlite", "postgres"]


def sqlite_or_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of a run parametrised over BOTH_DATABASES (PostgreSQL: a fresh database of the private
    cluster)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kuat.sqlite'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> ControllerSettings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
def services(settings: ControllerSettings) -> Iterator[Services]:
    svc = build_services(settings, with_ingest=False)
    yield svc
    svc.close()
    svc.engine.dispose()
