"""Fail-closed power on the quota loop: real services, a real mosquitto and a stand-in agent that acks. Machines
without the right (quota.rights over a mirror) get zero power on EVERY run, including machines already asleep (the
old violations resolved once a machine was seen sleeping, and the loop woke it again), machines the allocator
cannot steer (model not in the catalogue) and machines that do not answer (cut at their switchable outlet)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.planner.wiring import dark_devices
from controller.registry_link.power import PowerGate
from controller.runtime import Services, build_services
from kuat import clock
from kuat.wire import v1
from quota.rights import Decision, Licence, Mirror, Pool, Reason
from quota.timebase import local_day_and_hour
from tests.controller.conftest import make_settings
from tests.controller.test_quota_loop import QUOTA, setpoints_of
from tests.controller.wire import Agent, random_site
from tests.support.servers import Mosquitto

OWNER = "123456789012"
POOL_URL = "stratum+tcp://pool.kz:3333"


def mirror(dpc: str, included: list[str], pending: list[str]) -> Mirror:
    decisions = {s: Decision(s, "included", dpc, OWNER, f"KZ-{s}") for s in included}
    decisions |= {s: Decision(s, "submitted", dpc, OWNER) for s in pending}
    return Mirror(dpc, decisions, {OWNER: Licence(OWNER, "L-1", date(2020, 1, 1), date(2099, 1, 1), True)},
                  (Pool("KZ", (POOL_URL,), date(2020, 1, 1), date(2099, 1, 1)),), {}, clock.now())


@pytest.fixture
def site(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[Services, str, Agent]]:
    name = random_site()
    settings = make_settings(tmp_path, sites=[name], broker={"port": broker.port, "client_id": f"ctl-{name}"},
                             quota=QUOTA)
    svc = build_services(settings)
    assert svc.ingest is not None and svc.quota is not None
    svc.ingest.start()
    assert svc.ingest.wait_connected(10)
    agent = Agent(broker.port, name, "gw1")
    try:
        yield svc, name, agent
    finally:
        agent.close()
        svc.close()


def miner(dev: str, serial: str | None, watts: float, model: str = "S19j Pro", available: bool = True,
          pools: tuple[str, ...] = (POOL_URL,), outlet: int | None = None) -> v1.MinerSample:
    return v1.MinerSample(device_id=dev, ip="127.0.0.9", available=available,
                          state=v1.MinerState.MINING if watts > 100 else v1.MinerState.SLEEPING, model=model,
                          firmware="LuxOS", serial=serial, power_w=watts, power_source=v1.PowerSource.REPORTED,
                          pools=[v1.Pool(url=u) for u in pools],
                          outlet=v1.OutletRef(pdu="pdu1", outlet=outlet) if outlet else None,
                          capabilities=v1.Capabilities(sleep=True, power_target=True))  # fmt: skip


def test_machines_without_the_right_are_dark_on_every_run(site: tuple[Services, str, Agent]) -> None:
    svc, name, agent = site
    quota = svc.quota
    assert quota is not None and quota.loop is not None
    gate = PowerGate(lambda: (1, mirror("DPC-1", ["SN-ok", "SN-x"], ["SN-pending"])), timedelta(hours=24), clock.now)
    quota.loop.rights = gate.gate
    quota.set_site_limits(name, connection_kw=1000, actor="test")
    quota.push_schedule(name, local_day_and_hour(clock.now())[0], [1000.0] * 24, "test")
    pdu = v1.PduSample(device_id="pdu1", ip="127.0.0.10", available=True,
                       outlets=[v1.OutletSample(index=1, state=v1.OutletState.ON, power_w=3000.0)])

    def feed(seq: int, pending_w: float) -> None:
        miners = [miner("ok", "SN-ok", 3000.0),
                  miner("pending", "SN-pending", pending_w),  # asleep from the second run on
                  miner("noserial", None, 3000.0),
                  miner("nopools", "SN-x", 3000.0, pools=()),
                  miner("unknownmodel", "SN-never", 3000.0, model="Mystery 9000"),
                  miner("silent", "SN-silent", 3000.0, available=False, outlet=1)]  # fmt: skip
        svc.telemetry.ingest(v1.TelemetryBatch(site=name, gateway="gw1", seq=seq, ts=clock.now(), miners=miners,
                                               pdus=[pdu]))  # fmt: skip

    dark = {"pending": v1.SetpointMode.SLEEP, "noserial": v1.SetpointMode.SLEEP, "nopools": v1.SetpointMode.SLEEP,
            "unknownmodel": v1.SetpointMode.SLEEP, "silent": v1.SetpointMode.OUTLET_OFF}
    for run in range(4):
        feed(run + 1, 3000.0 if run == 0 else 15.0)
        n = len(agent.received)
        assert quota.loop.run_once(name) is not None
        sps = setpoints_of(agent, n)
        assert sps["ok"].mode in (v1.SetpointMode.RUN, v1.SetpointMode.POWER_TARGET), run
        assert {d: sps[d].mode for d in dark} == dark, f"run {run}"

    assert gate.why("ok") is not None and gate.why("ok").right.reason == Reason.INCLUDED  # type: ignore[union-attr]
    reasons = {d: r.right.reason for d in dark if (r := gate.why(d)) is not None}
    assert reasons == {"pending": Reason.PENDING, "noserial": Reason.NO_SERIAL, "nopools": Reason.NO_POOLS,
                       "unknownmodel": Reason.UNKNOWN, "silent": Reason.UNKNOWN}
    assert gate.dark_ids() == set(dark)
    # the planner leaves the same machines out of tomorrow's fleet (with the site registry's violations)
    svc.registry_link = SimpleNamespace(gate=gate)  # type: ignore[assignment]
    planner_dark = dark_devices(svc)
    assert planner_dark is not None and planner_dark() >= set(dark)


def test_a_decision_that_changes_darkens_a_running_machine_at_the_next_run(site: tuple[Services, str, Agent]) -> None:
    svc, name, agent = site
    quota = svc.quota
    assert quota is not None and quota.loop is not None
    state = {"version": 1, "mirror": mirror("DPC-1", ["SN-a"], [])}
    gate = PowerGate(lambda: (state["version"], state["mirror"]), timedelta(hours=24), clock.now)  # type: ignore[arg-type,return-value]
    quota.loop.rights = gate.gate
    quota.set_site_limits(name, connection_kw=1000, actor="test")
    quota.push_schedule(name, local_day_and_hour(clock.now())[0], [1000.0] * 24, "test")
    svc.telemetry.ingest(v1.TelemetryBatch(site=name, gateway="gw1", seq=1, ts=clock.now(),
                                           miners=[miner("a", "SN-a", 3000.0)]))  # fmt: skip
    n = len(agent.received)
    quota.loop.run_once(name)
    assert setpoints_of(agent, n)["a"].mode != v1.SetpointMode.SLEEP
    suspended = mirror("DPC-1", [], [])
    state["mirror"] = Mirror("DPC-1", {"SN-a": Decision("SN-a", "suspended", "DPC-1", OWNER)}, suspended.licences,
                             suspended.pools, {}, clock.now())
    state["version"] = 2
    n = len(agent.received)
    quota.loop.run_once(name)
    assert setpoints_of(agent, n)["a"].mode == v1.SetpointMode.SLEEP
    assert gate.why("a").right.reason == Reason.SUSPENDED  # type: ignore[union-attr]


def test_a_machine_slept_by_a_cap_keeps_its_right_though_asleep_it_tells_no_serial_or_pools() -> None:
    """Stock firmware asleep answers nothing: no serial, no pools. A machine slept by an emergency cap must get its
    right back when the cap lifts, so the gate keeps what the device (its MAC-based id) told before."""
    gate = PowerGate(lambda: (1, mirror("DPC-1", ["SN-a"], [])), timedelta(hours=24), clock.now)
    check = gate.gate()
    assert check("a", miner("a", "SN-a", 3000.0))
    asleep = miner("a", None, 15.0, pools=())
    assert check("a", asleep)
    known = gate.why("a")
    assert known is not None and known.serial == "SN-a" and known.right.reason == Reason.INCLUDED
    assert not check("b", miner("b", None, 15.0, pools=()))  # never told its serial: dark
    assert gate.why("b").right.reason == Reason.NO_SERIAL  # type: ignore[union-attr]


@pytest.mark.parametrize("registry", [None, {"mode": "none_lab"}], ids=["no registry section", "none_lab"])
def test_without_a_registry_no_machine_mines_unless_the_lab_opts_out(tmp_path: Path, broker: Mosquitto,
                                                                    registry: dict[str, str] | None) -> None:
    """No `registry:` section: every machine is slept on every run (fail closed); `none_lab`: the same machine runs."""
    name = random_site()
    svc = build_services(make_settings(tmp_path, sites=[name], broker={"port": broker.port,
                                                                       "client_id": f"ctl-{name}"},
                                       quota=QUOTA, registry=registry))  # fmt: skip
    assert svc.ingest is not None and svc.quota is not None and svc.quota.loop is not None
    svc.ingest.start()
    assert svc.ingest.wait_connected(10)
    agent = Agent(broker.port, name, "gw1")
    try:
        svc.quota.set_site_limits(name, connection_kw=1000, actor="test")
        svc.quota.push_schedule(name, local_day_and_hour(clock.now())[0], [1000.0] * 24, "test")
        for run in range(2):
            svc.telemetry.ingest(v1.TelemetryBatch(site=name, gateway="gw1", seq=run + 1, ts=clock.now(),
                                                   miners=[miner("a", "SN-a", 3000.0 if run == 0 else 15.0)]))
            n = len(agent.received)
            assert svc.quota.loop.run_once(name) is not None
            mode = setpoints_of(agent, n)["a"].mode
            if registry is None:
                assert mode == v1.SetpointMode.SLEEP, f"run {run}: a machine mines without a registry"
            else:
                assert mode != v1.SetpointMode.SLEEP, f"run {run}"
    finally:
        agent.close()
        svc.close()
