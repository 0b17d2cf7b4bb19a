"""The field tools behave: data on stdout, logs on stderr, one-line errors with exit status 2, `--json` where a table
is printed, and `kuat agent scan` of a /22 of simulated devices with a progress bar only on a terminal.

Driven through the real CLI (click's CliRunner with stderr apart, or a subprocess, through a shell pipe into jq and
a pseudo-terminal) against a real simulator process (`kuat sim run`), snmpsim and sockets that refuse or stay silent.
"""

from __future__ import annotations

import json
import os
import pty
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli as agent_cli
from kuat.cli import cli as kuat_cli
from sim.site import SiteFile, load_site
from tests.support.servers import free_port, wait_port
from tests.support.snmpsim import SnmpSim

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
RACKS = 3  # racks 1..3 of 127.N.0.0/22: 120 miners
SITE = """
[site]
name = "scan22"
gateways = ["gw1"]
""" + "".join(
    f"""
[[racks]]
name = "R{r:02d}"
gateway = "gw1"
pdus = ["apc_rpdu2", "sentry4"]
outlets_per_pdu = 20
miners = [
  {{ model = "S19j Pro", firmware = "bmminer", count = 14 }},
  {{ model = "S19j Pro", firmware = "luxos", count = 13 }},
  {{ model = "M30S", firmware = "btminer", count = 13 }},
]
"""
    for r in range(1, RACKS + 1)
)


@dataclass
class Sim:
    site: SiteFile
    offset: int
    miner_net: str
    pdu_net: str


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    site_file = tmp_path_factory.mktemp("scan22") / "scan22.toml"
    site_file.write_text(SITE)
    a, b = random.sample(range(20, 251), 2)
    miner_net, pdu_net = f"127.{a}", f"127.{b}"
    site = load_site(site_file, miner_net=miner_net, pdu_net=pdu_net)
    offset = random.randint(20000, 40000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kuat.cli", "sim", "run", "--site", str(site_file), "--port-offset", str(offset),
         "--miner-net", miner_net, "--pdu-net", pdu_net, "--control-port", str(free_port()),
         "--boot-s", "0.5", "--wake-s", "0.5", "--ramp-s", "0.5"],
        cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for miner in (site.miners[0], site.miners[-1]):
            assert miner.ip is not None
            wait_port(miner.ip, 4028 + offset, timeout=60)
        yield Sim(site, offset, miner_net, pdu_net)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(agent_cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def kuat(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuat.cli", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(PROJECT)})  # fmt: skip


def one_line_error(code: int, out: str, err: str) -> str:
    """The failure shape every field tool keeps: exit 2, nothing on stdout, one line on stderr."""
    assert code == 2, (code, out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


# ---------------------------------------------------------------- stdout is data, stderr is logs
def test_probe_pipes_into_jq_with_logs_on_stderr(sim: Sim) -> None:
    miner = sim.site.miners[0]
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    jq = shutil.which("jq") or pytest.skip("jq is not installed (scripts/bootstrap.sh installs it)")
    shell = (f"{sys.executable} -m kuat.cli --log-level debug agent probe {miner.ip} --port-offset {sim.offset}"
             f" 2>probe.log | {jq} -e .power_w")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    try:
        log = (PROJECT / "probe.log").read_text()
    finally:
        (PROJECT / "probe.log").unlink(missing_ok=True)
    assert done.returncode == 0, (done.stderr, log)
    assert float(done.stdout) > 1000  # the miner's power, as jq read it from stdout
    assert "DEBUG" in log  # the logs went to stderr


def test_pdu_probe_stdout_is_only_json(sim: Sim) -> None:
    pdu = sim.site.pdus[0]
    done = kuat("--log-level", "debug", "agent", "probe", "--snmp", pdu.ip or "", "--snmp-port",
                str(161 + sim.offset))  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["family"] == pdu.family and doc["power_source"] in ("total", "phases")
    assert "DEBUG" in done.stderr


def test_command_read_prints_json_on_stdout(sim: Sim) -> None:
    miner = sim.site.miners[1]
    done = kuat("agent", "command", miner.ip or "", "read", "--port-offset", str(sim.offset))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sample"]["ip"] == miner.ip


# ---------------------------------------------------------------- every error: one line, exit 2
def test_a_bad_address_is_refused_before_anything_is_sent() -> None:
    assert "10.0.3.999: not an IP address" in one_line_error(*invoke("probe", "10.0.3.999"))
    assert "not an IP address or a host name" in one_line_error(*invoke("probe", "--snmp", "bad host!"))
    assert "cannot resolve this host name" in one_line_error(*invoke("probe", "no-such-host.invalid"))
    assert "not an IP address" in one_line_error(*invoke("command", "10.0.3.300", "read"))


def test_a_port_in_the_address_says_where_it_belongs() -> None:
    line = one_line_error(*invoke("probe", "--snmp", "127.0.0.1:1161"))
    assert "127.0.0.1:1161: the address takes no port; give the port as --snmp-port 1161" in line
    line = one_line_error(*invoke("probe", "127.0.0.1:34028"))
    assert "--port-offset N for RPC on 4028+N (here --port-offset 30000)" in line
    line = one_line_error(*invoke("command", "[::1]:161", "outlet-off", "--outlet", "1"))
    assert "--snmp-port 161" in line


def test_refused_connections_say_so() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp = probe.getsockname()[1]  # closed again below: nothing listens on it
    line = one_line_error(*invoke("probe", "--snmp", "127.0.0.1", "--snmp-port", str(udp), "--timeout", "2"))
    assert f"connection refused (nothing listens on udp port {udp})" in line
    offset = random.randint(40000, 50000)  # 127.0.0.1:4028+N and :80+N: nothing listens there
    line = one_line_error(*invoke("probe", "127.0.0.1", "--port-offset", str(offset), "--timeout", "2"))
    assert "connection refused on tcp" in line
    line = one_line_error(*invoke("command", "127.0.0.1", "outlet-off", "--outlet", "1", "--port-offset",
                                  str(udp - 161), "--timeout", "2"))  # fmt: skip
    assert "failed:" in line and "refused" in line


def test_a_wrong_community_says_so(snmprec_dir: Path) -> None:
    with SnmpSim([snmprec_dir / "apc-cpdu.snmprec"]) as snmp:
        line = one_line_error(*invoke("probe", "--snmp", "127.0.0.1", "--snmp-port", str(snmp.port), "--community",
                                      "not-it", "--timeout", "0.3"))  # fmt: skip
    assert "no SNMP answer in 0.3 s (2 tries): wrong community, or the device is down or filtered" in line


def test_devices_that_never_answer_time_out_with_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_udp, socket.socket() as silent_tcp:
        silent_udp.bind(("127.0.0.1", 0))
        line = one_line_error(*invoke("probe", "--snmp", "127.0.0.1", "--snmp-port",
                                      str(silent_udp.getsockname()[1]), "--timeout", "0.3"))  # fmt: skip
        assert "no SNMP answer in 0.3 s" in line
        silent_tcp.bind(("127.0.0.1", 0))
        silent_tcp.listen(8)  # accepts (in the kernel) and never says a word
        offset = silent_tcp.getsockname()[1] - 4028
        if offset > 0:
            line = one_line_error(*invoke("probe", "127.0.0.1", "--port-offset", str(offset), "--timeout", "0.5"))
            assert "127.0.0.1" in line


def test_v3_options_that_make_no_sense_are_refused() -> None:
    code, out, err = invoke("probe", "--snmp", "127.0.0.1", "--v3-user", "u", "--v3-auth-key", "a" * 10,
                            "--v3-auth-protocol", "sha1024")  # fmt: skip
    assert code == 2 and out == "" and "unknown SNMPv3 auth protocol 'sha1024'" in err


# ---------------------------------------------------------------- scan
def test_scan_finds_a_slash_22_of_simulated_devices(sim: Sim) -> None:
    started = time.monotonic()
    code, out, err = invoke("scan", f"{sim.miner_net}.0.0/22", "--port-offset", str(sim.offset), "--timeout", "1",
                            "--no-pdus", "--json")  # fmt: skip
    took = time.monotonic() - started
    assert code == 0, err
    found = json.loads(out)
    assert sorted(f["ip"] for f in found) == sorted(m.ip for m in sim.site.miners if m.ip)
    assert {f["driver"] for f in found} == {"antminer", "luxos", "whatsminer"}
    # not a terminal: no bar, one count line (the time is in it, and printed here for the report)
    assert err.startswith("scanned 1022 addresses in ") and f": {len(sim.site.miners)} miner(s), 0 PDU(s)" in err
    assert "scanning" not in err and len(err.strip().splitlines()) == 1
    print(f"scan of a /22 ({len(found)} miners): {took:.1f} s")
    code, out, err = invoke("scan", f"{sim.pdu_net}.0.0/22", "--port-offset", str(sim.offset), "--timeout", "1",
                            "--no-miners", "--json")  # fmt: skip
    assert code == 0, err
    pdus = json.loads(out)
    assert sorted((p["ip"], p["driver"]) for p in pdus) == sorted((p.ip, p.family) for p in sim.site.pdus)
    assert all(p["community"] == "public" for p in pdus)


def test_scan_table_and_json_hold_the_same_devices(sim: Sim) -> None:
    rack = f"{sim.miner_net}.1.0/28"
    code, table, _ = invoke("scan", rack, "--port-offset", str(sim.offset), "--timeout", "0.5", "--no-pdus")
    assert code == 0
    code, doc, _ = invoke("scan", rack, "--port-offset", str(sim.offset), "--timeout", "0.5", "--no-pdus", "--json")
    assert code == 0
    rows = [line.split() for line in table.splitlines()[1:]]
    assert [(r[1], r[2]) for r in rows] == [(f["ip"], f["driver"]) for f in json.loads(doc)]
    assert table.splitlines()[0].split() == ["KIND", "IP", "DRIVER/FAMILY", "MODEL", "FIRMWARE", "COMMUNITY"]


def test_scan_shows_a_progress_bar_on_a_terminal(sim: Sim) -> None:
    """stderr on a pseudo-terminal: click's bar with the label and the count; stdout (a pipe) holds the table."""
    main, tty = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kuat.cli", "agent", "scan", f"{sim.miner_net}.1.0/27", "--port-offset",
             str(sim.offset), "--timeout", "0.5", "--no-pdus"],
            cwd=PROJECT, stdout=subprocess.PIPE, stderr=tty, text=True,
        )  # fmt: skip
        os.close(tty)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the terminal closed: the command is done
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(main)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert f"scanning {sim.miner_net}.1.0/27" in text and "30/30" in text  # the bar, label and position
    assert out.splitlines()[0].startswith("KIND")  # the data stayed on stdout


# ---------------------------------------------------------------- the other CLIs' data commands
def test_sim_sites_json() -> None:
    result = CliRunner().invoke(kuat_cli, ["sim", "sites", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    sites = {Path(s["path"]).name: s for s in json.loads(result.stdout)}
    assert sites["small.toml"]["miners"] == 20 and sites["small.toml"]["pdus"] == 3  # sim/sites/small.toml
    assert sites["container-1000.toml"]["miners"] == 1000


def test_registry_import_and_verify_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    csv_file = tmp_path / "machines.csv"
    csv_file.write_text("serial,owner_bin,dpc\nA-1,180340021791,Nowhere\n")
    runner = CliRunner()
    dry = runner.invoke(kuat_cli, ["registry", "import", "--database-url", url, "--json", str(csv_file)])
    assert dry.exit_code == 1  # a row in error, as without --json
    report = json.loads(dry.stdout)
    assert report["applied"] is False and report["rows"][0]["line"] == 2 and report["rows"][0]["action"] == "error"
    assert any("unknown licensee BIN 180340021791" in e["reason"] for e in report["rows"][0]["errors"])
    checked = runner.invoke(kuat_cli, ["registry", "verify", "--database-url", url, "--json"])
    assert checked.exit_code == 0, checked.stderr
    assert json.loads(checked.stdout)["intact"] is True
