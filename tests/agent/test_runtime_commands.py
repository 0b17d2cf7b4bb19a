"""Commands: every kind applied to the device, rejected or failed with the reason, idempotent by id (also across a
restart), fleet setpoint batches with per-item results and cheap renewals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.actuator import Actuator
from agent.buffer import Buffer
from agent.commands import CommandProcessor
from agent.config import FailsafeConfig, config_from_dict
from agent.coordinator import Coordinator, Fleet
from agent.failsafe import Failsafe, Lease
from kuat.wire import v1
from tests.agent.runtime_fakes import FakeSite, fake_site

A, B = "127.77.0.1", "127.77.0.2"


@dataclass
class Rig:
    site: FakeSite
    coord: Coordinator
    processor: CommandProcessor
    failsafe: Failsafe
    buffer: Buffer

    async def send(self, kind: str, cid: str = "c1", **fields: object) -> v1.Ack:
        return await self.processor.handle(v1.Command(id=cid, kind=v1.CommandKind(kind), **fields))  # type: ignore[arg-type]


async def make_rig(tmp_path: Path, n: int = 3, limit_s: float = 0.5) -> Rig:
    site, devices = fake_site(n)
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices})
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    coord = Coordinator(fleet, site, device_timeout_s=limit_s)
    buffer = Buffer(tmp_path / "buf.sqlite")
    actuator = Actuator(fleet, site, limit_s)
    failsafe = Failsafe(FailsafeConfig(grace_s=0), Lease(buffer), fleet, actuator)
    processor = CommandProcessor("g", fleet, actuator, buffer, failsafe)
    await coord.poll_once()  # the agent knows its devices' capabilities from telemetry
    return Rig(site, coord, processor, failsafe, buffer)


async def test_sleep_wake_reboot_and_power_target_are_applied_and_show_in_telemetry(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    miner = rig.site.miners[A]
    ack = await rig.send("sleep", "c1", device_id="m1")
    assert (ack.status, ack.command_id, ack.gateway) == (v1.AckStatus.APPLIED, "c1", "g")
    assert ack.items == [v1.ItemAck(device_id="m1", status=v1.AckStatus.APPLIED)]
    m1 = (await rig.coord.poll_once()).miners[0]
    assert m1.state == v1.MinerState.SLEEPING and m1.power_w == 28.0  # measured at the outlet: 25 W + losses
    assert (await rig.send("wake", "c2", device_id="m1")).status == v1.AckStatus.APPLIED
    assert (await rig.send("set_power_target", "c3", device_id="m1", power_w=2000)).status == v1.AckStatus.APPLIED
    m1 = (await rig.coord.poll_once()).miners[0]
    assert m1.state == v1.MinerState.MINING and m1.power_limit_w == 2000 and m1.power_w == 2003.0
    assert (await rig.send("reboot", "c4", device_id="m1")).status == v1.AckStatus.APPLIED
    assert miner.calls == ["sleep", "wake", "power_target 2000.0", "reboot"]


async def test_unsupported_unknown_and_out_of_range_are_rejected_with_the_reason(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    rig.site.miners[B].can_power_target = False
    ack = await rig.send("set_power_target", "c1", device_id="m2", power_w=2000)
    assert ack.status == v1.AckStatus.REJECTED
    assert ack.reason == "unsupported: stock firmware has no power target (sleep/wake only)"
    ack = await rig.send("sleep", "c2", device_id="nope")
    assert (ack.status, ack.reason) == (v1.AckStatus.REJECTED, "unknown device on this gateway")
    ack = await rig.send("set_power_target", "c3", device_id="m1", power_w=500)
    assert ack.status == v1.AckStatus.REJECTED and "below this miner's minimum 1000 W" in (ack.reason or "")
    assert rig.site.miners[A].calls == []
    # within the whole-watt rounding of the published minimum: clamped to it, not refused
    ack = await rig.send("set_power_target", "c4", device_id="m1", power_w=999.4)
    assert ack.status == v1.AckStatus.APPLIED
    assert rig.site.miners[A].calls == ["power_target 1000.0"]


async def test_unreachable_refused_and_hanging_devices_fail_with_the_reason(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, limit_s=0.2)
    rig.site.miners[A].unreachable = True
    ack = await rig.send("sleep", "c1", device_id="m1")
    assert ack.status == v1.AckStatus.FAILED and "connection refused" in (ack.reason or "")
    rig.site.miners[B].refuse_commands = True
    ack = await rig.send("wake", "c2", device_id="m2")
    assert ack.status == v1.AckStatus.FAILED and "wake refused" in (ack.reason or "")
    rig.site.miners["127.77.0.3"].hang = True
    ack = await rig.send("reboot", "c3", device_id="m3")
    assert (ack.status, ack.reason) == (v1.AckStatus.FAILED, "timeout (0.2s)")


async def test_outlet_commands_by_pdu_and_outlet_or_by_miner(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    pdu = rig.site.pdus["127.77.0.200"]
    assert (await rig.send("outlet_off", "c1", device_id="pdu-a", outlet=2)).status == v1.AckStatus.APPLIED
    cycle = await rig.coord.poll_once()
    m2 = next(m for m in cycle.miners if m.device_id == "m2")
    assert not m2.available and m2.power_w == 0.0 and m2.power_source == v1.PowerSource.PDU
    assert (await rig.send("outlet_on", "c2", device_id="m2")).status == v1.AckStatus.APPLIED
    assert (await rig.send("outlet_cycle", "c3", device_id="m3")).status == v1.AckStatus.APPLIED
    assert pdu.calls == ["off 2", "on 2", "cycle 3"]
    ack = await rig.send("outlet_off", "c4", device_id="pdu-a", outlet=99)
    assert ack.status == v1.AckStatus.REJECTED and "no outlet 99" in (ack.reason or "")
    ack = await rig.send("outlet_off", "c5", device_id="pdu-a")
    assert ack.status == v1.AckStatus.REJECTED and "needs `outlet`" in (ack.reason or "")


async def test_a_repeated_id_is_not_re_applied_even_after_a_restart(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    first = await rig.send("reboot", "same", device_id="m1")
    again = await rig.send("reboot", "same", device_id="m1")
    assert again.duplicate and again.status == first.status and again.command_id == "same"
    assert rig.site.miners[A].calls == ["reboot"]
    rig.buffer.close()
    restarted = await make_rig(tmp_path)  # a new agent process on the same buffer file
    ack = await restarted.send("reboot", "same", device_id="m1")
    assert ack.duplicate
    assert restarted.site.miners[A].calls == []


async def test_malformed_commands_are_rejected_with_their_id(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    ack = await rig.processor.handle_raw(b'{"id": "x1", "kind": "set_power_target", "device_id": "m1"}')
    assert ack.status == v1.AckStatus.REJECTED and ack.command_id == "x1"
    assert "set_power_target needs power_w" in (ack.reason or "")
    ack = await rig.processor.handle_raw(b'{"id": "x2", "kind": "dance", "device_id": "m1"}')
    assert ack.status == v1.AckStatus.REJECTED and "kind" in (ack.reason or "")
    ack = await rig.processor.handle_raw(b"not json")
    assert ack.status == v1.AckStatus.REJECTED and ack.command_id == "?"


async def test_fleet_setpoints_apply_per_item_and_report_the_worst(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, n=4)
    rig.site.miners[B].can_power_target = False
    ack = await rig.send("setpoints", "b1", lease_s=60, setpoints=[
        {"device_id": "m1", "mode": "sleep"},
        {"device_id": "m2", "mode": "power_target", "power_w": 2000},
        {"device_id": "m3", "mode": "outlet_off"},
        {"device_id": "m4", "mode": "run", "power_w": 2500},
        {"device_id": "ghost", "mode": "sleep"},
    ])
    items = {i.device_id: i for i in ack.items}
    assert items["m1"].status == v1.AckStatus.APPLIED
    assert items["m2"].status == v1.AckStatus.REJECTED and "no power target" in (items["m2"].reason or "")
    assert items["m3"].status == v1.AckStatus.APPLIED
    assert items["m4"].status == v1.AckStatus.APPLIED
    assert items["ghost"].reason == "unknown device on this gateway"
    assert ack.status == v1.AckStatus.REJECTED and ack.reason is not None and ack.reason.startswith("2 of 5 not")
    cycle = await rig.coord.poll_once()
    by_id = {m.device_id: m for m in cycle.miners}
    assert by_id["m1"].state == v1.MinerState.SLEEPING
    assert not by_id["m3"].available and by_id["m3"].power_w == 0.0
    assert by_id["m4"].power_limit_w == 2500
    assert rig.failsafe.lease.batch_id == "b1" and 59 < (rig.failsafe.lease.seconds_left() or 0) <= 60


async def test_a_batch_applies_the_biggest_cuts_first_and_wake_ups_last(tmp_path: Path) -> None:
    """Under a new cap the site must drop as fast as the agent can act: with one command at a time, the order of
    the actions is the order of the power they take off, and a wake never runs ahead of the cuts."""
    rig = await make_rig(tmp_path, n=4)
    rig.processor = CommandProcessor("g", rig.processor.fleet, rig.processor.actuator, rig.buffer, rig.failsafe,
                                     concurrency=1)
    shared: list[str] = []
    for miner in rig.site.miners.values():
        miner.calls = shared
    sleeper = rig.site.miners[sorted(rig.site.miners)[0]]
    sleeper.sleeping = True
    await rig.coord.poll_once()
    ack = await rig.send("setpoints", "b1", lease_s=60, setpoints=[
        {"device_id": "m1", "mode": "run"},  # asleep: wakes, last
        {"device_id": "m2", "mode": "power_target", "power_w": 2900},  # takes off 100 W
        {"device_id": "m3", "mode": "sleep"},  # takes off ~2,975 W: first
        {"device_id": "m4", "mode": "power_target", "power_w": 2000},  # takes off 1,000 W
    ])
    assert ack.status == v1.AckStatus.APPLIED
    assert [i.device_id for i in ack.items] == ["m1", "m2", "m3", "m4"]  # the ack keeps the batch's order
    assert shared == ["sleep", "power_target 2000.0", "power_target 2900.0", "wake"]


async def test_a_renewal_arriving_mid_batch_neither_repeats_nor_reverts_an_action(tmp_path: Path) -> None:
    """The controller renews every loop run, faster than a big batch is applied. The same setpoint still queued or
    running is not applied a second time; a newer, different one replaces an older one that has not started."""
    import asyncio

    rig = await make_rig(tmp_path, n=2)
    rig.processor = CommandProcessor("g", rig.processor.fleet, rig.processor.actuator, rig.buffer, rig.failsafe,
                                     concurrency=1)
    m1, m2 = rig.site.miners[A], rig.site.miners[B]
    gate = asyncio.Event()
    slow_sleep = m1.sleep

    async def sleep_when_let() -> None:
        await gate.wait()
        await slow_sleep()

    m1.sleep = sleep_when_let  # type: ignore[method-assign]
    first = asyncio.ensure_future(rig.send("setpoints", "b1", lease_s=60, setpoints=[
        {"device_id": "m1", "mode": "sleep"}, {"device_id": "m2", "mode": "sleep"}]))
    await asyncio.sleep(0.05)  # b1 holds the only slot on m1; its m2 item waits
    second = asyncio.ensure_future(rig.send("setpoints", "b2", lease_s=60, setpoints=[
        {"device_id": "m1", "mode": "sleep"}, {"device_id": "m2", "mode": "power_target", "power_w": 2000}]))
    await asyncio.sleep(0.05)
    gate.set()
    ack1, ack2 = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert m1.calls == ["sleep"]  # once, though two batches asked for it
    assert m2.calls == ["power_target 2000.0"]  # the older sleep never ran: it was superseded before its turn
    assert ack1.status == ack2.status == v1.AckStatus.APPLIED
    assert "superseded" in (ack1.items[1].reason or "") and ack2.items[1].reason is None


async def test_renewals_extend_the_lease_without_touching_devices_again(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    sps = [{"device_id": "m1", "mode": "power_target", "power_w": 2200}, {"device_id": "m2", "mode": "sleep"}]
    await rig.send("setpoints", "b1", lease_s=30, setpoints=sps)
    await rig.coord.poll_once()
    calls_before = (list(rig.site.miners[A].calls), list(rig.site.miners[B].calls))
    ack = await rig.send("setpoints", "b2", lease_s=30, setpoints=sps)
    assert ack.status == v1.AckStatus.APPLIED and {i.reason for i in ack.items} == {"unchanged"}
    assert (rig.site.miners[A].calls, rig.site.miners[B].calls) == calls_before
    assert rig.failsafe.lease.batch_id == "b2"
    sps[0]["power_w"] = 2600  # a changed setpoint is applied
    await rig.send("setpoints", "b3", lease_s=30, setpoints=sps)
    assert rig.site.miners[A].calls[-1] == "power_target 2600.0"
    # the controller measured that m2 did not go to sleep: `reapply` makes the agent do it again, once
    calls = len(rig.site.miners[B].calls)
    ack = await rig.send("setpoints", "b4", lease_s=30, setpoints=[sps[0], {**sps[1], "reapply": True}])
    assert rig.site.miners[B].calls[calls:] == ["sleep"] and ack.items[1].reason is None
    ack = await rig.send("setpoints", "b5", lease_s=30, setpoints=sps)
    assert rig.site.miners[B].calls[calls:] == ["sleep"] and ack.items[1].reason == "unchanged"


async def test_run_wakes_a_sleeping_miner_and_restores_full_power(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    miner = rig.site.miners[A]
    miner.sleeping, miner.limit_w = True, 2000.0
    await rig.coord.poll_once()
    ack = await rig.send("setpoints", "b1", lease_s=30, setpoints=[{"device_id": "m1", "mode": "run"}])
    assert ack.status == v1.AckStatus.APPLIED
    assert miner.calls == ["wake", "power_target None"]  # None: the firmware's full power
    m1 = (await rig.coord.poll_once()).miners[0]
    assert m1.state == v1.MinerState.MINING and m1.reported_power_w == 3000.0


async def test_duplicate_device_in_a_batch_is_rejected(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    ack = await rig.send("setpoints", "b1", lease_s=30, setpoints=[
        {"device_id": "m1", "mode": "sleep"}, {"device_id": "m1", "mode": "run"}])
    assert [i.status for i in ack.items] == [v1.AckStatus.APPLIED, v1.AckStatus.REJECTED]
    assert ack.items[1].reason == "device appears twice in the batch"


@pytest.mark.parametrize("kind", ["sleep", "wake", "reboot"])
async def test_the_stored_ack_of_every_kind_round_trips(tmp_path: Path, kind: str) -> None:
    rig = await make_rig(tmp_path)
    ack = await rig.send(kind, f"k-{kind}", device_id="m1")
    stored = v1.Ack.model_validate_json(rig.buffer.command_ack(f"k-{kind}") or b"{}")
    assert stored.status == ack.status == v1.AckStatus.APPLIED


async def test_the_same_id_arriving_twice_at_once_is_applied_once(tmp_path: Path) -> None:
    import asyncio

    rig = await make_rig(tmp_path)
    miner = rig.site.miners[A]
    original = miner.reboot

    async def slow_reboot() -> None:
        await asyncio.sleep(0.1)
        await original()

    miner.reboot = slow_reboot  # type: ignore[method-assign]
    first, second = await asyncio.gather(rig.send("reboot", "twin", device_id="m1"),
                                         rig.send("reboot", "twin", device_id="m1"))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.status == second.status == v1.AckStatus.APPLIED
    assert miner.calls == ["reboot"]


async def test_a_batch_older_than_the_newest_controller_epoch_is_ignored(tmp_path: Path) -> None:
    """Active/standby: the standby took over (epoch 2); the old active, paused and woken, sends epoch 1. Its
    batch is rejected, applies nothing and renews nothing; the newest epoch survives a restart."""
    rig = await make_rig(tmp_path)
    ack = await rig.send("setpoints", "e2", lease_s=60, epoch=2, setpoints=[{"device_id": "m1", "mode": "sleep"}])
    assert ack.status == v1.AckStatus.APPLIED
    renewed = rig.failsafe.lease.batch_id
    ack = await rig.send("setpoints", "e1", lease_s=600, epoch=1, setpoints=[{"device_id": "m1", "mode": "run"}])
    assert ack.status == v1.AckStatus.REJECTED and "stale controller epoch 1 (newest seen 2)" in (ack.reason or "")
    assert rig.site.miners[A].calls == ["sleep"] and rig.failsafe.lease.batch_id == renewed
    assert (await rig.send("setpoints", "e3", lease_s=60, epoch=3, setpoints=[
        {"device_id": "m1", "mode": "run"}])).status == v1.AckStatus.APPLIED
    assert (await rig.send("setpoints", "n1", lease_s=60, setpoints=[  # no epoch: a controller without a standby
        {"device_id": "m1", "mode": "sleep"}])).status == v1.AckStatus.APPLIED
    again = CommandProcessor("g", rig.processor.fleet, rig.processor.actuator, rig.buffer, rig.failsafe)
    assert again.newest_epoch == 3
    stale = await again.handle(v1.Command(id="e2-late", kind=v1.CommandKind.SETPOINTS, lease_s=60, epoch=2,
                                          setpoints=[v1.Setpoint(device_id="m1", mode=v1.SetpointMode.RUN)]))
    assert stale.status == v1.AckStatus.REJECTED
