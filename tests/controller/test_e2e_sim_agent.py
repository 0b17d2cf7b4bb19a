"""End to end: simulated site (sim.server, real protocols) -> the real agent -> mosquitto -> the controller.

Devices appear in the live fleet with the simulator's values, and as pending registrations in the registry with
their identity (serial, MAC, model, firmware, address, PDU outlet, pools) as the simulator defines it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.config import config_from_dict
from controller.runtime import Services, build_services
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim, sim  # noqa: F401  (the agent's simulated-site fixture)
from tests.controller.conftest import make_settings
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def until(check: Callable[[], bool], what: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def controller(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Services]:
    site = f"e2e{random.randint(1000, 9999)}"
    settings = make_settings(tmp_path, sites=[site], broker={"port": broker.port, "client_id": f"ctl-{site}"})
    svc = build_services(settings)
    assert svc.ingest is not None
    svc.ingest.start()
    assert svc.ingest.wait_connected(10)
    yield svc  # type: ignore[misc]
    svc.close()


async def test_site_to_controller_pending_registrations(
    sim: Sim,  # noqa: F811  (the imported fixture)
    controller: Services,
    broker: Mosquitto,
    tmp_path: Path,
) -> None:
    server, site_file = sim.server, sim.site_file
    site = controller.settings.sites[0]
    data = agent_config_dict(site_file, None, broker_port=broker.port, buffer_path=tmp_path / "buf.sqlite",
                             port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
    data.update(site=site, gateway="gw1")
    data["poll"]["device_timeout_s"] = 5.0
    miners = server.site.miners

    def all_live() -> bool:
        fleet = controller.fleet.devices(site=site, kind="miner")
        return fleet["total"] == len(miners) and all(d["available"] for d in fleet["devices"])

    async with running_agent(config_from_dict(data)):
        await until(all_live, "every simulated miner live and available in the controller")
        await until(lambda: controller.metrics.samples_total >= 3 * (len(miners) + len(server.site.pdus)),
                    "a few cycles")  # fmt: skip
        totals = controller.fleet.site_totals(site)[0]
        assert totals["miners"] == len(miners) and totals["pdus"] == len(server.site.pdus)
        assert totals["power_w"] == pytest.approx(sum(m.phys.power_w() for m in miners), rel=0.1)
        assert controller.fleet.energy("site", site)[0]["energy_kwh"] > 0
    assert controller.sightings.flush() > 0 or controller.metrics.sightings_sent > 0
    registry = controller.registry
    assert registry is not None
    reported = {d["device_id"]: d["serial"] for d in controller.fleet.devices(site=site, kind="miner")["devices"]}
    with_serial = [m for m in miners if reported.get(m.d.mac or "") or reported.get(f"ip-{m.d.ip}")]
    # stock Antminer firmware tells its serial; LuxOS and Whatsminer RPC do not (no serial: no registration)
    assert {m.d.firmware for m in with_serial} >= {"bmminer"}
    for m in with_serial:
        d = m.d
        hsc = registry.get_hsc(d.serial)
        assert hsc.status == "pending"
        assert (hsc.site, hsc.gateway, hsc.ip) == (site, "gw1", d.ip)
        assert hsc.mac in (None, d.mac) and hsc.model is not None and hsc.model.startswith(d.model)
        if d.pdu:
            assert (hsc.pdu, hsc.pdu_outlet) == (d.pdu, d.outlet)
        assert set(hsc.pools) <= set(d.pools) and hsc.pools
    assert not controller.gateways.is_online(site, "gw1")  # the agent said goodbye on its state topic
