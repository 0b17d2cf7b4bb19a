"""Alembic environment: uses the connection `registry.db.init_db` hands over, or $KUAT_REGISTRY_DATABASE_URL."""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlmodel import SQLModel

import registry.models  # (registers the tables on SQLModel.metadata)
import registry.national.models  # noqa: F401
from registry.db import include_registry_object

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(url=os.environ["KUAT_REGISTRY_DATABASE_URL"], target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True, include_object=include_registry_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from serverkit.db import make_engine

        engine = make_engine(os.environ["KUAT_REGISTRY_DATABASE_URL"])
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection: Any) -> None:
    # include_object: the controller's tables may share the database (and SQLModel.metadata): never touch them
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      include_object=include_registry_object)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
