"""The controller's schema (history rollups and the quota side's tables) under Alembic.

`init_controller_db(engine)` brings those tables to the newest revision in `controller/migrations`. The controller
keeps its own version table (`alembic_version_controller`), so its revisions and the registry's (`alembic_version`)
live side by side in one database, and each Alembic environment only ever sees its own tables.

Databases made before the migrations existed (tables created by `create_all`, no version table) are adopted:
stamped at the initial revision, whose schema is exactly what `create_all` made, then upgraded. A controller that ran
without the quota side has only the history tables: the missing ones are created by the initial revision, which in
that case skips the tables already present.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, text

from controller import history
from controller.alerts import models as alert_models
from controller.dashboard import placement as placement_models
from controller.lease import models as lease_models
from controller.money import models as money_models
from controller.planner import models as planner_models
from controller.quota import gaps as gap_models
from controller.quota import models as quota_models
from controller.registry_link import models as registry_link_models
from serverkit.db import SQLITE_BEGIN

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version_controller"
INITIAL_REVISION = "0001"
ADOPT_EXISTING = "adopt_existing_tables"  # Config.attributes key read by the initial revision
PG_LOCK_KEY = 0x4B7541545F435444  # pg_advisory_xact_lock key: "KuAT_CTD", the same for every controller process

CONTROLLER_TABLES: tuple[Table, ...] = (*history.metadata.sorted_tables, *quota_models.TABLES, *money_models.TABLES,
                                     *planner_models.TABLES, *registry_link_models.TABLES, *alert_models.TABLES,
                                     *placement_models.TABLES, *lease_models.TABLES, *gap_models.TABLES)
CONTROLLER_TABLE_NAMES = frozenset(t.name for t in CONTROLLER_TABLES)
# what revision 0001 made (and create_all made before the migrations): the tables adoption looks for; later
# revisions create their own tables unless a create_all of the current models made them already
INITIAL_TABLE_NAMES = frozenset({"device_minute", "site_minute", "energy_day", *(t.name for t in quota_models.TABLES)})

_init_lock = threading.Lock()  # the quota service and the history writer may both initialise in one process


def controller_metadata() -> MetaData:
    """One MetaData holding copies of exactly the controller's tables (history's own MetaData and the quota tables
    from SQLModel's process-wide one, which also holds the registry's): what the migrations must produce."""
    combined = MetaData()
    for table in CONTROLLER_TABLES:
        table.to_metadata(combined)
    return combined


def include_controller_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object`: the controller's tables and what hangs on them, never the registry's."""
    if type_ == "table":
        return name in CONTROLLER_TABLE_NAMES
    table = getattr(obj, "table", None)
    return table is None or table.name in CONTROLLER_TABLE_NAMES


def alembic_config() -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    return cfg


def init_controller_db(engine: Engine) -> None:
    """Bring the controller's tables to the newest revision: a no-op when they are there already.

    Safe to call concurrently: one thread of this process at a time, and across processes the whole check-and-
    migrate runs in one transaction under a lock (a transaction-scoped advisory lock on PostgreSQL, BEGIN IMMEDIATE
    on SQLite engines from `registry.db.make_engine`), so a second caller finds the first one's work done.
    """
    cfg = alembic_config()
    with _init_lock, engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        cfg.attributes["connection"] = connection
        adopted = _adopt_tables_made_by_create_all(cfg, connection)
        command.upgrade(cfg, "head")
        if adopted:
            _warn_if_schema_differs(connection)
    log.info("controller schema at head on %s", engine.url.render_as_string(hide_password=True))


def _adopt_tables_made_by_create_all(cfg: Config, connection: Connection) -> bool:
    """Tables present but no version table: the database predates the migrations. Stamp it at the initial
    revision (all tables there) or let that revision create just the missing ones (some there). True if adopted."""
    existing = set(inspect(connection).get_table_names())
    if VERSION_TABLE in existing:
        return False
    present = sorted(INITIAL_TABLE_NAMES & existing)
    if not present:
        return False
    missing = sorted(INITIAL_TABLE_NAMES - existing)
    if not missing:
        log.warning("controller tables made by create_all before migrations (%s): stamping them at revision %s",
                    ", ".join(present), INITIAL_REVISION)
        command.stamp(cfg, INITIAL_REVISION)
        return True
    log.warning("controller tables made by create_all before migrations (%s), others missing (%s): revision %s "
                "creates the missing ones and keeps the others", ", ".join(present), ", ".join(missing),
                INITIAL_REVISION)
    cfg.attributes[ADOPT_EXISTING] = True
    try:
        command.upgrade(cfg, INITIAL_REVISION)
    finally:
        del cfg.attributes[ADOPT_EXISTING]
    return True


def _warn_if_schema_differs(connection: Connection) -> None:
    """An adopted database is trusted to hold what create_all made; say so loudly when it does not (tables made by
    an older version of the code), since no revision will repair a difference it does not know about."""
    found = schema_differences(connection)
    if found:
        log.warning("adopted controller tables differ from the models; fix them by hand or with a revision: %s",
                    found)


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def schema_differences(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate sees between the database and the controller's models (empty: they match).
    A non-empty answer means a model changed without a revision: write one (docs/controller.md)."""
    context = MigrationContext.configure(connection, opts={
        "include_object": include_controller_object, "version_table": VERSION_TABLE,
        "compare_type": True, "compare_server_default": True,
    })  # fmt: skip
    return list(compare_metadata(context, controller_metadata()))


def head_revision() -> str:
    """The newest revision of the controller's migrations (what `init_controller_db` brings a database to). Tests
    compare with this rather than a literal, so each new revision does not edit them (and branches do not clash)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the controller's migrations have {len(heads)} heads ({', '.join(heads)}): "
                           "merge them with `alembic merge` (docs/controller.md, Schema migrations)")
    return heads[0]
