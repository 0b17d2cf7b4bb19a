"""PostgreSQL restarted under load (real processes: a private PostgreSQL cluster, `kuat controller run`, mosquitto,
the real agent, the simulator). The server is stopped (fast: every open connection is cut) while the quota loop
runs an emergency cut and telemetry flows, kept down for a few seconds, and started again: the controller's pool
drops the dead connections (pre-ping), the loop's failed periods are logged once for the outage (not a traceback
a period), the loop runs again within a bounded time, every input accepted before the outage is still in force,
a new input is accepted after it, and the site never left its cap (the agents held the last setpoints)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import config_from_dict
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim
from tests.chaos.support import GRID, OPERATOR, ControllerProcess, PowerLog, seed, sim_power
from tests.chaos.test_takeover import assert_no_gap, iso, setup_site, until_under
from tests.support.postgres import PostgresCluster
from tests.support.servers import Mosquitto

DOWN_S = 4.0  # four loop periods (interval 1 s) fail while the server is down
BACK_WITHIN_S = 15.0  # the loop runs again this long after the server accepts connections at the latest


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A private cluster: restarting the session's shared one would cut other tests' connections."""
    c = PostgresCluster().start()
    try:
        yield c
    finally:
        c.stop()


async def test_postgres_restarted_under_load(sim: Sim, cluster: PostgresCluster, tmp_path: Path) -> None:
    site = f"pg{random.randint(10000, 99999)}"
    database = cluster.create_database()
    seed(database, sim)
    with Mosquitto() as broker:
        ctl = ControllerProcess(tmp_path, "one", database, broker.port, site).start()
        data = agent_config_dict(sim.site_file, None, broker_port=broker.port, buffer_path=tmp_path / "buf.sqlite",
                                 port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
        data.update(site=site, gateway="gw1", failsafe={"grace_s": 5.0, "retry_s": 1.0})
        power = PowerLog(sim)
        metering = asyncio.create_task(power.run())
        try:
            await ctl.healthy()
            async with running_agent(config_from_dict(data)) as agent:
                await setup_site(ctl, site, sim)
                cap_w = round(0.5 * sim_power(sim), -2)
                await ctl.call("POST", f"{site}/emergencies", GRID, {"reference": "KEGOC-PG", "cap_mw": cap_w / 1e6})
                await until_under(sim, cap_w, "the site under the cap")
                accepted = await accepted_inputs(ctl, site)
                held_from = time.time()
                await asyncio.sleep(2.0)
                stopped = time.time()
                cluster.server_stop()
                refused = await post_while_down(ctl, site, cap_w)
                await asyncio.sleep(DOWN_S)
                cluster.server_start()
                back = time.time()
                took = await loop_runs_after(ctl, site, back)
                print(f"\nPostgreSQL down {DOWN_S:g} s: the loop ran again {took:.1f} s after the server was back")
                order = await ctl.call("POST", f"{site}/emergencies", GRID, {"reference": "KEGOC-PG2",
                                                                             "cap_mw": cap_w / 1e6})  # fmt: skip
                kept = await accepted_inputs(ctl, site)
                assert set(accepted) <= set(kept), "an input accepted before the outage was lost"
                assert ("emergency", str(order["id"])) in kept, "an input after the outage was not recorded"
                refs = {e["detail"].get("reference") for e in (await ctl.call("GET", f"{site}/inputs", OPERATOR))
                        ["inputs"]}  # fmt: skip
                assert "KEGOC-DOWN" not in refs, "an input refused while the database was down was recorded after all"
                status = await ctl.call("GET", f"{site}/status", OPERATOR)
                assert status["limit_source"] == "emergency"
                worst = power.max_between(held_from, time.time())
                assert worst <= cap_w, f"{worst:.0f} W above the {cap_w:.0f} W cap"
                assert not agent.lease.failsafe_active
                ledger = await ledger_past(ctl, site, stopped - 10, back)  # a period closed after the outage
                assert_no_gap(ledger["rows"], stopped + DOWN_S / 2)  # periods closed while it was down: written
                assert not ledger["gaps"], ledger["gaps"]
                said = outage_lines(ctl)
                print(f"an order sent while the database was down: HTTP {refused} (not accepted, not recorded)")
                print(f"site under its {cap_w:.0f} W cap throughout (at most {worst:.0f} W); ledger: "
                      f"{len(ledger['rows'])} periods across the outage, no gap; the loop's log: {said}")
                assert said["unavailable"] == 1 and said["back"] == 1 and said["errors"] == 0, ctl.tail()
        finally:
            metering.cancel()
            ctl.stop()


async def post_while_down(ctl: ControllerProcess, site: str, cap_w: float) -> int:
    """An emergency order sent while the database is down: refused with a 503 (the sender retries), never a 2xx."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(f"{ctl.url}/api/v1/quota/{site}/emergencies", headers={"X-API-Key": GRID},
                              json={"reference": "KEGOC-DOWN", "cap_mw": cap_w / 1e6})  # fmt: skip
    assert r.status_code == 503 and r.headers.get("retry-after"), f"{r.status_code} {r.text}"
    return r.status_code


async def ledger_past(ctl: ControllerProcess, site: str, start: float, t: float) -> dict[str, Any]:
    """The site's fine ledger from `start`, once it holds a period that ended after `t` (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        ledger: dict[str, Any] = await ctl.call("GET", f"{site}/ledger?period=fine&start={iso(start)}&end="
                                                f"{iso(time.time())}", OPERATOR)  # fmt: skip
        ends = [datetime.fromisoformat(r["period_end"]).timestamp() for r in ledger["rows"]]
        if ends and max(ends) > t:
            return ledger
        assert time.monotonic() < deadline, f"no ledger period closed after the outage: {ledger}"
        await asyncio.sleep(0.5)


def outage_lines(ctl: ControllerProcess) -> dict[str, int]:
    """What the quota loop said of the outage: one line when it started, one when it ended, no error."""
    lines = [line for line in ctl.log.read_text(errors="replace").splitlines() if "controller.quota." in line]
    return {"unavailable": sum("quota loop: database unavailable" in line for line in lines),
            "back": sum("quota loop: database back" in line for line in lines),
            "errors": sum(" ERROR " in line for line in lines)}  # fmt: skip


async def accepted_inputs(ctl: ControllerProcess, site: str) -> list[tuple[str, str]]:
    inputs = (await ctl.call("GET", f"{site}/inputs", OPERATOR))["inputs"]
    return [(e["kind"], e["object_id"]) for e in inputs if e["action"] == "accepted"]


async def loop_runs_after(ctl: ControllerProcess, site: str, back: float) -> float:
    """Seconds from `back` until the loop's newest run is stamped after it (bounded by BACK_WITHIN_S)."""
    deadline = time.monotonic() + BACK_WITHIN_S
    while True:
        try:
            status = await ctl.call("GET", f"{site}/status", OPERATOR)
            ts = status["loop"] and datetime.fromisoformat(status["loop"]["ts"]).timestamp()
            if ts and ts > back:
                return time.time() - back
        except AssertionError:  # the API itself answers 5xx until its own connections are back
            pass
        assert time.monotonic() < deadline, f"the loop never ran after the restart:\n{ctl.tail()}"
        await asyncio.sleep(0.2)
