"""Commands before polls (agent.priority): a setpoint batch that arrives during a poll cycle is applied with no new
device read started in between; the held reads run afterwards and the cycle still reports every device. Ordering
and counts only, no timings."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.actuator import Actuator
from agent.buffer import Buffer
from agent.commands import CommandProcessor
from agent.config import FailsafeConfig, config_from_dict
from agent.coordinator import Coordinator, Fleet
from agent.failsafe import Failsafe, Lease
from agent.priority import CommandsFirst
from kuat.wire import v1
from tests.agent.runtime_fakes import FakeSite, fake_site

N = 24


def _record(site: FakeSite, events: list[tuple[str, str]], reading: asyncio.Event) -> None:
    """Log every read start and every command, in the order the event loop runs them; `reading` is set once a
    cycle has started a few reads."""
    for ip, miner in site.miners.items():
        read, command = miner.read, miner._command

        async def logged_read(ip: str = ip, read=read) -> v1.MinerSample:  # type: ignore[no-untyped-def]
            events.append(("read", ip))
            if sum(1 for kind, _ in events if kind == "read") >= 4:
                reading.set()
            return await read()

        async def logged_command(name: str, ip: str = ip, command=command) -> None:  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.01)  # a command takes a round trip, as a read does
            await command(name)
            events.append(("cmd", ip))

        miner.read = logged_read  # type: ignore[method-assign]
        miner._command = logged_command  # type: ignore[method-assign]


async def _cut_during_a_cycle(tmp_path: Path, gate: CommandsFirst | None) -> tuple[list[tuple[str, str]], v1.Ack, int]:
    site, devices = fake_site(N, with_pdu=False)
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices})
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    coord = Coordinator(fleet, site, concurrency=2, device_timeout_s=5.0, gate=gate)
    buffer = Buffer(tmp_path / "buf.sqlite")
    actuator = Actuator(fleet, site, 5.0)
    failsafe = Failsafe(FailsafeConfig(grace_s=0), Lease(buffer), fleet, actuator)
    processor = CommandProcessor("g", fleet, actuator, buffer, failsafe, concurrency=2, gate=gate)
    await coord.poll_once()  # capabilities known
    events: list[tuple[str, str]] = []
    reading = asyncio.Event()
    _record(site, events, reading)
    cycle = asyncio.ensure_future(coord.poll_once())
    await reading.wait()  # the cycle is under way
    batch = v1.Command(
        id="cut",
        kind=v1.CommandKind.SETPOINTS,
        lease_s=60,
        setpoints=[v1.Setpoint(device_id=f"m{i}", mode=v1.SetpointMode.SLEEP) for i in range(1, N + 1)],
    )
    ack = await processor.handle(batch)
    done = await cycle
    buffer.close()
    return events, ack, sum(1 for m in done.miners if m.available)


def _reads_between_commands(events: list[tuple[str, str]]) -> int:
    kinds = [kind for kind, _ in events]
    first, last = kinds.index("cmd"), len(kinds) - 1 - kinds[::-1].index("cmd")
    return kinds[first:last].count("read")


async def test_no_read_starts_while_a_batch_is_applied_and_the_cycle_still_reads_every_miner(tmp_path: Path) -> None:
    gate = CommandsFirst(max_wait_s=60.0)
    events, ack, answered = await _cut_during_a_cycle(tmp_path, gate)
    assert ack.status == v1.AckStatus.APPLIED and len(ack.items) == N
    assert sum(1 for kind, _ in events if kind == "cmd") == N
    assert _reads_between_commands(events) == 0
    assert gate.reads_held > 0  # reads were queued behind the batch, not skipped
    assert answered == N and sum(1 for kind, _ in events if kind == "read") == N
    assert not gate.busy


async def test_without_the_gate_reads_interleave_with_the_batch(tmp_path: Path) -> None:
    """The control case: what the gate removes (each command waits behind reads for the shared event loop)."""
    events, ack, answered = await _cut_during_a_cycle(tmp_path, None)
    assert ack.status == v1.AckStatus.APPLIED and answered == N
    assert _reads_between_commands(events) > 0


async def test_a_read_waits_at_most_max_wait_s_for_commands() -> None:
    gate = CommandsFirst(max_wait_s=0.05)
    with gate.acting():
        await gate.before_read()  # returns although the command is still being applied
        assert gate.busy and gate.reads_held == 1
    assert not gate.busy


async def test_nested_commands_hold_reads_until_the_last_one_ends() -> None:
    gate = CommandsFirst(max_wait_s=60.0)
    read = None
    with gate.acting():
        with gate.acting():
            read = asyncio.ensure_future(gate.before_read())
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not read.done()  # one command still running
    await read
    assert gate.reads_held == 1


async def test_the_failsafe_holds_reads_back_while_it_applies_the_safe_state(tmp_path: Path) -> None:
    site, devices = fake_site(4, with_pdu=False)
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices})
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    gate = CommandsFirst(max_wait_s=60.0)
    coord = Coordinator(fleet, site, device_timeout_s=5.0, gate=gate)
    await coord.poll_once()
    buffer = Buffer(tmp_path / "buf.sqlite")
    failsafe = Failsafe(FailsafeConfig(grace_s=0), Lease(buffer), fleet, Actuator(fleet, site, 5.0), gate)
    busy_at_each_sleep: list[bool] = []
    for miner in site.miners.values():
        command = miner._command

        async def watched(name: str, command=command) -> None:  # type: ignore[no-untyped-def]
            busy_at_each_sleep.append(gate.busy)
            await command(name)

        miner._command = watched  # type: ignore[method-assign]
    await failsafe.engage()
    buffer.close()
    assert busy_at_each_sleep == [True] * 4
    assert all(m.sleeping for m in site.miners.values()) and not gate.busy
