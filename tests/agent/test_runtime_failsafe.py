"""Lease failsafe: expiry puts the gateway's miners in the safe state, reports it, retries, survives a restart, and
ends with the next valid setpoint batch."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.actuator import Actuator
from agent.buffer import Buffer
from agent.commands import CommandProcessor
from agent.config import config_from_dict
from agent.coordinator import Coordinator, Fleet
from agent.failsafe import Failsafe, Lease
from kuat.wire import v1
from tests.agent.runtime_fakes import FakeSite, fake_site


async def _rig(tmp_path: Path, n: int = 4, protected: tuple[int, ...] = (), **fs: object) -> tuple[
        FakeSite, Coordinator, Failsafe, CommandProcessor]:
    site, devices = fake_site(n)
    for i in protected:
        devices["miners"][i - 1]["protected"] = True  # type: ignore[index]
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices, "failsafe": {"grace_s": 0, **fs}})
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    coord = Coordinator(fleet, site, device_timeout_s=0.5)
    buffer = Buffer(tmp_path / "buf.sqlite")
    actuator = Actuator(fleet, site, 0.5)
    failsafe = Failsafe(cfg.failsafe, Lease(buffer), fleet, actuator)
    processor = CommandProcessor("g", fleet, actuator, buffer, failsafe)
    await coord.poll_once()
    return site, coord, failsafe, processor


def _setpoints(cid: str, lease_s: float, mode: str = "run", n: int = 4) -> v1.Command:
    sps = [v1.Setpoint(device_id=f"m{i}", mode=v1.SetpointMode(mode)) for i in range(1, n + 1)]
    return v1.Command(id=cid, kind=v1.CommandKind.SETPOINTS, lease_s=lease_s, setpoints=sps)


async def test_no_lease_no_failsafe(tmp_path: Path) -> None:
    site, _, failsafe, _ = await _rig(tmp_path)
    await failsafe.check()
    assert not failsafe.lease.failsafe_active
    assert all(m.calls == [] for m in site.miners.values())


async def test_expiry_sleeps_every_unprotected_miner_and_is_reported(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    _, coord, failsafe, processor = await _rig(tmp_path, protected=(2,))
    await processor.handle(_setpoints("b1", 0.2))
    await failsafe.check()
    assert not failsafe.lease.failsafe_active  # the lease still holds
    await asyncio.sleep(0.25)
    with caplog.at_level(logging.WARNING, logger="agent.failsafe"):
        await failsafe.check()
    status = failsafe.lease.status()
    assert status.expired and status.failsafe_active and status.failsafe_since is not None
    assert status.batch_id == "b1"
    cycle = await coord.poll_once()
    states = {m.device_id: m.state for m in cycle.miners}
    assert states == {"m1": v1.MinerState.SLEEPING, "m2": v1.MinerState.MINING, "m3": v1.MinerState.SLEEPING,
                      "m4": v1.MinerState.SLEEPING}
    assert "lease of setpoint batch b1 expired" in caplog.text and "3 of 3 miners in the safe state" in caplog.text


async def test_a_miner_that_cannot_sleep_is_cut_at_its_outlet(tmp_path: Path) -> None:
    site, coord, failsafe, processor = await _rig(tmp_path, n=2)
    site.miners["127.77.0.1"].can_sleep = False
    await processor.handle(_setpoints("b1", 0.05, n=2))
    await asyncio.sleep(0.1)
    await failsafe.check()
    assert site.pdus["127.77.0.200"].calls == ["off 1"]
    cycle = await coord.poll_once()
    assert cycle.miners[0].power_w == 0.0 and cycle.miners[1].state == v1.MinerState.SLEEPING


async def test_unreachable_miners_are_retried_until_safe(tmp_path: Path) -> None:
    site, _, failsafe, processor = await _rig(tmp_path, n=2, outlet_off_fallback=False, retry_s=0.05)
    site.miners["127.77.0.2"].unreachable = True
    await processor.handle(_setpoints("b1", 0.05, n=2))
    await asyncio.sleep(0.1)
    await failsafe.check()
    assert site.miners["127.77.0.1"].sleeping and not site.miners["127.77.0.2"].sleeping
    site.miners["127.77.0.2"].unreachable = False
    await asyncio.sleep(0.06)
    await failsafe.check()
    assert site.miners["127.77.0.2"].sleeping


async def test_cap_w_shares_the_budget_and_sleeps_what_cannot_be_capped(tmp_path: Path) -> None:
    site, coord, failsafe, processor = await _rig(tmp_path, n=4, protected=(4,), mode="cap_w", cap_w=9000)
    site.miners["127.77.0.3"].can_power_target = False
    await coord.poll_once()
    await processor.handle(_setpoints("b1", 0.05))
    await asyncio.sleep(0.1)
    await failsafe.check()
    # protected m4 keeps its measured 3003 W; 5997 W remain for 3 miners: 1999 W each
    assert site.miners["127.77.0.1"].limit_w == pytest.approx(1999.0)
    assert site.miners["127.77.0.2"].limit_w == pytest.approx(1999.0)
    assert site.miners["127.77.0.3"].sleeping
    cycle = await coord.poll_once()
    assert sum(m.power_w or 0 for m in cycle.miners) <= 9000


async def test_new_setpoints_end_the_failsafe_and_are_applied_in_full(tmp_path: Path) -> None:
    site, coord, failsafe, processor = await _rig(tmp_path, n=2)
    await processor.handle(_setpoints("b1", 0.05, n=2))  # run: nothing to change
    await asyncio.sleep(0.1)
    await failsafe.check()
    assert failsafe.lease.failsafe_active
    await coord.poll_once()
    ack = await processor.handle(_setpoints("b2", 30, n=2))  # the same setpoints as before the failsafe
    assert ack.status == v1.AckStatus.APPLIED
    assert not failsafe.lease.failsafe_active and failsafe.lease.status().failsafe_since is None
    assert all(not m.sleeping for m in site.miners.values())  # re-applied, not skipped as "unchanged"


async def test_a_restarted_agent_still_fails_safe(tmp_path: Path) -> None:
    _, _, failsafe, processor = await _rig(tmp_path, n=2)
    await processor.handle(_setpoints("b1", 0.05, n=2))
    failsafe.lease.buffer.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.1)
    site, _, restarted, _ = await _rig(tmp_path, n=2)  # same buffer file: the lease is restored
    assert restarted.lease.batch_id == "b1" and restarted.due()
    await restarted.check()
    assert restarted.lease.failsafe_active
    assert all(m.sleeping for m in site.miners.values())


async def test_the_failsafe_loop_acts_within_seconds(tmp_path: Path) -> None:
    site, _, failsafe, processor = await _rig(tmp_path, n=2)
    await processor.handle(_setpoints("b1", 0.1, n=2))
    stop = asyncio.Event()
    loop = asyncio.create_task(failsafe.run(stop))
    try:
        for _ in range(100):  # bounded wait: up to 10 s
            if failsafe.lease.failsafe_active and all(m.sleeping for m in site.miners.values()):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert failsafe.lease.failsafe_active and all(m.sleeping for m in site.miners.values())


async def test_a_miner_already_asleep_is_left_alone(tmp_path: Path) -> None:
    site, coord, failsafe, processor = await _rig(tmp_path, n=2)
    asleep = site.miners["127.77.0.1"]
    asleep.sleeping, asleep.refuse_commands = True, True  # a second sleep would fail...
    await coord.poll_once()
    await processor.handle(_setpoints("b1", 0.05, n=1))
    await asyncio.sleep(0.1)
    await failsafe.check()
    assert site.pdus["127.77.0.200"].calls == []  # ...and must not get its outlet cut
    assert asleep.calls == [] and site.miners["127.77.0.2"].sleeping
