"""The live simulated site: miners (definition + physics), PDUs whose outlets feed them, and a ticker.

This is the in-process fleet model too: build a `Site` and read or command it directly, no sockets (used by
benchmarks at 100,000 machines). The network servers in `sim.miners` and `sim.pdus` only translate wire
protocols to calls on these objects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from kuat.catalog import MODELS
from sim.clock import SimClock
from sim.physics import Fault, MinerPhysics
from sim.site import MinerDef, PduDef, SiteFile

log = logging.getLogger(__name__)


@dataclass
class SimMiner:
    d: MinerDef
    phys: MinerPhysics
    # protocol-side state the firmware keeps (sessions, tokens, work mode), owned by the protocol servers
    proto: dict[str, object] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        assert self.d.ip is not None
        return self.d.ip

    @property
    def serial(self) -> str:
        assert self.d.serial is not None
        return self.d.serial

    def has_fault(self, fault: Fault) -> bool:
        return fault in self.phys.faults


@dataclass
class SimOutlet:
    index: int  # 1-based
    name: str
    miner: SimMiner | None = None
    on: bool = True
    _energy_wh_empty: float = 0.0

    def power_w(self) -> float:
        if not self.on or self.miner is None:
            return 0.0
        return self.miner.phys.power_w()

    def energy_wh(self) -> float:
        return self.miner.phys.energy_wh if self.miner is not None else self._energy_wh_empty

    def current_a(self, voltage: float) -> float:
        return self.power_w() / voltage if voltage else 0.0

    def switch(self, on: bool) -> None:
        """Really remove or restore the miner's power: off makes it unreachable, on boots it."""
        self.on = on
        if self.miner is not None:
            self.miner.phys.set_powered(on)


@dataclass
class SimPdu:
    d: PduDef
    outlets: list[SimOutlet]
    voltage: float = 230.0
    offline: bool = False

    @property
    def ip(self) -> str:
        assert self.d.ip is not None
        return self.d.ip

    def power_w(self) -> float:
        return sum(o.power_w() for o in self.outlets)

    def energy_wh(self) -> float:
        return sum(o.energy_wh() for o in self.outlets)

    def current_a(self) -> float:
        return self.power_w() / self.voltage

    def outlet(self, index: int) -> SimOutlet:
        if not 1 <= index <= len(self.outlets):
            raise KeyError(index)
        return self.outlets[index - 1]


class Site:
    def __init__(self, site: SiteFile, clock: SimClock | None = None, **physics: float) -> None:
        """`site` must be expanded (`sim.site.load_site` does that). `physics` overrides boot_s, wake_s, ..."""
        self.file = site
        self.name = site.site.name
        self.clock = clock or SimClock()
        self.miners: list[SimMiner] = []
        self.pdus: list[SimPdu] = []
        self.by_ip: dict[str, SimMiner] = {}
        self.by_serial: dict[str, SimMiner] = {}
        self.pdu_by_ip: dict[str, SimPdu] = {}
        self.pdu_by_id: dict[str, SimPdu] = {}
        for pd in site.pdus:
            outlets = [SimOutlet(i, f"Outlet {i}") for i in range(1, pd.outlets + 1)]
            pdu = SimPdu(pd, outlets, offline="offline" in pd.faults)
            self.pdus.append(pdu)
            self.pdu_by_id[pd.id] = pdu
            self.pdu_by_ip[pdu.ip] = pdu
        for md in site.miners:
            assert md.serial is not None
            phys = MinerPhysics(
                MODELS[md.model], md.serial, self.clock, ambient_c=site.site.ambient_c,
                faults=set(md.faults), **physics,  # type: ignore[arg-type]
            )
            m = SimMiner(md, phys)
            self.miners.append(m)
            self.by_ip[m.ip] = m
            self.by_serial[m.serial] = m
            if md.pdu is not None and md.outlet is not None:
                outlet = self.pdu_by_id[md.pdu].outlet(md.outlet)
                outlet.miner = m
                outlet.name = md.hostname or outlet.name

    # ------------------------------------------------------------ totals (the simulator's own meters)
    def power_w(self) -> float:
        return sum(m.phys.power_w() for m in self.miners)

    def hashrate_ths(self) -> float:
        return sum(m.phys.hashrate_ths() for m in self.miners)

    def energy_wh(self) -> float:
        return sum(m.phys.energy_wh for m in self.miners)

    def tick(self) -> None:
        for m in self.miners:
            m.phys.advance()

    async def run_ticker(self, sim_period_s: float = 1.0) -> None:
        """Integrate energy once a simulated second (or `sim_period_s`) until cancelled."""
        while True:
            self.tick()
            await asyncio.sleep(self.clock.real_seconds(sim_period_s))

    # ------------------------------------------------------------ fault injection at run time
    def inject(self, target: str, fault: str, on: bool = True) -> None:
        """Inject or clear a fault on a miner (by ip or serial) or a PDU (by ip or id; only 'offline')."""
        if target in self.pdu_by_ip or target in self.pdu_by_id:
            pdu = self.pdu_by_ip.get(target) or self.pdu_by_id[target]
            if fault != "offline":
                raise ValueError("a PDU knows only the 'offline' fault")
            pdu.offline = on
            return
        miner = self.by_ip.get(target) or self.by_serial.get(target)
        if miner is None:
            raise KeyError(f"no miner or PDU {target!r}")
        miner.phys.inject(Fault(fault), on)
        log.info("fault %s %s on %s", fault, "set" if on else "cleared", target)
