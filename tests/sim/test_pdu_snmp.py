"""The simulated PDUs over real SNMP: pysnmp's client reads and switches outlets of each family on loopback.

Expected OIDs, enums and scales below are written out from ../shared/domain/DEVICES.md (not imported from the
family tables) so the tests check the tables. The site runs on a ManualClock: readings are deterministic and
energy grows only when the test advances the clock and ticks the site.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
    set_cmd,
)
from pysnmp.hlapi.v3arch.asyncio.cmdgen import VB_PROCESSOR
from pysnmp.proto import rfc1902

from sim.clock import ManualClock
from sim.pdus import PduAgents, start_pdu_agents
from sim.physics import Phase
from sim.runtime import SimPdu, Site
from sim.site import load_site
from tests.support.servers import free_port

SMALL_SITE = Path(__file__).resolve().parents[2] / "sim" / "sites" / "small.toml"
REBOOT_S = 0.3  # simulated seconds an outlet stays off on reboot; ManualClock maps them 1:1 to real time

APC = "1.3.6.1.4.1.318.1.1.26"
RARITAN = "1.3.6.1.4.1.13742.6"
SENTRY = "1.3.6.1.4.1.1718.4"


@dataclass(frozen=True)
class FamilySpec:
    """What the agent side would read for one family, straight from DEVICES.md."""

    sys_object_id: str
    outlet_index: str  # index prefix before the outlet number
    outlet_name: str
    outlet_state: str
    state_on: int
    state_off: int
    outlet_power: str
    outlet_current: str
    outlet_energy: str
    total_power: str  # full OID
    total_energy: str
    control: str
    control_on: int
    control_off: int
    control_reboot: int
    power_scale: float  # wire units per W for total_power
    current_scale: float  # wire units per A for outlet current
    energy_scale: float  # wire units per Wh for outlet energy
    total_energy_scale: float


SPECS: dict[str, FamilySpec] = {
    "apc_rpdu2": FamilySpec(
        sys_object_id="1.3.6.1.4.1.318.1.3.4.6",
        outlet_index="",
        outlet_name=f"{APC}.9.4.3.1.3",
        outlet_state=f"{APC}.9.2.3.1.5", state_on=2, state_off=1,
        outlet_power=f"{APC}.9.4.3.1.7",
        outlet_current=f"{APC}.9.4.3.1.6",
        outlet_energy=f"{APC}.9.4.3.1.11",
        total_power=f"{APC}.4.3.1.5.1",
        total_energy=f"{APC}.4.3.1.9.1",
        control=f"{APC}.9.2.4.1.5", control_on=1, control_off=2, control_reboot=3,
        power_scale=0.1, current_scale=10, energy_scale=0.01, total_energy_scale=0.01,
    ),
    "raritan_px2": FamilySpec(
        sys_object_id="1.3.6.1.4.1.13742.6",
        outlet_index="1.",
        outlet_name=f"{RARITAN}.3.5.3.1.3",
        outlet_state=f"{RARITAN}.4.1.2.1.3", state_on=7, state_off=8,
        outlet_power="",  # sensor table: see raritan_sensor()
        outlet_current="",
        outlet_energy="",
        total_power=f"{RARITAN}.5.2.3.1.4.1.1.5",
        total_energy=f"{RARITAN}.5.2.3.1.4.1.1.8",
        control=f"{RARITAN}.4.1.2.1.2", control_on=1, control_off=0, control_reboot=2,
        power_scale=1, current_scale=1000, energy_scale=1, total_energy_scale=1,
    ),
    "sentry4": FamilySpec(
        sys_object_id="1.3.6.1.4.1.1718.4",
        outlet_index="1.1.",
        outlet_name=f"{SENTRY}.1.8.2.1.3",
        outlet_state=f"{SENTRY}.1.8.3.1.1", state_on=1, state_off=2,
        outlet_power=f"{SENTRY}.1.8.3.1.7",
        outlet_current=f"{SENTRY}.1.8.3.1.3",
        outlet_energy=f"{SENTRY}.1.8.3.1.14",
        total_power=f"{SENTRY}.1.3.3.1.3.1.1",
        total_energy=f"{SENTRY}.1.3.3.1.10.1.1",
        control=f"{SENTRY}.1.8.5.1.2", control_on=1, control_off=2, control_reboot=3,
        power_scale=1, current_scale=100, energy_scale=1, total_energy_scale=0.01,
    ),
}
FAMILIES = sorted(SPECS)


# ---------------------------------------------------------------- a small SNMP manager on pysnmp's client API
class SnmpError(Exception):
    pass


_MIB_VIEW: dict[str, Any] = {}


def client_engine() -> SnmpEngine:
    """A client engine sharing one MIB view across tests: pysnmp builds its MIB compiler (seconds of CPU on a
    loaded machine) once per MIB view, and an engine cannot outlive the test's event loop."""
    engine = SnmpEngine()
    if "view" in _MIB_VIEW:
        engine.cache["mibViewController"] = _MIB_VIEW["view"]
    else:
        _MIB_VIEW["view"] = VB_PROCESSOR.get_mib_view_controller(engine.cache)
    return engine


class Manager:
    def __init__(self, port: int, timeout: float = 3.0) -> None:  # generous: other suites load the machine
        self.engine = client_engine()
        self.port = port
        self.timeout = timeout

    async def _target(self, ip: str) -> UdpTransportTarget:
        return await UdpTransportTarget.create((ip, self.port), timeout=self.timeout, retries=0)

    async def get(self, ip: str, *oids: str, community: str = "public") -> dict[str, Any]:
        err, status, _, binds = await get_cmd(
            self.engine, CommunityData(community), await self._target(ip), ContextData(),
            *(ObjectType(ObjectIdentity(o)) for o in oids),
        )
        if err or status:
            raise SnmpError(str(err or status.prettyPrint()))
        return {str(name): value for name, value in binds}

    async def get_int(self, ip: str, oid: str, community: str = "public") -> int:
        return int((await self.get(ip, oid, community=community))[oid])

    async def set(self, ip: str, oid: str, value: Any, community: str = "private") -> str:
        """SET one value; returns the error-status name ('noError' on success)."""
        err, status, _, _ = await set_cmd(
            self.engine, CommunityData(community), await self._target(ip), ContextData(),
            ObjectType(ObjectIdentity(oid), value),
        )
        if err:
            raise SnmpError(str(err))
        return str(status.prettyPrint()) if status else "noError"

    async def walk(self, ip: str, base: str) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = []
        async for err, status, _, binds in bulk_walk_cmd(
            self.engine, CommunityData("public"), await self._target(ip), ContextData(), 0, 30,
            ObjectType(ObjectIdentity(base)), lexicographicMode=False,
        ):
            if err or status:
                raise SnmpError(str(err or status.prettyPrint()))
            rows.extend((str(name), value) for name, value in binds)
        return rows


@dataclass
class Running:
    site: Site
    clock: ManualClock
    agents: PduAgents
    snmp: Manager

    def pdu(self, family: str) -> SimPdu:
        return next(p for p in self.site.pdus if p.d.family == family)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.site.tick()


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    clock = ManualClock()
    nets = random.sample(range(20, 251), 2)
    site = Site(load_site(SMALL_SITE, miner_net=f"127.{nets[0]}", pdu_net=f"127.{nets[1]}"), clock=clock)
    port = free_port(kind=socket.SOCK_DGRAM)
    agents = await start_pdu_agents(site, port, reboot_s=REBOOT_S)
    try:
        yield Running(site, clock, agents, Manager(port))
    finally:
        await agents.stop()


def outlet_oid(spec: FamilySpec, column: str, outlet: int) -> str:
    return f"{column}.{spec.outlet_index}{outlet}"


def raritan_sensor(outlet: int, sensor_type: int) -> tuple[str, str]:
    """(value OID, decimal-digits OID) of a Raritan outlet sensor: pdu 1, outlet, sensorType."""
    index = f"1.{outlet}.{sensor_type}"
    return f"{RARITAN}.5.4.3.1.4.{index}", f"{RARITAN}.3.5.4.1.7.{index}"


async def read_outlet(r: Running, family: str, outlet: int) -> tuple[float, float, float]:
    """(W, A, Wh) of one outlet as a manager computes them from the wire values and the family's scales."""
    spec, ip = SPECS[family], r.pdu(family).ip
    if family == "raritan_px2":
        values = []
        for sensor_type in (5, 1, 8):  # activePower, rmsCurrent, activeEnergy
            value_oid, digits_oid = raritan_sensor(outlet, sensor_type)
            got = await r.snmp.get(ip, value_oid, digits_oid)
            values.append(int(got[value_oid]) / 10 ** int(got[digits_oid]))
        return values[0], values[1], values[2]
    got = await r.snmp.get(ip, *(outlet_oid(spec, c, outlet)
                                 for c in (spec.outlet_power, spec.outlet_current, spec.outlet_energy)))
    w, a, wh = (int(v) for v in got.values())
    return float(w), a / spec.current_scale, wh / spec.energy_scale


# ---------------------------------------------------------------- identity
@pytest.mark.parametrize("family", FAMILIES)
async def test_system_group_names_the_vendor(running: Running, family: str) -> None:
    pdu = running.pdu(family)
    got = await running.snmp.get(pdu.ip, "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0",
                                 "1.3.6.1.2.1.1.5.0")
    assert str(got["1.3.6.1.2.1.1.2.0"]) == SPECS[family].sys_object_id
    assert str(got["1.3.6.1.2.1.1.1.0"]).split()[0] in {"APC", "Raritan", "Sentry"}
    assert int(got["1.3.6.1.2.1.1.3.0"]) > 0
    assert str(got["1.3.6.1.2.1.1.5.0"]) == pdu.d.id


async def test_identity_objects_carry_the_serial(running: Running) -> None:
    apc, px2, st4 = (running.pdu(f) for f in ("apc_rpdu2", "raritan_px2", "sentry4"))
    assert str((await running.snmp.get(apc.ip, f"{APC}.2.1.9.1"))[f"{APC}.2.1.9.1"]) == apc.d.serial
    assert str((await running.snmp.get(px2.ip, f"{RARITAN}.3.2.1.1.4.1"))[f"{RARITAN}.3.2.1.1.4.1"]) == px2.d.serial
    assert str((await running.snmp.get(st4.ip, f"{SENTRY}.1.2.2.1.4.1"))[f"{SENTRY}.1.2.2.1.4.1"]) == st4.d.serial


# ---------------------------------------------------------------- readings against the physics
@pytest.mark.parametrize("family", FAMILIES)
async def test_outlet_readings_match_the_physics(running: Running, family: str) -> None:
    running.advance(3600)  # one simulated hour of mining so energy is well above the meters' resolution
    pdu, spec = running.pdu(family), SPECS[family]
    for outlet in pdu.outlets:
        w, a, wh = await read_outlet(running, family, outlet.index)
        assert w == round(outlet.power_w())
        assert a == pytest.approx(outlet.current_a(pdu.voltage), abs=0.5 / spec.current_scale)
        assert wh == pytest.approx(outlet.energy_wh(), abs=0.5 / spec.energy_scale)
        if outlet.miner is not None:
            assert w > 1000 and wh > 1000  # a mining machine for an hour
        names = await running.snmp.get(pdu.ip, outlet_oid(spec, spec.outlet_name, outlet.index))
        assert str(next(iter(names.values()))) == outlet.name
        state = await running.snmp.get_int(pdu.ip, outlet_oid(spec, spec.outlet_state, outlet.index))
        assert state == spec.state_on


@pytest.mark.parametrize("family", FAMILIES)
async def test_pdu_total_is_the_sum_of_outlets(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    total = await running.snmp.get_int(pdu.ip, spec.total_power)
    outlets_w = 0.0
    for outlet in pdu.outlets:
        outlets_w += (await read_outlet(running, family, outlet.index))[0]
    assert total == round(pdu.power_w() * spec.power_scale)
    assert total / spec.power_scale == pytest.approx(outlets_w, abs=len(pdu.outlets) + 0.5 / spec.power_scale)


async def test_apc_device_power_is_in_hundredths_of_kw(running: Running) -> None:
    pdu = running.pdu("apc_rpdu2")
    got = await running.snmp.get(pdu.ip, f"{APC}.4.3.1.5.1", f"{APC}.6.3.1.5.1", f"{APC}.6.3.1.6.1")
    assert int(got[f"{APC}.4.3.1.5.1"]) == round(pdu.power_w() / 10)  # rPDU2DeviceStatusPower
    assert int(got[f"{APC}.6.3.1.5.1"]) == round(pdu.power_w() / 230 * 10)  # phase current, tenths of A
    assert int(got[f"{APC}.6.3.1.6.1"]) == 230  # phase voltage, V


async def test_raritan_publishes_decimal_digits_per_sensor(running: Running) -> None:
    pdu = running.pdu("raritan_px2")
    digits = {t: f"{RARITAN}.3.5.4.1.7.1.1.{t}" for t in (1, 4, 5, 7, 8)}
    inlet_digits = f"{RARITAN}.3.3.4.1.7.1.1.1"
    got = await running.snmp.get(pdu.ip, *digits.values(), inlet_digits)
    assert {t: int(got[o]) for t, o in digits.items()} == {1: 3, 4: 0, 5: 0, 7: 2, 8: 0}
    assert int(got[inlet_digits]) == 3
    inlet_current = await running.snmp.get_int(pdu.ip, f"{RARITAN}.5.2.3.1.4.1.1.1")
    assert inlet_current / 1000 == pytest.approx(pdu.current_a(), abs=0.001)  # milliamps on the wire


@pytest.mark.parametrize("family", FAMILIES)
async def test_energy_counters_grow_while_the_site_runs(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    running.advance(600)
    before = await running.snmp.get_int(pdu.ip, spec.total_energy)
    running.advance(1800)
    after = await running.snmp.get_int(pdu.ip, spec.total_energy)
    assert after > before
    grown_wh = (after - before) / spec.total_energy_scale
    expected_wh = pdu.power_w() * 0.5  # constant draw for half an hour
    assert grown_wh == pytest.approx(expected_wh, abs=1 / spec.total_energy_scale + 1)


# ---------------------------------------------------------------- switching
@pytest.mark.parametrize("family", FAMILIES)
async def test_switching_an_outlet_off_cuts_the_miner(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    outlet = next(o for o in pdu.outlets if o.miner is not None)
    assert outlet.miner is not None
    miner = outlet.miner
    draw = outlet.power_w()
    total_before = await running.snmp.get_int(pdu.ip, spec.total_power)

    assert await running.snmp.set(pdu.ip, outlet_oid(spec, spec.control, outlet.index),
                                  rfc1902.Integer32(spec.control_off)) == "noError"

    total_after = await running.snmp.get_int(pdu.ip, spec.total_power)
    assert (total_before - total_after) / spec.power_scale == pytest.approx(draw, abs=1 / spec.power_scale)
    assert await running.snmp.get_int(pdu.ip, outlet_oid(spec, spec.outlet_state, outlet.index)) == spec.state_off
    assert (await read_outlet(running, family, outlet.index))[0] == 0
    assert miner.phys.reachable is False and miner.phys.power_w() == 0

    assert await running.snmp.set(pdu.ip, outlet_oid(spec, spec.control, outlet.index),
                                  rfc1902.Integer32(spec.control_on)) == "noError"
    assert await running.snmp.get_int(pdu.ip, outlet_oid(spec, spec.outlet_state, outlet.index)) == spec.state_on
    assert miner.phys.phase() == Phase.BOOTING
    running.advance(120)  # boot + ramp
    assert miner.phys.reachable and miner.phys.is_hashing


@pytest.mark.parametrize("family", FAMILIES)
async def test_reboot_turns_the_outlet_off_then_on(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    outlet = pdu.outlets[0]
    assert await running.snmp.set(pdu.ip, outlet_oid(spec, spec.control, outlet.index),
                                  rfc1902.Integer32(spec.control_reboot)) == "noError"
    assert outlet.on is False
    for _ in range(100):  # up to 5 s for a 0.3 s reboot
        if outlet.on:
            break
        await asyncio.sleep(0.05)
    assert outlet.on, "outlet did not come back on after the reboot delay"
    assert outlet.miner is not None and outlet.miner.phys.phase() == Phase.BOOTING


async def test_apc_device_command_switches_every_outlet(running: Running) -> None:
    pdu = running.pdu("apc_rpdu2")
    assert await running.snmp.set(pdu.ip, f"{APC}.4.4.1.4.1", rfc1902.Integer32(3)) == "noError"  # immediateAllOff
    assert all(not o.on for o in pdu.outlets)
    assert await running.snmp.get_int(pdu.ip, f"{APC}.4.3.1.5.1") == 0
    assert await running.snmp.set(pdu.ip, f"{APC}.4.4.1.4.1", rfc1902.Integer32(1)) == "noError"  # immediateAllOn
    assert all(o.on for o in pdu.outlets)


async def test_apc_control_column_reads_back_the_control_enum(running: Running) -> None:
    """The APC gotcha: state off 1 / on 2, but the control column reads immediateOn 1 / immediateOff 2."""
    pdu = running.pdu("apc_rpdu2")
    control, state = f"{APC}.9.2.4.1.5.2", f"{APC}.9.2.3.1.5.2"
    assert (await running.snmp.get_int(pdu.ip, control), await running.snmp.get_int(pdu.ip, state)) == (1, 2)
    assert await running.snmp.set(pdu.ip, control, rfc1902.Integer32(2)) == "noError"
    assert (await running.snmp.get_int(pdu.ip, control), await running.snmp.get_int(pdu.ip, state)) == (2, 1)


async def test_apc_delayed_command_is_pending_until_cancelled(running: Running) -> None:
    pdu = running.pdu("apc_rpdu2")
    control, pending = f"{APC}.9.2.4.1.5.2", f"{APC}.9.2.3.1.6.2"  # outlet 2: ControlCommand, CommandPending
    assert await running.snmp.get_int(pdu.ip, pending) == 2  # noCommandPending
    assert await running.snmp.set(pdu.ip, control, rfc1902.Integer32(6)) == "noError"  # delayedOff (5 s)
    assert pdu.outlet(2).on
    assert await running.snmp.get_int(pdu.ip, pending) == 1  # commandPending
    assert await running.snmp.get_int(pdu.ip, f"{APC}.4.3.1.11.1") == 1  # device: commandPending
    assert await running.snmp.set(pdu.ip, control, rfc1902.Integer32(8)) == "noError"  # cancelPendingCommand
    assert await running.snmp.get_int(pdu.ip, pending) == 2
    assert pdu.outlet(2).on


@pytest.mark.parametrize("family", FAMILIES)
async def test_outlet_name_is_writable(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    writable_name = {
        "apc_rpdu2": f"{APC}.9.2.1.1.3.3",  # rPDU2OutletSwitchedConfigName
        "raritan_px2": f"{RARITAN}.3.5.3.1.3.1.3",  # outletName
        "sentry4": f"{SENTRY}.1.8.2.1.3.1.1.3",  # st4OutletName
    }[family]
    assert await running.snmp.set(pdu.ip, writable_name, rfc1902.OctetString("spare-03")) == "noError"
    assert pdu.outlet(3).name == "spare-03"
    names = await running.snmp.get(pdu.ip, outlet_oid(spec, spec.outlet_name, 3))
    assert str(next(iter(names.values()))) == "spare-03"


# ---------------------------------------------------------------- rejected writes change nothing
@pytest.mark.parametrize("family", FAMILIES)
async def test_bad_sets_get_the_proper_error_and_change_nothing(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    control = outlet_oid(spec, spec.control, 1)
    off = rfc1902.Integer32(spec.control_off)
    assert await running.snmp.set(pdu.ip, control, off, community="public") == "noAccess"
    assert await running.snmp.set(pdu.ip, control, rfc1902.Integer32(99)) == "wrongValue"
    assert await running.snmp.set(pdu.ip, control, rfc1902.OctetString("off")) == "wrongType"
    read_only = outlet_oid(spec, spec.outlet_state, 1)
    assert await running.snmp.set(pdu.ip, read_only, rfc1902.Integer32(spec.state_off)) == "notWritable"
    assert await running.snmp.set(pdu.ip, "1.3.6.1.4.1.99999.1.0", rfc1902.Integer32(1)) == "notWritable"
    assert await running.snmp.set(pdu.ip, outlet_oid(spec, spec.control, 99), off) == "noCreation"
    assert all(o.on for o in pdu.outlets)
    assert await running.snmp.get_int(pdu.ip, read_only) == spec.state_on


async def test_apc_outlet_unknown_is_not_a_command(running: Running) -> None:
    pdu = running.pdu("apc_rpdu2")
    assert await running.snmp.set(pdu.ip, f"{APC}.9.2.4.1.5.1", rfc1902.Integer32(4)) == "wrongValue"
    assert pdu.outlet(1).on


# ---------------------------------------------------------------- silence: foreign community, offline PDU
async def test_wrong_community_gets_no_reply(running: Running) -> None:
    pdu = running.pdu("sentry4")
    with pytest.raises(SnmpError, match="No SNMP response"):
        await Manager(running.agents.port, timeout=0.5).get(pdu.ip, "1.3.6.1.2.1.1.1.0", community="guess")


async def test_offline_pdu_does_not_answer(running: Running) -> None:
    pdu = running.pdu("raritan_px2")
    running.site.inject(pdu.d.id, "offline")
    quick = Manager(running.agents.port, timeout=0.5)
    with pytest.raises(SnmpError, match="No SNMP response"):
        await quick.get(pdu.ip, "1.3.6.1.2.1.1.3.0")
    assert await v3_probe(quick, pdu.ip) == "No SNMP response received before timeout"  # not even a v3 report
    other = running.pdu("apc_rpdu2")
    assert await quick.get(other.ip, "1.3.6.1.2.1.1.3.0")  # the other PDUs still answer
    running.site.inject(pdu.d.id, "offline", on=False)
    assert await quick.get(pdu.ip, "1.3.6.1.2.1.1.3.0")
    assert "No SNMP response" not in await v3_probe(quick, pdu.ip)  # online: the engine reports (unknown user)


async def v3_probe(manager: Manager, ip: str) -> str:
    """An SNMPv3 GET (the simulator has no v3 users): the error indication it ends with."""
    err, _, _, _ = await get_cmd(
        manager.engine, UsmUserData("nobody"), await manager._target(ip), ContextData(),
        ObjectType(ObjectIdentity("1.3.6.1.2.1.1.3.0")),
    )
    return str(err)


# ---------------------------------------------------------------- walking
@pytest.mark.parametrize("family", FAMILIES)
async def test_bulk_walk_is_lexicographic_and_ends(running: Running, family: str) -> None:
    pdu, spec = running.pdu(family), SPECS[family]
    rows = await running.snmp.walk(pdu.ip, "1.3.6.1")
    oids = [tuple(int(x) for x in o.split(".")) for o, _ in rows]
    assert oids == sorted(oids) and len(set(oids)) == len(oids)
    names = {o: v for o, v in rows}
    assert str(names["1.3.6.1.2.1.1.2.0"]) == spec.sys_object_id
    for outlet in pdu.outlets:  # every outlet's control object is there and walkable
        assert outlet_oid(spec, spec.control, outlet.index) in names


async def test_walking_the_outlet_table_reads_every_outlet(running: Running) -> None:
    pdu = running.pdu("sentry4")
    rows = await running.snmp.walk(pdu.ip, f"{SENTRY}.1.8.3.1.7")  # st4OutletActivePower
    assert [o.rsplit(".", 1)[1] for o, _ in rows] == [str(o.index) for o in pdu.outlets]
    assert [int(v) for _, v in rows] == [round(o.power_w()) for o in pdu.outlets]


# ---------------------------------------------------------------- lifecycle
async def test_a_taken_address_is_a_clear_error(running: Running) -> None:
    with pytest.raises(OSError, match=r"PDU pdu-a01-1: cannot bind udp 127\.\d+\.1\.1:\d+"):
        await start_pdu_agents(running.site, running.agents.port)


async def test_stop_releases_the_ports(running: Running) -> None:
    await running.agents.stop()
    again = await start_pdu_agents(running.site, running.agents.port)
    try:
        assert await running.snmp.get(running.pdu("apc_rpdu2").ip, "1.3.6.1.2.1.1.5.0")
    finally:
        await again.stop()
