"""The controller's Alembic migrations (controller/migrations) on SQLite and PostgreSQL: they build exactly the
models' schema, adopt databases made by create_all before they existed, are idempotent and safe to run from two
processes at once, and share a database with the registry's migrations without either seeing the other's tables."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlmodel import SQLModel

from controller import history
from controller.db import (
    CONTROLLER_TABLE_NAMES,
    VERSION_TABLE,
    current_revision,
    head_revision,
    init_controller_db,
    schema_differences,
)
from controller.quota.models import TABLES as QUOTA_TABLES
from controller.quota.models import QuotaSiteLimits
from registry.db import head_revision as registry_head_revision
from registry.db import include_registry_object, init_db, registry_table_names
from serverkit.db import make_engine
from tests.controller.conftest import BOTH_DATABASES, sqlite_or_postgres

REPO = Path(__file__).resolve().parents[2]
HEAD = head_revision()
MINUTE = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture(params=BOTH_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return sqlite_or_postgres(request, tmp_path)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    try:
        yield eng
    finally:
        eng.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return schema_differences(conn)


def summary(diff: list[object]) -> set[tuple[str, str]]:
    """compare_metadata's answer as (operation, object): ("add_index", "ix_..."), ("remove_column", "table.col")."""
    out: set[tuple[str, str]] = set()
    for entry in diff:
        if not isinstance(entry, tuple):
            continue  # lists of column modifications
        if entry[0] in ("add_column", "remove_column"):
            out.add((entry[0], f"{entry[2]}.{entry[3].name}"))
        else:
            out.add((entry[0], str(getattr(entry[1], "name", entry[1]))))
    return out


def create_the_old_way(engine: Engine, with_quota: bool = True) -> None:
    """What the controller did before migrations: create_all of history's tables, and the quota side's."""
    history.metadata.create_all(engine)
    if with_quota:
        SQLModel.metadata.create_all(engine, tables=QUOTA_TABLES)


def write_rows(engine: Engine, with_quota: bool = True) -> None:
    with engine.begin() as conn:
        conn.execute(insert(history.site_minute).values(
            site="s1", minute=MINUTE, source="grid", miners=3, miners_available=2, power_w=9000.0,
            hashrate_ths=300.0, energy_kwh=0.15))  # fmt: skip
        if with_quota:
            conn.execute(insert(QuotaSiteLimits.__table__).values(  # type: ignore[arg-type]
                site="s1", connection_kw=1200.0, reserved_headroom_kw=0.0, zone=None, zone_share=1.0,
                require_schedule=True, lend_unused_share=True, actor="operator:alice", source="api",
                received_at=MINUTE))  # fmt: skip


def row_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        sites = conn.execute(select(func.count()).select_from(history.site_minute)).scalar_one()
        limits = conn.execute(select(func.count()).select_from(QuotaSiteLimits.__table__)).scalar_one()
    return sites, limits


def test_upgrade_on_an_empty_database_builds_exactly_the_models(engine: Engine) -> None:
    assert tables(engine) == set()
    init_controller_db(engine)
    assert tables(engine) == CONTROLLER_TABLE_NAMES | {VERSION_TABLE}
    assert revision(engine) == HEAD
    assert differences(engine) == [], "models and controller migrations differ: write a revision"
    write_rows(engine)
    assert row_counts(engine) == (1, 1)


def test_the_comparison_sees_a_schema_that_drifted(engine: Engine) -> None:
    """The check above can fail: a missing index and an extra column (a model changed without a revision) show."""
    init_controller_db(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_site_minute_minute"))
        conn.execute(text("ALTER TABLE quota_dispatch ADD COLUMN operator_note VARCHAR(20)"))
    found = differences(engine)
    assert {("add_index", "ix_site_minute_minute"), ("remove_column", "quota_dispatch.operator_note")} \
        <= summary(found), found


def test_a_database_made_by_create_all_is_stamped_and_keeps_its_data(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    create_the_old_way(engine)
    write_rows(engine)
    assert VERSION_TABLE not in tables(engine)
    with caplog.at_level(logging.INFO, logger="controller.db"):
        init_controller_db(engine)  # the initial revision would fail on the existing tables: it must be stamped
    assert any("stamping them at revision 0001" in r.getMessage() for r in caplog.records), caplog.text
    assert not any("differ from the models" in r.getMessage() for r in caplog.records), caplog.text
    assert revision(engine) == HEAD
    assert row_counts(engine) == (1, 1)
    assert differences(engine) == []


def test_an_adopted_database_that_differs_from_the_models_is_reported(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Stamping trusts the tables; when an older create_all made them differently, the log says what differs."""
    create_the_old_way(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_energy_day_day"))
    with caplog.at_level(logging.INFO, logger="controller.db"):
        init_controller_db(engine)
    warned = [r.getMessage() for r in caplog.records if "differ from the models" in r.getMessage()]
    assert len(warned) == 1 and "ix_energy_day_day" in warned[0], caplog.text
    assert revision(engine) == HEAD


def test_history_only_database_gets_the_quota_tables_and_keeps_its_rows(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A controller that ran without the quota side had only history's tables."""
    create_the_old_way(engine, with_quota=False)
    write_rows(engine, with_quota=False)
    with caplog.at_level(logging.INFO, logger="controller.db"):
        init_controller_db(engine)
    assert any("creates the missing ones" in r.getMessage() for r in caplog.records), caplog.text
    assert tables(engine) == CONTROLLER_TABLE_NAMES | {VERSION_TABLE}
    assert revision(engine) == HEAD
    assert row_counts(engine) == (1, 0)
    assert differences(engine) == []


def test_init_twice_is_a_no_op(engine: Engine) -> None:
    init_controller_db(engine)
    write_rows(engine)
    init_controller_db(engine)
    assert row_counts(engine) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]


def test_two_processes_initialising_one_database_at_once(database_url: str, engine: Engine) -> None:
    """Two controller processes starting together on a fresh database: both succeed, the schema is made once."""
    script = "import sys; from serverkit.db import make_engine; from controller.db import init_controller_db; " \
             "init_controller_db(make_engine(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script, database_url], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert revision(engine) == HEAD
    assert differences(engine) == []


def test_registry_and_controller_migrations_share_a_database(engine: Engine) -> None:
    init_db(engine)
    init_controller_db(engine)
    init_db(engine)  # the registry's env, run again beside the controller's tables, leaves them alone
    names = tables(engine)
    assert {"alembic_version", VERSION_TABLE} <= names
    assert registry_table_names() | CONTROLLER_TABLE_NAMES | {"alembic_version", VERSION_TABLE} == names
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == registry_head_revision()
        assert current_revision(conn) == HEAD
        assert schema_differences(conn) == []
        registry_diff = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": include_registry_object}), SQLModel.metadata)
        unfiltered = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert registry_diff == [], f"the registry's migrations see a difference: {registry_diff}"
    # without its filter the registry's env would want to drop history's tables (and create the quota ones)
    expected = {("remove_table", name) for name in ("device_minute", "site_minute", "energy_day", VERSION_TABLE)}
    assert expected <= summary(unfiltered), unfiltered


def test_alembic_command_line_in_controller_dir(tmp_path: Path) -> None:
    """The commands docs/controller.md gives: upgrade, then `alembic check` (no new revision needed)."""
    env = {**os.environ, "KUAT_CONTROLLER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    alembic = [sys.executable, "-m", "alembic"]
    for args in (["upgrade", "head"], ["check"], ["current"]):
        done = subprocess.run([*alembic, *args], cwd=REPO / "controller", env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert f"{HEAD} (head)" in done.stdout
    engine = make_engine(env["KUAT_CONTROLLER_DATABASE_URL"])
    try:
        assert tables(engine) == CONTROLLER_TABLE_NAMES | {VERSION_TABLE}
    finally:
        engine.dispose()
