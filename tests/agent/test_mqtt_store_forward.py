"""Store-and-forward: the broker is killed mid-run and restarted on the same port; every telemetry batch still
arrives (at least once, no gap in seq), the ones produced during the outage flagged historical. Also: an agent
restarted with a full buffer replays it, and seq keeps rising across restarts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agent.mqtt_support import Controller, agent_config, running_agent, wait_until
from tests.agent.runtime_fakes import fake_site
from tests.support.servers import Mosquitto

pytestmark = pytest.mark.integration

KEEP_USER = "user root\n" if os.geteuid() == 0 else ""


def _persistent_broker() -> Mosquitto:
    """A broker that keeps sessions across a restart, so the test's subscriber misses nothing while both are down."""
    broker = Mosquitto()
    broker.conf.write_text(broker.conf.read_text().replace("persistence false", "persistence true")
                           + f"persistence_location {broker.dir}/\n{KEEP_USER}")
    return broker


def _assert_complete(seqs: list[int]) -> None:
    assert seqs, "no telemetry arrived"
    assert sorted(set(seqs)) == list(range(1, max(seqs) + 1)), f"gap in seq: {sorted(set(seqs))}"


async def test_broker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    broker = _persistent_broker().start()
    site, devices = fake_site(3)
    ctl = Controller(broker.port, "t1", "gw1", client_id="test-sf-watch", persistent=True)
    try:
        async with running_agent(agent_config(tmp_path, broker.port, devices), site) as agent:
            await wait_until(lambda: len(ctl.batches) >= 3, 10, "telemetry before the outage")
            broker.stop()
            await wait_until(lambda: not agent.publisher.connected, 10, "the agent to notice the outage")
            buffered_before = agent.buffer.count()
            await wait_until(lambda: agent.buffer.count() >= buffered_before + 8, 15, "batches buffered on disk")
            produced_in_outage = agent.buffer.count()
            broker.start()
            await wait_until(lambda: agent.publisher.connected, 20, "the agent to reconnect")
            await wait_until(lambda: agent.buffer.count() == 0 and agent.publisher.replayed > 0, 20,
                             "the buffer to drain")
            last = agent.coordinator.cycles
            await wait_until(lambda: bool(ctl.batches) and max(b.seq for b in ctl.batches) >= last, 20,
                             "every batch to reach the subscriber")
    finally:
        ctl.close()
        broker.__exit__(None, None, None)
    seqs = [b.seq for b in ctl.batches]
    _assert_complete(seqs)
    historical = [b for b in ctl.batches if b.historical]
    assert len(historical) >= produced_in_outage - 1  # the newest one may go out live
    assert all(len(b.miners) == 3 and len(b.pdus) == 1 for b in ctl.batches)  # no sample lost inside a batch
    # replayed in order: the historical batches arrive oldest first
    hist_seqs = [b.seq for b in historical]
    assert hist_seqs == sorted(hist_seqs)


async def test_a_restarted_agent_replays_its_buffer_and_continues_the_seq(tmp_path: Path) -> None:
    site, devices = fake_site(1)
    down = Mosquitto()  # a port nobody listens on yet
    cfg = agent_config(tmp_path, down.port, devices)
    async with running_agent(cfg, site) as agent:
        await wait_until(lambda: agent.buffer.count() >= 4, 10, "batches buffered with no broker")
    with down as broker:
        ctl = Controller(broker.port, "t1", "gw1")
        try:
            async with running_agent(cfg, site) as again:
                await wait_until(lambda: again.buffer.count() == 0 and len(ctl.batches) >= 6, 20,
                                 "the old buffer replayed and new batches live")
        finally:
            ctl.close()
    seqs = [b.seq for b in ctl.batches]
    _assert_complete(seqs)
    first_live = next(b.seq for b in ctl.batches if not b.historical)
    assert first_live > 4 and all(b.historical for b in ctl.batches if b.seq < first_live)
