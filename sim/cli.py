"""`kuat sim ...`: run the simulated site, inject faults into a running one, list the bundled site files."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sim.physics import Fault

if TYPE_CHECKING:
    from sim.server import SimServer

log = logging.getLogger("sim")

SITES_DIR = Path(__file__).parent / "sites"
DEFAULT_CONTROL_PORT = 8028


def _net(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.split(".")
    if len(parts) != 2 or parts[0] != "127" or not parts[1].isdigit() or not 0 < int(parts[1]) < 255:
        raise click.BadParameter(f"{value!r}: give a loopback block like 127.31")
    return value


@click.group()
def cli() -> None:
    """The simulated mining site: miners and PDUs speaking their real protocols on loopback, real physics."""


@cli.command()
@click.option("--site", "site_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Site file (TOML or YAML), e.g. sim/sites/small.toml; `kuat sim sites` lists the bundled ones.")
@click.option("--port-offset", default=0, show_default=True, type=click.IntRange(0, 60000),
              help="Add N to every port (4028, 80, 161) so a non-root user can bind them, e.g. 10000.")
@click.option("--speed", type=click.FloatRange(min=0.001), default=None,
              help="Simulated seconds per real second [default: $KUAT_CLOCK's speed, else 1].")
@click.option("--boot-s", type=click.FloatRange(min=0), help="Seconds a miner takes to boot [physics default 40].")
@click.option("--wake-s", type=click.FloatRange(min=0), help="Seconds to wake from sleep [default 30].")
@click.option("--ramp-s", type=click.FloatRange(min=0), help="Seconds to ramp to full hash rate [default 20].")
@click.option("--sleep-s", type=click.FloatRange(min=0), help="Seconds to fall asleep (power ramps down) [default 3].")
@click.option("--slow-s", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Reply delay of a miner with the 'slow' fault.")
@click.option("--control-port", type=click.IntRange(0, 65535), default=DEFAULT_CONTROL_PORT, show_default=True,
              help="Port of the JSON control API on 127.0.0.1 (0: any free port).")
@click.option("--miner-net", callback=lambda _c, _p, v: _net(v), help="Move the miners to 127.N.x.y (e.g. 127.31).")
@click.option("--pdu-net", callback=lambda _c, _p, v: _net(v), help="Move the PDUs to 127.N.x.y.")
@click.option("--no-pdus", is_flag=True, help="Serve miners only.")
def run(site_file: str, port_offset: int, speed: float | None, boot_s: float | None, wake_s: float | None,
        ramp_s: float | None, sleep_s: float | None, slow_s: float, control_port: int, miner_net: str | None,
        pdu_net: str | None, no_pdus: bool) -> None:
    """Serve every miner and PDU of SITE on loopback until Ctrl-C or SIGTERM.

    \b
    Each miner listens on its own 127.x address at its firmware's real ports: stock Antminer
    RPC 4028 + web 80 (digest root/root), LuxOS RPC 4028, Whatsminer RPC 4028; PDUs answer
    SNMP on udp 161. Binding ports below 1024 needs root: otherwise use --port-offset.

    \b
    Example:
      kuat sim run --site sim/sites/small.toml --port-offset 10000 --boot-s 2 --ramp-s 2
      kuat sim fault 127.1.1.3 overheat
    """
    from sim.server import SimConfig, SimServer
    from sim.site import load_site

    try:
        site = load_site(site_file, miner_net=miner_net, pdu_net=pdu_net)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"{site_file}: {exc}") from exc
    config = SimConfig(port_offset=port_offset, speed=speed, boot_s=boot_s, wake_s=wake_s, ramp_s=ramp_s,
                       sleep_s=sleep_s, slow_s=slow_s, control_port=control_port, serve_pdus=not no_pdus)
    server = SimServer(site, config)
    try:
        asyncio.run(_serve(server))
    except OSError as exc:
        hint = "" if port_offset else " (ports below 1024 need root: try --port-offset 10000)"
        raise click.ClickException(f"{exc}{hint}") from exc


async def _serve(server: SimServer) -> None:
    from sim.server import format_summary

    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    click.echo(format_summary(server.summary()))
    log.info("simulator running; Ctrl-C or SIGTERM stops it")
    try:
        await stop.wait()
    finally:
        log.info("stopping the simulator")
        await server.stop()
        log.info("simulator stopped")


@cli.command()
@click.argument("target")
@click.argument("fault", metavar="FAULT", type=click.Choice(sorted(f.value for f in Fault)))
@click.option("--clear", is_flag=True, help="Clear the fault instead of setting it.")
@click.option("--control", "control_url", default=f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}", show_default=True,
              help="URL of the running simulator's control API.")
def fault(target: str, fault: str, clear: bool, control_url: str) -> None:
    """Set (or --clear) FAULT on TARGET (a miner's ip or serial, a PDU's id or ip) in a running simulator.

    \b
    Examples:
      kuat sim fault 127.1.1.3 hashboard
      kuat sim fault pdu-a01-1 offline --clear
    """
    body = json.dumps({"target": target, "fault": fault, "on": not clear}).encode()
    req = urllib.request.Request(f"{control_url.rstrip('/')}/fault", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise click.ClickException(f"simulator refused: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"no simulator control API at {control_url}: {exc}") from exc
    click.echo(f"{answer['fault']} {'set on' if answer['on'] else 'cleared on'} {answer['target']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (path, miners by firmware, PDUs).")
def sites(as_json: bool) -> None:
    """List the bundled site files (pass one to `kuat sim run --site`)."""
    from sim.site import load_site

    listed: list[dict[str, object]] = []
    for path in sorted(SITES_DIR.glob("*.toml")) + sorted(SITES_DIR.glob("*.y*ml")):
        try:
            site = load_site(path)
        except ValueError as exc:
            listed.append({"path": str(path), "error": str(exc)})
            continue
        fws: dict[str, int] = {}
        for m in site.miners:
            fws[m.firmware] = fws.get(m.firmware, 0) + 1
        listed.append({"path": str(path), "miners": len(site.miners), "firmware": dict(sorted(fws.items())),
                       "pdus": len(site.pdus)})
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    for entry in listed:
        if "error" in entry:
            click.echo(f"{entry['path']}  (invalid: {entry['error']})")
            continue
        firmware = entry["firmware"]
        assert isinstance(firmware, dict)
        mix = ", ".join(f"{n} {fw}" for fw, n in firmware.items())
        click.echo(f"{entry['path']}  {entry['miners']} miners ({mix}), {entry['pdus']} PDUs")
