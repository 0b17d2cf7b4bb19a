"""The real drivers against the simulator (sim.server): reading every firmware, control (lean and pyasic), PDU
outlets switched by the PDU driver really cutting a miner. No root: miners on 4028+N/80+N, PDUs on 161+N,
on random 127.x blocks (several engineers run tests at once)."""

from __future__ import annotations

import asyncio
import errno
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.control.base import Target
from agent.control.pyasic import PyasicControl
from agent.drivers import apply_outlet_power, open_miner, open_pdu
from agent.drivers.base import CommandUnsupported, DeviceUnreachable
from kuat.wire import v1
from sim.physics import Phase
from sim.runtime import SimMiner
from sim.server import SimConfig, SimServer
from sim.site import load_site
from tests.conftest import requires_root

pytestmark = pytest.mark.integration

SMALL_SITE = Path(__file__).resolve().parents[2] / "sim" / "sites" / "small.toml"
QUICK: dict[str, Any] = {"boot_s": 0.5, "wake_s": 0.5, "ramp_s": 0.5, "sleep_s": 0.2}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    last: OSError | None = None
    for _ in range(8):
        nets = random.sample(range(20, 251), 2)
        offset = random.randint(20000, 40000)
        site = load_site(SMALL_SITE, miner_net=f"127.{nets[0]}", pdu_net=f"127.{nets[1]}")
        server = SimServer(site, SimConfig(port_offset=offset, control_port=None, **QUICK))
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
            continue
        try:
            yield server
        finally:
            await server.stop()
        return
    raise RuntimeError(f"no free loopback block/ports after 8 tries: {last}")


async def until(predicate: Callable[[], bool], what: str, limit_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def first(sim: SimServer, firmware: str) -> SimMiner:
    return next(m for m in sim.site.miners if m.d.firmware == firmware)


FAMILY = {"bmminer": "antminer", "luxos": "luxos", "btminer": "whatsminer"}


async def test_every_simulated_miner_reads_right(sim: SimServer) -> None:
    offset = sim.config.port_offset
    for miner in sim.site.miners:
        driver = await open_miner(miner.ip, port_offset=offset, timeout=5.0)
        sample = await driver.read()
        where = f"{miner.ip} {miner.d.firmware} {miner.d.model}"
        assert getattr(driver, "family", None) == FAMILY[miner.d.firmware], where
        assert sample.available and sample.state == v1.MinerState.MINING, where
        assert sample.hashrate_ths == pytest.approx(miner.phys.hashrate_ths(), rel=0.02), where
        assert sample.model is not None and sample.model.startswith(miner.d.model.replace(" ", "")[:3]), where
        assert len(sample.boards) == 3 and sample.pools, where
        # every firmware gives its serial (web API, LuxOS config, Whatsminer get_miner_info): the registry's key
        assert sample.serial == miner.serial, where
        assert sample.mac == (miner.d.mac or "").lower(), where
        if miner.d.firmware == "bmminer":
            # stock firmware reports no power: hash rate x catalog J/TH, and identity from the web API
            assert sample.power_source == v1.PowerSource.ESTIMATED, where
            assert sample.capabilities.sleep and not sample.capabilities.power_target
        else:
            assert sample.power_source == v1.PowerSource.REPORTED, where
            assert sample.power_w == pytest.approx(miner.phys.power_w(), rel=0.03), where
            assert sample.capabilities.power_target
        if miner.d.firmware == "luxos":
            assert sample.capabilities.presets, "LuxOS profiles become presets"
        assert sample.mac is not None and sample.device_id == sample.mac, where


@pytest.mark.parametrize("firmware", ["bmminer", "luxos", "btminer"])
async def test_sleep_and_wake_through_the_lean_path(sim: SimServer, firmware: str) -> None:
    miner = first(sim, firmware)
    driver = await open_miner(miner.ip, port_offset=sim.config.port_offset, timeout=5.0)
    assert not isinstance(driver.control, PyasicControl)  # type: ignore[attr-defined]
    await driver.sleep()
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, f"{firmware} asleep")
    asleep = await driver.read()
    assert asleep.state == v1.MinerState.SLEEPING and asleep.hashrate_ths == 0.0
    assert asleep.power_w is not None and asleep.power_w < 100  # tens of watts, not zero
    await driver.wake()
    await until(lambda: miner.phys.phase() == Phase.MINING, f"{firmware} mining again")
    awake = await driver.read()
    assert awake.state == v1.MinerState.MINING and (awake.hashrate_ths or 0) > 0


@pytest.mark.parametrize("firmware", ["bmminer", "luxos", "btminer"])
async def test_sleep_and_wake_through_pyasic(sim: SimServer, firmware: str) -> None:
    """The pyasic path (the long tail's, and the bench's baseline) still controls every simulated firmware."""
    miner = first(sim, firmware)
    control = PyasicControl(Target(miner.ip, 4028 + sim.config.port_offset, 80 + sim.config.port_offset))
    await control.sleep()
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, f"{firmware} asleep through pyasic")
    await control.wake()
    await until(lambda: miner.phys.phase() == Phase.MINING, f"{firmware} mining again through pyasic")


@pytest.mark.parametrize("firmware", ["bmminer", "luxos", "btminer"])
async def test_pyasic_control_object_is_ready_before_the_first_command(sim: SimServer, firmware: str) -> None:
    """warm() (called after every good read) identifies the miner for pyasic in the background, so the first
    command through pyasic does not wait for its identification probes."""
    miner = first(sim, firmware)
    control = PyasicControl(Target(miner.ip, 4028 + sim.config.port_offset, 80 + sim.config.port_offset))
    assert control._pyasic is None
    control.warm()
    await until(lambda: control._pyasic is not None, f"{firmware} identified for pyasic")
    assert type(control._pyasic).__name__ != "UnknownMiner"


async def test_power_target_lowers_power_and_hash_rate(sim: SimServer) -> None:
    miner = first(sim, "btminer")
    driver = await open_miner(miner.ip, port_offset=sim.config.port_offset, timeout=5.0)
    before = await driver.read()
    await driver.set_power_target(2500)  # Whatsminer reboots to apply a new limit
    await until(lambda: miner.phys.phase() == Phase.MINING and miner.phys.power_w() <= 2510, "capped and mining")
    after = await driver.read()
    assert after.power_limit_w == 2500.0
    assert after.power_w is not None and after.power_w <= 2510
    assert (after.hashrate_ths or 0) < (before.hashrate_ths or 0)


async def test_stock_antminer_has_no_power_target(sim: SimServer) -> None:
    miner = first(sim, "bmminer")
    driver = await open_miner(miner.ip, port_offset=sim.config.port_offset, timeout=5.0)
    await driver.read()
    with pytest.raises(CommandUnsupported):
        await driver.set_power_target(2000)


async def test_outlet_off_cuts_the_miner(sim: SimServer) -> None:
    pdu_sim = next(p for p in sim.site.pdus if p.d.family == "apc_rpdu2")
    outlet_sim = next(o for o in pdu_sim.outlets if o.miner is not None)
    assert outlet_sim.miner is not None
    miner_ip = outlet_sim.miner.ip
    pdu = await open_pdu(pdu_sim.ip, port=sim.pdu_port, write_community=pdu_sim.d.write_community, timeout=2.0)
    miner = await open_miner(miner_ip, port_offset=sim.config.port_offset, timeout=2.0)
    sample = await miner.read()
    before = await pdu.read()
    await pdu.switch(outlet_sim.index, "off")  # read back: returns only once the PDU says off
    assert not outlet_sim.on
    after = await pdu.read()
    outlet = next(o for o in after.outlets if o.index == outlet_sim.index)
    assert outlet.state == v1.OutletState.OFF and outlet.power_w == 0.0
    assert before.power_w is not None and after.power_w is not None and after.power_w < before.power_w - 1000
    with pytest.raises(DeviceUnreachable):
        await miner.read()
    metered = apply_outlet_power(sample, outlet)
    assert (metered.power_w, metered.power_source) == (0.0, v1.PowerSource.PDU)
    await pdu.switch(outlet_sim.index, "on")
    await until(lambda: outlet_sim.miner is not None and outlet_sim.miner.phys.phase() == Phase.MINING, "boot")
    assert (await miner.read()).available


async def test_unreachable_miner_raises(sim: SimServer) -> None:
    miner = first(sim, "luxos")
    driver = await open_miner(miner.ip, port_offset=sim.config.port_offset, timeout=1.0)
    sim.site.inject(miner.ip, "timeout")
    with pytest.raises(DeviceUnreachable):
        await driver.read()
    sim.site.inject(miner.ip, "timeout", on=False)
    sim.site.inject(miner.ip, "offline")
    with pytest.raises(DeviceUnreachable):
        await driver.read()


@pytest.mark.parametrize("firmware", ["bmminer", "luxos", "btminer"])
async def test_pyasic_read_path_agrees_with_the_lean_one(sim: SimServer, firmware: str) -> None:
    """driver="pyasic" (the path for firmware without a lean parser) reads the same miner through get_data()."""
    miner = first(sim, firmware)
    slow = await open_miner(miner.ip, driver="pyasic", port_offset=sim.config.port_offset, timeout=5.0)
    lean = await open_miner(miner.ip, port_offset=sim.config.port_offset, timeout=5.0)
    via_pyasic, via_rpc = await slow.read(), await lean.read()
    assert type(slow).__name__ == "PyasicMiner" and type(lean).__name__ == "RpcMiner"
    assert via_pyasic.available and via_pyasic.state == v1.MinerState.MINING
    assert via_pyasic.hashrate_ths == pytest.approx(via_rpc.hashrate_ths, rel=0.05)
    assert via_pyasic.mac in (via_rpc.mac, None)  # pyasic 0.79 finds no MAC in LuxOS's config reply
    assert via_pyasic.model is not None
    assert len(via_pyasic.boards) == 3
    if firmware != "bmminer":
        assert via_pyasic.power_source == v1.PowerSource.REPORTED
        assert via_pyasic.power_w == pytest.approx(miner.phys.power_w(), rel=0.05)


@requires_root
async def test_standard_ports_identified_by_pyasic_factory() -> None:
    """On the real ports (80/4028/161, root) "auto" runs pyasic's own factory, as on a rack network."""
    for _ in range(8):
        nets = random.sample(range(20, 251), 2)
        site = load_site(SMALL_SITE, miner_net=f"127.{nets[0]}", pdu_net=f"127.{nets[1]}")
        server = SimServer(site, SimConfig(port_offset=0, control_port=None, **QUICK))
        try:
            await server.start()
            break
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    else:
        pytest.fail("no free loopback block for ports 80/4028")
    try:
        for firmware, family in FAMILY.items():
            miner = first(server, firmware)
            driver = await open_miner(miner.ip, timeout=5.0)
            assert getattr(driver, "family", None) == family
            sample = await driver.read()
            assert sample.state == v1.MinerState.MINING
            assert sample.hashrate_ths == pytest.approx(miner.phys.hashrate_ths(), rel=0.02)
        bm = first(server, "bmminer")
        driver = await open_miner(bm.ip, timeout=5.0)
        await driver.sleep()
        await until(lambda: bm.phys.phase() == Phase.SLEEPING, "asleep on real ports")
        await driver.wake()
        await until(lambda: bm.phys.phase() == Phase.MINING, "awake on real ports")
        pdu = await open_pdu(server.site.pdus[0].ip, timeout=2.0)
        assert (await pdu.read()).family == server.site.pdus[0].d.family
    finally:
        await server.stop()


async def test_identity_fetched_again_when_the_web_api_was_down(sim: SimServer) -> None:
    from agent.drivers import RpcMiner
    from tests.support.servers import free_port

    miner = first(sim, "bmminer")
    offset = sim.config.port_offset
    driver = RpcMiner(miner.ip, family="antminer", rpc_port=4028 + offset, web_port=free_port(), timeout=2.0)
    first_read = await driver.read()  # web API unreachable: no serial/MAC, the device id falls back to the IP
    assert first_read.serial is None and first_read.device_id == f"ip-{miner.ip}"
    driver.web_port = 80 + offset
    second = await driver.read()  # before the retry interval: not asked again
    assert second.serial is None
    driver._identity_retry_at = 0.0  # the retry interval has passed
    third = await driver.read()
    assert third.serial == miner.serial and third.device_id == third.mac


async def test_every_simulated_pdu_identity_and_figures(sim: SimServer) -> None:
    for pdu_sim in sim.site.pdus:
        pdu = await open_pdu(pdu_sim.ip, port=sim.pdu_port, timeout=2.0)
        sample = await pdu.read()
        assert sample.family == pdu_sim.d.family
        assert sample.serial == pdu_sim.d.serial and sample.model
        assert sample.power_w == pytest.approx(pdu_sim.power_w(), abs=10)  # APC rPDU2 counts in 10 W steps
        metered = [o.power_w for o in sample.outlets if o.power_w is not None]
        assert sum(metered) == pytest.approx(pdu_sim.power_w(), rel=0.02)


async def test_stock_antminer_read_through_web_when_rpc_is_off(sim: SimServer) -> None:
    from agent.drivers import RpcMiner
    from tests.support.servers import free_port

    miner = first(sim, "bmminer")
    offset = sim.config.port_offset
    driver = RpcMiner(miner.ip, family="antminer", rpc_port=free_port(), web_port=80 + offset, timeout=2.0)
    sample = await driver.read()  # RPC refused (API switched off): stats.cgi + summary.cgi instead
    assert sample.state == v1.MinerState.MINING and sample.serial == miner.serial
    assert sample.hashrate_ths == pytest.approx(miner.phys.hashrate_ths(), rel=0.02)
    assert len(sample.boards) == 3 and sample.power_source == v1.PowerSource.ESTIMATED
    nothing = RpcMiner(miner.ip, family="antminer", rpc_port=free_port(), web_port=free_port(), timeout=1.0)
    with pytest.raises(DeviceUnreachable, match="refused"):
        await nothing.read()  # neither answers: the RPC error is what the poll loop sees
