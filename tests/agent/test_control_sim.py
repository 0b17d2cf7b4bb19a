"""The lean control paths (agent/control) against the simulated firmware: what each keeps between commands
(a LuxOS session, a Whatsminer token, a web connection) and how each recovers when the miner drops it.

The request counts come from the simulator's own reply counter (`MinerServers.stats`), so "one request per
setpoint" is what the miner saw, not what the client believes it sent.
"""

from __future__ import annotations

import pytest

from agent.control.base import Target
from agent.control.luxos import LuxosControl
from agent.control.pyasic import PyasicControl
from agent.control.whatsminer_v2 import WhatsminerV2Control
from agent.drivers import open_miner
from agent.drivers.base import CommandUnsupported, DeviceError
from agent.drivers.parsers import Reading
from agent.transport.cgminer import RpcClient
from kuat.catalog import hashrate_at_power
from sim.physics import Phase
from sim.server import SimServer
from tests.agent.test_drivers_sim import first, sim, until

pytestmark = pytest.mark.integration
__all__ = ["sim"]  # the fixture, imported for pytest


def target(server: SimServer, ip: str, **kw: str) -> Target:
    off = server.config.port_offset
    return Target(ip, 4028 + off, 80 + off, 5.0, **kw)


def rpc_replies(server: SimServer) -> int:
    return server.miners.stats.replies["rpc"]


@pytest.mark.verifies("luxos", "power_target")
async def test_luxos_one_session_for_many_commands_and_one_request_per_setpoint(sim: SimServer) -> None:
    miner = first(sim, "luxos")
    control = LuxosControl(target(sim, miner.ip))
    await control.set_power_target(2900, Reading())  # first: logon, profiles, atmset, profileset
    before = rpc_replies(sim)
    for watts in (2800, 2700, 2900, 2600):
        await control.set_power_target(watts, Reading())
    assert rpc_replies(sim) - before == 4  # one profileset each: no logon, no profiles, no logoff
    assert control.logons == 1
    profile = miner.proto["lux_profile"]
    assert isinstance(profile, str) and profile.endswith("MHz")
    await until(lambda: miner.phys.power_w() <= 2600 * 1.02, "LuxOS under 2600 W")
    await control.close()
    assert "lux_session" not in miner.proto  # logoff closed it


@pytest.mark.verifies("luxos", "sleep")
async def test_luxos_expired_session_and_a_session_already_open(sim: SimServer) -> None:
    miner = first(sim, "luxos")
    other = RpcClient(miner.ip, 4028 + sim.config.port_offset)
    await other.command("logon")  # someone else (a technician's tool) holds the only session
    control = LuxosControl(target(sim, miner.ip))
    await control.sleep()  # logon answers 402: the open session is adopted
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "asleep")
    miner.proto.pop("lux_session")  # the firmware expires it
    await control.wake()  # 401 "Invalid session id": a new session, the command retried once
    await until(lambda: miner.phys.phase() == Phase.MINING, "awake")
    assert control.logons == 2


async def test_luxos_target_below_the_lowest_profile_is_refused(sim: SimServer) -> None:
    control = LuxosControl(target(sim, first(sim, "luxos").ip))
    with pytest.raises(CommandUnsupported, match="lowest profile"):
        await control.set_power_target(100, Reading())


@pytest.mark.verifies("whatsminer", "sleep")
async def test_whatsminer_one_token_for_many_writes_and_a_new_one_when_refused(sim: SimServer) -> None:
    miner = first(sim, "btminer")
    control = WhatsminerV2Control(target(sim, miner.ip))
    await control.sleep()
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "asleep")
    before = rpc_replies(sim)
    await control.wake()
    await control.sleep()
    await control.wake()
    assert rpc_replies(sim) - before == 3 and control.tokens_fetched == 1
    miner.proto["wm_tokens"] = []  # the miner forgot its tokens (a restart): "check token err"
    await control.sleep()
    assert control.tokens_fetched == 2
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "asleep again")


async def test_whatsminer_wrong_password_is_a_device_error(sim: SimServer) -> None:
    control = WhatsminerV2Control(target(sim, first(sim, "btminer").ip, password="not-the-password"))
    with pytest.raises(DeviceError, match="token"):
        await control.sleep()


@pytest.mark.verifies("whatsminer", "power_target")
async def test_whatsminer_power_limit_lands_on_the_curve(sim: SimServer) -> None:
    miner = first(sim, "btminer")
    driver = await open_miner(miner.ip, port_offset=sim.config.port_offset, timeout=5.0)
    await driver.read()
    await driver.set_power_target(2600)  # adjust_power_limit: the miner reboots to apply it
    await until(lambda: miner.phys.phase() == Phase.MINING and miner.phys.power_w() <= 2600 * 1.01, "capped")
    assert miner.phys.hashrate_ths() == pytest.approx(hashrate_at_power(miner.phys.spec, 2600), rel=0.05)


@pytest.mark.verifies("antminer", "sleep")
async def test_antminer_sleep_wake_one_web_request_each(sim: SimServer) -> None:
    miner = first(sim, "bmminer")
    driver = await open_miner(miner.ip, driver="antminer", port_offset=sim.config.port_offset, timeout=5.0)
    await driver.sleep()  # the first request pays the digest challenge
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "asleep")
    before = sim.miners.stats.replies["web"]
    await driver.wake()
    await until(lambda: miner.phys.phase() == Phase.MINING, "awake")
    await driver.sleep()
    assert sim.miners.stats.replies["web"] - before == 2  # one POST each on the kept connection, no 401 round
    assert miner.proto["work_mode"] == 1
    with pytest.raises(CommandUnsupported):
        await driver.set_power_target(2000)


async def test_lean_paths_need_no_pyasic(sim: SimServer) -> None:
    """A driver opened with its family named (as `scan --write-config` writes) controls at once: no pyasic."""
    for firmware, family in (("bmminer", "antminer"), ("luxos", "luxos"), ("btminer", "whatsminer")):
        miner = first(sim, firmware)
        driver = await open_miner(miner.ip, driver=family, port_offset=sim.config.port_offset, timeout=5.0)
        assert not isinstance(driver.control, PyasicControl)  # type: ignore[attr-defined]
        await driver.sleep()
        await until(lambda m=miner: m.phys.phase() == Phase.SLEEPING, f"{firmware} asleep")  # type: ignore[misc]
