"""Every recording in ../shared/fixtures/snmprec, served by a real snmpsim, read through the real PDU driver.

Expected figures were read by hand from the .snmprec lines named in each comment and scaled per DEVICES.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.drivers import open_pdu
from agent.drivers.base import CommandUnsupported, DeviceError, DeviceUnreachable
from agent.oids import load_tables
from kuat.wire import v1
from tests.support.snmpsim import SnmpSim

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def snmpsim(snmprec_dir: Path) -> Iterator[SnmpSim]:
    recordings = sorted(snmprec_dir.glob("*.snmprec"))
    assert len(recordings) == 6
    with SnmpSim(recordings) as sim:
        yield sim


async def read(sim: SnmpSim, community: str, family: str = "auto") -> v1.PduSample:
    pdu = await open_pdu("127.0.0.1", port=sim.port, community=community, family=family, timeout=3.0)
    return await pdu.read()


async def test_apc_ap7900_rpdu(snmpsim: SnmpSim) -> None:
    s = await read(snmpsim, "apc-ap7900")
    # sysObjectID .318.1.3.4.5 is shared by rPDU and rPDU2: the probe column picks rPDU (no .318.1.1.26 tree)
    assert s.family == "apc_rpdu"
    assert (s.model, s.serial) == ("AP7900", "ZA0733005455")  # .318.1.1.12.1.5.0 / .12.1.6.0
    assert s.power_w == 0.0  # .318.1.1.12.1.16.0|2|0 (the AP7900 reports 0 W)
    assert [o.index for o in s.outlets] == list(range(1, 9))
    assert s.outlets[0].name == "Outlet 1"  # .12.3.5.1.1.2.1|4x|4f75746c65742031
    # rPDUOutletStatusOutletState .12.3.5.1.1.4.N|2|1 = outletStatusOn (1 = on here, unlike rPDU2)
    assert all(o.state == v1.OutletState.ON for o in s.outlets)
    assert all(o.current_a is None for o in s.outlets)  # no per-outlet metering column in this model


async def test_apc_cpdu_apdu10150(snmpsim: SnmpSim) -> None:
    s = await read(snmpsim, "apc-cpdu")
    assert s.family == "apc_cpdu"
    assert (s.model, s.serial) == ("APDU10150SM", "5A1234Y56789")  # .32.1.2.1.11.1 / .12.1
    assert s.power_w == 258.0  # .318.1.1.32.2.4.1.4.1|2|258 (W)
    assert s.power_source == v1.PduPowerSource.TOTAL
    assert len(s.outlets) == 64
    o2 = s.outlets[1]
    # .32.5.4.1.3.1.2 "OUTLET 2"; current .32.5.9.1.5.1.2|2|28 -> 0.28 A; power .32.5.9.1.6.1.2|2|57 W
    assert (o2.index, o2.name, o2.current_a, o2.power_w) == (2, "OUTLET 2", 0.28, 57.0)
    assert s.outlets[0].name == "Test Name" and s.outlets[0].state == v1.OutletState.ON  # .5.4.1.4.1.1|2|1
    assert s.outlets[40].state == v1.OutletState.OFF  # outlet 41: .5.4.1.4.1.41|2|0 (off/unused)
    assert not s.outlets[0].switchable  # no control OID is known for this line


async def test_apc_easy_pdu(snmpsim: SnmpSim) -> None:
    s = await read(snmpsim, "apc-epdu")
    assert s.family == "apc_epdu" and s.model == "EPDU1116S"  # sysDescr
    assert s.power_w == 0.0  # phases .30.4.2.1.6.{1,2,3} = 0 W: no unit total, the sum of its phases
    assert s.power_source == v1.PduPowerSource.PHASES
    assert s.energy_kwh == pytest.approx(332.241)  # .30.4.2.1.10.1|2|332241 Wh (+0 +0)
    assert s.outlets == []


async def test_raritan_px1_with_pdu2_subset(snmpsim: SnmpSim) -> None:
    s = await read(snmpsim, "raritan-pdu")
    assert s.family == "raritan_px1"  # sysObjectID .13742.4
    assert s.power_w == 580.0  # inletActivePower .13742.4.1.20.2.1.9.1|66|580 W
    assert s.power_source == v1.PduPowerSource.TOTAL
    assert s.energy_kwh == 0.0  # inletActiveEnergy .20.2.1.12.1|66|0 Wh
    assert len(s.outlets) == 12
    # outletCurrent .13742.4.1.2.2.1.4.3|66|2192 mA -> 2.192 A; label .2.2.1.2.3 OUTLET3
    assert (s.outlets[2].name, s.outlets[2].current_a) == ("OUTLET3", 2.192)
    assert s.outlets[8].current_a == 0.202  # .2.2.1.4.9|66|202
    assert all(o.state == v1.OutletState.UNKNOWN for o in s.outlets)  # no outletOperationalState recorded


async def test_raritan_pdu2_decimal_digits(snmpsim: SnmpSim) -> None:
    """The same recording carries a PDU2-MIB subset: read it with the PX2 table to check the digits scaling."""
    s = await read(snmpsim, "raritan-pdu", family="raritan_px2")
    # inlet activePower .13742.6.5.2.3.1.4.1.1.5|66|138 with digits .6.3.3.4.1.7.1.1.5|66|0 -> 138 W
    assert s.power_w == 138.0
    outlet3 = next(o for o in s.outlets if o.index == 3)
    # outlet 3 rmsCurrent .6.5.4.3.1.4.1.3.1|66|311, digits .6.3.5.4.1.7.1.3.1|66|3 -> 0.311 A
    # outlet 3 activePower .6.5.4.3.1.4.1.3.5|66|68, digits ...1.3.5|66|0 -> 68 W; name .6.3.5.3.1.3.1.3 OUTLET3
    assert (outlet3.current_a, outlet3.power_w, outlet3.name) == (0.311, 68.0, "OUTLET3")
    assert next(o for o in s.outlets if o.index == 1).name == "1"  # empty outletName -> outletLabel "1"


async def test_raritan_px1_full_walk(snmpsim: SnmpSim) -> None:
    s = await read(snmpsim, "raritan-px1-fullwalk")
    assert s.family == "raritan_px1"
    # model .13742.4.1.1.12.0|4x|44505852382d3135 = "DPXR8-15"; serial .1.1.2.0 AD15460030
    assert (s.model, s.serial) == ("DPXR8-15", "AD15460030")
    assert [o.name for o in s.outlets][:3] == ["Lamp", "Sensor programming station", "Opilio3 Wifi"]
    assert all(o.state == v1.OutletState.OFF for o in s.outlets)  # .2.2.1.3.N|2|0 = off
    assert all(o.power_w == 0.0 and o.energy_kwh == 0.0 for o in s.outlets)


async def test_sentry3_power_from_infeed_current_and_voltage(snmpsim: SnmpSim) -> None:
    """This CDU gives no towerActivePower (.3.2.1.1.11) and no infeedPower (.3.2.2.1.12): its power is the sum of
    infeed current x voltage, said so by power_source (apparent power, an upper bound of the active power)."""
    s = await read(snmpsim, "sentry3")
    assert s.family == "sentry3"
    assert (s.model, s.serial) == ("CW-24V2C458C1", "ADLH0001862")  # .1718.3.2.1.1.7.1 / .6.1
    # infeedLoadValue .3.2.2.1.7.1.1|2|362 (3.62 A) x infeedVoltage .3.2.2.1.11.1.1|2|2093 (209.3 V)
    # + .7.2.1|2|502 (5.02 A) x .11.2.1|2|2059 (205.9 V) = 757.666 + 1033.618 VA
    assert s.power_w == pytest.approx(1791.284)
    assert s.power_source == v1.PduPowerSource.CURRENT_VOLTAGE
    assert s.errors == []
    assert s.outlets == []


async def test_switch_on_read_only_recording_fails_loudly(snmpsim: SnmpSim) -> None:
    pdu = await open_pdu("127.0.0.1", port=snmpsim.port, community="apc-ap7900", timeout=2.0)
    with pytest.raises(DeviceError):
        await pdu.switch(3, "off")  # a recording is not writable: the SET must not pass for done
    with pytest.raises(DeviceError, match="no outlet 99"):
        await pdu.switch(99, "off")
    cpdu = await open_pdu("127.0.0.1", port=snmpsim.port, community="apc-cpdu", timeout=2.0)
    with pytest.raises(CommandUnsupported):
        await cpdu.switch(1, "off")


async def test_wrong_community_is_unreachable(snmpsim: SnmpSim) -> None:
    with pytest.raises(DeviceUnreachable):
        await open_pdu("127.0.0.1", port=snmpsim.port, community="nobody", timeout=0.5, retries=0)


EXPECTED = {  # recording -> (family, power_w, power_source), each read in auto mode (the lines are in the tests above)
    "apc-ap7900": ("apc_rpdu", 0.0, v1.PduPowerSource.TOTAL),
    "apc-cpdu": ("apc_cpdu", 258.0, v1.PduPowerSource.TOTAL),
    "apc-epdu": ("apc_epdu", 0.0, v1.PduPowerSource.PHASES),
    "raritan-pdu": ("raritan_px1", 580.0, v1.PduPowerSource.TOTAL),
    "raritan-px1-fullwalk": ("raritan_px1", 0.0, v1.PduPowerSource.TOTAL),
    "sentry3": ("sentry3", 1791.284, v1.PduPowerSource.CURRENT_VOLTAGE),
}


async def test_every_recording_is_identified_and_read(snmpsim: SnmpSim) -> None:
    assert set(EXPECTED) == set(snmpsim.communities)  # a new recording needs its line here
    for community, (family, power, source) in EXPECTED.items():
        s = await read(snmpsim, community)
        assert (s.family, s.power_source) == (family, source), community
        assert s.power_w == pytest.approx(power), community
        assert s.available and s.model, community


def test_every_family_table_is_complete() -> None:
    tables = load_tables()
    assert set(tables) >= {"apc_rpdu2", "apc_rpdu", "raritan_px2", "raritan_px1", "sentry4", "sentry3"}
    assert {"eaton_epdu", "vertiv_geist"} <= set(tables)
    for table in tables.values():
        assert table.sysobjectid and table.probe, table.family
        if table.outlets:
            assert "state" in table.outlets and "name" in table.outlets, table.family
    # the APC gotcha: rPDU2 state off 1 / on 2, control immediateOn 1 / immediateOff 2
    rpdu2 = tables["apc_rpdu2"]
    assert rpdu2.outlets["state"].states == {1: "off", 2: "on"}
    assert (rpdu2.control["on"].value, rpdu2.control["off"].value) == (1, 2)
    assert tables["eaton_epdu"].control["off"].oid.endswith(".6.6.1.3")


async def test_snmp_v3_auth_priv(snmprec_dir: Path) -> None:
    """SNMPv3 USM (SHA auth + AES privacy) against snmpsim; the context name selects the recording."""
    from agent.drivers import V3Auth

    v3_args = ["--v3-user=kuat", "--v3-auth-key=kuat-auth-pass", "--v3-auth-proto=SHA",
               "--v3-priv-key=kuat-priv-pass", "--v3-priv-proto=AES"]  # fmt: skip
    with SnmpSim([snmprec_dir / "apc-cpdu.snmprec"], v3_args=v3_args) as sim:
        good = V3Auth("kuat", "kuat-auth-pass", "kuat-priv-pass", "sha", "aes", context="apc-cpdu")
        pdu = await open_pdu("127.0.0.1", port=sim.port, v3=good, timeout=3.0)
        sample = await pdu.read()
        assert (sample.family, sample.power_w) == ("apc_cpdu", 258.0)  # .32.2.4.1.4.1|2|258
        wrong = V3Auth("kuat", "not-the-key", "kuat-priv-pass", "sha", "aes", context="apc-cpdu")
        with pytest.raises(DeviceError):
            await open_pdu("127.0.0.1", port=sim.port, v3=wrong, timeout=1.0, retries=0)


async def test_apc_ap7900_spdu_tree(snmpsim: SnmpSim) -> None:
    """The AP7900 walk also carries the sPDU (MasterSwitch) tree; read it with that table."""
    s = await read(snmpsim, "apc-ap7900", family="apc_spdu")
    assert (s.model, s.serial) == ("AP7900", "ZA0733005455")  # .318.1.1.4.1.4.0 / .4.1.5.0
    assert [o.name for o in s.outlets] == [f"Outlet {n}" for n in range(1, 9)]  # .4.4.2.1.4.N (hex strings)
    assert all(o.state == v1.OutletState.ON for o in s.outlets)  # sPDUOutletCtl .4.4.2.1.3.N|2|1 = outletOn
    assert s.power_w is None and s.errors == ["the PDU reports no power reading"]
    assert s.power_source is None  # an sPDU meters nothing: no figure is made up


async def test_a_second_read_walks_only_power_and_states_and_keeps_the_rest(snmpsim: SnmpSim) -> None:
    """SNMP decoding is most of a gateway's CPU: between full walks (every SLOW_EVERY_S) only the power and state
    rows the last walk found are read, by GET; names, currents and energy counters come from the last walk."""
    from agent.drivers.pdu import SnmpPdu

    pdu = await open_pdu("127.0.0.1", port=snmpsim.port, community="raritan-pdu", family="raritan_px2", timeout=3.0)
    assert isinstance(pdu, SnmpPdu)
    walked: list[list[str]] = []
    real_walk = pdu.session.walk

    async def counting_walk(columns: list[str]) -> dict[str, dict[tuple[int, ...], object]]:
        walked.append(list(columns))
        return await real_walk(columns)  # type: ignore[return-value]

    pdu.session.walk = counting_walk  # type: ignore[method-assign]
    got: list[list[str]] = []
    real_get = pdu.session.get

    async def counting_get(oids: list[str]) -> dict[str, object]:
        got.append(list(oids))
        return await real_get(oids)

    pdu.session.get = counting_get  # type: ignore[method-assign,assignment]
    first = await pdu.read()
    full = walked[-1]
    second = await pdu.read()
    assert walked[-1] == full  # no second walk: the fast columns' known rows were read by GET
    fast = {column for column in full if any(oid.startswith(column + ".") for oid in got[-1])}
    assert all(any(oid.startswith(column + ".") for column in fast) for oid in got[-1])
    assert fast < set(full) and len(fast) <= len(full) // 2
    assert second == first  # a recording does not change: the cached columns fill the sample exactly as before
    assert next(o for o in second.outlets if o.index == 3).name == "OUTLET3"
    pdu._slow_at -= 3600  # type: ignore[attr-defined]  # the slow columns are due again
    await pdu.read()
    assert walked[-1] == full
