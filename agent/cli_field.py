"""Field tools: `kuat agent probe` (one device's normalized JSON) and `kuat agent scan` (find devices on a range).

Data on stdout, logs and progress on stderr, one-line errors with exit status 2 (agent/cli_common.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import yaml

from agent.cli_common import (
    FieldError,
    Progress,
    check_host,
    miner_port_hint,
    print_json,
    print_table,
    run_device,
    snmp_port_hint,
)
from agent.drivers import V3Auth, open_miner, open_pdu
from agent.errors import DeviceError, DeviceUnreachable
from kuat.wire import v1


@click.command()
@click.argument("host")
@click.option("--snmp", is_flag=True, help="HOST is a PDU: read it over SNMP instead of as a miner.")
@click.option(
    "--driver",
    default="auto",
    show_default=True,
    help="Miner firmware: auto, antminer, luxos, whatsminer, whatsminer3 (API v3), braiins, avalon, pyasic.",
)
@click.option(
    "--family",
    default="auto",
    show_default=True,
    help="PDU family (with --snmp): auto or a table name, e.g. apc_rpdu2.",
)
@click.option("--community", default="public", show_default=True, help="SNMP v2c read community.")
@click.option("--snmp-port", type=click.IntRange(1, 65535), default=161, show_default=True)
@click.option("--v3-user", default=None, help="SNMPv3 user (replaces the community).")
@click.option("--v3-auth-key", default=None, help="SNMPv3 auth passphrase.")
@click.option("--v3-priv-key", default=None, help="SNMPv3 privacy passphrase.")
@click.option("--v3-auth-protocol", default="sha", show_default=True, help="md5, sha, sha224, sha256, sha384, sha512.")
@click.option("--v3-priv-protocol", default="aes", show_default=True, help="des, 3des, aes, aes192, aes256.")
@click.option(
    "--port-offset", type=click.IntRange(0, 60000), default=0, help="Simulated miners: RPC on 4028+N, web on 80+N."
)
@click.option("--username", default=None, help="Miner web/API user (stock Antminer default root).")
@click.option("--password", default=None, help="Miner web/API password (stock Antminer default root).")
@click.option(
    "--timeout", type=click.FloatRange(0.1, 120), default=5.0, show_default=True, help="Per request, seconds."
)
def probe(
    host: str,
    snmp: bool,
    driver: str,
    family: str,
    community: str,
    snmp_port: int,
    v3_user: str | None,
    v3_auth_key: str | None,
    v3_priv_key: str | None,
    v3_auth_protocol: str,
    v3_priv_protocol: str,
    port_offset: int,
    username: str | None,
    password: str | None,
    timeout: float,
) -> None:
    """Read one miner (or with --snmp one PDU) and print Kuat's normalized JSON for it on stdout.

    Logs go to stderr, so the output pipes into jq. A bad address, a refused connection, a wrong community or a
    device that does not answer ends with one line on stderr and exit status 2.

    \b
    Examples:
      kuat agent probe 10.0.3.17 | jq .power_w
      kuat agent probe --snmp 10.0.9.2 --community public
      kuat agent probe --snmp 10.0.9.2 --snmp-port 1161
      kuat agent probe 127.42.1.1 --port-offset 30000
    """
    host = check_host(host, port_hint=snmp_port_hint if snmp else miner_port_hint)
    if snmp:
        try:
            v3 = V3Auth(v3_user, v3_auth_key, v3_priv_key, v3_auth_protocol, v3_priv_protocol) if v3_user else None
        except DeviceError as exc:
            raise click.BadParameter(str(exc), param_hint="--v3-*") from None
        pdu = _probe_pdu(host, family=family, community=community, port=snmp_port, v3=v3, timeout=timeout)
        # identification and a full walk: several requests, each with its own timeout and retry
        sample: v1.MinerSample | v1.PduSample = run_device(pdu, f"{host}:{snmp_port}", limit_s=timeout * 20)
    else:
        creds = {k: v for k, v in (("username", username), ("password", password)) if v is not None}
        miner = _probe_miner(host, driver=driver, port_offset=port_offset, timeout=timeout, **creds)
        sample = run_device(miner, host, limit_s=timeout * 6)
    print_json(sample.model_dump(mode="json", exclude_none=True))


async def _probe_miner(host: str, **kwargs: Any) -> v1.MinerSample:
    offset, limit = kwargs.get("port_offset", 0), kwargs.get("timeout", 5.0)
    await _tcp_reachable(host, [4028 + offset, 80 + offset, 4433 + offset], limit)  # 4433: Whatsminer API v3
    miner = await open_miner(host, **kwargs)
    return await miner.read()


async def _tcp_reachable(host: str, ports: list[int], limit_s: float) -> None:
    """Fail early and say why when no miner port takes a connection: refused (nothing listens) or no answer."""
    async def attempt(port: int) -> str | None:
        try:
            async with asyncio.timeout(limit_s):
                _, writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return exc.strerror or str(exc)
        writer.close()
        return None

    outcomes = await asyncio.gather(*(attempt(p) for p in ports))
    if any(o is None for o in outcomes):
        return
    listed = " and ".join(f"tcp {p}" for p in ports)
    if all(o == "refused" for o in outcomes):
        raise DeviceUnreachable(f"{host}: connection refused on {listed} (no miner firmware listens there)")
    if all(o == "timeout" for o in outcomes):
        raise DeviceUnreachable(f"{host}: no answer on {listed} within {limit_s:g} s (down, or filtered)")
    raise DeviceUnreachable(f"{host}: cannot connect on {listed} ({', '.join(sorted(set(map(str, outcomes))))})")


async def _probe_pdu(host: str, **kwargs: Any) -> v1.PduSample:
    pdu = await open_pdu(host, **kwargs)
    return await pdu.read()


@click.command()
@click.argument("cidr")
@click.option("--port-offset", type=click.IntRange(0, 60000), default=0, help="Simulated site: RPC 4028+N, SNMP 161+N.")
@click.option(
    "--community",
    "communities",
    multiple=True,
    default=["public"],
    show_default=True,
    help="SNMP communities to try (repeatable).",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 4096), default=128, show_default=True, help="Addresses probed at once."
)
@click.option("--timeout", type=click.FloatRange(0.05, 30), default=1.0, show_default=True, help="Per probe, seconds.")
@click.option("--no-miners", is_flag=True, help="Skip the miner (TCP 4028) probe.")
@click.option("--no-pdus", is_flag=True, help="Skip the PDU (SNMP) probe.")
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an agent config (YAML) listing what was found.",
)
@click.option("--site", default="site", show_default=True, help="Site name for --write-config.")
@click.option("--gateway", default="gw1", show_default=True, help="Gateway id for --write-config.")
@click.option("--force", is_flag=True, help="Let --write-config replace an existing file.")
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON instead of a table.")
def scan(
    cidr: str,
    port_offset: int,
    communities: tuple[str, ...],
    concurrency: int,
    timeout: float,
    no_miners: bool,
    no_pdus: bool,
    write_config: Path | None,
    site: str,
    gateway: str,
    force: bool,
    as_json: bool,
) -> None:
    """Find miners (cgminer RPC) and PDUs (SNMP sysObjectID) on CIDR; print a table (or --json) on stdout,
    optionally write an agent config.

    A progress bar on stderr when it is a terminal, else one line with the count at the end.

    \b
    Examples:
      kuat agent scan 10.0.3.0/24
      kuat agent scan 10.0.0.0/22 --json | jq '.[] | select(.kind == "pdu")'
      kuat agent scan 10.0.3.0/24 --community public --community monitor --write-config agent.yaml
    """
    from dataclasses import asdict

    from agent import discovery

    try:
        total = len(discovery.addresses(cidr))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="CIDR") from exc
    if write_config is not None and write_config.exists() and not force:
        raise click.BadParameter(f"{write_config} exists; add --force to replace it", param_hint="--write-config")
    with Progress(total, f"scanning {cidr}") as progress:
        found = asyncio.run(
            discovery.scan(
                cidr,
                rpc_port=4028 + port_offset,
                snmp_port=161 + port_offset,
                communities=list(communities),
                concurrency=concurrency,
                timeout_s=timeout,
                miners=not no_miners,
                pdus=not no_pdus,
                progress=progress.update,
            )
        )
    miners = sum(1 for f in found if f.kind == "miner")
    click.echo(f"scanned {total} addresses in {progress.elapsed():.1f} s: {miners} miner(s), "
               f"{len(found) - miners} PDU(s)", err=True)
    if as_json:
        print_json([asdict(f) for f in found])
    else:
        rows = [("KIND", "IP", "DRIVER/FAMILY", "MODEL", "FIRMWARE", "COMMUNITY")]
        rows += [(f.kind, f.ip, f.driver, f.model or "-", f.firmware or "-", f.community or "-") for f in found]
        print_table(rows)
    if write_config is not None:
        doc = discovery.config_document(found, site=site, gateway=gateway, port_offset=port_offset)
        _check_config(doc)
        write_config.write_text(yaml.safe_dump(doc, sort_keys=False))
        click.echo(f"wrote {write_config} ({len(found)} devices)", err=True)


def _check_config(doc: dict[str, Any]) -> None:
    """Validate against the agent's own config model, so a written file always loads."""
    from agent.config import config_from_dict

    try:
        config_from_dict(doc, source="scan result")
    except ValueError as exc:
        raise FieldError(f"the scan result does not make a valid agent config: {exc}") from exc
