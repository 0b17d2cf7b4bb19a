"""Device drivers: one module per family, registered where it is defined (see `base.register_*`).

Entry points for the agent runtime and the field tools:

- `open_miner(ip, driver="auto", ...)`: a MinerDriver; "auto" recognises the firmware from its RPC `version`
  reply (cheap, works on any port); control through its firmware's path (agent.control).
- `open_pdu(ip, family="auto", ...)`: a PduDriver; "auto" identifies the family by sysObjectID (+ probe column).
- `apply_outlet_power(sample, outlet_sample)`: use a metered outlet's power as the miner's (source `pdu`).
"""

from __future__ import annotations

from typing import Any

from agent.transport.snmp import SnmpSession, V3Auth

from .base import MINER_DRIVERS, PDU_DRIVERS, DeviceError, DeviceUnreachable, MinerDriver, PduDriver
from .pdu import SnmpPdu
from .pdu import identify_family as identify_pdu_family
from .state import apply_outlet_power

# The miner drivers are imported on first use, not here: the firmware records (agent.firmware) and control paths
# (agent.control) import this package's parsers, and importing them from here would make that a cycle.
_LAZY = {"RpcMiner": ".miner", "PyasicMiner": ".pyasic_generic"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _miner_drivers() -> dict[str, Any]:
    from . import miner, pyasic_generic  # noqa: F401 - registering the drivers is importing them

    return MINER_DRIVERS

__all__ = [
    "MINER_DRIVERS",
    "PDU_DRIVERS",
    "PyasicMiner",
    "RpcMiner",
    "SnmpPdu",
    "V3Auth",
    "apply_outlet_power",
    "open_miner",
    "open_pdu",
]


async def open_miner(
    ip: str,
    *,
    driver: str = "auto",
    timeout: float = 5.0,  # noqa: ASYNC109 - per-request timeout the driver keeps (the agreed signature)
    rpc_port: int = 4028,
    web_port: int = 80,
    port_offset: int = 0,
    device_id: str | None = None,
    **credentials: Any,
) -> MinerDriver:
    """A driver for the miner at `ip`. `port_offset` adds to both ports (simulated miners on non-root ports).

    "auto" identifies the miner with pyasic (its factory on the standard ports; elsewhere pyasic's own rules
    applied to the `version` reply) and picks the lean RPC driver for its firmware, or the pyasic driver.
    credentials: `username`, `password` (Antminer web API digest auth, pyasic passwords).
    """
    rpc_port += port_offset
    web_port += port_offset
    unknown = set(credentials) - {"username", "password"}
    if unknown:
        raise TypeError(f"unknown miner credentials {sorted(unknown)} (username, password)")
    from agent.control.pyasic import pyasic_for
    from agent.firmware import family_of_pyasic

    drivers = _miner_drivers()
    pyasic_miner = None
    if driver in ("auto", "pyasic"):
        try:
            pyasic_miner = await pyasic_for(ip, rpc_port=rpc_port, web_port=web_port, **credentials)
        except DeviceUnreachable:
            # no cgminer RPC: a Whatsminer on API v3 firmware answers on 4433 (same offset as the RPC port)
            from .whatsminer_v3 import probe

            if driver != "auto" or not await probe(ip, port=4433 + rpc_port - 4028, timeout_s=min(timeout, 3.0)):
                raise
            driver = "whatsminer3"
        else:
            driver = family_of_pyasic(pyasic_miner) if driver == "auto" else driver
    if driver not in drivers:
        raise DeviceError(f"unknown miner driver {driver!r}; known: auto, {', '.join(sorted(drivers))}")
    return drivers[driver](
        ip,
        rpc_port=rpc_port,
        web_port=web_port,
        timeout=timeout,
        device_id=device_id,
        pyasic_miner=pyasic_miner,
        **credentials,
    )


async def open_pdu(
    ip: str,
    *,
    family: str = "auto",
    community: str = "public",
    write_community: str | None = None,
    port: int = 161,
    v3: V3Auth | None = None,
    timeout: float = 2.0,  # noqa: ASYNC109 - per-request timeout the session keeps (the agreed signature)
    retries: int = 1,
    device_id: str | None = None,
) -> PduDriver:
    """A driver for the PDU at `ip` (SNMP v2c with communities, or v3 with `V3Auth`)."""
    session = SnmpSession(
        ip, port=port, community=community, write_community=write_community, v3=v3, timeout=timeout, retries=retries
    )
    if family == "auto":
        table = await identify_pdu_family(session)
        family = table.family
    if family not in PDU_DRIVERS:
        raise DeviceError(f"unknown PDU family {family!r}; known: auto, {', '.join(sorted(PDU_DRIVERS))}")
    return PDU_DRIVERS[family](session, device_id=device_id)
