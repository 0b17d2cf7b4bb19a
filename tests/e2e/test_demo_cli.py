"""`kuat demo` without a browser: on the embedded amqtt broker (a machine without mosquitto), the scripted grid
day (schedule, emergency cut to 30 %, lifted), the seeded registry, a clean stop by --duration; clear errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.demo_support import ROOT, SMALL_SITE, kill_if_running, launch_demo, poll
from tests.support.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

SMALL = SMALL_SITE


def kuat(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuat.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)  # fmt: skip


def test_demo_on_amqtt_plays_the_grid_day_and_stops_by_itself(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    proc = launch_demo(out, "--broker", "amqtt", "--site", str(SMALL), "--speed", "20", "--port", str(free_port()),
                       "--work-dir", str(tmp_path / "run"), "--duration", "50", "--poll-s", "2",
                       "--emergency-after", "1", "--emergency-minutes", "4")  # fmt: skip
    try:
        banner = poll(lambda: re.search(r"Dashboard:\s+(\S+)/ui#key=(\S+)", out.read_text()), "the banner", 120,
                      log=out)
        base, key = banner.group(1), banner.group(2)
        text = out.read_text()
        for role in ("operator", "regulator", "grid"):
            assert re.search(rf"^\s+{role}\s+demo-{role}-\S+$", text, re.M), f"the {role} key is printed"
        client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10)

        def live_and_sighted() -> list[dict[str, Any]]:
            rows = client.get("/api/v1/dashboard/fleet").json()
            pending = sum(r["registration"] == "pending" for r in rows)  # sighted, not in the seeded registry
            return rows if len(rows) == 20 and all(r["power_w"] for r in rows) and pending == 4 else []

        rows = poll(live_and_sighted, "20 live miners through amqtt, 4 of them pending registration", 60)
        # the other 16 are the seeded ones
        assert sum(r["registration"] == "registered" for r in rows) == 16

        def lifted() -> list[dict[str, Any]]:
            orders = client.get("/api/v1/quota/small/emergencies").json()["emergencies"]
            return [o for o in orders if o["reference"] == "KEGOC-DEMO-1" and o["lifted_at"]]

        (order,) = poll(lifted, "the scripted emergency order, then its lifting", 60)
        assert order["share_pct"] == 30 and order["lifted_by"] == "grid:demo-grid"
        schedules = client.get("/api/v1/quota/small/schedules").json()
        assert schedules  # the day-ahead schedule(s) pushed by the script
        pending = client.get("/api/v1/dashboard/registry").json()["pending"]
        assert len(pending) == 4  # --unregistered default: four machines that report a serial are left out
        with client.stream("GET", "/api/v1/dashboard/stream", timeout=120) as stream:  # key in a header
            assert any(line == "event: snapshot" for line in stream.iter_lines())  # a dashboard stays open...
            proc.wait(timeout=120)  # ...while --duration 50 stops the demo
    finally:
        kill_if_running(proc)
    log = out.read_text()
    assert proc.returncode == 0, log[-3000:]
    assert "broker stopped" in log and "demo stopped" in log
    assert "controller stopped (exit 0)" in log  # the open stream did not hold the controller's shutdown
    assert (tmp_path / "run" / "logs" / "broker.log").read_text().count("amqtt broker listening") == 1


def test_demo_help_and_clear_errors(tmp_path: Path) -> None:
    help_text = kuat("demo", "--help").stdout
    for option in ("--speed", "--duration", "--open", "--site", "--broker"):
        assert option in help_text
    bad_site = tmp_path / "bad.toml"
    bad_site.write_text('[[racks]]\nname = "A"\nminers = [{model = "NoSuchMiner", firmware = "bmminer", count = 1}]\n')
    result = kuat("demo", "--sites", "1", "--site", str(bad_site),
                  "--work-dir", str(tmp_path / "w"), "--port", str(free_port()))
    assert result.returncode != 0 and "NoSuchMiner" in result.stderr + result.stdout
    assert not (tmp_path / "w").exists(), "a bad site file is refused before anything starts"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = kuat("demo", "--sites", "1", "--site", str(SMALL), "--work-dir", str(precious), "--port", str(free_port()))
    assert result.returncode != 0 and "not a demo work dir" in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = kuat("demo", "--sites", "1", "--site", str(SMALL),
                      "--port", str(port), "--work-dir", str(tmp_path / "w2"))
    assert result.returncode != 0 and f"port {port}" in result.stderr


def test_ctrl_c_while_starting_stops_every_part(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    proc = launch_demo(out, "--site", str(SMALL), "--port", str(free_port()), "--work-dir", str(tmp_path / "run"))
    try:
        poll(lambda: "started controller" in out.read_text(), "the controller's start", 120)
        second = kuat("demo", "--sites", "1", "--site", str(SMALL),
                      "--port", str(free_port()), "--work-dir", str(tmp_path / "run"))
        assert second.returncode != 0 and f"another demo (pid {proc.pid})" in second.stderr
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        kill_if_running(proc)
    log = out.read_text()
    assert proc.returncode == 0, log[-3000:]
    pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", log)]
    assert len(pids) >= 3  # broker, sim, controller at least
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # every part is gone (reaped by the demo)
    assert "SIGINT received" in log and "demo stopped" in log


def test_a_killed_demo_leaves_no_part_running(tmp_path: Path) -> None:
    """SIGKILL gives the demo no chance to stop its parts: Linux's parent-death signal must stop them."""
    out = tmp_path / "demo.out"
    proc = launch_demo(out, "--site", str(SMALL), "--port", str(free_port()), "--work-dir", str(tmp_path / "run"))
    try:
        poll(lambda: "started controller" in out.read_text(), "the controller's start", 120, log=out)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        kill_if_running(proc)
    pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", out.read_text())]
    assert len(pids) >= 3  # broker, sim, controller at least

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # an orphan that already exited but is not reaped yet is a zombie: it runs nothing
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1].split()[0] != "Z"

    poll(lambda: not any(alive(pid) for pid in pids), "every part of the killed demo to stop", 30, log=out)
