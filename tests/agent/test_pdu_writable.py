"""Switching through snmpsim, and the families no shared recording covers (Eaton, Vertiv, Enlogic, CyberPower).

- A COPY of the real Raritan PX1 walk with one outlet's outletOperationalState made writable (snmpsim
  `writecache` variation): the driver switches it off and reads the state back.
- Eaton, Vertiv, Enlogic and CyberPower recordings are SYNTHETIC, written here from DEVICES.md (no public walk of
  these PDUs was available): they check the table data (index shapes, scales, control OIDs), not a device.
  snmpsim's writecache changes only the OID written, so a command OID that differs from the state OID stays
  "on" after an off command - exactly the "SET accepted, nothing happened" case the driver must not call done.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.drivers import open_pdu
from agent.drivers.base import DeviceError
from kuat.wire import v1
from tests.support.snmpsim import SnmpSim

pytestmark = pytest.mark.integration

EATON = "1.3.6.1.4.1.534.6.6.7"
VERTIV = "1.3.6.1.4.1.21239.5.2"


def eaton_recording() -> str:
    lines = [
        "1.3.6.1.2.1.1.1.0|4|Eaton ePDU (synthetic)",
        f"1.3.6.1.2.1.1.2.0|6|{EATON}",
        f"{EATON}.1.2.1.2.0|4|EMAB03",  # productName, strapping 0
        f"{EATON}.1.2.1.4.0|4|SYN0001",  # serialNumber
        f"{EATON}.3.5.1.4.0.1|2|6210",  # inputTotalWatts W
        f"{EATON}.3.5.1.5.0.1|2|123456",  # inputTotalWh -> 123.456 kWh
    ]
    for o, (watts, ma) in enumerate([(3105, 13500), (3105, 13500), (0, 0)], start=1):
        lines += [
            f"{EATON}.6.1.1.3.0.{o}|4|miner-{o}",  # outletName
            f"{EATON}.6.4.1.3.0.{o}|2|{ma}",  # outletCurrent mA
            f"{EATON}.6.5.1.3.0.{o}|2|{watts}",  # outletWatts W
            f"{EATON}.6.5.1.4.0.{o}|2|{45000 * o}",  # outletWh
            f"{EATON}.6.6.1.2.0.{o}|2|{1 if watts else 0}",  # outletControlStatus on 1 / off 0
            f"{EATON}.6.6.1.3.0.{o}|2:writecache|value=-1",  # outletControlOffCmd
            f"{EATON}.6.6.1.4.0.{o}|2:writecache|value=-1",  # outletControlOnCmd
        ]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


def vertiv_recording() -> str:
    lines = [
        f"1.3.6.1.2.1.1.2.0|6|{VERTIV}",
        f"{VERTIV}.3.1.1.9.1|2|4000",  # pduTotalRealPower W
        f"{VERTIV}.3.1.1.12.1|2|2500000",  # pduTotalEnergy Wh -> 2500 kWh
    ]
    for o in (1, 2):
        lines += [
            f"{VERTIV}.3.5.1.3.{o}|4|rack-b-{o}",  # pduOutletSwitchLabel
            f"{VERTIV}.3.5.1.4.{o}|2|{1 if o == 1 else 2}",  # pduOutletSwitchState on 1 / off 2
            f"{VERTIV}.3.5.1.6.{o}|2:writecache|value=8",  # pduOutletSwitchControl (none 8)
            f"{VERTIV}.3.6.1.8.{o}|2|{1739 if o == 1 else 0}",  # pduOutletMeterCurrent 0.01 A
            f"{VERTIV}.3.6.1.12.{o}|2|{4000 if o == 1 else 0}",  # pduOutletMeterRealPower W
            f"{VERTIV}.3.6.1.15.{o}|2|{1200000 * o}",  # pduOutletMeterEnergy Wh
        ]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


ENLOGIC = "1.3.6.1.4.1.38446.1"
CYBERPOWER = "1.3.6.1.4.1.3808.1.1.3"


def enlogic_recording() -> str:
    lines = [
        f"1.3.6.1.2.1.1.2.0|6|{ENLOGIC}",
        f"{ENLOGIC}.2.4.1.4.1|2|3300",  # pduUnitStatusActivePower W
        f"{ENLOGIC}.2.4.1.9.1|2|98765",  # pduUnitStatusEnergy 0.1 kWh -> 9876.5 kWh
        f"{ENLOGIC}.5.4.1.3.1.1|4|s19-a",  # name, unit 1 outlet 1
        f"{ENLOGIC}.5.4.1.4.1.1|2|1",  # state on
        f"{ENLOGIC}.5.5.1.4.1.1|2:writecache|value=7",  # control (outletUnknown 7)
        f"{ENLOGIC}.5.9.1.5.1.1|2|1435",  # current 0.01 A -> 14.35 A
        f"{ENLOGIC}.5.9.1.6.1.1|2|3300",  # power W
        f"{ENLOGIC}.5.9.1.11.1.1|2|4321",  # energy 0.1 kWh -> 432.1 kWh
    ]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


def cyberpower_recording() -> str:
    lines = [f"1.3.6.1.2.1.1.2.0|6|{CYBERPOWER}"]
    for o, watts in ((1, 2900), (2, 0)):
        lines += [
            f"{CYBERPOWER}.3.5.1.1.2.{o}|4|Outlet{o}",  # ePDUOutletStatusOutletName
            f"{CYBERPOWER}.3.5.1.1.4.{o}|2|{1 if watts else 2}",  # state on 1 / off 2
            f"{CYBERPOWER}.3.5.1.1.7.{o}|2|{126 if watts else 0}",  # load 0.1 A
            f"{CYBERPOWER}.3.5.1.1.8.{o}|2|{watts}",  # active power W
            f"{CYBERPOWER}.3.5.1.1.13.{o}|2|{500 * o}",  # energy 0.1 kWh
        ]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


def _oid_key(line: str) -> tuple[int, ...]:
    return tuple(int(x) for x in line.split("|")[0].split("."))


def writable_px1(recording: Path) -> str:
    """The real PX1 walk, outlet 2's outletOperationalState (.13742.4.1.2.2.1.3.2, R/W) made writable."""
    target = "1.3.6.1.4.1.13742.4.1.2.2.1.3.2|2|0"
    text = recording.read_text()
    assert target in text
    return text.replace(target, "1.3.6.1.4.1.13742.4.1.2.2.1.3.2|2:writecache|value=1")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, snmprec_dir: Path) -> Iterator[SnmpSim]:
    folder = tmp_path_factory.mktemp("recordings")
    (folder / "eaton-synthetic.snmprec").write_text(eaton_recording())
    (folder / "vertiv-synthetic.snmprec").write_text(vertiv_recording())
    (folder / "enlogic-synthetic.snmprec").write_text(enlogic_recording())
    (folder / "cyberpower-synthetic.snmprec").write_text(cyberpower_recording())
    (folder / "px1-writable.snmprec").write_text(writable_px1(snmprec_dir / "raritan-px1-fullwalk.snmprec"))
    with SnmpSim(sorted(folder.glob("*.snmprec"))) as running:
        yield running


async def test_eaton_table(sim: SnmpSim) -> None:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community="eaton-synthetic", timeout=2.0)
    s = await pdu.read()
    assert (s.family, s.model, s.serial) == ("eaton_epdu", "EMAB03", "SYN0001")
    assert (s.power_w, s.energy_kwh) == (6210.0, 123.456)  # W; Wh / 1000
    o1 = s.outlets[0]
    # strapping.outlet index 0.1 -> outlet 1; 13500 mA -> 13.5 A; 45000 Wh -> 45 kWh
    assert (o1.index, o1.name, o1.current_a, o1.power_w, o1.energy_kwh) == (1, "miner-1", 13.5, 3105.0, 45.0)
    assert [o.state for o in s.outlets] == [v1.OutletState.ON, v1.OutletState.ON, v1.OutletState.OFF]
    with pytest.raises(DeviceError, match="still reads on"):
        await pdu.switch(1, "off")  # the command OID took the value, the status did not follow


async def test_vertiv_table(sim: SnmpSim) -> None:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community="vertiv-synthetic", timeout=2.0)
    s = await pdu.read()
    assert (s.family, s.power_w, s.energy_kwh) == ("vertiv_geist", 4000.0, 2500.0)
    assert [(o.index, o.name, o.state, o.current_a) for o in s.outlets] == [
        (1, "rack-b-1", v1.OutletState.ON, 17.39),  # 1739 x 0.01 A
        (2, "rack-b-2", v1.OutletState.OFF, 0.0),
    ]
    assert s.outlets[1].energy_kwh == 2400.0  # 2,400,000 Wh


async def test_switch_with_read_back(sim: SnmpSim) -> None:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community="px1-writable", write_community="px1-writable")
    before = await pdu.read()
    assert before.family == "raritan_px1" and before.outlets[1].state == v1.OutletState.ON
    await pdu.switch(2, "off")  # SET outletOperationalState.2 = 0, then read back until it says off
    after = await pdu.read()
    assert after.outlets[1].state == v1.OutletState.OFF
    assert [o.state for o in after.outlets if o.index != 2] == [o.state for o in before.outlets if o.index != 2]
    await pdu.switch(2, "on")
    assert (await pdu.read()).outlets[1].state == v1.OutletState.ON


async def test_enlogic_table(sim: SnmpSim) -> None:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community="enlogic-synthetic", timeout=2.0)
    s = await pdu.read()
    assert (s.family, s.power_w, s.energy_kwh) == ("enlogic", 3300.0, 9876.5)
    o = s.outlets[0]
    assert (o.index, o.name, o.state, o.current_a, o.power_w, o.energy_kwh) == (
        1, "s19-a", v1.OutletState.ON, 14.35, 3300.0, 432.1
    )  # fmt: skip
    with pytest.raises(DeviceError, match="still reads on"):
        await pdu.switch(1, "off")  # sends immediateOff = 1 (Enlogic order), the recording's state stays on


async def test_cyberpower_table_sums_outlets(sim: SnmpSim) -> None:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community="cyberpower-synthetic", timeout=2.0)
    s = await pdu.read()
    assert s.family == "cyberpower_epdu"
    assert [(o.state, o.current_a, o.energy_kwh) for o in s.outlets] == [
        (v1.OutletState.ON, 12.6, 50.0),
        (v1.OutletState.OFF, 0.0, 100.0),
    ]
    assert s.power_w == 2900.0 and s.errors == ["no total power reading: sum of outlet readings"]
