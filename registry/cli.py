"""`registry.cli`: serve the standalone registry and manage its API keys.

The controller's CLI can mount these (``kuat controller registry ...``); `serve` is also exposed on its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from registry.models import Role
from registry.settings import RegistrySettings

DB_HELP = "database URL (default $KUAT_REGISTRY_DATABASE_URL or sqlite:///kuat-registry.db)"


def _settings(database_url: str | None) -> RegistrySettings:
    settings = RegistrySettings()
    if database_url:
        settings.database_url = database_url
    return settings


@click.group("registry")
def cli() -> None:
    """The HSC registry: standalone service, API keys, CSV import, audit-chain check."""


@cli.command("serve")
@click.option("--database-url", default=None, help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8700, show_default=True, type=int)
def serve(database_url: str | None, host: str, port: int) -> None:
    """Run the registry as its own HTTP service (OpenAPI at /docs). Controllers submit through their outbox."""
    import uvicorn

    from registry.app import create_app

    uvicorn.run(create_app(_settings(database_url)), host=host, port=port, log_config=None)


@cli.command("create-key")
@click.option("--database-url", default=None, help=DB_HELP)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", required=True, help="who holds it (goes into the audit trail)")
def create_key(database_url: str | None, role: str, name: str) -> None:
    """Create an API key and print it once (only its salted hash is stored)."""
    from registry.app import build_service
    from registry.auth import create_key as make

    svc = build_service(_settings(database_url))
    with svc.transaction() as session:
        token = make(session, name, Role(role))
    click.echo(token)


@cli.command("revoke-key")
@click.option("--database-url", default=None, help=DB_HELP)
@click.option("--name", required=True)
def revoke_key(database_url: str | None, name: str) -> None:
    """Revoke every key of that name."""
    from registry.app import build_service
    from registry.auth import revoke_key as revoke

    svc = build_service(_settings(database_url))
    with svc.transaction() as session:
        count = revoke(session, name)
    click.echo(f"revoked {count} key(s)")


@cli.command("import")
@click.option("--database-url", default=None, help=DB_HELP)
@click.option("--apply", "apply_", is_flag=True, help="apply the file (default: dry run, report only)")
@click.option("--actor", default="operator:cli", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON (rows, counts, applied)")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_file(database_url: str | None, apply_: bool, actor: str, csv_file: Path, as_json: bool) -> None:
    """Register machines from a CSV file (columns: serial, owner_bin, dpc, registry_number, hall, rack, slot...)."""
    from registry.app import build_service
    from registry.importer import import_csv

    report = import_csv(build_service(_settings(database_url)), csv_file.read_text(), actor, dry_run=not apply_)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        if any(r.action == "error" for r in report.rows):
            sys.exit(1)
        return
    for row in report.rows:
        problems = "; ".join(f"{e['field']}: {e['reason']}" for e in row.errors)
        click.echo(f"line {row.line}: {row.serial or '-'} {row.action} {problems}".rstrip())
    click.echo(f"{'applied' if report.applied else 'not applied'}: {report.counts}")
    if any(r.action == "error" for r in report.rows):
        sys.exit(1)


@cli.command("verify")
@click.option("--database-url", default=None, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def verify(database_url: str | None, as_json: bool) -> None:
    """Verify the audit chain and the audited rows; exit 1 naming the first broken link."""
    from registry.app import build_service

    report = build_service(_settings(database_url)).verify_audit()
    if as_json:
        broken = report.first_broken.as_dict() if report.first_broken is not None else None
        click.echo(json.dumps({"events": report.events, "rows_checked": report.rows_checked, "first_broken": broken,
                               "intact": broken is None}, indent=2, default=str))
        if broken is not None:
            sys.exit(1)
        return
    click.echo(f"events: {report.events}, rows checked: {report.rows_checked}")
    if report.first_broken is not None:
        click.echo(f"BROKEN: {report.first_broken.as_dict()}")
        sys.exit(1)
    click.echo("chain intact")


if __name__ == "__main__":
    cli()
