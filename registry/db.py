"""Engines, schema and sessions for the registry: SQLite (WAL, foreign keys) by default, PostgreSQL via psycopg2.

`init_db` runs the Alembic migrations in `registry/migrations` to head: tests use it too, so the migrations are
what every test runs against.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SessionFactory = Callable[[], Session]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite connections get WAL, foreign keys and a busy timeout on connect."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module's own transaction handling breaks SAVEPOINT (the CSV import's per-row undo): turn it off
    # and let SQLAlchemy emit BEGIN itself (the recipe from SQLAlchemy's SQLite dialect documentation).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("memory", "wal"):  # in-memory cannot do WAL
        _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: Any, within_s: float = 10.0) -> None:
    """`PRAGMA journal_mode=WAL`, retried: two processes opening a fresh database file at once (the controller and
    `kuat registry serve`, two controllers) race for the change, and SQLite answers the loser "database is locked"
    at once instead of waiting on the busy timeout."""
    deadline, pause = time.monotonic() + within_s, 0.02
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


SQLITE_BEGIN = "kuat_sqlite_begin"  # execution option: "IMMEDIATE" for write transactions


def _sqlite_on_begin(connection: Any) -> None:
    """BEGIN IMMEDIATE for writers (they queue on the busy timeout instead of failing on a stale snapshot),
    plain BEGIN for readers (WAL readers never block)."""
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "")
    connection.exec_driver_sql(f"BEGIN {mode}".strip())


def alembic_config() -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    return cfg


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    log.info("registry schema at head on %s", engine.url.render_as_string(hide_password=True))


def session_factory(engine: Engine) -> SessionFactory:
    """Sessions that keep loaded objects usable after commit (the service returns them to the API)."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


def registry_table_names() -> frozenset[str]:
    """Tables the registry's migrations own. SQLModel.metadata is process-wide and also holds the controller's quota
    tables once anything imported them; the controller's tables have their own migrations (controller/migrations)."""
    import registry.models as models

    return frozenset(obj.__table__.name for obj in vars(models).values()
                     if isinstance(getattr(obj, "__table__", None), Table))


def include_registry_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object`: the registry's tables and what hangs on them, never the controller's."""
    owned = registry_table_names()
    if type_ == "table":
        return name in owned
    table = getattr(obj, "table", None)
    return table is None or table.name in owned
