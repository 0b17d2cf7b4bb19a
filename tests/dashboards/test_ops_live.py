"""The rack view and bulk commands end to end: the simulated small site (real protocols) -> the real agent, its
config written from the site file (sim.agent_config, placements included) -> mosquitto -> the controller's ingest ->
its HTTP API. Each machine of a bulk sleep is acked by the agent on its own; an unknown machine fails at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import config_from_dict
from controller.app import create_app
from controller.runtime import Services, build_services
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim, sim  # noqa: F401  (the agent's simulated-site fixture)
from tests.controller.conftest import make_settings
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KEY = "op-key-0123456789"


async def until(check: Callable[[], Awaitable[Any]], what: str, within_s: float = 60.0) -> Any:
    deadline = time.monotonic() + within_s
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def controller(tmp_path: Path, broker: Mosquitto) -> Iterator[Services]:
    site = f"ops{random.randint(1000, 9999)}"
    settings = make_settings(tmp_path, sites=[site], broker={"port": broker.port, "client_id": f"ctl-{site}"},
                             api_keys=[{"name": "t-op", "role": "operator", "key": KEY}])  # fmt: skip
    svc = build_services(settings)
    assert svc.ingest is not None
    svc.ingest.start()
    assert svc.ingest.wait_connected(10)
    yield svc
    svc.close()


async def test_rack_view_and_bulk_sleep_acked_per_machine(
    sim: Sim,  # noqa: F811  (the imported fixture)
    controller: Services,
    broker: Mosquitto,
    tmp_path: Path,
) -> None:
    site = controller.settings.sites[0]
    data = agent_config_dict(sim.site_file, None, broker_port=broker.port, buffer_path=tmp_path / "buf.sqlite",
                             port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
    data.update(site=site, gateway="gw1")
    data["poll"]["device_timeout_s"] = 5.0
    miners = sim.server.site.miners
    app = create_app(controller.settings, controller)
    transport = httpx.ASGITransport(app=app)
    async with running_agent(config_from_dict(data)), httpx.AsyncClient(
        transport=transport, base_url="http://ctl", headers={"X-API-Key": KEY}, timeout=20
    ) as http:

        async def layout() -> Any:
            doc = (await http.get("/api/v1/dashboard/racks")).json()
            slots = {s["device_id"]: (h["hall"], r["rack"], s["slot"], s["state"])
                     for h in doc["halls"] for r in h["racks"] for s in r["slots"]}  # fmt: skip
            ready = len(slots) == len(miners) and all(v[3] != "offline" for v in slots.values())
            return slots if ready else None

        slots = await until(layout, "every simulated miner in the rack view")
        for m in miners:  # the simulator's site file says where each machine sits
            assert slots[m.d.mac][:3] == (m.d.hall, m.d.rack, m.d.slot)

        mining = [m.d.mac for m in miners if slots[m.d.mac][3] == "mining" and m.d.firmware == "bmminer"][:3]
        assert len(mining) == 3
        r = await http.post("/api/v1/commands/bulk", json={"device_ids": [*mining, "no-such-miner"], "kind": "sleep"})
        assert r.status_code == 202, r.text
        batch = r.json()
        assert batch["total"] == 4 and batch["failed"] == 1 and batch["pending"] + batch["acked"] == 3
        assert next(i for i in batch["items"] if i["outcome"] == "failed")["device_id"] == "no-such-miner"

        async def acked() -> Any:
            doc = (await http.get(f"/api/v1/commands/bulk/{batch['batch_id']}")).json()
            return doc if doc["acked"] == 3 else None

        done = await until(acked, "each machine's ack")
        items = {i["device_id"]: i for i in done["items"]}
        assert all(items[d]["outcome"] == "acked" and items[d]["command_id"] for d in mining)
        assert len({items[d]["command_id"] for d in mining}) == 3  # one command (and one ack) per machine

        async def asleep() -> Any:
            now = await layout() or {}
            return all(now.get(d, ("", "", 0, ""))[3] == "sleeping" for d in mining)

        await until(asleep, "the three machines shown sleeping in the rack view")

        # stock Antminer firmware has no power target: its agent refuses, and the batch says why, per machine
        stock = [m.d.mac for m in miners if m.d.firmware == "bmminer"][3:5]
        r = await http.post("/api/v1/commands/bulk", json={"device_ids": stock, "kind": "set_power_target",
                                                           "power_w": 2500})  # fmt: skip
        refused = r.json()["batch_id"]

        async def answered() -> Any:
            doc = (await http.get(f"/api/v1/commands/bulk/{refused}")).json()
            return doc if doc["pending"] == 0 else None

        doc = await until(answered, "the agent's answers to the power targets")
        assert doc["failed"] == 2 and doc["acked"] == 0
        assert all(i["reason"].startswith("rejected: ") and len(i["reason"]) > 10 for i in doc["items"]), doc["items"]
