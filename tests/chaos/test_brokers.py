"""Broker faults on real mosquitto processes with the real agent (in-test device drivers): the site's primary
broker dies and the agent falls back to the next of its ordered list; the broker restarts with persistence on and
the agent reconnects. No telemetry batch is lost (every seq arrives), none is applied twice."""

from __future__ import annotations

from pathlib import Path

from kuat.wire import v1
from tests.agent.mqtt_support import Controller, agent_config, running_agent, wait_until
from tests.agent.runtime_fakes import fake_site
from tests.support.servers import Mosquitto


def seqs_of(*controllers: Controller) -> list[int]:
    return sorted({b.seq for c in controllers for b in c.batches})


async def test_the_agent_falls_back_to_the_next_broker_and_loses_no_telemetry(tmp_path: Path) -> None:
    site, devices = fake_site(3)
    with Mosquitto() as primary, Mosquitto() as secondary:
        on_primary = Controller(primary.port, "t1", "gw1")
        on_secondary = Controller(secondary.port, "t1", "gw1")
        cfg = agent_config(tmp_path, primary.port, devices,
                           broker={"fallbacks": [{"host": "127.0.0.1", "port": secondary.port}], "fallback_after": 2})
        try:
            async with running_agent(cfg, site) as agent:
                await wait_until(lambda: len(on_primary.batches) >= 3, 15, "telemetry on the primary")
                primary.stop()  # the site's primary broker dies
                await wait_until(lambda: len(on_secondary.batches) >= 5, 40, "telemetry on the secondary")
                assert agent.publisher.switches >= 1 and agent.publisher.endpoint == 1
                last = max(seqs_of(on_secondary))
                await wait_until(lambda: agent.buffer.count() == 0, 15, "the buffer drained")
            seqs = seqs_of(on_primary, on_secondary)
            assert seqs == list(range(1, max(seqs) + 1)), "a telemetry batch was lost"
            assert last >= 8
            replayed = [b for b in on_secondary.batches if b.historical]
            print(f"\nprimary died after seq {max(seqs_of(on_primary))}; {len(replayed)} batches buffered meanwhile "
                  f"were replayed on the secondary; {len(seqs)} batches, none lost")
        finally:
            on_primary.close()
            on_secondary.close()


async def test_a_broker_restart_with_persistence_loses_no_telemetry_and_applies_no_command_twice(
        tmp_path: Path) -> None:
    """mosquitto (persistence on) is restarted under the agent; a controller with a persistent session gets every
    batch, and a command re-delivered after the restart (same id) is answered from the agent's memory."""
    site, devices = fake_site(3)
    store = tmp_path / "mosq"
    store.mkdir()
    with Mosquitto(extra_conf=f"persistence true\npersistence_location {store}/\nautosave_interval 1\n") as broker:
        ctl = Controller(broker.port, "t1", "gw1", client_id="chaos-ctl", persistent=True)
        try:
            async with running_agent(agent_config(tmp_path, broker.port, devices), site) as agent:
                await wait_until(lambda: len(ctl.batches) >= 3, 15, "telemetry before the restart")
                sleep = v1.Command(id="cmd-sleep-1", kind=v1.CommandKind.SLEEP, device_id="m1")
                ctl.send(sleep)
                first = await ctl.ack_for(sleep.id)
                assert first.status == v1.AckStatus.APPLIED and not first.duplicate
                before = max(b.seq for b in ctl.batches)
                broker.stop()
                await wait_until(lambda: not agent.publisher.connected, 10, "the agent seeing the broker gone")
                broker.start()  # same port, same persistence file
                await wait_until(lambda: agent.publisher.connected, 30, "the agent reconnected")
                await wait_until(lambda: max(b.seq for b in ctl.batches) >= before + 5, 30, "telemetry after")
                ctl.send(sleep)  # the controller's retry of the same command after the restart
                again = await ctl.ack_for(sleep.id, nth=2)
                assert again.duplicate and again.status == v1.AckStatus.APPLIED
                await wait_until(lambda: agent.buffer.count() == 0, 15, "the buffer drained")
            assert site.miners["127.77.0.1"].calls.count("sleep") == 1, site.miners["127.77.0.1"].calls
            seqs = sorted({b.seq for b in ctl.batches})
            assert seqs == list(range(1, max(seqs) + 1)), "a telemetry batch was lost across the restart"
            print(f"\nbroker restarted after seq {before}; {len(seqs)} batches, none lost; the command applied once")
        finally:
            ctl.close()
