"""kill -9 of the only controller during an emergency cut, on SQLite and on PostgreSQL (real processes: `kuat
controller run`, mosquitto, the real agent, the simulator). Restarted: every accepted input is kept (the order
still binds), the ledger is continuous or its hole is flagged as a gap, the loop runs again and the site never
left its cap (the agents held the last setpoints under their lease)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import config_from_dict
from sim.agent_config import agent_config_dict
from tests.agent.mqtt_support import running_agent
from tests.agent.test_e2e_sim import PORT_OFFSET, Sim
from tests.chaos.support import GRID, OPERATOR, ControllerProcess, PowerLog, seed, sim_power
from tests.chaos.test_takeover import iso, setup_site, until_under
from tests.support.servers import Mosquitto


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kuat.sqlite'}"
    return str(request.getfixturevalue("postgres").create_database())


async def test_kill_the_controller_mid_cut_and_restart(sim: Sim, database: str, tmp_path: Path) -> None:
    site = f"k{random.randint(10000, 99999)}"
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
                await ctl.call("POST", f"{site}/emergencies", GRID, {"reference": "KEGOC-KILL", "cap_mw": cap_w / 1e6})
                await until_under(sim, cap_w, "the site under the cap")
                accepted = [(e["kind"], e["object_id"]) for e in
                            (await ctl.call("GET", f"{site}/inputs", OPERATOR))["inputs"] if e["action"] == "accepted"]
                held_from = time.time()
                await asyncio.sleep(6.0)  # a ledger period or two closes
                killed = time.time()
                ctl.kill()
                await asyncio.sleep(4.0)  # down for a moment: agents hold the last setpoints under their lease
                ctl.start()
                await ctl.healthy()
                serving = time.time()

                async def loop_ran() -> bool:
                    status = await ctl.call("GET", f"{site}/status", OPERATOR)
                    ts = status["loop"] and datetime.fromisoformat(status["loop"]["ts"]).timestamp()
                    return bool(ts and ts > serving - 1)

                deadline = time.monotonic() + 30
                while not await loop_ran():
                    assert time.monotonic() < deadline, f"the loop never ran after the restart:\n{ctl.tail()}"
                    await asyncio.sleep(0.2)
                print(f"\n{database.split(':')[0]}: loop ran {time.time() - serving:.1f} s after the restarted "
                      f"controller served; down {serving - killed:.1f} s")
                await asyncio.sleep(8.0)  # periods close after the restart
                status = await ctl.call("GET", f"{site}/status", OPERATOR)
                assert status["limit_source"] == "emergency" and status["limit_reference"] == "KEGOC-KILL"
                kept = [(e["kind"], e["object_id"]) for e in
                        (await ctl.call("GET", f"{site}/inputs", OPERATOR))["inputs"] if e["action"] == "accepted"]
                assert set(accepted) <= set(kept), "an accepted input was lost"
                worst = power.max_between(held_from, time.time())
                assert worst <= cap_w, f"{worst:.0f} W above the {cap_w:.0f} W cap"
                assert not agent.lease.failsafe_active
                ledger = await ctl.call("GET", f"{site}/ledger?period=fine&start={iso(killed - 20)}&end="
                                        f"{iso(time.time())}", OPERATOR)  # fmt: skip
                holes = assert_continuous_or_flagged(ledger, killed)
                print(f"site under its {cap_w:.0f} W cap throughout (at most {worst:.0f} W); ledger holes, all "
                      f"flagged: {holes}")
        finally:
            metering.cancel()
            ctl.stop()


def assert_continuous_or_flagged(ledger: dict[str, object], killed: float) -> list[tuple[str, str]]:
    rows = ledger["rows"]
    gaps = ledger["gaps"]
    assert isinstance(rows, list) and isinstance(gaps, list)
    starts = [datetime.fromisoformat(r["minute"]) for r in rows]
    ends = [datetime.fromisoformat(r["period_end"]) for r in rows]
    assert starts[0] < datetime.fromtimestamp(killed, UTC) < ends[-1]
    flagged = [(datetime.fromisoformat(g["start"]), datetime.fromisoformat(g["end"])) for g in gaps]
    holes = [(e, s) for e, s in zip(ends, starts[1:], strict=False) if s != e]
    for a, b in holes:
        assert any(ga <= a and b <= gb for ga, gb in flagged), f"hole {a}..{b} not flagged (gaps: {flagged})"
    return [(a.isoformat(), b.isoformat()) for a, b in holes]
