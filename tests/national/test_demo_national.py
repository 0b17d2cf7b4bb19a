"""`kuat demo --sites 2` as a user runs it: one national registry and two site controllers, each with its own
database, simulator and agents. endpoints.json names every URL and key; through them: the machines left pending are
dark (and say why), the tenant's machine that moves during the run is darkened at the first site and included at
the second, and the regulator's export of the national registry covers both sites."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.demo_support import SMALL_SITE, kill_if_running, launch_demo, poll
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def power(site: dict[str, Any]) -> dict[str, str]:
    r = httpx.get(f"{site['api']}/api/v1/registry-link/power", headers={"X-API-Key": site["keys"]["operator"]},
                  timeout=10)
    r.raise_for_status()
    return {row["device_id"]: row["reason"] for row in r.json()}


def test_demo_with_two_sites(tmp_path: Path) -> None:
    out, work = tmp_path / "demo.out", tmp_path / "work"
    proc = launch_demo(out, "--sites", "2", "--site", str(SMALL_SITE), "--speed", "60", "--poll-s", "2",
                       "--duration", "240", "--port", str(free_port()), "--work-dir", str(work))
    try:
        endpoints_file = work / "endpoints.json"
        poll(lambda: endpoints_file.exists(), "endpoints.json", 150, log=out)
        endpoints = json.loads(endpoints_file.read_text())
        assert str(endpoints_file) in out.read_text()  # the demo says where it is
        first, second = endpoints["sites"]
        assert (first["dpc"], second["dpc"]) == ("DPC-1", "DPC-2") and first["zone"] != second["zone"]
        assert first["database"] != second["database"]
        for site in (first, second):

            def settled(s: dict[str, Any] = site) -> dict[str, str]:
                p = power(s)
                return p if len(p) == 20 and Counter(p.values())["pending"] == 4 else {}

            reasons = poll(settled, f"{site['site']}: 20 machines, the 4 left pending dark", 90, log=out)
            assert set(reasons.values()) <= {"included", "pending", "moved"}
        moving = endpoints["moving"]["serial"]
        poll(lambda: "moved" in power(first).values(), "the tenant's machine moved away from site 1", 90, log=out)
        registry = endpoints["registry"]
        export = httpx.get(f"{registry['url']}/api/v1/national/export.jsonl",
                           headers={"Authorization": f"Bearer {registry['keys']['regulator']}"}, timeout=30)
        assert export.status_code == 200, export.text[:300]
        rows = [json.loads(line) for line in export.text.splitlines() if line.strip()]
        assert Counter(r["dpc"] for r in rows) == {"DPC-1": 19, "DPC-2": 21}  # the moved machine counts at DPC-2
        assert next(r for r in rows if r["serial"] == moving)["dpc"] == "DPC-2"
        proc.send_signal(signal.SIGINT)  # as a user ends it: Ctrl-C stops every part and exits 0
        proc.wait(timeout=90)
        assert proc.returncode == 0, out.read_text()[-3000:]
    finally:
        kill_if_running(proc)
