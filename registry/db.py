"""The registry's schema: its Alembic migrations (registry/migrations, version table `alembic_version`) and the
filter that keeps them off the controller's tables. Engines and sessions come from `serverkit.db`.

`init_db` runs the migrations to head: tests use it too, so the migrations are what every test runs against.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Table

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent


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


def registry_table_names() -> frozenset[str]:
    """Tables the registry's migrations own. SQLModel.metadata is process-wide and also holds the controller's quota
    tables once anything imported them; the controller's tables have their own migrations (controller/migrations)."""
    import registry.models as models
    import registry.national.models as national

    return frozenset(obj.__table__.name for module in (models, national) for obj in vars(module).values()
                     if isinstance(getattr(obj, "__table__", None), Table))


def include_registry_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic `include_object`: the registry's tables and what hangs on them, never the controller's."""
    owned = registry_table_names()
    if type_ == "table":
        return name in owned
    table = getattr(obj, "table", None)
    return table is None or table.name in owned


def head_revision() -> str:
    """The newest revision of the registry's migrations (what `init_db` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the registry's migrations have no head"
    return head
