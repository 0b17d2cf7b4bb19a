"""Whatsminer API v3 (firmware 2024.11 on) end to end against the simulator: found by `open_miner("auto")` although
port 4028 is closed, read and controlled by the agent over one kept connection, and read by unmodified pyasic.

The simulated replies follow what pyasic 0.79's BTMinerV3 reads and iaon/ya-whatsminer-cli (API v3.0.1) sends;
no real v3 capture is in ../shared/fixtures/miners, so the shapes are an assumption (sim/miners/btminer_v3.py).
"""

from __future__ import annotations

import asyncio
import errno
import random
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.drivers import open_miner
from agent.drivers.base import DeviceError
from agent.transport.btminer_v3 import V3Client
from kuat.catalog import hashrate_at_power
from kuat.wire import v1
from sim.physics import Phase
from sim.runtime import SimMiner
from sim.server import SimConfig, SimServer
from sim.site import load_site
from tests.agent.test_drivers_sim import QUICK, until

pytestmark = pytest.mark.integration
MIX = Path(__file__).resolve().parents[2] / "sim" / "sites" / "firmware-mix.toml"


@pytest.fixture
async def mix() -> AsyncIterator[SimServer]:
    for _ in range(8):
        nets = random.sample(range(20, 251), 2)
        site = load_site(MIX, miner_net=f"127.{nets[0]}", pdu_net=f"127.{nets[1]}")
        server = SimServer(site, SimConfig(port_offset=random.randint(20000, 40000), control_port=None,
                                           boot_s=QUICK["boot_s"], wake_s=QUICK["wake_s"], ramp_s=QUICK["ramp_s"],
                                           sleep_s=QUICK["sleep_s"]))
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        try:
            yield server
        finally:
            await server.stop()
        return
    raise RuntimeError("no free loopback block/ports after 8 tries")


def v3_miner(server: SimServer) -> SimMiner:
    return next(m for m in server.site.miners if m.d.firmware == "btminer3")


async def test_found_and_read_through_api_v3(mix: SimServer) -> None:
    miner = v3_miner(mix)
    driver = await open_miner(miner.ip, port_offset=mix.config.port_offset, timeout=5.0)
    assert getattr(driver, "family", None) == "whatsminer3"
    sample = await driver.read()
    assert sample.available and sample.state == v1.MinerState.MINING
    assert (sample.make, sample.model) == ("Whatsminer", "M60")
    assert sample.serial == miner.serial and sample.mac == (miner.d.mac or "").lower()
    assert sample.firmware is not None and "2024" in sample.firmware
    assert sample.hashrate_ths == pytest.approx(miner.phys.hashrate_ths(), rel=0.02)
    assert sample.power_source == v1.PowerSource.REPORTED
    assert sample.power_w == pytest.approx(miner.phys.power_w(), rel=0.03)
    assert len(sample.boards) == 3 and sample.pools and any(p.active for p in sample.pools)
    assert sample.capabilities.power_target and sample.capabilities.power_target_reboots


@pytest.mark.verifies("whatsminer3", "sleep")
@pytest.mark.verifies("whatsminer3", "power_target")
async def test_sleep_wake_and_power_limit_through_api_v3(mix: SimServer) -> None:
    miner = v3_miner(mix)
    driver = await open_miner(miner.ip, driver="whatsminer3", port_offset=mix.config.port_offset, timeout=5.0)
    await driver.read()
    await driver.sleep()
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "v3 asleep")
    asleep = await driver.read()
    assert asleep.state == v1.MinerState.SLEEPING and asleep.hashrate_ths == 0.0
    await driver.wake()
    await until(lambda: miner.phys.phase() == Phase.MINING, "v3 mining again")
    await driver.set_power_target(2800)
    await until(lambda: miner.phys.phase() == Phase.MINING and miner.phys.power_w() <= 2800 * 1.01, "v3 capped")
    assert miner.phys.hashrate_ths() == pytest.approx(hashrate_at_power(miner.phys.spec, 2800), rel=0.05)
    after = await driver.read()
    assert after.power_limit_w == 2800.0
    assert driver.client.connects == 1  # type: ignore[attr-defined]  # reads and writes shared one connection


async def test_salt_refetched_on_token_error_and_wrong_password_refused(mix: SimServer) -> None:
    miner = v3_miner(mix)
    driver = await open_miner(miner.ip, driver="whatsminer3", port_offset=mix.config.port_offset, timeout=5.0)
    await driver.sleep()
    miner.proto["wm3_salt"] = "newsalt1"  # the miner's salt changed (firmware update, reset)
    await driver.wake()  # token error -> salt fetched again -> retried
    await until(lambda: miner.phys.phase() == Phase.MINING, "v3 awake after the new salt")
    wrong = await open_miner(miner.ip, driver="whatsminer3", port_offset=mix.config.port_offset, timeout=5.0,
                             password="not-it")
    with pytest.raises(DeviceError, match="token error"):
        await wrong.sleep()
    assert miner.phys.phase() == Phase.MINING


async def test_one_connection_many_requests_and_a_closed_one_reopened(mix: SimServer) -> None:
    miner = v3_miner(mix)
    client = V3Client(miner.ip, 4433 + mix.config.port_offset, 5.0)
    for _ in range(5):
        assert "miner" in await client.call("get.device.info")
    assert client.connects == 1
    assert client._conn is not None
    client._conn[1].close()  # the miner (or a NAT) dropped the connection
    await asyncio.sleep(0)
    assert "summary" in await client.call("get.miner.status", "summary")
    assert client.connects == 2
    await client.close()


async def test_unmodified_pyasic_identifies_reads_and_controls_the_v3_miner(mix: SimServer) -> None:
    from pyasic.miners.factory import MinerFactory, MinerTypes

    miner = v3_miner(mix)
    port = 4433 + mix.config.port_offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyasic 0.79 calls the M60 "partially supported"
        found = MinerFactory._select_miner_from_classes(miner.ip, miner_model="M60VK10",
                                                        miner_type=MinerTypes.WHATSMINER, version="20241205")
    assert "BTMinerV3" in {c.__name__ for c in type(found).__mro__}
    found.rpc.port = port
    data = await found.get_data()
    assert data.serial_number == miner.serial and (data.mac or "").lower() == (miner.d.mac or "").lower()
    assert data.wattage == pytest.approx(miner.phys.power_w(), rel=0.03)
    assert float(data.hashrate) == pytest.approx(miner.phys.hashrate_ths(), rel=0.05)
    assert len(data.hashboards) == 3
    assert await found.stop_mining() is True
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "asleep through pyasic's v3 client")


@pytest.mark.verifies("antminer", "reboot")
@pytest.mark.verifies("luxos", "reboot")
@pytest.mark.verifies("whatsminer", "reboot")
@pytest.mark.verifies("whatsminer3", "reboot")
@pytest.mark.verifies("avalon", "reboot")
@pytest.mark.verifies("braiins", "reboot")
async def test_every_lean_path_reboots_its_miner(mix: SimServer) -> None:
    seen = set()
    for miner in mix.site.miners:
        if miner.d.firmware in seen:
            continue
        seen.add(miner.d.firmware)
        password = miner.d.web_password if miner.d.firmware == "braiins" else None
        driver = await open_miner(miner.ip, port_offset=mix.config.port_offset, timeout=5.0, password=password)
        await driver.read()
        await driver.reboot()
        await until(lambda m=miner: m.phys.phase() in (Phase.OFF, Phase.BOOTING, Phase.RAMPING),  # type: ignore[misc]
                    f"{miner.d.firmware} rebooting")
    assert seen == {"bmminer", "luxos", "btminer", "btminer3", "avalon", "braiins"}


async def test_scan_finds_api_v3_miners_beside_the_others(mix: SimServer) -> None:
    from agent.discovery import scan

    first, last = mix.site.miners[0], mix.site.miners[-1]
    assert first.ip is not None and last.ip is not None
    found = await scan(f"{first.ip.rsplit('.', 1)[0]}.0/28", rpc_port=4028 + mix.config.port_offset, pdus=False,
                       timeout_s=1.0)
    drivers = {f.ip: f.driver for f in found if f.kind == "miner"}
    for miner in mix.site.miners:
        expected = {"btminer3": "whatsminer3", "btminer": "whatsminer", "bmminer": "antminer"}.get(
            miner.d.firmware, miner.d.firmware)
        assert drivers.get(str(miner.ip)) == expected, miner.d.firmware
