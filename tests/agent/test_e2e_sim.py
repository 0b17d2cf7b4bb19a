"""End to end: the agent with its real drivers against the simulated site (sim.server: bmminer, LuxOS and Whatsminer
miners over their real protocols; APC, Raritan and Sentry PDUs over SNMP) and a real mosquitto.

Telemetry for every device arrives with the simulator's values and the right power source; every command kind is
applied, acked and visible in telemetry; a broker restart loses nothing; lease expiry puts the site in its safe
state; `kuat agent run` stops cleanly on SIGTERM and its last will says offline when it is killed.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import agent.drivers  # noqa: F401  (before agent.transport: the two import each other)
from agent.config import AgentConfig, config_from_dict
from agent.outlet_map import Verdict
from kuat.wire import v1
from sim.agent_config import agent_config_dict
from sim.runtime import SimMiner
from sim.server import SimConfig, SimServer
from sim.site import SiteFile, load_site
from tests.agent.mqtt_support import Controller, running_agent, wait_until
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PROJECT = Path(__file__).resolve().parents[2]
SMALL_SITE = PROJECT / "sim" / "sites" / "small.toml"
PORT_OFFSET = 31000  # miners on 4028+N / 80+N, PDUs on UDP 161+N, each device on its own 127.x address
KEEP_USER = "user root\n" if os.geteuid() == 0 else ""


@dataclass
class Sim:
    server: SimServer
    site_file: SiteFile

    def by_mac(self, mac: str) -> SimMiner:
        return next(m for m in self.server.site.miners if m.d.mac == mac)

    def first(self, firmware: str) -> SimMiner:
        return next(m for m in self.server.site.miners if m.d.firmware == firmware)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    """small.toml (20 miners, 3 PDUs of 3 families) on random loopback blocks, quick boot/wake physics."""
    # (the SNMP transport keeps one pysnmp engine per event loop: each pytest-asyncio test gets its own)
    last: OSError | None = None
    for _ in range(8):
        net = random.randint(20, 240)
        site_file = load_site(SMALL_SITE, miner_net=f"127.{net}", pdu_net=f"127.{net + 1}")
        server = SimServer(site_file, SimConfig(port_offset=PORT_OFFSET, speed=1.0, control_port=None, boot_s=0.5,
                                                wake_s=0.5, ramp_s=0.5, sleep_s=0.2))
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
            continue
        try:
            yield Sim(server, site_file)
        finally:
            await server.stop()
        return
    raise RuntimeError(f"no free loopback block: {last}")


def _config(sim: Sim, broker_port: int, tmp_path: Path, **extra: Any) -> AgentConfig:
    data = agent_config_dict(sim.site_file, None, broker_port=broker_port, buffer_path=tmp_path / "buf.sqlite",
                             port_offset=PORT_OFFSET, interval_s=0.5)
    data.update(site="e2e", gateway="gw1")  # the whole site (both gateways' racks) on one agent
    data["poll"]["device_timeout_s"] = 5.0
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(data)


async def _live(ctl: Controller, pred: Any, what: str, timeout_s: float = 30.0) -> v1.TelemetryBatch:
    """The first live batch, produced from now on, that satisfies `pred` (`what`: for the failure message)."""
    try:
        return await ctl.batch_after(time.time(), pred, timeout_s=timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}; last batch: {ctl.latest()}") from None


def _miner(batch: v1.TelemetryBatch, device_id: str) -> v1.MinerSample:
    return next(m for m in batch.miners if m.device_id == device_id)


async def test_telemetry_for_every_device_matches_the_simulator(sim: Sim, broker: Mosquitto, tmp_path: Path) -> None:
    cfg = _config(sim, broker.port, tmp_path)
    # two miners without an outlet in the map: stock Antminer (no power reading: estimated), Whatsminer (reported)
    unmapped = {sim.first("bmminer").d.mac, sim.first("btminer").d.mac}
    for m in cfg.devices.miners:
        if m.id in unmapped:
            m.outlet = None
    ctl = Controller(broker.port, "e2e", "gw1")
    try:
        async with running_agent(cfg):
            batch = await _live(ctl, lambda b: all(m.available for m in b.miners) and all(p.available for p in b.pdus),
                                "every device answering")
    finally:
        ctl.close()
    assert len(batch.miners) == 20 and len(batch.pdus) == 3
    assert {p.family for p in batch.pdus} == {"apc_rpdu2", "raritan_px2", "sentry4"}
    firmware_names = {"bmminer": "bmminer", "luxos": "luxos", "btminer": "btminer"}
    for sample in batch.miners:
        simulated = sim.by_mac(sample.device_id)
        d = simulated.d
        assert sample.ip == d.ip
        # identity as far as each firmware tells it (LuxOS gives no MAC/serial over RPC, Whatsminer no serial)
        assert sample.mac in (None, d.mac) and sample.serial in (None, d.serial)
        assert (sample.mac, sample.serial) != (None, None) or d.firmware == "luxos"
        assert sample.model is not None and sample.model.startswith(d.model), sample  # Whatsminer: M30SV40
        assert sample.firmware is not None and firmware_names[d.firmware] in sample.firmware.lower()
        assert sample.state == v1.MinerState.MINING
        assert sample.hashrate_ths == pytest.approx(simulated.phys.hashrate_ths(), rel=0.05)
        if d.mac in unmapped:
            expected = v1.PowerSource.ESTIMATED if d.firmware == "bmminer" else v1.PowerSource.REPORTED
            assert sample.power_source == expected and sample.outlet is None
        else:
            assert sample.power_source == v1.PowerSource.PDU
            assert sample.outlet == v1.OutletRef(pdu=d.pdu or "", outlet=d.outlet or 0)
        assert sample.power_w == pytest.approx(simulated.phys.power_w(), rel=0.05)
    for pdu in batch.pdus:
        simulated_pdu = next(p for p in sim.server.site.pdus if p.d.id == pdu.device_id)
        assert pdu.power_w == pytest.approx(simulated_pdu.power_w(), rel=0.05)
        assert sum(o.power_w or 0 for o in pdu.outlets) == pytest.approx(pdu.power_w, rel=0.05)


async def test_every_command_kind_is_applied_acked_and_visible(sim: Sim, broker: Mosquitto, tmp_path: Path) -> None:
    bm, lux, wm = sim.first("bmminer"), sim.first("luxos"), sim.first("btminer")
    bm_id, lux_id, wm_id = bm.d.mac or "", lux.d.mac or "", wm.d.mac or ""
    ctl = Controller(broker.port, "e2e", "gw1")
    sent = 0

    async def command(kind: v1.CommandKind, **fields: Any) -> v1.Ack:
        nonlocal sent
        sent += 1
        cmd = v1.Command(id=f"e2e-{sent}", kind=kind, **fields)
        ctl.send(cmd)
        ack = await ctl.ack_for(cmd.id, timeout_s=30)
        assert ack.status == v1.AckStatus.APPLIED, ack
        return ack

    try:
        async with running_agent(_config(sim, broker.port, tmp_path)) as agent:
            await _live(ctl, lambda b: all(m.available for m in b.miners), "all up")

            await command(v1.CommandKind.SLEEP, device_id=bm_id)
            b = await _live(ctl, lambda b: _miner(b, bm_id).state == v1.MinerState.SLEEPING
                            and (_miner(b, bm_id).power_w or 0) < 200, "bmminer asleep, its outlet near idle")
            assert (_miner(b, bm_id).hashrate_ths or 0) == 0
            assert agent.fleet.outlets.verdict(bm_id) == Verdict.CONFIRMED  # its outlet's power dropped as it slept
            await command(v1.CommandKind.WAKE, device_id=bm_id)
            await _live(ctl, lambda b: (_miner(b, bm_id).hashrate_ths or 0) > 0, "bmminer hashing again")

            await command(v1.CommandKind.SET_POWER_TARGET, device_id=wm_id, power_w=2600)  # reboots a Whatsminer
            b = await _live(ctl, lambda b: _miner(b, wm_id).power_limit_w == 2600 and _miner(b, wm_id).state ==
                            v1.MinerState.MINING, "the Whatsminer at its new limit")
            assert (_miner(b, wm_id).power_w or 0) < 2700

            await command(v1.CommandKind.REBOOT, device_id=lux_id)
            await _live(ctl, lambda b: _miner(b, lux_id).state != v1.MinerState.MINING
                        or (_miner(b, lux_id).uptime_s or 99) < 30, "the LuxOS miner rebooting")

            await command(v1.CommandKind.OUTLET_OFF, device_id=bm.d.pdu, outlet=bm.d.outlet)
            b = await _live(ctl, lambda b: not _miner(b, bm_id).available and _miner(b, bm_id).power_w == 0.0,
                            "the miner unpowered, its outlet at 0 W")
            assert _miner(b, bm_id).power_source == v1.PowerSource.PDU
            await command(v1.CommandKind.OUTLET_ON, device_id=bm_id)  # by the miner's id, through the outlet map
            await _live(ctl, lambda b: _miner(b, bm_id).available, "the miner powered again")
            await command(v1.CommandKind.OUTLET_CYCLE, device_id=bm_id)
            await _live(ctl, lambda b: _miner(b, bm_id).available and (_miner(b, bm_id).hashrate_ths or 0) > 0,
                        "the miner back after a power cycle")

            ack = await command(v1.CommandKind.SETPOINTS, lease_s=120, setpoints=[
                v1.Setpoint(device_id=lux_id, mode=v1.SetpointMode.SLEEP),
                v1.Setpoint(device_id=wm_id, mode=v1.SetpointMode.POWER_TARGET, power_w=3000),
                v1.Setpoint(device_id=bm_id, mode=v1.SetpointMode.RUN),
            ])
            assert [i.status for i in ack.items] == [v1.AckStatus.APPLIED] * 3
            b = await _live(ctl, lambda b: _miner(b, lux_id).state == v1.MinerState.SLEEPING
                            and _miner(b, wm_id).power_limit_w == 3000, "the setpoints in effect")
            assert b.lease is not None and b.lease.batch_id == ack.command_id and not b.lease.failsafe_active

            ctl.send(v1.Command(id="e2e-unsupported", kind=v1.CommandKind.SET_POWER_TARGET, device_id=bm_id,
                                power_w=2000))
            rejected = await ctl.ack_for("e2e-unsupported", timeout_s=30)
            assert rejected.status == v1.AckStatus.REJECTED and "power target" in (rejected.reason or "")
    finally:
        ctl.close()


async def test_lease_expiry_puts_the_simulated_site_in_its_safe_state(sim: Sim, broker: Mosquitto,
                                                                     tmp_path: Path) -> None:
    protected = sim.first("btminer").d.mac or ""
    cfg = _config(sim, broker.port, tmp_path, failsafe={"grace_s": 0.5})
    next(m for m in cfg.devices.miners if m.id == protected).protected = True
    ctl = Controller(broker.port, "e2e", "gw1")
    try:
        async with running_agent(cfg):
            first = await _live(ctl, lambda b: all(m.available for m in b.miners), "all up")
            run_all = [v1.Setpoint(device_id=m.device_id, mode=v1.SetpointMode.RUN) for m in first.miners]
            ctl.send(v1.Command(id="lease-1", kind=v1.CommandKind.SETPOINTS, setpoints=run_all, lease_s=2))
            assert (await ctl.ack_for("lease-1", timeout_s=30)).status == v1.AckStatus.APPLIED
            def safe_state(b: v1.TelemetryBatch) -> bool:
                others = [m for m in b.miners if m.device_id != protected]
                asleep_w = sum(m.power_w or 0 for m in others)  # measured at the outlets
                return bool(b.lease and b.lease.failsafe_active) and asleep_w < len(others) * 200 and all(
                    m.state == v1.MinerState.SLEEPING for m in others)  # sleeping miners draw tens of watts each

            safe = await _live(ctl, safe_state, "safe state", 60)
    finally:
        ctl.close()
    assert _miner(safe, protected).state == v1.MinerState.MINING
    assert all(m.power_source == v1.PowerSource.PDU for m in safe.miners)
    assert sum(m.phys.power_w() for m in sim.server.site.miners if m.d.mac != protected) < 19 * 200


async def test_broker_restart_loses_nothing(sim: Sim, tmp_path: Path) -> None:
    broker = Mosquitto()
    broker.conf.write_text(broker.conf.read_text().replace("persistence false", "persistence true")
                           + f"persistence_location {broker.dir}/\n{KEEP_USER}")
    broker.start()
    ctl = Controller(broker.port, "e2e", "gw1", client_id="e2e-sf-watch", persistent=True)
    try:
        async with running_agent(_config(sim, broker.port, tmp_path)) as agent:
            await wait_until(lambda: len(ctl.batches) >= 2, 30, "telemetry before the outage")
            broker.stop()
            await wait_until(lambda: agent.buffer.count() >= 4, 30, "batches buffered during the outage")
            broker.start()
            await wait_until(lambda: agent.buffer.count() == 0 and agent.publisher.replayed > 0, 30, "replay")
            last = agent.coordinator.cycles
            await wait_until(lambda: max(b.seq for b in ctl.batches) >= last, 30, "all batches delivered")
    finally:
        ctl.close()
        broker.__exit__(None, None, None)
    seqs = {b.seq for b in ctl.batches}
    assert sorted(seqs) == list(range(1, max(seqs) + 1))
    assert any(b.historical for b in ctl.batches)
    assert all(len(b.miners) == 20 and len(b.pdus) == 3 for b in ctl.batches)


async def test_daemon_sigterm_is_clean_and_sigkill_leaves_the_will(sim: Sim, broker: Mosquitto,
                                                                   tmp_path: Path) -> None:
    cfg_path = tmp_path / "agent.yaml"
    data = agent_config_dict(sim.site_file, None, broker_port=broker.port, buffer_path=tmp_path / "buf.sqlite",
                             port_offset=PORT_OFFSET, interval_s=0.5)
    data.update(site="e2e", gateway="gw1")
    cfg_path.write_text(yaml.safe_dump(data))
    ctl = Controller(broker.port, "e2e", "gw1")
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kuat.cli", "agent", "run", "--config", str(cfg_path),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=PROJECT,
            )
            try:
                before = len(ctl.batches)
                await wait_until(lambda before=before: len(ctl.batches) >= before + 2, 60, "daemon telemetry")
                await wait_until(lambda: bool(ctl.states) and ctl.states[-1].online, 10, "online state")
                proc.send_signal(sig)
                out, _ = await asyncio.wait_for(proc.communicate(), 30)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            await wait_until(lambda: not ctl.states[-1].online, 30, f"offline state after {sig.name}")
            if sig == signal.SIGTERM:
                assert proc.returncode == 0, out.decode()[-2000:]
                text = out.decode()
                assert "SIGTERM received" in text and "agent stopped after" in text
    finally:
        ctl.close()


async def _kuat(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "kuat.cli", *args, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, cwd=PROJECT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode()


def _json_tail(text: str) -> Any:
    return json.loads(text[text.index("\n{") + 1 if not text.startswith("{") else 0:])


async def test_command_cli_acts_on_one_simulated_device(sim: Sim) -> None:
    lux = sim.first("luxos")
    offset = str(PORT_OFFSET)
    code, out = await _kuat("agent", "command", lux.d.ip or "", "sleep", "--port-offset", offset)
    assert code == 0, out
    result = _json_tail(out)
    assert result["status"] == "applied" and result["sample"]["ip"] == lux.d.ip
    await wait_until(lambda: lux.phys.is_sleeping, 10, "the simulated LuxOS miner asleep")

    bm = sim.first("bmminer")
    pdu = next(p for p in sim.server.site.pdus if p.d.id == bm.d.pdu)
    code, out = await _kuat("agent", "command", pdu.ip, "outlet-off", "--outlet", str(bm.d.outlet),
                            "--port-offset", offset)
    assert code == 0, out
    assert _json_tail(out)["outlet_now"]["state"] == "off"
    assert not pdu.outlet(bm.d.outlet or 0).on and not bm.phys.reachable

    wm = sim.first("btminer")
    code, out = await _kuat("agent", "command", bm.d.ip or "", "power-target", "--watts", "2000", "--port-offset",
                            offset)
    assert code == 2 and "failed:" in out  # its outlet is off now: it cannot answer
    code, out = await _kuat("agent", "command", sim.first("bmminer").d.ip or "", "read", "--port-offset", offset)
    assert code == 2 and "did not answer" in out
    other_bm = [m for m in sim.server.site.miners if m.d.firmware == "bmminer"][1]
    code, out = await _kuat("agent", "command", other_bm.d.ip or "", "power-target", "--watts", "2000",
                            "--port-offset", offset)
    assert code == 2 and "rejected:" in out and "power target" in out
    code, out = await _kuat("agent", "command", wm.d.ip or "", "outlet-on", "--port-offset", offset)
    assert code == 2 and "needs --outlet" in out


async def test_crossed_outlet_cables_are_found_when_a_miner_sleeps(sim: Sim, broker: Mosquitto, tmp_path: Path) -> None:
    """The config swaps two miners' outlets; sleeping one of them shows the map is wrong."""
    a, b = [m for m in sim.server.site.miners if m.d.firmware == "luxos"][:2]
    cfg = _config(sim, broker.port, tmp_path)
    cfg_a = next(m for m in cfg.devices.miners if m.id == a.d.mac)
    cfg_b = next(m for m in cfg.devices.miners if m.id == b.d.mac)
    cfg_a.outlet, cfg_b.outlet = cfg_b.outlet, cfg_a.outlet
    a_id = a.d.mac or ""
    ctl = Controller(broker.port, "e2e", "gw1")
    try:
        async with running_agent(cfg) as agent:
            agent.fleet.outlets.contradiction_span_s = 3.0  # not the production 30 s: the sim sleeps in about 1 s
            await _live(ctl, lambda batch: all(m.available for m in batch.miners), "all up")
            ctl.send(v1.Command(id="x-1", kind=v1.CommandKind.SLEEP, device_id=a_id))
            assert (await ctl.ack_for("x-1", timeout_s=30)).status == v1.AckStatus.APPLIED
            batch = await _live(ctl, lambda batch: any("outlet map mismatch" in e for e in _miner(batch, a_id).errors),
                                "the mismatch reported")
            assert agent.fleet.outlets.verdict(a_id) == Verdict.MISMATCH
    finally:
        ctl.close()
    asleep = _miner(batch, a_id)
    assert asleep.state == v1.MinerState.SLEEPING
    assert asleep.power_source != v1.PowerSource.PDU  # the wrong outlet's reading is not passed off as its power
