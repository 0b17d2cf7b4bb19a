"""Braiins OS+ end to end against the simulator: read over the legacy RPC (shapes of the bosplus captures) with its
serial from the REST API, and power targets, pause/resume and single hash boards through the REST API, checked
against the simulated machine's physics; unmodified pyasic identifies and reads it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from agent import commands
from agent.actuator import Actuator
from agent.buffer import Buffer
from agent.commands import CommandProcessor
from agent.config import FailsafeConfig, config_from_dict
from agent.control.braiins import BraiinsControl
from agent.coordinator import Coordinator, Fleet
from agent.drivers import open_miner
from agent.drivers.parsers import Reading
from agent.failsafe import Failsafe, Lease
from agent.service import RealDrivers
from kuat.wire import v1
from sim.physics import Fault, Phase
from sim.runtime import SimMiner
from sim.server import SimServer
from tests.agent.test_drivers_sim import until
from tests.agent.test_whatsminer_v3_sim import mix

pytestmark = pytest.mark.integration
__all__ = ["mix"]


def bos(server: SimServer) -> SimMiner:
    return next(m for m in server.site.miners if m.d.firmware == "braiins")


async def open_bos(server: SimServer, miner: SimMiner, driver: str = "braiins") -> object:
    return await open_miner(miner.ip, driver=driver, port_offset=server.config.port_offset, timeout=5.0,
                            password=miner.d.web_password)


async def test_braiins_found_and_read_with_its_serial(mix: SimServer) -> None:
    miner = bos(mix)
    driver = await open_bos(mix, miner, "auto")
    assert getattr(driver, "family", None) == "braiins"
    sample = await driver.read()  # type: ignore[attr-defined]
    assert sample.available and sample.state == v1.MinerState.MINING
    assert (sample.model, sample.serial) == ("S19j Pro", miner.serial)
    assert sample.mac == (miner.d.mac or "").lower()
    assert sample.firmware is not None and sample.firmware.startswith("Braiins OS")
    assert sample.hashrate_ths == pytest.approx(miner.phys.hashrate_ths(), rel=0.02)
    assert sample.power_w == pytest.approx(miner.phys.power_w(), rel=0.03) and len(sample.boards) == 3


@pytest.mark.verifies("braiins", "power_target")
@pytest.mark.verifies("braiins", "sleep")
async def test_braiins_power_target_and_pause_resume(mix: SimServer) -> None:
    miner = bos(mix)
    driver = await open_bos(mix, miner)
    await driver.read()  # type: ignore[attr-defined]
    await driver.set_power_target(2400)  # type: ignore[attr-defined]
    await until(lambda: miner.phys.power_w() <= 2400 * 1.02, "Braiins under its target")
    assert miner.phys.phase() == Phase.MINING  # retuned, not rebooted
    await driver.sleep()  # type: ignore[attr-defined]
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "paused")
    await driver.wake()  # type: ignore[attr-defined]
    await until(lambda: miner.phys.phase() == Phase.MINING, "resumed")
    control = driver.control  # type: ignore[attr-defined]
    assert isinstance(control, BraiinsControl) and control.logins == 1
    miner.proto["bos_tokens"] = {}  # the token expired: 401, a new login, the order sent once more
    await driver.sleep()  # type: ignore[attr-defined]
    assert control.logins == 2


def board_model_w(miner: SimMiner, live: int) -> float:
    """The quota engine's board option (docs/decisions.md): base + (P(1) - base) x live / boards, times the unit's
    own factors (its power spread and the ambient), which the controller learns as the machine's power factor."""
    spec, phys = miner.phys.spec, miner.phys
    factor = phys.power_mult * phys._temp_factor()
    return factor * (spec.base_w + (spec.nominal_w - spec.base_w) * live / spec.boards)


@pytest.mark.verifies("braiins", "boards")
async def test_braiins_switches_single_hash_boards(mix: SimServer) -> None:
    miner = bos(mix)
    driver = await open_bos(mix, miner)
    full_w, full_ths = miner.phys.power_w(), miner.phys.hashrate_ths()
    assert full_w == pytest.approx(board_model_w(miner, 3), rel=1e-6)  # at full: the model's P(1)
    await driver.control.set_boards([0, 2], Reading())  # type: ignore[attr-defined]
    assert miner.phys.disabled_boards == {1}
    assert miner.phys.hashrate_ths() == pytest.approx(full_ths * 2 / 3, rel=1e-6)
    assert miner.phys.power_w() == pytest.approx(board_model_w(miner, 2), rel=1e-6)  # the base stays
    sample = await driver.read()  # type: ignore[attr-defined]
    assert [b.hashrate_ths == 0 for b in sample.boards] == [False, True, False]
    await driver.control.set_boards([2], Reading())  # type: ignore[attr-defined]
    assert miner.phys.disabled_boards == {0, 1}
    assert miner.phys.power_w() == pytest.approx(board_model_w(miner, 1), rel=1e-6)
    assert miner.phys.hashrate_ths() == pytest.approx(full_ths / 3, rel=1e-6)
    await driver.control.set_boards([0, 1, 2], Reading())  # type: ignore[attr-defined]
    assert miner.phys.disabled_boards == set()
    assert (miner.phys.power_w(), miner.phys.hashrate_ths()) == (pytest.approx(full_w), pytest.approx(full_ths))


async def test_unmodified_pyasic_reads_and_pauses_the_braiins_miner(mix: SimServer) -> None:
    """pyasic picks its gRPC class (BOSer, port 50051, not simulated) for an S19j Pro on Braiins OS+, which Kuat
    also maps to `braiins`; its legacy-RPC client (what it uses for BOSminer) reads and pauses the simulated one."""
    from pyasic.miners.factory import MinerFactory, MinerTypes
    from pyasic.rpc.bosminer import BOSMinerRPCAPI

    from agent.firmware import family_of_pyasic

    miner = bos(mix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grpc_class = MinerFactory._select_miner_from_classes(miner.ip, miner_model="ANTMINER S19J PRO",
                                                             miner_type=MinerTypes.BRAIINS_OS)
    assert family_of_pyasic(grpc_class) == "braiins"
    rpc = BOSMinerRPCAPI(miner.ip, port=4028 + mix.config.port_offset)
    summary = await rpc.summary()
    assert summary["SUMMARY"][0]["MHS 5s"] / 1e6 == pytest.approx(miner.phys.hashrate_ths(), rel=0.05)
    assert len((await rpc.devs())["DEVS"]) == 3
    assert (await rpc.pause())["PAUSE"][0] is True
    await until(lambda: miner.phys.phase() == Phase.SLEEPING, "paused through pyasic's legacy RPC client")


@pytest.mark.verifies("braiins", "boards")
async def test_board_setpoints_through_the_agent_switch_boards_and_back(mix: SimServer, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The quota engine's board option as the agent receives it (`run` with `boards_on`): the agent's setpoint
    path switches the boards on the simulated Braiins miner, the telemetry shows them switched off (not a fault),
    and a plain `run` afterwards brings every board back. A firmware without board control refuses it."""
    miner, other = bos(mix), next(m for m in mix.site.miners if m.d.firmware == "luxos")
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": {"miners": [
        {"ip": miner.ip, "id": "bos", "driver": "braiins", "credentials": {"password": miner.d.web_password}},
        {"ip": other.ip, "id": "lux", "driver": "luxos"}]}})
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    opener = RealDrivers(mix.config.port_offset, 5.0)
    coord = Coordinator(fleet, opener, device_timeout_s=5.0)
    actuator = Actuator(fleet, opener, 5.0)
    buffer = Buffer(tmp_path / "buf.sqlite")
    processor = CommandProcessor("g", fleet, actuator, buffer, Failsafe(FailsafeConfig(), Lease(buffer), fleet,
                                                                         actuator))
    cycle = await coord.poll_once()
    assert [m.capabilities.boards for m in cycle.miners] == [True, False]
    full_w, full_ths = miner.phys.power_w(), miner.phys.hashrate_ths()

    async def batch(cid: str, *setpoints: v1.Setpoint) -> v1.Ack:
        return await processor.handle(v1.Command(id=cid, kind=v1.CommandKind.SETPOINTS, lease_s=60,
                                                 setpoints=list(setpoints)))

    ack = await batch("b1", v1.Setpoint(device_id="bos", mode=v1.SetpointMode.RUN, boards_on=2),
                      v1.Setpoint(device_id="lux", mode=v1.SetpointMode.RUN, boards_on=2))
    assert [i.status for i in ack.items] == [v1.AckStatus.APPLIED, v1.AckStatus.REJECTED]
    assert "cannot switch single hash boards" in (ack.items[1].reason or "")
    assert miner.phys.disabled_boards == {2}
    assert miner.phys.power_w() == pytest.approx(board_model_w(miner, 2), rel=1e-6)
    assert miner.phys.hashrate_ths() == pytest.approx(full_ths * 2 / 3, rel=1e-6)
    sample = next(m for m in (await coord.poll_once()).miners if m.device_id == "bos")
    assert [b.enabled for b in sample.boards] == [True, True, False]
    assert sample.state == v1.MinerState.MINING  # switched off on purpose: not degraded
    miner.phys.set_boards_enabled({2}, True)  # switched back on behind the agent's back (a firmware restart)
    monkeypatch.setattr(commands, "DRIFT_GRACE_S", 0.0)
    await coord.poll_once()
    again = await batch("b1-renewal", v1.Setpoint(device_id="bos", mode=v1.SetpointMode.RUN, boards_on=2))
    assert again.items[0].reason != "unchanged" and miner.phys.disabled_boards == {2}  # the drift is re-applied
    await batch("b2", v1.Setpoint(device_id="bos", mode=v1.SetpointMode.RUN, boards_on=1))
    assert miner.phys.disabled_boards == {1, 2}
    assert miner.phys.power_w() == pytest.approx(board_model_w(miner, 1), rel=1e-6)
    await batch("b3", v1.Setpoint(device_id="bos", mode=v1.SetpointMode.RUN))
    assert miner.phys.disabled_boards == set() and miner.phys.power_w() == pytest.approx(full_w)
    miner.phys.faults.add(Fault.HASHBOARD)  # its first board dies: two boards means the two that hash
    await coord.poll_once()
    await batch("b4", v1.Setpoint(device_id="bos", mode=v1.SetpointMode.RUN, boards_on=2))
    assert miner.phys.disabled_boards == {0} and miner.phys.live_boards() == 2
