"""Alembic environment of the controller's tables: uses the connection `controller.db.init_controller_db` hands
over, or $KUAT_CONTROLLER_DATABASE_URL (the controller's own setting) from a shell. It sees only the controller's
tables (`include_object`) and keeps its own version table, so the registry's tables in the same database are left
alone."""

from __future__ import annotations

import os
from typing import Any

from alembic import context

from controller.db import VERSION_TABLE, controller_metadata, include_controller_object

config = context.config
target_metadata = controller_metadata()
OPTIONS: dict[str, Any] = {
    "target_metadata": target_metadata,
    "include_object": include_controller_object,
    "version_table": VERSION_TABLE,
    "render_as_batch": True,  # SQLite alters tables by copying them
    "compare_type": True,
    "compare_server_default": True,
    "user_module_prefix": "",  # SQLModel's AutoString / UTCDateTime, imported by script.py.mako
}


def database_url() -> str:
    url = os.environ.get("KUAT_CONTROLLER_DATABASE_URL")
    if not url:
        raise SystemExit("set KUAT_CONTROLLER_DATABASE_URL (e.g. sqlite:///../var/kuat.sqlite) to run Alembic here")
    return url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from serverkit.db import make_engine

        engine = make_engine(database_url())
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection: Any) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
