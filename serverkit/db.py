"""Engines and sessions for Kuat's services: SQLite (WAL, foreign keys, busy timeout, explicit BEGIN) or PostgreSQL.

The controller and the registry each run their own Alembic tree on engines made here (registry.db.init_db,
controller.db.init_controller_db); they may share one database (an embedded registry) or not.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import annotated_types
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]

ROW_ID_MAX = 2**63 - 1  # a BIGINT / SQLite INTEGER: a larger id is a 422 at the edge, never an overflow (500) below
RowId = Annotated[int, annotated_types.Ge(1), annotated_types.Le(ROW_ID_MAX)]  # an id a route or body names


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


def session_factory(engine: Engine) -> SessionFactory:
    """Sessions that keep loaded objects usable after commit (the service returns them to the API)."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)




def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file URL (a fresh install's data dir)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
