"""The agent's real PDU driver (agent.drivers.open_pdu, family identified by sysObjectID) against the simulated PDUs:
the two sides, written separately from DEVICES.md, must agree on identity, scales and control enums."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.drivers import open_pdu
from sim.clock import ManualClock
from sim.pdus import PduAgents, start_pdu_agents
from sim.runtime import Site
from sim.site import load_site
from tests.support.servers import free_port

SMALL_SITE = Path(__file__).resolve().parents[2] / "sim" / "sites" / "small.toml"


@pytest.fixture
async def site_and_port() -> AsyncIterator[tuple[Site, int]]:
    clock = ManualClock()
    nets = random.sample(range(20, 251), 2)
    site = Site(load_site(SMALL_SITE, miner_net=f"127.{nets[0]}", pdu_net=f"127.{nets[1]}"), clock=clock)
    clock.advance(3600)  # an hour of mining: energy counters well above their resolution
    site.tick()
    port = free_port(kind=socket.SOCK_DGRAM)
    agents: PduAgents = await start_pdu_agents(site, port, reboot_s=0.2)
    try:
        yield site, port
    finally:
        await agents.stop()


@pytest.mark.parametrize("family", ["apc_rpdu2", "raritan_px2", "sentry4"])
async def test_agent_driver_reads_and_switches_the_simulated_pdu(site_and_port: tuple[Site, int], family: str) -> None:
    site, port = site_and_port
    pdu = next(p for p in site.pdus if p.d.family == family)
    driver = await open_pdu(pdu.ip, port=port, write_community=pdu.d.write_community, timeout=3.0)
    sample = await driver.read()
    assert sample.available and sample.family == family and not sample.errors
    assert sample.power_w == pytest.approx(pdu.power_w(), abs=10)  # APC totals come in 10 W steps
    assert sample.energy_kwh == pytest.approx(pdu.energy_wh() / 1000, abs=0.1)
    assert [o.index for o in sample.outlets] == [o.index for o in pdu.outlets]
    for got, outlet in zip(sample.outlets, pdu.outlets, strict=True):
        assert got.name == outlet.name
        assert got.state == "on"
        assert got.power_w == pytest.approx(outlet.power_w(), abs=1)
        assert got.current_a == pytest.approx(outlet.current_a(pdu.voltage), abs=0.1)

    victim = next(o for o in pdu.outlets if o.miner is not None)
    draw = victim.power_w()
    await driver.switch(victim.index, "off")
    assert victim.on is False and victim.miner is not None and not victim.miner.phys.reachable
    after = await driver.read()
    assert sample.power_w is not None and after.power_w is not None
    assert sample.power_w - after.power_w == pytest.approx(draw, abs=10)
    assert after.outlets[victim.index - 1].state == "off"
    await driver.switch(victim.index, "on")
    assert victim.on
