"""The simulator process around the miners: the JSON control API, and `kuat sim run/fault/sites` as a user runs them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sim.cli import cli
from sim.server import SimConfig, SimServer
from sim.site import load_site
from tests.sim.conftest import SMALL_SITE, rpc, rpc_raw
from tests.support.servers import free_port, loopback_nets, wait_port

KUAT = [sys.executable, "-m", "kuat.cli"]


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    miner_net, pdu_net = loopback_nets(2)
    site = load_site(SMALL_SITE, miner_net=miner_net, pdu_net=pdu_net)
    srv = SimServer(site, SimConfig(port_offset=32000, control_port=0, serve_pdus=False, boot_s=0.5, ramp_s=0.5))
    await srv.start()
    yield srv
    await srv.stop()


async def test_state_reports_totals_and_phases(server: SimServer) -> None:
    assert server.control is not None
    async with httpx.AsyncClient(timeout=10) as client:
        state = (await client.get(f"{server.control.url}/state")).json()
    site = server.site
    assert state["site"] == "small" and len(state["miners"]) == 20 and len(state["pdus"]) == 3
    assert state["power_w"] == pytest.approx(site.power_w(), rel=0.01)
    assert state["hashrate_ths"] == pytest.approx(site.hashrate_ths(), rel=0.01)
    assert {m["phase"] for m in state["miners"]} == {"mining"}
    assert sum(m["power_w"] for m in state["miners"]) == pytest.approx(state["power_w"], rel=0.01)


async def test_fault_endpoint_injects_and_clears(server: SimServer) -> None:
    assert server.control is not None
    m = server.site.miners[0]
    port = server.miners.opts.rpc
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(f"{server.control.url}/fault", json={"target": m.serial, "fault": "offline"})
        assert resp.status_code == 200 and resp.json() == {"target": m.serial, "fault": "offline", "on": True}
        try:
            assert await rpc_raw(m.ip, port, {"command": "summary"}) == b""
        except ConnectionError:
            pass
        state = (await client.get(f"{server.control.url}/state")).json()
        assert state["miners"][0]["faults"] == ["offline"]
        await client.post(f"{server.control.url}/fault", json={"target": m.ip, "fault": "offline", "on": False})
        assert "SUMMARY" in await rpc(m.ip, port, "summary")
        pdu = server.site.pdus[0]
        assert (await client.post(f"{server.control.url}/fault",
                                  json={"target": pdu.d.id, "fault": "offline"})).status_code == 200
        assert pdu.offline is True


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("POST", "/fault", b"{not json", 400, "not JSON"),
    ("POST", "/fault", b'{"target": "127.1.1.1", "fault": "melted"}', 400, "unknown fault"),
    ("POST", "/fault", b'{"target": "nobody", "fault": "offline"}', 404, "no miner or PDU"),
    ("POST", "/fault", b'{"target": "pdu-a01-1", "fault": "hashboard"}', 400, "only the 'offline'"),
    ("POST", "/fault", b'{"target": "x", "fault": "offline", "on": "yes"}', 400, "true or false"),
    ("GET", "/fault", b"", 405, "POST /fault"),
    ("GET", "/nowhere", b"", 404, "GET /state"),
])
async def test_control_api_rejects_bad_requests_clearly(server: SimServer, method: str, path: str, body: bytes,
                                                        status: int, says: str) -> None:
    assert server.control is not None
    faults_before = [set(m.phys.faults) for m in server.site.miners]
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.request(method, f"{server.control.url}{path}", content=body)
    assert resp.status_code == status
    assert says in resp.json()["error"]
    assert [set(m.phys.faults) for m in server.site.miners] == faults_before  # bad input changes nothing


def test_sites_lists_bundled_files() -> None:
    out = CliRunner().invoke(cli, ["sites"])
    assert out.exit_code == 0
    assert "small.toml  20 miners (6 bmminer, 8 btminer, 6 luxos), 3 PDUs" in out.output
    assert "container-1000.toml  1000 miners" in out.output


def test_run_rejects_a_bad_site_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[miners]]\nmodel = "S19j Pro"\nfirmware = "btminer"\n')
    out = CliRunner().invoke(cli, ["run", "--site", str(bad)])
    assert out.exit_code != 0
    assert "firmware btminer does not run on a Antminer" in out.output


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_kuat_sim_run_serves_takes_faults_and_stops_on_sigterm() -> None:
    control = free_port()
    net, pdu_net = loopback_nets(2)
    proc = subprocess.Popen(
        [*KUAT, "sim", "run", "--site", str(SMALL_SITE), "--port-offset", "33000", "--control-port", str(control),
         "--miner-net", net, "--pdu-net", pdu_net, "--boot-s", "0.5", "--ramp-s", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "KUAT_LOG_LEVEL": "info"},
    )
    try:
        wait_port("127.0.0.1", control, timeout=30)
        state = get_json(f"http://127.0.0.1:{control}/state")
        ip = state["miners"][0]["ip"]
        assert ip.startswith(net + ".")
        fault = subprocess.run([*KUAT, "sim", "fault", ip, "hashboard", "--control", f"http://127.0.0.1:{control}"],
                               capture_output=True, text=True, timeout=60)
        assert fault.returncode == 0, fault.stderr
        assert fault.stdout.strip() == f"hashboard set on {ip}"
        assert get_json(f"http://127.0.0.1:{control}/state")["miners"][0]["faults"] == ["hashboard"]
        refused = subprocess.run([*KUAT, "sim", "fault", "127.0.0.9", "offline", "--control",
                                  f"http://127.0.0.1:{control}"], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "no miner or PDU '127.0.0.9'" in refused.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"bmminer      6       {net}.1.1 .. {net}.1.6" in out
    assert f"control API: http://127.0.0.1:{control}" in out
    assert "simulator stopped" in out
    with pytest.raises(urllib.error.URLError):
        get_json(f"http://127.0.0.1:{control}/state")


async def test_faults_from_the_site_file_shape_the_wire(tmp_path: Path) -> None:
    site_file = tmp_path / "faulty.toml"
    site_file.write_text(
        '[[miners]]\nmodel = "S19j Pro"\nfirmware = "bmminer"\nfaults = ["string_numbers"]\n'
        '[[miners]]\nmodel = "M30S"\nfirmware = "btminer"\nfaults = ["offline"]\n'
    )
    site = load_site(site_file, miner_net=f"127.{random.randint(20, 250)}")
    srv = SimServer(site, SimConfig(port_offset=34000, control_port=None, serve_pdus=False))
    await srv.start()
    try:
        quoted, offline = srv.site.miners
        stats = await rpc(quoted.ip, srv.miners.opts.rpc, "stats")
        assert isinstance(stats["STATS"][1]["GHS 5s"], str)
        try:
            assert await rpc_raw(offline.ip, srv.miners.opts.rpc, {"command": "summary"}) == b""
        except ConnectionError:
            pass
    finally:
        await srv.stop()


async def test_an_address_in_use_is_named_and_nothing_is_left_open(server: SimServer) -> None:
    twin = SimServer(server.site.file, SimConfig(port_offset=32000, control_port=None, serve_pdus=False))
    with pytest.raises(OSError, match=r"cannot listen on 127\.\d+\.1\.1:36028"):
        await twin.start()
    assert twin.miners.servers == []  # what it had opened is closed again
    m = server.site.miners[0]
    assert "SUMMARY" in await rpc(m.ip, server.miners.opts.rpc, "summary")  # the first one is unharmed
