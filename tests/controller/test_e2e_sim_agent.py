"""End to end: simulated site (sim.server, real protocols) -> the real agent -> mosquitto -> the controller.

Devices appear in the live fleet with the simulator's values, and as pending registrations in the registry with
their identity (serial, MAC, model, firmware, address, PDU outlet, pools) as the simulator defines it.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import agent.drivers  # noqa: F401  (before agent.transport: the two import each other)
from agent.config import config_from_dict
from agent.transport import snmp as snmp_transport
from controller.runtime import Services, build_services
from sim.agent_config import agent_config_dict
from sim.server import SimConfig, SimServer
from sim.site import SiteFile, load_site
from tests.agent.mqtt_support import running_agent
from tests.controller.conftest import make_settings
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SMALL_SITE = Path(__file__).resolve().parents[2] / "sim" / "sites" / "small.toml"
PORT_OFFSET = 32000


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimServer, SiteFile]]:
    snmp_transport._ENGINE = None  # one pysnmp engine per event loop (see tests/agent/test_e2e_sim.py)
    last: OSError | None = None
    for _ in range(8):
        net = random.randint(20, 240)
        site_file = load_site(SMALL_SITE, miner_net=f"127.{net}", pdu_net=f"127.{net + 1}")
        server = SimServer(site_file, SimConfig(port_offset=PORT_OFFSET, speed=1.0, control_port=None, boot_s=0.5,
                                                wake_s=0.5, ramp_s=0.5, sleep_s=0.2))  # fmt: skip
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
            continue
        try:
            yield server, site_file
        finally:
            await server.stop()
        return
    raise RuntimeError(f"no free loopback block: {last}")


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
    sim: tuple[SimServer, SiteFile], controller: Services, broker: Mosquitto, tmp_path: Path
) -> None:
    server, site_file = sim
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
