"""Small in-test drivers implementing agent/drivers/base.py, for the runtime's unit tests (the integration tests in
test_e2e_sim.py use the real drivers against the simulator).

A FakeMiner behaves like a miner in the ways the runtime cares about: it mines or sleeps, draws power accordingly,
honours a power target if its firmware "has" one, and can be made unreachable, hanging or refusing. A FakePdu feeds
its outlets from the miners plugged into them: switching an outlet off makes the miner unreachable and 0 W.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent.config import MinerConfig, PduConfig
from agent.drivers.base import CommandUnsupported, DeviceError, DeviceUnreachable, MinerDriver, OutletAction, PduDriver
from kuat.wire import v1

NOMINAL_W = 3000.0
SLEEP_W = 25.0


class FakeMiner(MinerDriver):
    def __init__(self, ip: str, mac: str | None = None, power_target: bool = True, can_sleep: bool = True) -> None:
        self.ip = ip
        self.mac = mac
        self.can_power_target = power_target
        self.can_sleep = can_sleep
        self.sleeping = False
        self.powered = True  # its outlet is on
        self.limit_w: float | None = None
        self.unreachable = False
        self.hang = False  # accept, never answer
        self.refuse_commands = False  # answers reads, fails commands with a device error
        self.calls: list[str] = []
        self.reads = 0
        self.active_reads = 0
        self.max_active_reads = 0

    @property
    def power_w(self) -> float:
        if not self.powered:
            return 0.0
        if self.sleeping:
            return SLEEP_W
        return self.limit_w if self.limit_w is not None else NOMINAL_W

    async def read(self) -> v1.MinerSample:
        self.active_reads += 1
        self.max_active_reads = max(self.max_active_reads, self.active_reads)
        try:
            await self._answer()
            await asyncio.sleep(0.01)
            self.reads += 1
            return self.sample()
        finally:
            self.active_reads -= 1

    async def _answer(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.unreachable or not self.powered:
            raise DeviceUnreachable(f"{self.ip}: connection refused")

    def sample(self) -> v1.MinerSample:
        ths = 0.0 if self.sleeping else 100.0 * self.power_w / NOMINAL_W
        return v1.MinerSample(
            device_id=f"ip-{self.ip}",
            ip=self.ip,
            available=True,
            state=v1.MinerState.SLEEPING if self.sleeping else v1.MinerState.MINING,
            make="Antminer",
            model="S19j Pro",
            mac=self.mac,
            hashrate_ths=ths,
            power_w=self.power_w,
            power_source=v1.PowerSource.REPORTED,
            power_limit_w=self.limit_w if self.limit_w is not None else (NOMINAL_W if self.can_power_target else None),
            capabilities=v1.Capabilities(
                power_target=self.can_power_target,
                power_min_w=1000.0 if self.can_power_target else None,
                power_max_w=NOMINAL_W if self.can_power_target else None,
                sleep=self.can_sleep,
            ),
        )

    async def _command(self, name: str) -> None:
        await self._answer()
        if self.refuse_commands:
            raise DeviceError(f"{self.ip}: {name} refused")
        self.calls.append(name)

    async def sleep(self) -> None:
        if not self.can_sleep:
            raise CommandUnsupported("this firmware cannot sleep")
        await self._command("sleep")
        self.sleeping = True

    async def wake(self) -> None:
        await self._command("wake")
        self.sleeping = False

    async def reboot(self) -> None:
        await self._command("reboot")

    async def set_power_target(self, watts: float | None) -> None:
        if not self.can_power_target:
            raise CommandUnsupported("stock firmware has no power target (sleep/wake only)")
        await self._command(f"power_target {watts}")
        self.limit_w = watts


class FakePdu(PduDriver):
    def __init__(self, ip: str, outlets: dict[int, FakeMiner | None]) -> None:
        self.ip = ip
        self.outlets = outlets
        self.on: dict[int, bool] = dict.fromkeys(outlets, True)
        self.unreachable = False
        self.calls: list[str] = []

    async def read(self) -> v1.PduSample:
        if self.unreachable:
            raise DeviceUnreachable(f"{self.ip}: no SNMP answer")
        outlets = [
            v1.OutletSample(
                index=i,
                state=v1.OutletState.ON if self.on[i] else v1.OutletState.OFF,
                power_w=(m.power_w if m is not None else 0.0) + 3.0 if self.on[i] else 0.0,  # +3 W: PSU losses
            )
            for i, m in self.outlets.items()
        ]
        return v1.PduSample(device_id=f"pdu-{self.ip}", ip=self.ip, available=True, family="fake",
                            power_w=sum(o.power_w or 0 for o in outlets), outlets=outlets)

    async def switch(self, outlet: int, action: OutletAction) -> None:
        if self.unreachable:
            raise DeviceUnreachable(f"{self.ip}: no SNMP answer")
        if outlet not in self.outlets:
            raise DeviceError(f"no outlet {outlet}")
        self.calls.append(f"{action} {outlet}")
        state = {"on": True, "off": False, "cycle": True}[action]
        self.on[outlet] = state
        miner = self.outlets[outlet]
        if miner is not None:
            miner.powered = state
            if state:
                miner.sleeping = False  # power-on boots it into mining


@dataclass
class FakeSite:
    """Fake drivers by address, and the DriverOpener the runtime uses to reach them."""

    miners: dict[str, FakeMiner] = field(default_factory=dict)
    pdus: dict[str, FakePdu] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)

    async def open_miner(self, cfg: MinerConfig) -> MinerDriver:
        miner = self.miners[cfg.ip]
        await miner._answer()  # identification needs an answer, like the real "auto" driver
        self.opened.append(cfg.ip)
        return miner

    async def open_pdu(self, cfg: PduConfig) -> PduDriver:
        return self.pdus[cfg.ip]


def fake_site(n_miners: int = 4, net: str = "127.77.0", with_pdu: bool = True) -> tuple[FakeSite, dict[str, object]]:
    """n miners on one PDU (outlet i = miner i); returns the fakes and the matching `devices:` config section."""
    site = FakeSite()
    miners_cfg: list[dict[str, object]] = []
    for i in range(1, n_miners + 1):
        ip = f"{net}.{i}"
        site.miners[ip] = FakeMiner(ip)
        entry: dict[str, object] = {"ip": ip, "id": f"m{i}"}
        if with_pdu:
            entry["outlet"] = {"pdu": "pdu-a", "outlet": i}
        miners_cfg.append(entry)
    pdus_cfg: list[dict[str, object]] = []
    if with_pdu:
        pdu_ip = f"{net}.200"
        site.pdus[pdu_ip] = FakePdu(pdu_ip, {i: site.miners[f"{net}.{i}"] for i in range(1, n_miners + 1)})
        pdus_cfg.append({"ip": pdu_ip, "id": "pdu-a"})
    return site, {"miners": miners_cfg, "pdus": pdus_cfg}
