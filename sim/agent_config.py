"""Build a gateway agent's config (the dict/YAML of agent/config.py) from a simulated site, for tests, bench and the
demo: the gateway's miners with their MACs as ids, their outlets, the PDUs that feed them, and the port offset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sim.site import MinerDef, SiteFile

# simulator firmware -> the agent's miner driver family
FIRMWARE_DRIVERS = {"bmminer": "antminer", "luxos": "luxos", "btminer": "whatsminer", "btminer3": "whatsminer3",
                    "avalon": "avalon", "braiins": "braiins"}


def agent_config_dict(
    site_file: SiteFile,
    gateway: str | None = None,
    *,
    broker_port: int = 1883,
    broker_host: str = "127.0.0.1",
    buffer_path: str | Path = "agent-buffer.sqlite",
    port_offset: int = 0,
    interval_s: float = 10.0,
    auto_detect: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """The `gateway`'s devices (all of them when None) as an agent config; `extra` adds/overrides top-level keys.

    auto_detect: leave driver/family at "auto" so the agent identifies each device as it would in the field.
    """
    site = site_file
    miners = [m for m in site.miners if gateway is None or (m.gateway or site.site.gateways[0]) == gateway]
    pdu_ids = {m.pdu for m in miners if m.pdu}
    pdus = [p for p in site.pdus if p.id in pdu_ids]
    config: dict[str, Any] = {
        "site": site.site.name,
        "gateway": gateway or site.site.gateways[0],
        "broker": {"host": broker_host, "port": broker_port},
        "poll": {"interval_s": interval_s},
        "buffer": {"path": str(buffer_path)},
        "port_offset": port_offset,
        "devices": {
            "pdus": [
                {"id": p.id, "ip": p.ip, "family": "auto" if auto_detect else p.family, "community": p.community,
                 "write_community": p.write_community}
                for p in pdus
            ],
            "miners": [_miner(m, auto_detect) for m in miners],
        },
    }
    config.update(extra)
    return config


def _miner(m: MinerDef, auto_detect: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"ip": m.ip, "id": m.mac, "driver": "auto" if auto_detect else FIRMWARE_DRIVERS[m.firmware]}
    password = {"bmminer": m.web_password, "braiins": m.web_password, "btminer": m.api_password,
                "btminer3": m.api_password}.get(m.firmware)
    if password:
        entry["credentials"] = {"password": password}
    if m.pdu and m.outlet:
        entry["outlet"] = {"pdu": m.pdu, "outlet": m.outlet}
    if m.rack or m.slot:
        entry["placement"] = {"hall": m.hall, "rack": m.rack, "slot": m.slot}
    return entry


def write_agent_config(path: str | Path, site_file: SiteFile, gateway: str | None = None, **kwargs: Any) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(agent_config_dict(site_file, gateway, **kwargs), sort_keys=False))
    return path
