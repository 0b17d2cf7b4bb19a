"""`kuat agent ...`: the gateway daemon and the field technician's tools.

Field tools (probe, scan) live in `agent.cli_field`; the daemon and direct commands in `agent.cli_daemon`.
"""

from __future__ import annotations

import importlib

import click

_COMMANDS = {
    "probe": ("agent.cli_field", "probe", "Read one miner (or a PDU with --snmp) and print its normalized JSON."),
    "scan": ("agent.cli_field", "scan", "Find miners and PDUs on an address range; table, or an agent config."),
    "run": ("agent.cli_daemon", "run", "Run the gateway agent daemon (poll, publish, obey commands)."),
    "command": ("agent.cli_daemon", "command", "Send one power command to one device directly (bench work)."),
    "capabilities": ("agent.cli_capabilities", "capabilities",
                     "The capability matrix (verified controls per firmware/model), or one miner's."),
}


class _AgentGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[cmd_name]
        try:
            command = getattr(importlib.import_module(module), attr)
        except (ModuleNotFoundError, AttributeError) as exc:
            raise click.ClickException(f"'kuat agent {cmd_name}' is unavailable: {exc}") from exc
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, (_, _, h) in _COMMANDS.items()])


@click.group(cls=_AgentGroup)
def cli() -> None:
    """Edge agent for a rack gateway: polls miners (pyasic) and PDUs (SNMP), publishes telemetry over MQTT,
    carries out power commands, and keeps the site legal by itself when the controller is gone."""
