"""The installed agent, started exactly as its systemd unit would start it (ExecStart, EnvironmentFile,
WorkingDirectory), against a simulated rack and the broker the controller role configured: telemetry arrives, over
TLS, authenticated as gw1, and the controller's MQTT user can read it."""

from __future__ import annotations

import importlib.util
import os
import queue
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from kuat.wire import v1
from tests.deploy.conftest import Deployed, RenderedBroker
from tests.deploy.mqtt_clients import TlsClient
from tests.deploy.scratch import PROJECT, read_env_file
from tests.support.servers import free_port, wait_port

pytestmark = pytest.mark.integration

ARRIVAL_DEADLINE_S = 90.0  # bounded wait for a complete telemetry batch (fails, never passes, on expiry)

for module in ("agent.cli_daemon", "sim.server"):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this checkout yet: the installed-agent test needs it", allow_module_level=True)


def unit_directives(unit: Path) -> dict[str, str]:
    directives: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            directives.setdefault(key, value)
    return directives


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def simulated_rack(deployed: Deployed, tmp_path: Path) -> Iterator[None]:
    rack = deployed.rack
    log = (tmp_path / "sim.log").open("wb")
    cmd = [
        sys.executable, "-m", "kuat.cli", "sim", "run", "--site", str(rack.site_file),
        "--port-offset", str(rack.port_offset), "--miner-net", rack.miner_net, "--pdu-net", rack.pdu_net,
        "--control-port", str(free_port()), "--boot-s", "1", "--wake-s", "1", "--ramp-s", "1",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT)
    try:
        for miner in rack.gw1.miners:
            wait_port(miner["ip"], 4028 + rack.port_offset, timeout=30)
        yield
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def installed_agent(deployed: Deployed, rendered_broker: RenderedBroker, simulated_rack: None,
                    tmp_path: Path) -> Iterator[Path]:
    root = deployed.scratch.root("gw1")
    unit = unit_directives(root / "etc/systemd/system/kuat-agent.service")
    env = {**os.environ, **read_env_file(Path(unit["EnvironmentFile"].lstrip("-")))}
    env.update(dict([unit["Environment"].split("=", 1)]))
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(shlex.split(unit["ExecStart"]), stdout=log, stderr=subprocess.STDOUT,
                                cwd=unit["WorkingDirectory"], env=env)
    try:
        yield log_path
    finally:
        stop(proc)


def test_installed_agent_publishes_the_racks_telemetry(deployed: Deployed, rendered_broker: RenderedBroker,
                                                        installed_agent: Path) -> None:
    controller = TlsClient(rendered_broker, "kuat-controller", deployed.scratch.passwords["kuat-controller"])
    assert controller.connect() == mqtt.ReasonCode(mqtt.PacketTypes.CONNACK, "Success")
    try:
        controller.subscribe(v1.topic(deployed.scratch.site, "gw1", "telemetry"))
        batch = wait_for_complete_batch(controller, {m["ip"] for m in deployed.rack.gw1.miners}, installed_agent)
    finally:
        controller.close()
    assert (batch.site, batch.gateway) == (deployed.scratch.site, "gw1")
    assert all(m.hashrate_ths and m.hashrate_ths > 0 for m in batch.miners)
    pdu_ids = {p["id"] for p in deployed.rack.gw1.pdus}
    assert {p.device_id for p in batch.pdus if p.available} == pdu_ids
    outlets = {m.ip: (m.outlet.pdu, m.outlet.outlet) for m in batch.miners if m.outlet}
    assert outlets == {ip: (o["pdu"], o["outlet"]) for ip, o in deployed.rack.gw1.outlet_map.items()}


def wait_for_complete_batch(controller: TlsClient, ips: set[str], agent_log: Path) -> v1.TelemetryBatch:
    """The first batch in which every miner of the rack is available and hashing."""
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    last: v1.TelemetryBatch | None = None
    while time.monotonic() < deadline:
        try:
            msg = controller.messages.get(timeout=1.0)
        except queue.Empty:
            continue
        last = v1.TelemetryBatch.model_validate_json(msg.payload)
        hashing = {m.ip for m in last.miners if m.available and (m.hashrate_ths or 0) > 0}
        if hashing == ips and not last.historical:
            return last
    seen = last.model_dump_json(include={"seq", "miners"})[:2000] if last else "no telemetry at all"
    raise AssertionError(f"no complete batch within {ARRIVAL_DEADLINE_S}s; last: {seen}\n"
                         f"agent log:\n{agent_log.read_text()[-4000:]}")
