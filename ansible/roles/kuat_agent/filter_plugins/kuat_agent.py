"""Filters that turn inventory variables into the agent's `devices:` section (agent/config.py `DevicesConfig`).

Kept in Python rather than in a Jinja template so that a mistake in the inventory (an outlet for a miner that is not
listed, a credential profile that is not in the vault, two miners on one outlet) stops the play with a message
that names it, instead of producing a config the agent refuses at start.
"""

from __future__ import annotations

from typing import Any

MINER_KEYS = {"ip", "id", "driver", "protected", "credentials", "rpc_port", "web_port"}
PDU_KEYS = {"ip", "id", "family", "port", "community", "write_community"}


class KuatInventoryError(ValueError):
    """The inventory describes the gateway's devices inconsistently."""


def _unknown_keys(kind: str, entry: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise KuatInventoryError(f"{kind} {entry.get('ip', '?')}: unknown keys {extra} (allowed: {sorted(allowed)})")


def _credentials(miner: dict[str, Any], profiles: dict[str, Any], default_profile: str) -> dict[str, str]:
    name = miner.get("credentials", default_profile)
    if not name:
        return {}
    if name not in profiles:
        raise KuatInventoryError(
            f"miner {miner['ip']}: credential profile {name!r} is not in kuat_agent_device_credentials "
            f"(the vault has: {sorted(profiles)})"
        )
    return {str(k): str(v) for k, v in dict(profiles[name]).items()}


def _outlet(ip: str, outlet_map: dict[str, Any], pdu_ids: set[str]) -> dict[str, Any] | None:
    ref = outlet_map.get(ip)
    if ref is None:
        return None
    if ref.get("pdu") not in pdu_ids:
        raise KuatInventoryError(f"outlet map: miner {ip} is on PDU {ref.get('pdu')!r}, not one of {sorted(pdu_ids)}")
    return {"pdu": str(ref["pdu"]), "outlet": int(ref["outlet"])}


def kuat_agent_pdus(pdus: list[dict[str, Any]], community: str, write_community: str) -> list[dict[str, Any]]:
    """PDU entries with their SNMP communities filled in from the vault (a per-PDU value wins)."""
    out = []
    for pdu in pdus:
        _unknown_keys("pdu", pdu, PDU_KEYS)
        entry = {"id": pdu.get("id") or f"pdu-{pdu['ip']}", **pdu}
        entry.setdefault("community", community)
        if write_community:
            entry.setdefault("write_community", write_community)
        out.append(entry)
    return out


def kuat_agent_miners(
    miners: list[dict[str, Any]],
    pdus: list[dict[str, Any]],
    outlet_map: dict[str, Any],
    profiles: dict[str, Any],
    default_profile: str = "",
) -> list[dict[str, Any]]:
    """Miner entries with their outlet (from the outlet map) and credentials (from the named vault profile)."""
    pdu_ids = {p.get("id") or f"pdu-{p['ip']}" for p in pdus}
    ips = {m["ip"] for m in miners}
    strays = sorted(set(outlet_map) - ips)
    if strays:
        raise KuatInventoryError(f"outlet map names miners that are not in kuat_agent_miners: {strays}")
    taken: dict[tuple[str, int], str] = {}
    out = []
    for miner in miners:
        _unknown_keys("miner", miner, MINER_KEYS)
        entry = {k: v for k, v in miner.items() if k != "credentials"}
        creds = _credentials(miner, profiles, default_profile)
        if creds:
            entry["credentials"] = creds
        outlet = _outlet(miner["ip"], outlet_map, pdu_ids)
        if outlet is not None:
            key = (outlet["pdu"], outlet["outlet"])
            if key in taken:
                raise KuatInventoryError(f"outlet map: miners {taken[key]} and {miner['ip']} share {key[0]} {key[1]}")
            taken[key] = miner["ip"]
            entry["outlet"] = outlet
        out.append(entry)
    return out


def kuat_agent_check_devices(
    miners: list[dict[str, Any]],
    pdus: list[dict[str, Any]],
    outlet_map: dict[str, Any],
    profile_names: list[str],
    default_profile: str = "",
) -> str:
    """The same checks as the two filters above, with credential profile names only (safe to log)."""
    profiles: dict[str, Any] = {name: {} for name in profile_names}
    checked = kuat_agent_miners(miners, kuat_agent_pdus(pdus, "", ""), outlet_map, profiles, default_profile)
    mapped = sum(1 for m in checked if "outlet" in m)
    return f"{len(checked)} miners ({mapped} on a mapped outlet), {len(pdus)} PDUs"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kuat_agent_miners": kuat_agent_miners,
            "kuat_agent_pdus": kuat_agent_pdus,
            "kuat_agent_check_devices": kuat_agent_check_devices,
        }
