"""The gateway's wall clock stepped by an hour, forward and back (the real agent polling the simulator, mosquitto, a
test controller sending setpoint batches). The step goes through the agent's wall-clock seam (agent.clock.step),
which moves every wall-clock reading the agent makes and leaves the monotonic clock alone, as NTP or `date -s`
would. Setpoint batches alternate sleep and run for one miner with a step before each; one is repeated after a
step. Then the last lease runs out across two more steps. Measured: every batch applied in the order sent, each
exactly once at the miner (the simulator's own record of its firmware calls), the repeat answered as a duplicate,
each renewal gives the full lease by the monotonic clock, and the failsafe fires neither early nor late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import clock
from agent.config import config_from_dict
from agent.service import Agent
from kuat.wire import v1
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import Controller, running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim
from tests.chaos.support import until
from tests.support.servers import Mosquitto

HOUR = 3600.0
LEASE_S = 8.0  # long enough for the waits between the last renewal and the early check
GRACE_S = 1.0
LATE_BY_S = 5.0  # the failsafe may lag its deadline by the check period and a loaded event loop; an hour is not
PLAN = [(v1.SetpointMode.SLEEP, +HOUR), (v1.SetpointMode.RUN, -HOUR), (v1.SetpointMode.SLEEP, -HOUR),
        (v1.SetpointMode.RUN, +HOUR)]  # fmt: skip


@pytest.fixture
def stepped_clock() -> Iterator[None]:
    clock.reset()
    try:
        yield
    finally:
        clock.reset()


def record_firmware_calls(phys: Any) -> list[str]:
    """What the simulated miner was told to do, in order (its firmware's sleep and wake)."""
    calls: list[str] = []
    for name in ("sleep", "wake"):
        original = getattr(phys, name)

        def recorded(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        setattr(phys, name, recorded)
    return calls


def state_of(agent: Agent, device_id: str) -> v1.MinerState | None:
    dev = agent.fleet.miner(device_id)
    return dev.last.state if dev is not None and dev.last is not None else None


async def test_a_wall_clock_step_of_an_hour_changes_no_lease_and_no_order(
        sim: Sim, tmp_path: Path, stepped_clock: None) -> None:
    miner = sim.first("bmminer")
    device = miner.d.mac or ""
    with Mosquitto() as broker:
        data = agent_config_dict(sim.site_file, None, broker_port=broker.port, buffer_path=tmp_path / "buf.sqlite",
                                 port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
        data.update(site="clk", gateway="gw1", failsafe={"grace_s": GRACE_S, "retry_s": 1.0})
        ctl = Controller(broker.port, "clk", "gw1")
        try:
            async with running_agent(config_from_dict(data)) as agent:
                await until(lambda: state_of(agent, device) == v1.MinerState.MINING, "the miner mining", 30)
                calls = record_firmware_calls(miner.phys)
                engaged: list[float] = []
                agent.failsafe.on_engage(lambda: engaged.append(time.monotonic()))
                acks = []
                for i, (mode, step) in enumerate(PLAN):
                    clock.step(step)
                    cmd = v1.Command(id=f"clk-{i}", kind=v1.CommandKind.SETPOINTS, lease_s=LEASE_S,
                                     setpoints=[v1.Setpoint(device_id=device, mode=mode)])  # fmt: skip
                    ctl.send(cmd)
                    ack = await ctl.ack_for(cmd.id, timeout_s=20)
                    read_at = time.monotonic()
                    left = agent.lease.seconds_left()
                    assert ack.status == v1.AckStatus.APPLIED and not ack.duplicate, ack
                    assert left is not None and LEASE_S - 2 < left <= LEASE_S, (step, left)
                    # when the agent renewed (its deadline less the lease), not when the ack reached the test:
                    # the ack travels after the renewal, so timing from its arrival made a punctual failsafe look
                    # early (CI: 8.986 s against 9.0)
                    renewed = read_at + left - LEASE_S
                    acks.append(ack.command_id)
                    want = v1.MinerState.SLEEPING if mode == v1.SetpointMode.SLEEP else v1.MinerState.MINING
                    await until(lambda w=want: state_of(agent, device) == w,  # type: ignore[misc]
                                f"the miner {want.value}", 20)
                clock.step(-HOUR)
                ctl.send(v1.Command(id="clk-1", kind=v1.CommandKind.SETPOINTS, lease_s=LEASE_S,
                                    setpoints=[v1.Setpoint(device_id=device, mode=v1.SetpointMode.RUN)]))  # fmt: skip
                repeat = await ctl.ack_for("clk-1", timeout_s=20, nth=2)
                assert repeat.duplicate, "a repeated command id was applied again"
                ordered = list(calls)
                assert acks == [f"clk-{i}" for i in range(len(PLAN))]
                assert ordered == ["sleep", "wake", "sleep", "wake"], f"firmware calls: {ordered}"
                last_renewal = renewed  # the repeat renews nothing: it is answered from memory
                clock.step(+HOUR)  # a wall-clock lease would be long expired now: the failsafe would fire at once
                await asyncio.sleep(1.0)
                early = [t - last_renewal for t in engaged if t - last_renewal < LEASE_S + GRACE_S]
                assert not early, f"the failsafe fired {early[0]:.1f} s after the last renewal: early"
                clock.step(-2 * HOUR)  # and now a wall-clock lease would hold for another hour
                await until(lambda: bool(engaged), "the failsafe after the lease ran out",
                            LEASE_S + GRACE_S + LATE_BY_S + 5)  # fmt: skip
                fired = engaged[0] - last_renewal
                print(f"\nwall clock stepped {len(PLAN) + 3} times by an hour: {len(acks)} batches applied in "
                      f"order, once each ({ordered}); the repeat answered as a duplicate; the failsafe fired "
                      f"{fired:.1f} s after the last renewal (lease {LEASE_S:g} s + grace {GRACE_S:g} s)")
                assert fired >= LEASE_S + GRACE_S, f"the failsafe fired early: {fired:.1f} s"
                assert fired <= LEASE_S + GRACE_S + LATE_BY_S, f"the failsafe fired late: {fired:.1f} s"
                await until(lambda: calls[-1:] == ["sleep"], "the failsafe's safe state at the miner", 10)
                assert calls == ["sleep", "wake", "sleep", "wake", "sleep"], calls
        finally:
            ctl.close()
