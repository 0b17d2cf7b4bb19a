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
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
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




def unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (a server restarting, a connection cut, SQLite busy or full): an outage to
    ride out, not a bug. PostgreSQL's cut connections surface as OperationalError/InterfaceError, or as a DBAPIError
    SQLAlchemy marked `connection_invalidated`; pre-ping (make_engine) replaces them once the server is back."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Outage:
    """One log line per database outage instead of a traceback per periodic run: `failed` says the first failure
    (WARNING, no traceback) and counts the rest, `ok` says the recovery once with how long and how many failed.
    Thread-safe enough for counters read by metrics (a lost increment is harmless)."""

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what
        self.log = logger or log
        self.since: float | None = None  # monotonic start of the outage in progress
        self.failures = 0  # failures in the outage in progress
        self.total = 0  # every failure since the start (kuat_*_db_failures_total)

    def failed(self, exc: BaseException, doing: str) -> None:
        self.total += 1
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s: database unavailable (%s: %s); carrying on from memory, retrying every run",
                             self.what, doing, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def ok(self) -> None:
        if self.since is not None:
            self.log.info("%s: database back after %.1f s (%d failed attempts)", self.what,
                          time.monotonic() - self.since, self.failures)
            self.since, self.failures = None, 0


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file URL (a fresh install's data dir)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
