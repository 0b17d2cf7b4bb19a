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
@click.option("--signing-key", default=None, type=click.Path(dir_okay=False),
              help="Ed25519 private key file (created on first start; default $KUAT_REGISTRY_SIGNING_KEY_FILE or "
                   "./kuat-registry-signing.pem)")
def serve(database_url: str | None, host: str, port: int, signing_key: str | None) -> None:
    """Run the national registry as its own HTTP service (OpenAPI at /docs, web page at /ui)."""
    import uvicorn

    from registry.app import create_app

    settings = _settings(database_url)
    settings.signing_key_file = signing_key or settings.signing_key_file or "kuat-registry-signing.pem"
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)


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
@click.option("--feed", "feed_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="a downloaded audit feed (GET /api/v1/audit/events.jsonl): check it offline, no server needed")
@click.option("--public-key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="the registry's public key (PEM, from GET /api/v1/audit/public-key)")
@click.option("--export", "export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="with --feed: a current-state export (export.jsonl?audited=true) to compare with the chain")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def verify(database_url: str | None, feed_file: Path | None, key_file: Path | None, export_file: Path | None,
           as_json: bool) -> None:
    """Verify the audit chain; exit 1 naming the first broken link.

    With --feed and --public-key it runs on a regulator's own machine against a downloaded feed: every link, the
    head's Ed25519 signature, and (with --export) every exported row against the state its chain recorded.
    Without them it checks the database directly (every link, and every audited row)."""
    if feed_file is not None or key_file is not None:
        _verify_offline(feed_file, key_file, export_file, as_json)
        return
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


class _Failed(click.ClickException):
    exit_code = 2  # the CLI's rule: an error is one line and exit status 2


def _verify_offline(feed_file: Path | None, key_file: Path | None, export_file: Path | None, as_json: bool) -> None:
    from registry.national import chainfile
    from serverkit.errors import InvalidInput

    if feed_file is None or key_file is None:
        raise click.UsageError("--feed and --public-key go together")
    try:
        with feed_file.open(encoding="utf-8") as feed:
            if export_file is not None:
                with export_file.open(encoding="utf-8") as export:
                    report = chainfile.verify_with_export(feed, key_file.read_bytes(), export)
            else:
                report = chainfile.verify_feed(feed, key_file.read_bytes())
    except (InvalidInput, ValueError) as exc:
        raise _Failed(f"{key_file}: not the registry's public key ({exc})") from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        click.echo(f"events: {report.events}, head seq: {report.head_seq}, signed at: {report.signed_at}, "
                   f"rows compared: {report.rows_compared}")
        click.echo("chain intact, head signature valid" if report.ok else f"BROKEN: {report.first_broken}")
    if not report.ok:
        sys.exit(1)


@cli.command("as-of")
@click.option("--feed", "feed_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="a downloaded audit feed (verify it first)")
@click.option("--at", "at", required=True, help="ISO 8601 instant with a time zone, e.g. 2026-03-02T08:00:00Z")
def as_of(feed_file: Path, at: str) -> None:
    """Print every machine (JSON Lines) as the chain recorded it at --at, rebuilt from the feed alone."""
    from datetime import datetime

    from registry.national import chainfile

    try:
        instant = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{at!r} is not an ISO 8601 instant", param_hint="--at") from exc
    if instant.tzinfo is None:
        raise click.BadParameter("give a time zone (Z or +05:00)", param_hint="--at")
    with feed_file.open(encoding="utf-8") as feed:
        rows = chainfile.state_as_of(feed, instant)
    for key in sorted(rows, key=lambda v: int(v) if v.isdigit() else 0):
        click.echo(json.dumps(rows[key], sort_keys=True))


if __name__ == "__main__":
    cli()
