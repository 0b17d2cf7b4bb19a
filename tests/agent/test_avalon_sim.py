"""Avalon end to end against the simulator: found by `open_miner("auto")` through pyasic's own rules, read with
its serial (the control board's DNA) so it can reach the registry, slept and woken over the cgminer API by the
lean path, and read and slept by unmodified pyasic.

The simulated `stats` follows foreman_avalon_10xx_multicommand_pools+summary+stats.json (`MM ID0`); the A1246's
`version` keys and the ascset reply texts follow pyasic 0.79 (sim/miners/avalon.py says which parts are assumed).
"""

from __future__ import annotations

import warnings

import pytest

from agent.control.avalon import AvalonControl
from agent.drivers import open_miner
from agent.drivers.base import CommandUnsupported
from kuat.wire import v1
from sim.physics import Phase
from sim.runtime import SimMiner
from sim.server import SimServer
from tests.agent.test_drivers_sim import until
from tests.agent.test_whatsminer_v3_sim import mix

pytestmark = pytest.mark.integration
__all__ = ["mix"]


def avalon(server: SimServer) -> SimMiner:
    return next(m for m in server.site.miners if m.d.firmware == "avalon")


async def test_avalon_found_and_read_with_its_serial(mix: SimServer) -> None:
    miner = avalon(mix)
    driver = await open_miner(miner.ip, port_offset=mix.config.port_offset, timeout=5.0)
    assert getattr(driver, "family", None) == "avalon"
    sample = await driver.read()
    assert sample.available and sample.state == v1.MinerState.MINING
    assert (sample.make, sample.model, sample.serial) == ("Avalon", "A1246", miner.serial)
    assert sample.mac == (miner.d.mac or "").lower() and sample.device_id == sample.mac
    assert sample.hashrate_ths == pytest.approx(miner.phys.hashrate_ths(), rel=0.02)
    assert sample.power_source == v1.PowerSource.REPORTED  # WALLPOWER in MM ID0
    assert sample.power_w == pytest.approx(miner.phys.power_w(), rel=0.03)
    assert len(sample.boards) == 3 and sample.pools
    assert sample.capabilities.sleep and not sample.capabilities.power_target


@pytest.mark.verifies("avalon", "sleep")
async def test_avalon_soft_off_on_and_work_level_through_the_lean_path(mix: SimServer) -> None:
    miner = avalon(mix)
    driver = await open_miner(miner.ip, driver="avalon", port_offset=mix.config.port_offset, timeout=5.0)
    assert isinstance(driver.control, AvalonControl)  # type: ignore[attr-defined]
    await driver.sleep()
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "Avalon soft-off")
    assert (await driver.read()).state == v1.MinerState.SLEEPING
    await driver.wake()
    await until(lambda: miner.phys.phase() == Phase.MINING, "Avalon soft-on")
    await driver.control.set_work_level(0)  # type: ignore[attr-defined]
    await until(lambda: miner.phys.hashrate_ths() < 0.85 * miner.phys.spec.nominal_ths, "work level 0")
    with pytest.raises(CommandUnsupported, match="no power target"):
        await driver.set_power_target(3000)


async def test_unmodified_pyasic_identifies_reads_and_stops_the_avalon(mix: SimServer) -> None:
    from pyasic.miners.factory import MinerFactory, MinerTypes

    miner = avalon(mix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = MinerFactory._select_miner_from_classes(miner.ip, miner_model="AVALONMINER 1246",
                                                        miner_type=MinerTypes.AVALONMINER)
    assert "AvalonMiner" in {c.__name__ for c in type(found).__mro__}
    found.rpc.port = 4028 + mix.config.port_offset
    data = await found.get_data()
    assert float(data.hashrate) == pytest.approx(miner.phys.hashrate_ths(), rel=0.05)
    assert await found.stop_mining() is True
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "asleep through pyasic")
