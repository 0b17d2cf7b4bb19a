"""`kuat agent probe` and `kuat agent scan` end to end: a real simulator process (`kuat sim run`) and a real
snmpsim serving the shared recordings; the commands run through click exactly as a technician types them."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.config import load_config
from sim.site import SiteFile, load_site
from tests.support.servers import free_port, wait_port
from tests.support.snmpsim import SnmpSim

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
SMALL_SITE = PROJECT / "sim" / "sites" / "small.toml"


@dataclass
class SimProcess:
    site: SiteFile
    offset: int
    miner_net: str
    pdu_net: str


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def sim_process() -> Iterator[SimProcess]:
    nets = random.sample(range(20, 251), 2)
    miner_net, pdu_net = f"127.{nets[0]}", f"127.{nets[1]}"
    site = load_site(SMALL_SITE, miner_net=miner_net, pdu_net=pdu_net)
    first_ip = site.miners[0].ip
    assert first_ip is not None
    offset = next(o for o in (random.randint(20000, 40000) for _ in range(50)) if _port_free(first_ip, 4028 + o))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kuat.cli", "sim", "run", "--site", str(SMALL_SITE), "--port-offset", str(offset),
         "--miner-net", miner_net, "--pdu-net", pdu_net, "--control-port", str(free_port()),
         "--boot-s", "0.5", "--wake-s", "0.5", "--ramp-s", "0.5"],
        cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_port(first_ip, 4028 + offset, timeout=30)
        yield SimProcess(site, offset, miner_net, pdu_net)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_probe_each_simulated_firmware(sim_process: SimProcess) -> None:
    expected = {
        "bmminer": ("Antminer", "estimated"),
        "luxos": ("Antminer", "reported"),
        "btminer": ("Whatsminer", "reported"),
    }
    for firmware, (make, source) in expected.items():
        miner = next(m for m in sim_process.site.miners if m.firmware == firmware)
        assert miner.ip is not None
        code, out, err = invoke("probe", miner.ip, "--port-offset", str(sim_process.offset))
        assert code == 0, err
        doc = json.loads(out)
        assert (doc["make"], doc["power_source"], doc["state"]) == (make, source, "mining"), doc
        assert doc["ip"] == miner.ip and doc["hashrate_ths"] > 0 and doc["power_w"] > 1000


def test_probe_simulated_pdu(sim_process: SimProcess) -> None:
    for pdu in sim_process.site.pdus:
        assert pdu.ip is not None
        code, out, err = invoke("probe", "--snmp", pdu.ip, "--snmp-port", str(161 + sim_process.offset))
        assert code == 0, err
        doc = json.loads(out)
        assert doc["family"] == pdu.family and doc["power_w"] > 1000
        assert [o["index"] for o in doc["outlets"]] == list(range(1, len(doc["outlets"]) + 1))


def test_probe_unreachable_says_so(sim_process: SimProcess) -> None:
    nobody = f"{sim_process.miner_net}.250.250"  # inside the loopback block, nothing listens there
    code, _, err = invoke("probe", nobody, "--port-offset", str(sim_process.offset), "--timeout", "1")
    assert code == 2
    assert nobody in err and ("refused" in err.lower() or "timed out" in err)


def test_probe_recorded_pdu_through_snmpsim(snmprec_dir: Path) -> None:
    with SnmpSim([snmprec_dir / "apc-cpdu.snmprec"]) as sim:
        code, out, err = invoke("probe", "--snmp", "127.0.0.1", "--snmp-port", str(sim.port), "--community", "apc-cpdu")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["family"], doc["power_w"], doc["serial"]) == ("apc_cpdu", 258.0, "5A1234Y56789")  # .32.2.4.1.4.1 = 258


def test_scan_finds_rack_and_writes_a_config_that_loads(sim_process: SimProcess, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    rack_a = [m for m in sim_process.site.miners if m.rack == "A01"]
    code, out, err = invoke(
        "scan", f"{sim_process.miner_net}.1.0/28", "--port-offset", str(sim_process.offset), "--timeout", "0.3",
        "--no-pdus", "--write-config", str(config), "--site", "small", "--gateway", "gw1",
    )  # fmt: skip
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:]]
    assert sorted(r[1] for r in rows) == sorted(m.ip for m in rack_a if m.ip)
    assert {r[2] for r in rows} == {"antminer", "luxos"}
    loaded = load_config(config)
    assert len(loaded.devices.miners) == len(rack_a) and loaded.port_offset == sim_process.offset
    pdu_ip = sim_process.site.pdus[0].ip
    assert pdu_ip is not None
    code, out, err = invoke(
        "scan", f"{pdu_ip}/32", "--port-offset", str(sim_process.offset), "--timeout", "0.5", "--no-miners"
    )
    assert code == 0, err
    assert sim_process.site.pdus[0].family in out
    before = config.read_text()
    code, _, err = invoke("scan", f"{pdu_ip}/32", "--no-miners", "--write-config", str(config))
    assert code == 2 and "--force" in err and config.read_text() == before  # an existing config is kept


def test_scan_refuses_bad_ranges() -> None:
    code, _, err = invoke("scan", "not-a-network")
    assert code == 2 and "CIDR" in err
    code, _, err = invoke("scan", "10.0.0.0/8")
    assert code == 2 and "/16" in err
