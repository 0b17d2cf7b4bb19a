"""The installed services, started exactly as their systemd units would start them (ExecStart, EnvironmentFile,
WorkingDirectory): the agent against a simulated rack and the broker the controller role configured (telemetry
arrives over TLS, authenticated as gw1), and the controller with its rendered settings and the PostgreSQL database
the role created (its /healthz and /metrics see the gateway and its miners)."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml

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


@pytest.fixture(scope="module")
def simulated_rack(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    rack = deployed.rack
    log = (tmp_path_factory.mktemp("sim") / "sim.log").open("wb")
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


def start_like_systemd(unit_file: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """ExecStart with the unit's EnvironmentFile and Environment, in its WorkingDirectory."""
    unit = unit_directives(unit_file)
    env = {**os.environ, **read_env_file(Path(unit["EnvironmentFile"].lstrip("-")))}
    env.update(dict([unit["Environment"].split("=", 1)]))
    with log_path.open("wb") as log:
        return subprocess.Popen(shlex.split(unit["ExecStart"]), stdout=log, stderr=subprocess.STDOUT,
                                cwd=unit["WorkingDirectory"], env=env)


@pytest.fixture(scope="module")
def installed_agent(deployed: Deployed, rendered_broker: RenderedBroker, simulated_rack: None,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log_path = tmp_path_factory.mktemp("agent") / "agent.log"
    proc = start_like_systemd(deployed.scratch.root("gw1") / "etc/systemd/system/kuat-agent.service", log_path)
    try:
        yield log_path
    finally:
        stop(proc)


@pytest.fixture
def installed_controller(deployed: Deployed, rendered_broker: RenderedBroker, tmp_path: Path) -> Iterator[Path]:
    if deployed.postgres is None:
        pytest.skip(f"the controller needs the role's PostgreSQL database: {deployed.postgres_missing}")
    log_path = tmp_path / "controller.log"
    proc = start_like_systemd(deployed.scratch.root("ctl") / "etc/systemd/system/kuat-controller.service", log_path)
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


def test_installed_controller_ingests_the_gateways_telemetry(deployed: Deployed, installed_agent: Path,
                                                            installed_controller: Path) -> None:
    settings = yaml.safe_load((deployed.scratch.root("ctl") / "etc/kuat/controller.yaml").read_text())
    base = f"http://{settings['api']['host']}:{settings['api']['port']}"
    health = wait_for_health(base, len(deployed.rack.gw1.miners), installed_controller)
    assert health["status"] == "ok" and health["broker_connected"] is True
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    samples = re.search(r"^kuat_ingest_samples_total (\S+)$", metrics, re.M)
    assert samples and float(samples.group(1)) >= len(deployed.rack.gw1.miners), metrics[:2000]


def wait_for_health(base: str, miners: int, log: Path) -> dict[str, object]:
    """/healthz once the controller sees gw1 online and all its miners live (bounded wait)."""
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(f"{base}/healthz", timeout=5)
            last = reply.json()
            if isinstance(last, dict) and last.get("gateways_online", 0) >= 1 and last.get("devices_live", 0) >= miners:
                return last
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"controller never saw the rack: last /healthz {last}\nlog:\n{log.read_text()[-4000:]}")
