"""Simulated PDUs over SNMP v2c: APC rPDU2, Raritan PX2 and ServerTech Sentry4, one pysnmp engine for a site.

    agents = await start_pdu_agents(site, port=161)   # every PDU on udp <pdu ip>:<port>
    ...
    await agents.stop()

Readings come from the site's physics at request time; outlet SETs switch the site's outlets (the miner behind
loses power and becomes unreachable; switched on, it boots). Family tables are data in sim/pdus/families/.
"""

from __future__ import annotations

import asyncio
import logging

from pysnmp.entity.engine import SnmpEngine

from sim.pdus.families import FAMILIES
from sim.pdus.responder import Registry, build_engine
from sim.pdus.state import PduState
from sim.runtime import Site

log = logging.getLogger(__name__)

__all__ = ["FAMILIES", "PduAgents", "PduState", "start_pdu_agents"]


class PduAgents:
    """The running SNMP agents of a site's PDUs; `stop()` closes every socket and cancels pending commands."""

    def __init__(self, engine: SnmpEngine, registry: Registry, port: int) -> None:
        self.engine = engine
        self.port = port
        self.states = list(registry.by_domain.values())
        self.by_ip = {s.pdu.ip: s for s in self.states}
        self._sockets = registry.sockets
        self._stopped = False

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for state in self.states:
            state.cancel_all()
        self.engine.close_dispatcher()
        await self._sockets_closed()
        log.info("PDU agents stopped (%d PDUs)", len(self.states))


    async def _sockets_closed(self) -> None:
        """asyncio closes datagram sockets on a later loop iteration: wait (bounded) so the ports are free."""
        for _ in range(100):
            if all(sock.fileno() == -1 for sock in self._sockets):
                return
            await asyncio.sleep(0.01)
        for sock in self._sockets:
            sock.close()


async def start_pdu_agents(site: Site, port: int = 161, *, reboot_s: float = 5.0) -> PduAgents:
    """Serve every PDU of `site` on udp <pdu ip>:<port> (SNMP v1/v2c) from one engine in this event loop.

    `reboot_s` is how long (simulated seconds) an outlet stays off on a reboot/cycle command.
    Raises OSError naming the PDU when an address cannot be bound (port in use, < 1024 without root)."""
    for pdu in site.pdus:
        if pdu.d.family not in FAMILIES:
            raise ValueError(f"PDU {pdu.d.id}: no simulated family {pdu.d.family!r}")
    states = [PduState(pdu, site.clock, reboot_s=reboot_s) for pdu in site.pdus]
    engine, registry = build_engine(states, port)
    log.info("PDU agents: %d PDUs on udp port %d (%s)", len(states), port,
             ", ".join(sorted({s.pdu.d.family for s in states})) or "none")
    return PduAgents(engine, registry, port)
