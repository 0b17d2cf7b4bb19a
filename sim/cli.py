"""`kuat sim ...`: run the simulated site."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """The simulated mining site: real protocols on loopback, real physics."""


@cli.command()
@click.option("--site", "site_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Site file (TOML or YAML), e.g. sim/sites/small.toml.")
def run(site_file: str) -> None:
    """Serve every miner and PDU of SITE on loopback until Ctrl-C."""
    raise click.ClickException("the simulator's servers are being built (issue 2)")
