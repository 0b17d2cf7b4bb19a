"""The Plan tab in a real browser, and `kuat plan` against the same running controller.

A controller app (SQLite, registry, quota and planner services; no broker) runs under uvicorn on 127.0.0.1 with the
planner's small test site (tests/planner/site_support.py) and the shared clock set to 08:00 Astana: tomorrow's
session is still open. Debian's headless Chromium (Playwright) opens /ui#plan and checks the curve is drawn, the
proposed bids and what each constraint cost are shown, then freezes the bids from the page. The CLI then reads the
bids and imports results; with the clock moved past 10:00 Astana the page shows the results against the bids.
Screenshots go to artifacts/e2e/plan-*.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from controller.app import create_app
from controller.runtime import Services, build_services
from kuat import clock
from quota.timebase import ASTANA
from tests.planner.site_support import KEYS, SITE, as_, fleet, ingest, planner_settings, results_csv, seed, series_csv
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import free_port, wait_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"


@dataclass
class Running:
    services: Services
    base: str
    today: str
    tomorrow: str
    seq: list[int]

    def fresh_telemetry(self) -> None:
        """Devices go stale after device_stale_s real seconds: send the fleet again before each look."""
        self.seq[0] += 1
        ingest(self.services, fleet(), seq=self.seq[0])


def set_clock(at: datetime) -> None:
    clock.configure(at.timestamp(), 1.0)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; run-tests.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    saved_env, saved_config = os.environ.get("KUAT_CLOCK"), clock._config
    today = datetime.now(ASTANA).date()
    set_clock(datetime.combine(today, time(8, 0), ASTANA))
    services = build_services(planner_settings(tmp_path_factory.mktemp("plan")), with_ingest=False)
    seed(services)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services.settings, services), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port("127.0.0.1", port)
        base = f"http://127.0.0.1:{port}"
        hp, usd = series_csv(today)
        for path, body in (("hashprice", hp), ("usd-rates", usd)):
            r = httpx.post(f"{base}/api/v1/planner/{path}", content=body,
                           headers={**as_("operator"), "content-type": "text/csv"})  # fmt: skip
            assert r.status_code == 201, r.text
        yield Running(services, base, today.isoformat(), (today + timedelta(days=1)).isoformat(), [1])
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        services.engine.dispose()
        clock._config = saved_config
        if saved_env is None:
            os.environ.pop("KUAT_CLOCK", None)
        else:
            os.environ["KUAT_CLOCK"] = saved_env


def kuat_plan(running: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuat.cli", "plan", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "KUAT_URL": running.base,
                                                       "KUAT_API_KEY": KEYS["operator"]})  # fmt: skip


def test_plan_tab_bids_then_results(running: Running) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda dialog: dialog.accept())
            running.fresh_telemetry()
            page.goto(f"{running.base}/ui#plan&key={KEYS['operator']}")
            page.wait_for_selector("#plan-steps tbody tr", timeout=60_000)
            assert page.is_visible("#tab-plan") and not page.is_visible("#tab-site")
            phase = page.text_content("#plan-phase")
            assert "bidding" in phase and f"{running.today} 10:00 Astana" in phase  # Astana time, labelled
            assert f"Plan for {running.tomorrow}" in page.text_content("#plan-title")
            assert int(page.get_attribute("#plan-curve", "data-blocks") or 0) >= 24  # every hour has blocks
            assert "test series" in page.text_content("#plan-econ") and "18,000" in page.text_content("#plan-econ")
            steps = page.locator("#plan-steps tbody tr").count()
            bids = httpx.get(f"{running.base}/api/v1/planner/bids?day={running.tomorrow}", headers=as_("grid")).json()
            assert steps == len(bids["steps"]) > 0
            assert "connection" in page.text_content("#plan-steps tbody")  # the 60 kW connection binds
            assert "connection" in page.text_content("#plan-costs [data-constraint=connection]")
            assert not page.is_visible("#plan-results-card")  # before 10:00 there are no results
            page.screenshot(path=str(ARTIFACTS / "plan-1-bids.png"), full_page=True)
            page.click("#plan-freeze")
            page.wait_for_selector("#toast:has-text('frozen')", timeout=20_000)
            page.wait_for_function("document.querySelector('#plan-set').textContent.includes('frozen bid set')",
                                   timeout=20_000)  # fmt: skip
            assert page.is_visible("#plan-export")

            cli_bids_and_results(running)

            set_clock(datetime.combine(datetime.now(ASTANA).date(), time(10, 30), ASTANA))
            running.fresh_telemetry()
            page.reload()
            page.wait_for_selector("#plan-results tbody tr", timeout=60_000)
            assert "session closed" in page.text_content("#plan-phase")
            rows = page.locator("#plan-results tbody tr")
            assert rows.count() == 24
            first = rows.nth(0).locator("td").all_text_contents()
            assert first[0] == "1" and first[2] == "0.050"  # won, from the imported results
            assert rows.nth(23).locator("td").all_text_contents()[2] == "0.000"
            assert float(first[1]) > 0  # what was bid in hour 1
            page.screenshot(path=str(ARTIFACTS / "plan-2-results.png"), full_page=True)
        finally:
            browser.close()


def cli_bids_and_results(running: Running) -> None:
    """`kuat plan bids --json` is the API's document on stdout; `kuat plan results FILE` pushes the schedule; a
    wrong key is one line on stderr and exit 2."""
    out = kuat_plan(running, "bids", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["day"] == running.tomorrow and doc["steps"]
    table = kuat_plan(running, "bids")
    assert table.returncode == 0 and "constraint costs" in table.stdout
    results = ROOT / "artifacts" / "e2e" / "plan-results.csv"
    results.write_bytes(results_csv(running.tomorrow, [0.05] * 12 + [0.0] * 12))  # type: ignore[arg-type]
    imported = kuat_plan(running, "results", str(results))
    assert imported.returncode == 0, imported.stderr
    assert f"{SITE}: schedule" in imported.stdout and "600.0 kWh" in imported.stdout
    wrong = subprocess.run([sys.executable, "-m", "kuat.cli", "plan", "bids", "--url", running.base, "--key",
                            "not-a-key-at-all"], capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.strip().startswith("kuat plan: 401")
