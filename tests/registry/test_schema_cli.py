"""Migrations match the models; the registry CLI (keys, import, verify) works on a real database file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from registry.cli import cli
from registry.db import head_revision, init_db
from tests.support.servers import free_port, wait_port


def _registry_tables() -> set[str]:
    """Tables the registry's migrations own. SQLModel.metadata is process-wide and also holds the controller's
    tables (created by create_all) once anything imported them, so the comparison is limited to these."""
    import registry.models as models

    return {t.name for t in SQLModel.metadata.sorted_tables
            if any(getattr(obj, "__table__", None) is t for obj in vars(models).values())}


def test_migrations_match_the_models(engine: Engine) -> None:
    init_db(engine)  # a second run is a no-op
    owned = _registry_tables()
    assert {"hsc", "licensee"} <= owned, owned

    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in owned

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations differ: write a migration ({diff})"
    with engine.connect() as conn:
        at = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert at == head_revision()


def test_cli_keys_import_verify(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    runner = CliRunner()
    made = runner.invoke(cli, ["create-key", "--database-url", url, "--role", "operator", "--name", "alice"])
    assert made.exit_code == 0 and len(made.output.strip()) >= 40
    csv_file = tmp_path / "machines.csv"
    csv_file.write_text("serial,owner_bin,dpc\nA-1,180340021791,Nowhere\n")
    dry = runner.invoke(cli, ["import", "--database-url", url, str(csv_file)])
    assert dry.exit_code == 1 and "unknown licensee BIN 180340021791" in dry.output and "not applied" in dry.output
    ok = runner.invoke(cli, ["verify", "--database-url", url])
    assert ok.exit_code == 0 and "chain intact" in ok.output
    revoked = runner.invoke(cli, ["revoke-key", "--database-url", url, "--name", "alice"])
    assert revoked.exit_code == 0 and "revoked 1 key" in revoked.output
    assert "OpenAPI" in runner.invoke(cli, ["serve", "--help"]).output


def test_kuat_registry_serve_process(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kuat.cli", "registry", "serve", "--database-url",
                             f"sqlite:///{tmp_path / 'served.db'}", "--port", str(port), "--signing-key",
                             str(tmp_path / "signing.pem")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/registry/hscs", timeout=5).status_code == 401
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode in (0, -15), output  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "registry schema at head" in output and "Application shutdown complete" in output
