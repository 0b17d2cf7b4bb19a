"""PDU families without a recorded walk, read from synthetic walks written here from the vendors' MIBs.

Every OID and enum value in these walks is looked up by its MIB name in ../shared/mibs (tests/support/mibs.py), not
taken from Kuat's OID tables, so a wrong OID or state value in agent/oids/*.toml fails here. The walks are written
to a temporary directory and served by a real snmpsim; the driver identifies each in auto mode and reads it.
Expected figures follow the units the MIB's DESCRIPTION gives (named in each comment).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.drivers import open_pdu
from agent.drivers.base import DeviceError
from kuat.wire import v1
from tests.support.mibs import MibTree
from tests.support.snmpsim import SnmpSim

pytestmark = pytest.mark.integration

INTEGER, STRING, OID, GAUGE = 2, 4, 6, 66


@dataclass
class Walk:
    """A synthetic .snmprec: system group plus (OID, type, value) rows, written sorted by OID as snmpsim wants."""

    name: str
    sys_object_id: str
    descr: str
    rows: list[tuple[str, int, object]] = field(default_factory=list)

    def add(self, oid: str, kind: int, value: object) -> None:
        self.rows.append((oid, kind, value))

    def text(self) -> str:
        rows = [("1.3.6.1.2.1.1.1.0", STRING, self.descr), ("1.3.6.1.2.1.1.2.0", OID, self.sys_object_id),
                ("1.3.6.1.2.1.1.5.0", STRING, self.name), *self.rows]  # fmt: skip
        rows.sort(key=lambda r: tuple(int(p) for p in r[0].split(".")))
        return "".join(f"{oid}|{kind}|{value}\n" for oid, kind, value in rows)


def mibs(shared_dir: Path, *files: str) -> MibTree:
    return MibTree(*(shared_dir / "mibs" / f for f in files))


# ---------------------------------------------------------------- the walks, one per family (or variant)
def vertiv_v5(m: MibTree, with_total: bool) -> Walk:
    w = Walk("vertiv-v5" if with_total else "vertiv-v5-phases", m.oid("imd"), "Vertiv Geist rPDU")
    w.add(m.oid("productModelNumber") + ".0", STRING, "VP8859")
    w.add(m.oid("pduMainName") + ".1", STRING, "rPDU A")
    w.add(m.oid("pduMainSerial") + ".1", STRING, "VT0001")
    if with_total:
        w.add(m.oid("pduTotalRealPower") + ".1", GAUGE, 3120)  # watts
        w.add(m.oid("pduTotalEnergy") + ".1", GAUGE, 1234000)  # watt-hours
    for phase, watts in ((1, 1000), (2, 1050), (3, 1070)):
        w.add(f"{m.oid('pduPhaseRealPower')}.{phase}", GAUGE, watts)  # watts
        w.add(f"{m.oid('pduPhaseEnergy')}.{phase}", GAUGE, 400000 + phase)  # watt-hours
        w.add(f"{m.oid('pduPhaseCurrent')}.{phase}", GAUGE, 470)  # centiamps
        w.add(f"{m.oid('pduPhaseVoltage')}.{phase}", GAUGE, 2300)  # decivolts
    for n, state in enumerate(("on", "off", "on2off", "unavailable"), start=1):
        w.add(f"{m.oid('pduOutletSwitchLabel')}.{n}", STRING, f"miner-{n}")
        w.add(f"{m.oid('pduOutletSwitchState')}.{n}", INTEGER, m.enum("pduOutletSwitchState", state))
        w.add(f"{m.oid('pduOutletMeterCurrent')}.{n}", GAUGE, 1350)  # centiamps
        w.add(f"{m.oid('pduOutletMeterRealPower')}.{n}", GAUGE, 3100 if state != "off" else 0)  # watts
        w.add(f"{m.oid('pduOutletMeterEnergy')}.{n}", GAUGE, 5000 * n)  # watt-hours
    return w


def geist_watchdog(m: MibTree, with_rpm: bool) -> Walk:
    w = Walk("geist-watchdog" if with_rpm else "geist-watchdog-env", m.oid("watchdog100"), "Geist Watchdog 100")
    w.add(m.oid("productTitle") + ".0", STRING, "Watchdog 100")
    w.add(m.oid("internalSerial") + ".1", STRING, "28F1D2000000")
    w.add(m.oid("tempSensorName") + ".1", STRING, "inlet")
    if with_rpm:
        for n, watts in ((1, 1500), (2, 1600)):
            w.add(f"{m.oid('rpmSensorName')}.{n}", STRING, f"circuit {n}")
            w.add(f"{m.oid('rpmSensorRealPower')}.{n}", GAUGE, watts)  # Watts
            w.add(f"{m.oid('rpmSensorEnergy')}.{n}", GAUGE, 100 * n)  # kWh
            w.add(f"{m.oid('rpmSensorCurrent')}.{n}", GAUGE, 70)  # 0.1 Amps
            w.add(f"{m.oid('rpmSensorVoltage')}.{n}", GAUGE, 230)  # Volts
    return w


def apc_rpdu2(m: MibTree) -> Walk:
    w = Walk("apc-rpdu2-synthetic", m.oid("masterSwitchrPDU2"), "APC Web/SNMP Management Card (AP8641)")
    w.add(m.oid("rPDU2IdentName") + ".1", STRING, "rack-7")
    w.add(m.oid("rPDU2IdentModelNumber") + ".1", STRING, "AP8641")
    w.add(m.oid("rPDU2IdentSerialNumber") + ".1", STRING, "5A1712E00042")
    w.add(m.oid("rPDU2DeviceStatusPower") + ".1", INTEGER, 624)  # hundredths of kW -> 6240 W
    w.add(m.oid("rPDU2DeviceStatusEnergy") + ".1", INTEGER, 81234)  # tenths of kWh
    for n, state in enumerate(("on", "off"), start=1):
        w.add(f"{m.oid('rPDU2OutletSwitchedStatusName')}.{n}", STRING, f"c01-0{n}")
        enum = m.enum("rPDU2OutletSwitchedStatusState", state)
        w.add(f"{m.oid('rPDU2OutletSwitchedStatusState')}.{n}", INTEGER, enum)
        w.add(f"{m.oid('rPDU2OutletMeteredStatusCurrent')}.{n}", INTEGER, 136 if state == "on" else 0)  # tenths A
        w.add(f"{m.oid('rPDU2OutletMeteredStatusPower')}.{n}", INTEGER, 3133 if state == "on" else 0)  # W
    return w


def raritan_px2(m: MibTree) -> Walk:
    w = Walk("raritan-px2-synthetic", m.oid("pdu2"), "PX2")
    w.add(m.oid("pduModel") + ".1", STRING, "PX2-5496")
    w.add(m.oid("pduSerialNumber") + ".1", STRING, "QFC0000001")
    power, energy, current = (m.tc("SensorTypeEnumeration", t) for t in ("activePower", "activeEnergy", "rmsCurrent"))
    w.add(f"{m.oid('measurementsInletSensorValue')}.1.1.{power}", GAUGE, 62345)  # 6234.5 W with 1 decimal digit
    w.add(f"{m.oid('inletSensorDecimalDigits')}.1.1.{power}", GAUGE, 1)
    w.add(f"{m.oid('measurementsInletSensorValue')}.1.1.{energy}", GAUGE, 9000000)  # Wh, 0 digits
    w.add(f"{m.oid('inletSensorDecimalDigits')}.1.1.{energy}", GAUGE, 0)
    for n, state in enumerate(("on", "off"), start=1):
        w.add(f"{m.oid('outletName')}.1.{n}", STRING, f"m{n}")
        w.add(f"{m.oid('outletSwitchingState')}.1.{n}", INTEGER, m.enum("outletSwitchingState", state))
        w.add(f"{m.oid('measurementsOutletSensorValue')}.1.{n}.{current}", GAUGE, 13560)  # 13.560 A, 3 digits
        w.add(f"{m.oid('outletSensorDecimalDigits')}.1.{n}.{current}", GAUGE, 3)
        w.add(f"{m.oid('measurementsOutletSensorValue')}.1.{n}.{power}", GAUGE, 3100)
        w.add(f"{m.oid('outletSensorDecimalDigits')}.1.{n}.{power}", GAUGE, 0)
    return w


def sentry4(m: MibTree) -> Walk:
    w = Walk("sentry4-synthetic", m.oid("sentry4"), "Sentry Switched PDU")
    w.add(m.oid("st4UnitID") + ".1", STRING, "A")
    w.add(m.oid("st4UnitModel") + ".1", STRING, "C2WG36MA")
    w.add(m.oid("st4UnitProductSN") + ".1", STRING, "ACEW0001")
    w.add(m.oid("st4InputCordActivePower") + ".1.1", INTEGER, 1500)  # Watts, cord AA
    w.add(m.oid("st4InputCordActivePower") + ".1.2", INTEGER, 1600)  # cord AB
    w.add(m.oid("st4InputCordEnergy") + ".1.1", INTEGER, 1000)  # tenth kWh
    for n, state in enumerate(("on", "off", "unknown"), start=1):
        w.add(f"{m.oid('st4OutletName')}.1.1.{n}", STRING, f"AA{n}")
        w.add(f"{m.oid('st4OutletState')}.1.1.{n}", INTEGER, m.enum("st4OutletState", state))
        w.add(f"{m.oid('st4OutletCurrent')}.1.1.{n}", INTEGER, 1210)  # hundredth Amps
        w.add(f"{m.oid('st4OutletActivePower')}.1.1.{n}", INTEGER, 2790)  # Watts
    return w


def eaton(m: MibTree) -> Walk:
    w = Walk("eaton-epdu-synthetic", m.oid("eatonEpdu"), "Eaton ePDU")
    w.add(m.oid("productName") + ".0", STRING, "ePDU MA 0U (309 32A 3P)")
    w.add(m.oid("serialNumber") + ".0", STRING, "G123C45678")
    w.add(m.oid("inputTotalWatts") + ".0.1", INTEGER, 9300)  # Watts
    w.add(m.oid("inputTotalWh") + ".0.1", INTEGER, 7_000_000)  # Watt-hours
    for n, state in enumerate(("on", "pendingOff", "off"), start=1):
        w.add(f"{m.oid('outletName')}.0.{n}", STRING, f"Outlet A{n}")
        w.add(f"{m.oid('outletControlStatus')}.0.{n}", INTEGER, m.enum("outletControlStatus", state))
        w.add(f"{m.oid('outletCurrent')}.0.{n}", INTEGER, 13400)  # milliamps
        w.add(f"{m.oid('outletWatts')}.0.{n}", INTEGER, 3100)
    return w


def enlogic(m: MibTree) -> Walk:
    w = Walk("enlogic-synthetic", m.oid("enlogic") + ".1", "Enlogic PDU")
    w.add(m.oid("pduUnitPropertiesName") + ".1", STRING, "EN2.0")
    w.add(m.oid("pduNamePlateModelNumber") + ".1", STRING, "EN2015")
    w.add(m.oid("pduNamePlateSerialNumber") + ".1", STRING, "EL0000042")
    w.add(m.oid("pduUnitStatusActivePower") + ".1", INTEGER, 6200)  # W
    for n, state in enumerate(("on", "off"), start=1):
        w.add(f"{m.oid('pduOutletSwitchedStatusName')}.1.{n}", STRING, f"o{n}")
        w.add(f"{m.oid('pduOutletSwitchedStatusState')}.1.{n}", INTEGER, m.enum("pduOutletSwitchedStatusState", state))
        w.add(f"{m.oid('pduOutletMeteredStatusCurrent')}.1.{n}", INTEGER, 1350)  # hundredths of A
        w.add(f"{m.oid('pduOutletMeteredStatusActivePower')}.1.{n}", INTEGER, 3100)
    return w


@pytest.fixture(scope="module")
def walks(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    built = [
        vertiv_v5(mibs(shared_dir, "geist/VERTIV-V5-MIB"), with_total=True),
        vertiv_v5(mibs(shared_dir, "geist/VERTIV-V5-MIB"), with_total=False),
        geist_watchdog(mibs(shared_dir, "geist/GEIST-V4-MIB"), with_rpm=True),
        geist_watchdog(mibs(shared_dir, "geist/GEIST-V4-MIB"), with_rpm=False),
        apc_rpdu2(mibs(shared_dir, "apc/PowerNet-MIB")),
        raritan_px2(mibs(shared_dir, "raritan/PDU2-MIB")),
        sentry4(mibs(shared_dir, "sentry/Sentry4-MIB")),
        eaton(mibs(shared_dir, "eaton/EATON-EPDU-MIB")),
        enlogic(mibs(shared_dir, "enlogic/ENLOGIC-PDU-MIB")),
    ]
    folder = tmp_path_factory.mktemp("synthetic-walks")
    paths = []
    for walk in built:
        path = folder / f"{walk.name}.snmprec"
        path.write_text(walk.text())
        paths.append(path)
    with SnmpSim(paths) as sim:
        yield sim


async def read(sim: SnmpSim, community: str) -> v1.PduSample:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community=community, timeout=3.0)
    return await pdu.read()


def states(sample: v1.PduSample) -> list[str]:
    return [o.state.value for o in sample.outlets]


async def test_vertiv_v5_with_its_total(walks: SnmpSim) -> None:
    s = await read(walks, "vertiv-v5")
    assert (s.family, s.model, s.serial) == ("vertiv_geist", "VP8859", "VT0001")
    assert (s.power_w, s.power_source, s.energy_kwh) == (3120.0, v1.PduPowerSource.TOTAL, 1234.0)
    assert states(s) == ["on", "off", "on", "unknown"]  # on, off, on2off (still on), unavailable
    assert (s.outlets[0].name, s.outlets[0].current_a, s.outlets[0].power_w) == ("miner-1", 13.5, 3100.0)
    assert s.outlets[0].energy_kwh == 5.0  # 5000 watt-hours


async def test_vertiv_v5_without_a_total_is_the_sum_of_its_phases(walks: SnmpSim) -> None:
    """The walk that identified as vertiv_geist and then answered no probe: pduTotalRealPower was the probe."""
    s = await read(walks, "vertiv-v5-phases")
    assert s.family == "vertiv_geist"
    assert (s.power_w, s.power_source) == (3120.0, v1.PduPowerSource.PHASES)  # 1000 + 1050 + 1070 W
    assert s.energy_kwh == pytest.approx(1200.006)  # 400001 + 400002 + 400003 Wh
    assert s.errors == []


async def test_geist_watchdog_rpm_sensors(walks: SnmpSim) -> None:
    s = await read(walks, "geist-watchdog")
    assert (s.family, s.model, s.serial) == ("geist_watchdog", "Watchdog 100", "28F1D2000000")
    assert (s.power_w, s.power_source, s.energy_kwh) == (3100.0, v1.PduPowerSource.PHASES, 300.0)
    assert s.outlets == []


async def test_a_geist_environmental_monitor_is_refused_clearly(walks: SnmpSim) -> None:
    with pytest.raises(DeviceError, match=r"geist_watchdog, vertiv_geist but none of their probe columns answered"):
        await open_pdu("127.0.0.1", port=walks.port, community="geist-watchdog-env", timeout=3.0)


async def test_apc_rpdu2(walks: SnmpSim) -> None:
    s = await read(walks, "apc-rpdu2-synthetic")
    assert (s.family, s.model, s.serial) == ("apc_rpdu2", "AP8641", "5A1712E00042")
    assert (s.power_w, s.power_source, s.energy_kwh) == (6240.0, v1.PduPowerSource.TOTAL, 8123.4)
    assert states(s) == ["on", "off"]  # rPDU2 state enum: off 1, on 2
    assert (s.outlets[0].current_a, s.outlets[0].power_w) == (13.6, 3133.0)


async def test_raritan_px2(walks: SnmpSim) -> None:
    s = await read(walks, "raritan-px2-synthetic")
    assert (s.family, s.model) == ("raritan_px2", "PX2-5496")
    assert (s.power_w, s.power_source, s.energy_kwh) == (6234.5, v1.PduPowerSource.TOTAL, 9000.0)
    assert states(s) == ["on", "off"]  # SensorStateEnumeration on 7, off 8
    assert (s.outlets[1].name, s.outlets[1].current_a, s.outlets[1].power_w) == ("m2", 13.56, 3100.0)


async def test_sentry4_is_the_sum_of_its_cords(walks: SnmpSim) -> None:
    s = await read(walks, "sentry4-synthetic")
    assert (s.family, s.model, s.serial) == ("sentry4", "C2WG36MA", "ACEW0001")
    assert (s.power_w, s.power_source) == (3100.0, v1.PduPowerSource.PHASES)  # cords 1500 + 1600 W
    assert states(s) == ["on", "off", "unknown"]  # DeviceState unknown 0
    assert (s.outlets[0].current_a, s.outlets[0].power_w) == (12.1, 2790.0)


async def test_eaton_epdu(walks: SnmpSim) -> None:
    s = await read(walks, "eaton-epdu-synthetic")
    assert (s.family, s.serial) == ("eaton_epdu", "G123C45678")
    assert (s.power_w, s.power_source, s.energy_kwh) == (9300.0, v1.PduPowerSource.TOTAL, 7000.0)
    assert states(s) == ["on", "on", "off"]  # pendingOff: still on
    assert s.outlets[0].current_a == 13.4  # 13400 milliamps


async def test_enlogic(walks: SnmpSim) -> None:
    s = await read(walks, "enlogic-synthetic")
    assert (s.family, s.model, s.serial) == ("enlogic", "EN2015", "EL0000042")
    assert (s.power_w, s.power_source) == (6200.0, v1.PduPowerSource.TOTAL)
    assert states(s) == ["on", "off"]  # off 0, on 1
    assert s.outlets[0].current_a == 13.5


async def test_a_read_between_walks_gets_the_rows_of_the_power_source_used(walks: SnmpSim) -> None:
    """Between full walks only the rows of the power source in use are read (the phases here, not the total)."""
    from agent.drivers.pdu import SnmpPdu

    pdu = await open_pdu("127.0.0.1", port=walks.port, community="vertiv-v5-phases", timeout=3.0)
    assert isinstance(pdu, SnmpPdu)
    first = await pdu.read()
    asked = {oid.rsplit(".", 1)[0] for oid in pdu._fast_oids}  # type: ignore[attr-defined]
    assert "1.3.6.1.4.1.21239.5.2.3.2.1.12" in asked  # pduPhaseRealPower
    assert "1.3.6.1.4.1.21239.5.2.3.1.1.9" not in asked  # pduTotalRealPower: not in this walk
    again = await pdu.read()
    assert (again.power_w, again.power_source) == (first.power_w, first.power_source)
