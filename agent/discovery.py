"""Find miners and PDUs on an address range: a TCP connect to the cgminer port and an SNMP sysObjectID GET
per address, with bounded concurrency. Used by `kuat agent scan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agent import firmware
from agent.drivers.base import DeviceError
from agent.drivers.pdu import identify_family as identify_pdu_family
from agent.transport.cgminer import RpcClient
from agent.transport.snmp import SnmpSession

log = logging.getLogger(__name__)

MAX_ADDRESSES = 65536  # a /16: beyond that a scan is a mistake, not a site


@dataclass
class Found:
    kind: Literal["miner", "pdu"]
    ip: str
    driver: str  # miner firmware family, or PDU family
    model: str | None = None
    firmware: str | None = None
    community: str | None = None


def addresses(cidr: str) -> list[str]:
    """Host addresses of a CIDR (or a single address); ValueError with the reason when it is not usable."""
    network = ipaddress.ip_network(cidr.strip(), strict=False)
    if network.num_addresses > MAX_ADDRESSES:
        raise ValueError(f"{cidr} holds {network.num_addresses} addresses; scan at most a /16 at a time")
    hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
    return [str(h) for h in hosts]


async def _port_open(ip: str, port: int, timeout_s: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def probe_miner(ip: str, rpc_port: int, timeout_s: float) -> Found | None:
    if not await _port_open(ip, rpc_port, timeout_s):
        return await probe_whatsminer_v3(ip, 4433 + rpc_port - 4028, timeout_s)
    client = RpcClient(ip, rpc_port, timeout_s * 3)
    try:
        version = await client.command("version")
    except DeviceError as exc:
        version = None
        log.debug("%s:%d did not answer 'version' (%s): asking 'devdetails'", ip, rpc_port, exc)
    family = firmware.family_from_reply(version) if version is not None else None
    if family is not None:
        identity = firmware.parse_version(version)
        return Found("miner", ip, family, identity.model, identity.firmware)
    # Whatsminer firmware from 2023 on refuses `version` (Invalid command, code 14): `devdetails`, which every
    # cgminer-family API answers, names the firmware (btminer) and the model
    try:
        details = await client.command("devdetails")
    except DeviceError as exc:
        log.info("%s:%d is open but answered neither 'version' nor 'devdetails': %s", ip, rpc_port, exc)
        return None
    family = firmware.family_from_reply(details)
    if family is None:
        return None
    rows = details.get("DEVDETAILS") if isinstance(details, dict) else None
    model = rows[0].get("Model") if isinstance(rows, list) and rows and isinstance(rows[0], dict) else None
    return Found("miner", ip, family, str(model) if model else None, None)


async def probe_whatsminer_v3(ip: str, port: int, timeout_s: float) -> Found | None:
    """No cgminer RPC: a Whatsminer on API v3 firmware (2024.11 on) answers `get.device.info` on 4433."""
    if not await _port_open(ip, port, timeout_s):
        return None
    from agent.firmware import whatsminer_v3
    from agent.transport.btminer_v3 import V3Client

    client = V3Client(ip, port, timeout_s * 3)
    try:
        info = await client.call("get.device.info")
    except DeviceError as exc:
        log.info("%s:%d is open but is no Whatsminer API v3: %s", ip, port, exc)
        return None
    finally:
        await client.close()
    if not isinstance(info, dict) or "miner" not in info:
        return None
    identity = whatsminer_v3.parse_device_info(info)
    return Found("miner", ip, "whatsminer3", identity.model, identity.firmware)


async def probe_pdu(ip: str, snmp_port: int, communities: list[str], timeout_s: float) -> Found | None:
    for community in communities:
        session = SnmpSession(ip, port=snmp_port, community=community, timeout=timeout_s, retries=0)
        try:
            table = await identify_pdu_family(session)
        except DeviceError:
            continue
        finally:
            session.close()
        return Found("pdu", ip, table.family, None, None, community)
    return None


async def scan(
    cidr: str,
    *,
    rpc_port: int = 4028,
    snmp_port: int = 161,
    communities: list[str] | None = None,
    concurrency: int = 128,
    timeout_s: float = 1.0,
    miners: bool = True,
    pdus: bool = True,
    progress: Callable[[int], Any] | None = None,
) -> list[Found]:
    """Every miner and PDU found on `cidr`, in address order. `progress(n)` is told of each address done."""
    targets = addresses(cidr)
    limit = asyncio.Semaphore(max(1, concurrency))
    found: list[Found] = []

    async def one(ip: str) -> None:
        async with limit:
            checks = []
            if miners:
                checks.append(probe_miner(ip, rpc_port, timeout_s))
            if pdus:
                checks.append(probe_pdu(ip, snmp_port, communities or ["public"], timeout_s))
            for result in await asyncio.gather(*checks):
                if result is not None:
                    found.append(result)
        if progress is not None:
            progress(1)

    await asyncio.gather(*(one(ip) for ip in targets))
    return sorted(found, key=lambda f: (ipaddress.ip_address(f.ip), f.kind))


def config_document(found: list[Found], *, site: str, gateway: str, port_offset: int = 0) -> dict[str, Any]:
    """An agent config (agent/config.py format) holding the devices found."""
    doc: dict[str, Any] = {"site": site, "gateway": gateway}
    if port_offset:
        doc["port_offset"] = port_offset
    doc["devices"] = {
        "miners": [{"ip": f.ip, "driver": f.driver} for f in found if f.kind == "miner"],
        "pdus": [{"ip": f.ip, "family": f.driver, "community": f.community} for f in found if f.kind == "pdu"],
    }
    return doc
