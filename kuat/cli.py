"""The one `kuat` command. Subcommands are loaded lazily so `kuat agent ...` on a gateway never imports the
controller's web stack, and `kuat --help` stays fast."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from kuat import __version__

# subcommand -> "module:attribute" of a click command or group, and a one-line summary for --help
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("sim.cli:cli", "Run the simulated mining site (miners and PDUs on loopback)."),
    "agent": ("agent.cli:cli", "Edge agent for a rack gateway: run, probe, scan, command."),
    "controller": ("controller.cli:cli", "Controller: ingest, registry, quota engine, dashboard and API."),
    "demo": ("demo.cli:cli", "One-command demo: broker, controller, simulated site, agents, a grid day."),
    "registry": ("registry.cli:cli", "HSC registry: standalone service, API keys, CSV import, audit check."),
    "plan": ("controller.planner.cli:cli", "Day-ahead bids for the miners' auction: curve, bids, results, backtest."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        target, _ = SUBCOMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a part not built yet, or not installed on this box
            raise click.ClickException(f"'kuat {cmd_name}' is unavailable: {exc}") from exc
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# Kuat's own loggers get the chosen level explicitly: a library that sets the root logger's level when imported
# (pyasic's init_logger sets it to WARNING) must not silence Kuat's logs.
KUAT_LOGGERS = ("kuat", "agent", "controller", "registry", "quota", "sim", "demo")


def setup_logging(level: str) -> None:
    """Plain lines to stderr, so stdout carries only a command's data (`kuat agent probe ... | jq`); systemd's
    journal (or the unit's log file) takes both streams and adds its own timestamps when it runs us."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("INVOCATION_ID"):  # not under systemd
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    for name in KUAT_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kuat")
@click.option(
    "--log-level",
    default=lambda: os.environ.get("KUAT_LOG_LEVEL", "info"),
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    show_default="info (or $KUAT_LOG_LEVEL)",
    help="How much to log.",
)
def cli(log_level: str) -> None:
    """Kuat (қуат): power control, HSC registry and fleet tooling for a licensed digital-mining data centre.

    \b
    Typical use:
      kuat demo                          the whole simulated site, dashboard in a browser
      kuat sim run --site sim/sites/small.toml
      kuat agent probe 127.0.1.1         one miner's normalized JSON
      kuat controller run                the central service
    """
    setup_logging(log_level)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="kuat")


if __name__ == "__main__":
    main()
