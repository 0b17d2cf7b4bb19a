"""`kuat controller ...`: run the central service, or check a configuration file."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from types import FrameType

import click
from pydantic import ValidationError

from controller.settings import ControllerSettings, load_settings

log = logging.getLogger("controller")

CONFIG_HELP = "YAML or TOML settings file; KUAT_CONTROLLER_* environment variables override it (nested: __)."


def _load(config: Path | None) -> ControllerSettings:
    try:
        return load_settings(config)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise click.ClickException("invalid controller settings:\n" + "\n".join(lines)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The controller: MQTT ingest of every gateway, live fleet state, history (SQL rollups, optional InfluxDB),
    energy by source, the HSC registry, commands, the HTTP API and dashboard."""


@cli.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
def run(config: Path | None) -> None:
    """Start ingest, the scheduler and the HTTP API; stop cleanly on SIGTERM/SIGINT.

    \b
    On shutdown it stops taking messages, finishes the ones received, writes every pending minute rollup and
    flushes InfluxDB before it exits.
    """
    import uvicorn

    from controller.app import create_app
    from controller.runtime import build_services, tune_gc_for_ingest
    from controller.scheduler import make_scheduler

    settings = _load(config)
    services = build_services(settings)
    assert services.ingest is not None
    app = create_app(settings, services)
    scheduler = make_scheduler(services)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_config=None, access_log=False,
                       timeout_graceful_shutdown=5)  # open dashboard streams (SSE) must not hold the shutdown
    )
    app.state.stopping = lambda: server.should_exit  # the dashboard's streams end when the server stops
    log.info("controller starting: database %s, broker %s:%d, API http://%s:%d, influx %s", _safe_url(settings),
             settings.broker.host, settings.broker.port, settings.api.host, settings.api.port,
             settings.influx.url if settings.influx else "off")  # fmt: skip
    _survive_reraised_signals()
    tune_gc_for_ingest()
    services.ingest.start()
    from controller.quota.wiring import start_quota

    start_quota(services)
    scheduler.start()
    try:
        server.run()  # returns on SIGTERM / SIGINT (uvicorn's own handlers)
    finally:
        log.info("controller stopping")
        scheduler.shutdown(wait=True)
        services.close()
        services.engine.dispose()
        log.info("controller stopped")


def _survive_reraised_signals() -> None:
    """uvicorn handles SIGTERM/SIGINT itself, then re-raises them to the previous handler once it has stopped;
    with Python's defaults that would kill us before the shutdown below writes the last rollups."""

    def note(sig: int, _frame: FrameType | None) -> None:
        log.info("%s received: shutting down", signal.Signals(sig).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, note)


@cli.command("check-config")
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
def check_config(config: Path | None) -> None:
    """Validate the settings and print them as resolved (secrets masked)."""
    settings = _load(config)
    data = settings.model_dump(mode="json")
    for key in data.get("api_keys", []):
        key["key"] = "***"
    if data["broker"].get("password"):
        data["broker"]["password"] = "***"
    if data.get("influx") and data["influx"].get("token"):
        data["influx"]["token"] = "***"
    smtp = (data.get("alerts") or {}).get("smtp") or {}
    if smtp.get("password"):
        smtp["password"] = "***"
    data["database_url"] = _safe_url(settings)
    click.echo(json.dumps(data, indent=2))


def _safe_url(settings: ControllerSettings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)
