"""What the quota end-to-end tests share: a simulated site under the real controller's quota loop (in process, a
real mosquitto, the real agent), bounded waits on the simulator's own state, and the quota API called with a key."""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agent.config import config_from_dict
from controller.app import create_app
from controller.quota.wiring import start_quota
from controller.runtime import build_services
from controller.scheduler import make_scheduler
from demo.seed import seed_registry
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim
from tests.controller.conftest import make_settings
from tests.support.servers import Mosquitto

OPERATOR = "op-" + "q" * 30
GRID = "grid-" + "g" * 30
KEYS = [{"name": "ops", "role": "operator", "key": OPERATOR}, {"name": "kegoc", "role": "grid", "key": GRID}]
QUOTA = {"interval_s": 1.0, "lease_s": 4.0, "lag_s": 2.0, "settle_s": 2.0, "straggler_settle_s": 15.0,
         "min_on_s": 2.0, "min_off_s": 2.0, "ledger_period_s": 5, "compliance_refresh_s": 1.0}


async def until(check: Callable[[], bool], what: str, within_s: float = 30.0) -> float:
    """Wait (bounded) for `check`; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within_s} s waiting for {what}")


async def held_under(sim: Sim, cap_w: float, what: str, hold_s: float = 2.0, within_s: float = 30.0) -> float:
    """Seconds until the simulator's own power went under `cap_w` and then stayed there for `hold_s` (a dip while
    Whatsminers reboot to apply their new limit does not count)."""
    started = time.monotonic()
    under_since: float | None = None
    while time.monotonic() - started < within_s:
        now = time.monotonic()
        if sim_power(sim) <= cap_w:
            under_since = now if under_since is None else under_since
            if now - under_since >= hold_s:
                return under_since - started
        else:
            under_since = None
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within_s} s waiting for {what}: {sim_power(sim):.0f} W, cap {cap_w:.0f}")


class Meter:
    """The simulator's own energy meter (Site.energy_wh), read every 0.1 s on the wall clock."""

    def __init__(self, sim: Sim) -> None:
        self.site = sim.server.site
        self.times: list[float] = []
        self.wh: list[float] = []

    def read(self) -> None:
        self.site.tick()
        self.times.append(time.time())
        self.wh.append(self.site.energy_wh())

    async def run(self) -> None:
        while True:
            self.read()
            await asyncio.sleep(0.1)

    def at(self, t: float) -> float:
        """The meter at wall time `t` (interpolated). A `t` just past the last reading (the event loop was held by
        a blocking call) gets a fresh reading first."""
        if self.times and self.times[-1] <= t < time.time():
            self.read()
        i = bisect.bisect_left(self.times, t)
        assert 0 < i < len(self.times), "the meter did not run across that time"
        t0, t1 = self.times[i - 1], self.times[i]
        return self.wh[i - 1] + (self.wh[i] - self.wh[i - 1]) * (t - t0) / (t1 - t0)


@asynccontextmanager
async def quota_site(sim: Sim, broker: Mosquitto, tmp_path: Path, quota: dict[str, Any],
                     dark: bool = True) -> AsyncIterator[dict[str, Any]]:
    """The controller's services (quota loop, scheduler, API) on a random site name, the registry seeded the way the
    demo seeds it, and the agent polling the simulated site. `dark`: one stock Antminer of the host stays out of the
    registry (a violation); the others are all registered. Yields site, svc, client, sim, dark (or None), meter,
    broker."""
    site = f"q{random.randint(10000, 99999)}"
    settings = make_settings(tmp_path, sites=[site], broker={"port": broker.port, "client_id": f"ctl-{site}"},
                             api_keys=KEYS, quota=quota, sightings_flush_s=0.5)  # fmt: skip
    svc = build_services(settings)
    assert svc.ingest is not None and svc.quota is not None and svc.registry is not None
    miners = sim.server.site.miners
    left = next(m for m in miners if m.d.firmware == "bmminer" and m.d.owner != "tenant-ii") if dark else None
    kept = [m for m in sim.site_file.miners if left is None or m.mac != left.d.mac]
    seed_registry(svc.registry, sim.site_file.model_copy(update={"miners": kept}), leave_unregistered=0,
                  capacity_mw=1.0)  # fmt: skip
    svc.owners.refresh()
    svc.ingest.start()
    assert svc.ingest.wait_connected(10)
    start_quota(svc)
    assert svc.grid_signal is not None and svc.grid_signal.wait_connected(10)
    scheduler = make_scheduler(svc)
    scheduler.start()
    data = agent_config_dict(sim.site_file, None, broker_port=broker.port, buffer_path=tmp_path / "buf.sqlite",
                             port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
    data.update(site=site, gateway="gw1", failsafe={"grace_s": 0.5, "retry_s": 1.0})
    data["poll"]["device_timeout_s"] = 5.0
    meter = Meter(sim)
    metering = asyncio.create_task(meter.run())
    try:
        with TestClient(create_app(settings, svc)) as client:
            async with running_agent(config_from_dict(data)):
                yield {"site": site, "svc": svc, "client": client, "sim": sim, "dark": left, "meter": meter,
                       "broker": broker}  # fmt: skip
    finally:
        metering.cancel()
        scheduler.shutdown(wait=False)
        svc.close()


def sim_power(sim: Sim, pred: Callable[[Any], bool] = lambda m: True) -> float:
    return sum(m.phys.power_w() for m in sim.server.site.miners if pred(m))


def call(client: TestClient, method: str, path: str, key: str, body: Any = None) -> Any:
    r = client.request(method, f"/api/v1/quota/{path}", json=body, headers={"X-API-Key": key})
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None
