"""`kuat agent run` (the daemon) and `kuat agent command` (one command to one device, for bench work)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

from agent.cli_common import FieldError, check_host, miner_port_hint, print_json, snmp_port_hint
from agent.config import ConfigError, MinerConfig, MinerCredentials, PduConfig, load_config
from agent.drivers.base import CommandUnsupported, DeviceError, DeviceUnreachable, OutletAction
from agent.service import Agent, RealDrivers

log = logging.getLogger("agent")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="YAML config file (see docs/agent.md; KUAT_AGENT_* environment variables override it).")
@click.option("--check", is_flag=True, help="Validate the config, print a summary and exit.")
def run(config_path: Path, check: bool) -> None:
    """Run the gateway agent: poll every device, publish telemetry over MQTT, carry out commands, fail safe when
    the controller's lease expires. Stops cleanly on SIGTERM or Ctrl-C; logs go to stderr (the journal, or the
    unit's log file, under systemd)."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise FieldError(str(exc)) from exc
    summary = (f"site {cfg.site}, gateway {cfg.gateway}: {len(cfg.devices.miners)} miners, {len(cfg.devices.pdus)} "
               f"PDUs; broker {cfg.broker.host}:{cfg.broker.port} (MQTT {cfg.broker.protocol}); buffer "
               f"{cfg.buffer.path}; failsafe {cfg.failsafe.mode}")
    if check:
        click.echo(f"config OK: {summary}")
        return
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stopper(stop, sig))
        try:
            agent = Agent(cfg)
        except (OSError, sqlite3.Error, ssl.SSLError) as exc:  # buffer path, TLS files
            raise FieldError(f"cannot start the agent: {exc}") from exc
        await agent.run(stop)

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request is noise in a journal
    log.info("starting: %s", summary)
    asyncio.run(main())


def _stopper(stop: asyncio.Event, sig: signal.Signals) -> Callable[[], None]:
    def handler() -> None:
        log.info("%s received: finishing the cycle and stopping", sig.name)
        stop.set()

    return handler


ACTIONS = ("sleep", "wake", "reboot", "power-target", "outlet-on", "outlet-off", "outlet-cycle", "read")


@click.command()
@click.argument("host")
@click.argument("action", type=click.Choice(ACTIONS))
@click.option("--watts", type=float, help="power-target: the cap in watts (omit to restore full power).")
@click.option("--outlet", type=int, help="outlet-*: the outlet number on the PDU HOST.")
@click.option("--driver", default="auto", show_default=True, help="Miner driver/firmware family, or auto-detect.")
@click.option("--family", default="auto", show_default=True, help="PDU family (outlet-* actions), or auto-detect.")
@click.option("--community", default="public", show_default=True, help="PDU read community.")
@click.option("--write-community", default="private", show_default=True, help="PDU write community.")
@click.option("--username", help="Miner web/API user (default: the firmware's).")
@click.option("--password", help="Miner web/API password (default: the firmware's factory one).")
@click.option("--port-offset", default=0, show_default=True, help="Simulated sites: ports 4028/80/161 + N.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the device.")
def command(host: str, action: str, watts: float | None, outlet: int | None, driver: str, family: str,
            community: str, write_community: str, username: str | None, password: str | None, port_offset: int,
            timeout: float) -> None:
    """Send one command to one device directly, without MQTT or a config file (bench work in the field).

    Prints the outcome and the device's reading afterwards as JSON on stdout (`read` only reads). One line on
    stderr and exit status 2 on failure: "rejected: ..." when the firmware cannot do it, "failed: ..." when the
    device did not, and for a bad address, a refused connection, a wrong community or no answer.

    \b
    Examples:
      kuat agent command 10.1.2.3 sleep
      kuat agent command 10.1.2.3 power-target --watts 2800
      kuat agent command 10.1.9.1 outlet-cycle --outlet 7 --write-community private
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)
    host = check_host(host, port_hint=snmp_port_hint if action.startswith("outlet-") else miner_port_hint)
    drivers = RealDrivers(port_offset, timeout)
    try:
        if action.startswith("outlet-"):
            if outlet is None:
                raise click.UsageError(f"{action} needs --outlet N")
            pdu_cfg = PduConfig(ip=host, family=family, community=community, write_community=write_community)
            result = asyncio.run(_outlet(drivers, pdu_cfg, outlet, action.removeprefix("outlet-"), timeout))
        else:
            creds = MinerCredentials(username=username, password=password)
            miner_cfg = MinerConfig(ip=host, driver=driver, credentials=creds)
            result = asyncio.run(_miner(drivers, miner_cfg, action, watts, timeout))
    except CommandUnsupported as exc:
        raise FieldError(f"rejected: {exc}") from None
    except (DeviceUnreachable, TimeoutError) as exc:
        raise FieldError(f"failed: {host} did not answer ({exc or f'no answer within {timeout:g} s'})") from None
    except DeviceError as exc:
        raise FieldError(f"failed: {exc}") from None
    except OSError as exc:
        raise FieldError(f"failed: {host}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a bad value in the config models
        raise click.UsageError(str(exc)) from exc
    print_json(result)


async def _miner(
    drivers: RealDrivers, cfg: MinerConfig, action: str, watts: float | None, limit_s: float
) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        miner = await drivers.open_miner(cfg)
        if action == "sleep":
            await miner.sleep()
        elif action == "wake":
            await miner.wake()
        elif action == "reboot":
            await miner.reboot()
        elif action == "power-target":
            await miner.set_power_target(watts)
        sample = await miner.read()
    return {"device": cfg.ip, "action": action, "status": "applied" if action != "read" else "read",
            "sample": sample.model_dump(mode="json", exclude_none=True)}


async def _outlet(drivers: RealDrivers, cfg: PduConfig, outlet: int, what: str, limit_s: float) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        pdu = await drivers.open_pdu(cfg)
        await pdu.switch(outlet, cast(OutletAction, what))
        sample = await pdu.read()
    state = next((o.model_dump(mode="json", exclude_none=True) for o in sample.outlets if o.index == outlet), None)
    return {"device": cfg.ip, "action": f"outlet-{what}", "outlet": outlet, "status": "applied", "outlet_now": state}
