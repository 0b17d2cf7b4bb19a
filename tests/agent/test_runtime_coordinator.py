"""The poll loop: every device each cycle, bounded concurrency, per-device timeouts, isolated failures, logs once
per availability change, no overlapping cycles, PDU power merged into miner samples, outlet map verdicts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.config import config_from_dict
from agent.coordinator import Coordinator, Cycle, Fleet
from agent.outlet_map import CONTRADICTION_SPAN_S, OutletMap, Verdict
from kuat.wire import v1
from tests.agent.runtime_fakes import FakeSite, fake_site


def _coordinator(site: FakeSite, devices: dict[str, object], **kw: float) -> Coordinator:
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices})
    fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
    return Coordinator(fleet, site, interval_s=kw.get("interval_s", 10.0), concurrency=int(kw.get("concurrency", 8)),
                       device_timeout_s=kw.get("timeout", 1.0))


async def test_a_cycle_reads_every_device_and_measures_power_at_the_outlet() -> None:
    site, devices = fake_site(4)
    coord = _coordinator(site, devices)
    cycle = await coord.poll_once()
    assert [m.device_id for m in cycle.miners] == ["m1", "m2", "m3", "m4"]
    assert all(m.available and m.state == v1.MinerState.MINING for m in cycle.miners)
    m1 = cycle.miners[0]
    assert m1.power_source == v1.PowerSource.PDU
    assert m1.power_w == 3003.0  # the outlet's reading (the fake PDU adds 3 W of losses)
    assert m1.reported_power_w == 3000.0  # the firmware's own figure is kept
    assert m1.outlet == v1.OutletRef(pdu="pdu-a", outlet=1)
    assert cycle.pdus[0].device_id == "pdu-a" and cycle.pdus[0].power_w == pytest.approx(4 * 3003.0)
    assert cycle.duration_s > 0


async def test_without_an_outlet_the_firmware_figure_stays() -> None:
    site, devices = fake_site(2, with_pdu=False)
    cycle = await _coordinator(site, devices).poll_once()
    assert {m.power_source for m in cycle.miners} == {v1.PowerSource.REPORTED}


async def test_a_hanging_device_times_out_without_holding_up_the_others(caplog: pytest.LogCaptureFixture) -> None:
    site, devices = fake_site(6)
    site.miners["127.77.0.3"].hang = True
    coord = _coordinator(site, devices, timeout=0.3, concurrency=2)
    cycle = await asyncio.wait_for(coord.poll_once(), 5)
    by_id = {m.device_id: m for m in cycle.miners}
    assert not by_id["m3"].available and by_id["m3"].state == v1.MinerState.OFFLINE
    assert "no answer within 0.3s" in by_id["m3"].errors[0]
    assert all(by_id[f"m{i}"].available for i in (1, 2, 4, 5, 6))
    assert by_id["m3"].power_source == v1.PowerSource.PDU  # offline, yet its outlet still says what it draws


async def test_concurrency_is_bounded() -> None:
    site, devices = fake_site(12, with_pdu=False)
    coord = _coordinator(site, devices, concurrency=3)
    in_flight = 0
    peak = 0
    for miner in site.miners.values():
        original = miner.read

        async def counted(original: object = original) -> v1.MinerSample:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await original()  # type: ignore[operator, no-any-return]
            finally:
                in_flight -= 1

        miner.read = counted  # type: ignore[method-assign]
    cycle = await coord.poll_once()
    assert len(cycle.miners) == 12
    assert peak == 3


async def test_availability_changes_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    site, devices = fake_site(2, with_pdu=False)
    coord = _coordinator(site, devices)
    miner = site.miners["127.77.0.2"]
    await coord.poll_once()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agent.coordinator"):
        miner.unreachable = True
        for _ in range(3):
            await coord.poll_once()
        miner.unreachable = False
        for _ in range(2):
            await coord.poll_once()
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if "unavailable" in line] == ["miner m2 (127.77.0.2) unavailable: unreachable: "
                                                                 "127.77.0.2: connection refused"]
    assert [line for line in lines if line.endswith(" available")] == ["miner m2 (127.77.0.2) available"]


async def test_a_driver_that_cannot_open_is_retried_next_cycle() -> None:
    site, devices = fake_site(1, with_pdu=False)
    site.miners["127.77.0.1"].unreachable = True
    coord = _coordinator(site, devices)
    assert not (await coord.poll_once()).miners[0].available
    site.miners["127.77.0.1"].unreachable = False
    assert (await coord.poll_once()).miners[0].available
    assert site.opened == ["127.77.0.1"]


async def test_a_driver_bug_is_isolated_and_logged_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    site, devices = fake_site(2, with_pdu=False)

    async def broken() -> v1.MinerSample:
        raise KeyError("chain_rate1")

    site.miners["127.77.0.1"].read = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="agent.coordinator"):
        cycle = await _coordinator(site, devices).poll_once()
    assert [m.available for m in cycle.miners] == [False, True]
    assert "KeyError" in cycle.miners[0].errors[0]
    assert caplog.records[0].exc_info is not None


async def test_a_miner_without_configured_id_is_known_by_its_mac() -> None:
    site, devices = fake_site(1)
    devices["miners"][0].pop("id")  # type: ignore[index]
    site.miners["127.77.0.1"].mac = "02:BC:A1:00:00:01"
    coord = _coordinator(site, devices)
    first = await coord.poll_once()
    assert first.miners[0].device_id == "02:bc:a1:00:00:01"
    assert first.miners[0].power_source == v1.PowerSource.PDU  # its outlet entry followed the new id
    for key in ("02:bc:a1:00:00:01", "ip-127.77.0.1", "127.77.0.1"):
        assert coord.fleet.miner(key) is coord.fleet.miners[0]


async def test_cycles_never_overlap_and_a_late_cycle_skips_ticks(caplog: pytest.LogCaptureFixture) -> None:
    site, devices = fake_site(3, with_pdu=False)
    coord = _coordinator(site, devices, interval_s=0.05)
    running = 0
    overlaps = 0
    cycles: list[Cycle] = []
    stop = asyncio.Event()
    original = coord.poll_once

    async def slow_poll() -> Cycle:
        nonlocal running, overlaps
        running += 1
        overlaps += running > 1
        try:
            await asyncio.sleep(0.12)  # longer than two intervals
            return await original()
        finally:
            running -= 1

    async def on_cycle(cycle: Cycle) -> None:
        cycles.append(cycle)
        if len(cycles) == 3:
            stop.set()

    coord.poll_once = slow_poll  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="agent.coordinator"):
        await asyncio.wait_for(coord.run(on_cycle, stop), 10)
    assert len(cycles) == 3 and overlaps == 0
    assert coord.skipped >= 2
    assert "overran" in caplog.text and "skipping" in caplog.text


async def test_request_refresh_starts_the_next_cycle_early() -> None:
    site, devices = fake_site(1, with_pdu=False)
    coord = _coordinator(site, devices, interval_s=3600)
    coord.refresh_gap_s = 0.05
    stop = asyncio.Event()
    seen: list[Cycle] = []

    async def on_cycle(cycle: Cycle) -> None:
        seen.append(cycle)
        if len(seen) == 1:
            coord.request_refresh()
        else:
            stop.set()

    await asyncio.wait_for(coord.run(on_cycle, stop), 10)  # would hang for an hour without the refresh
    assert len(seen) == 2


# ---------------------------------------------------------------- outlet map verdicts


def _miner(state: v1.MinerState, ths: float, mid: str = "m1") -> v1.MinerSample:
    return v1.MinerSample(device_id=mid, ip="127.0.0.1", available=True, state=state, hashrate_ths=ths, power_w=3000.0,
                          power_source=v1.PowerSource.REPORTED)


def _outlet(watts: float, state: v1.OutletState = v1.OutletState.ON) -> v1.OutletSample:
    return v1.OutletSample(index=1, state=state, power_w=watts)


def test_outlet_entry_confirmed_when_power_drops_as_its_miner_sleeps(caplog: pytest.LogCaptureFixture) -> None:
    omap = OutletMap()
    omap.add("m1", v1.OutletRef(pdu="p", outlet=1))
    assert omap.observe(_miner(v1.MinerState.MINING, 100), _outlet(3050)) == Verdict.UNVERIFIED
    with caplog.at_level(logging.INFO, logger="agent.outlet_map"):
        assert omap.observe(_miner(v1.MinerState.SLEEPING, 0), _outlet(30)) == Verdict.CONFIRMED
    assert "confirmed for miner m1" in caplog.text and "dropped to 30 W" in caplog.text


def test_outlet_entry_contradicted_by_full_power_while_its_miner_sleeps(caplog: pytest.LogCaptureFixture) -> None:
    omap = OutletMap()
    omap.add("m1", v1.OutletRef(pdu="p", outlet=1))
    omap.observe(_miner(v1.MinerState.SLEEPING, 0), _outlet(3050), now=100.0)
    assert omap.verdict("m1") == Verdict.UNVERIFIED  # one cycle could be a ramp
    omap.observe(_miner(v1.MinerState.SLEEPING, 0), _outlet(1600), now=110.0)
    assert omap.verdict("m1") == Verdict.UNVERIFIED  # still ramping down 10 s later: not yet a contradiction
    with caplog.at_level(logging.ERROR, logger="agent.outlet_map"):
        merged = omap.merge(_miner(v1.MinerState.SLEEPING, 0), _outlet(3050), now=100.0 + CONTRADICTION_SPAN_S)
    assert omap.verdict("m1") == Verdict.MISMATCH
    assert merged.power_source == v1.PowerSource.REPORTED  # the PDU figure is not trusted for this miner
    assert "still draws 3050 W while the miner sleeps" in merged.errors[0]
    assert len(caplog.records) == 1
    omap.merge(_miner(v1.MinerState.SLEEPING, 0), _outlet(3050))
    assert len(caplog.records) == 1  # logged once


def test_outlet_off_but_miner_hashing_is_a_mismatch_and_off_with_miner_gone_confirms() -> None:
    omap = OutletMap()
    omap.add("m1", v1.OutletRef(pdu="p", outlet=1))
    for at in (0.0, CONTRADICTION_SPAN_S):
        omap.observe(_miner(v1.MinerState.MINING, 100), _outlet(0, v1.OutletState.OFF), now=at)
    assert omap.verdict("m1") == Verdict.MISMATCH
    gone = v1.MinerSample(device_id="m1", ip="127.0.0.1", available=False, state=v1.MinerState.OFFLINE)
    assert omap.observe(gone, _outlet(0, v1.OutletState.OFF)) == Verdict.CONFIRMED


async def test_swapped_cables_are_detected_end_to_end() -> None:
    """Config says m1 on outlet 1, m2 on outlet 2; in reality they are crossed. Sleeping m1 exposes it."""
    site, devices = fake_site(2)
    pdu = site.pdus["127.77.0.200"]
    pdu.outlets = {1: site.miners["127.77.0.2"], 2: site.miners["127.77.0.1"]}
    coord = _coordinator(site, devices)
    coord.fleet.outlets.contradiction_span_s = 0.0  # the span is checked above; here: the cycles end to end
    await coord.poll_once()
    site.miners["127.77.0.1"].sleeping = True
    await coord.poll_once()
    cycle = await coord.poll_once()
    assert coord.fleet.outlets.verdict("m1") == Verdict.MISMATCH
    m1 = next(m for m in cycle.miners if m.device_id == "m1")
    assert any("outlet map mismatch" in e for e in m1.errors)


async def test_a_learned_mac_id_survives_a_restart_even_while_the_miner_is_down(tmp_path: Path) -> None:
    from agent.service import Agent

    site, devices = fake_site(1)
    devices["miners"][0].pop("id")  # type: ignore[index]
    site.miners["127.77.0.1"].mac = "02:bc:a1:00:00:07"
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices,
                            "buffer": {"path": str(tmp_path / "b.sqlite")}})
    first = Agent(cfg, site)
    assert (await first.coordinator.poll_once()).miners[0].device_id == "02:bc:a1:00:00:07"
    first.buffer.close()
    site.miners["127.77.0.1"].unreachable = True
    again = Agent(cfg, site)
    sample = (await again.coordinator.poll_once()).miners[0]
    assert not sample.available and sample.device_id == "02:bc:a1:00:00:07"
    assert sample.outlet == v1.OutletRef(pdu="pdu-a", outlet=1)  # the outlet entry follows the id
    again.buffer.close()


async def test_a_miner_with_a_configured_id_is_also_found_by_its_mac() -> None:
    site, devices = fake_site(1)
    site.miners["127.77.0.1"].mac = "02:BC:A1:00:00:09"
    coord = _coordinator(site, devices)
    assert coord.fleet.miner("02:bc:a1:00:00:09") is None
    await coord.poll_once()
    assert coord.fleet.miner("02:bc:a1:00:00:09") is coord.fleet.miner("m1") is not None


async def test_a_full_disk_loses_that_cycle_only_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from agent.service import Agent

    site, devices = fake_site(1)
    cfg = config_from_dict({"site": "s", "gateway": "g", "devices": devices,
                            "buffer": {"path": str(tmp_path / "b.sqlite")}})
    agent = Agent(cfg, site)

    def full(seq: int, payload: bytes) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger="agent.service"):
        patch.setattr(agent.buffer, "append", full)
        await agent._publish_cycle(await agent.coordinator.poll_once())
    assert "could not be buffered and is lost (1 so far): database or disk is full" in caplog.text
    await agent._publish_cycle(await agent.coordinator.poll_once())  # the disk has room again
    assert [row.seq for row in agent.buffer.pending(10)] == [2]  # seq 1 is the gap that records the loss
    agent.buffer.close()
