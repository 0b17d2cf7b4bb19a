"""Registry fixtures: every `service` / `client` test runs on SQLite and on a real private PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from registry import auth
from registry.app import create_app
from registry.db import init_db
from registry.models import Role
from registry.schemas import DpcIn, LicenseeIn, PoolIn
from registry.service import RegistryService
from registry.settings import RegistrySettings
from serverkit.db import make_engine, session_factory
from tests.support.postgres import PostgresCluster

# Valid BINs (check digit computed by hand, see test_bin.py)
BIN_HOST = "180340021791"
BIN_TENANT = "000000000000"
ACCREDITED = "stratum+tcp://pool.kz-accredited.example:3333"


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    eng = make_engine(url)
    init_db(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> StepClock:
    return StepClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))


@pytest.fixture
def service(engine: Engine, clock: StepClock) -> RegistryService:
    return RegistryService(session_factory(engine), clock=clock, missing_after=timedelta(days=3))


@pytest.fixture
def world(service: RegistryService) -> dict[str, int]:
    """A host (subtype I) with a DPC, a tenant (subtype II) and one accredited pool."""
    host = service.create_licensee(LicenseeIn(bin=BIN_HOST, name="Host LLP", licence_number="DM-001", subtype="I",
                                              valid_from=date(2025, 1, 10)), "operator:setup")
    tenant = service.create_licensee(LicenseeIn(bin=BIN_TENANT, name="Tenant LLP", licence_number="DM-002",
                                                subtype="II", valid_from=date(2024, 6, 1)), "operator:setup")
    dpc = service.create_dpc(DpcIn(name="Ekibastuz-1", address="Ekibastuz, industrial zone 4", zone="North",
                                   operator_id=host.id, capacity_mw=0.01,
                                   residential_zone_evidence="akimat letter 12/345"), "operator:setup")
    pool = service.create_pool(PoolIn(name="KZ Pool", endpoints=[ACCREDITED], accreditation_number="AP-7",
                                      valid_from=date(2025, 1, 1), valid_to=date(2028, 1, 1)), "operator:setup")
    assert host.id and tenant.id and dpc.id and pool.id
    return {"host": host.id, "tenant": tenant.id, "dpc": dpc.id, "pool": pool.id}


@pytest.fixture
def keys(service: RegistryService) -> dict[str, str]:
    with service.transaction() as session:
        return {role.value: auth.create_key(session, f"test-{role.value}", role) for role in Role}


@pytest.fixture
def client(service: RegistryService) -> Iterator[TestClient]:
    app = create_app(RegistrySettings(compliance_interval_s=0), service=service)
    with TestClient(app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
