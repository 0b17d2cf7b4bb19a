"""The README's demo in a real browser: `kuat demo` (small site, fast clock) as a subprocess, Debian's headless
Chromium through Playwright. It watches live numbers change, approves a pending registration, enters an emergency
cap and waits for the site's power to fall under the new limit; screenshots go to artifacts/e2e/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.demo_support import ROOT, SMALL_SITE, kill_if_running, launch_demo, poll
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(420)]

ARTIFACTS = ROOT / "artifacts" / "e2e"
BANNER_TIMEOUT_S = 120.0


@dataclass
class RunningDemo:
    proc: subprocess.Popen[bytes]
    out: Path
    url: str
    base: str
    key: str

    def api(self, path: str) -> Any:
        r = httpx.get(self.base + path, headers={"X-API-Key": self.key}, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; run-tests.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    work = tmp_path_factory.mktemp("demo")
    out = work / "demo.out"
    proc = launch_demo(out, "--site", str(SMALL_SITE), "--speed", "10", "--port", str(free_port()), "--work-dir",
                       str(work / "run"), "--duration", "360", "--poll-s", "2", "--unregistered", "2", "--no-emergency")
    try:
        match = poll(lambda: proc.poll() is None and re.search(r"Dashboard:\s+(\S+)", out.read_text()),
                     "the demo's banner", BANNER_TIMEOUT_S)
        url = match.group(1)
        base, key = url.split("/ui#key=")
        yield RunningDemo(proc, out, url, base, key)
    except AssertionError:
        raise AssertionError(f"the demo did not come up:\n{out.read_text()[-3000:]}") from None
    finally:
        stop_demo(proc, out)


def stop_demo(proc: subprocess.Popen[bytes], out: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_if_running(proc)
            raise AssertionError("the demo did not stop within 60 s of SIGTERM") from None
    assert proc.returncode == 0, f"demo exit code {proc.returncode}:\n{out.read_text()[-3000:]}"
    assert "demo stopped" in out.read_text()


def kw(text: str) -> float:
    """'645.7 kW' / '1.20 MW' as kW."""
    number, unit = text.split()
    return float(number) * (1000 if unit == "MW" else 1)


def test_dashboard_live_approve_and_emergency_cap(demo: RunningDemo) -> None:
    from playwright.sync_api import Page, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page: Page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("dialog", lambda dialog: dialog.accept())  # the page confirms every action
            page.goto(demo.url)
            live_numbers_change(page)
            command_from_a_machine_page(page)
            approve_one_registration(page, demo)
            emergency_cap_brings_power_under_the_limit(page, demo)
            tablet_layout(browser, demo.url)
        finally:
            browser.close()


def live_numbers_change(page: Any) -> None:
    page.wait_for_selector("#conn.online", timeout=30_000)
    page.wait_for_function("document.querySelector('#v-power').textContent.includes('W')", timeout=60_000)
    first = page.text_content("#v-power")
    first_range = page.text_content("#chart-range")
    page.wait_for_function(
        "([p, r]) => document.querySelector('#v-power').textContent !== p"
        " && document.querySelector('#chart-range').textContent !== r",
        arg=[first, first_range], timeout=60_000,
    )  # SSE: no reload
    assert page.text_content("#v-hash") != "—"
    assert "gateway gw1 online" in page.text_content("#v-gateways")
    page.screenshot(path=str(ARTIFACTS / "1-site-live.png"))
    page.click("nav a[data-tab=fleet]")
    page.wait_for_selector("#fleet-table tbody tr", timeout=20_000)
    rows = page.locator("#fleet-table tbody tr").count()
    assert rows == 20, f"the small site has 20 miners, the fleet table shows {rows}"
    page.fill("#fleet-search", "A01")
    assert 0 < page.locator("#fleet-table tbody tr").count() < 20
    page.fill("#fleet-search", "")
    page.screenshot(path=str(ARTIFACTS / "2-fleet.png"))


def command_from_a_machine_page(page: Any) -> None:
    """A machine's page (history chart, command log); Sleep after the confirmation; the agent's ack shows up."""
    page.click("nav a[data-tab=fleet]")
    page.fill("#fleet-search", "bmminer")
    page.select_option("#fleet-state", "mining")
    page.click("#fleet-table tbody tr >> nth=0")
    page.wait_for_selector("#device-dialog[open]", timeout=10_000)
    assert "rack" in page.text_content("#dd-body")
    page.click("#device-dialog .commands button[data-cmd=sleep]")
    page.wait_for_selector("#toast:has-text('command sleep sent')", timeout=20_000)
    page.wait_for_function("document.querySelector('#dd-log').textContent.includes('applied')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "2b-machine-command.png"))
    page.click("#device-dialog form button")
    page.fill("#fleet-search", "")
    page.select_option("#fleet-state", "")


def approve_one_registration(page: Any, demo: RunningDemo) -> None:
    page.click("nav a[data-tab=registry]")
    page.wait_for_function("document.querySelectorAll('#pending tbody tr').length >= 1", timeout=60_000)
    before = page.locator("#pending tbody tr").count()
    serial = page.get_attribute("#pending tbody button[data-approve]", "data-approve")
    assert serial
    assert "unregistered_mining" in page.text_content("#violations")
    page.screenshot(path=str(ARTIFACTS / "3-registry-pending.png"))
    page.click(f"#pending button[data-approve='{serial}']")
    page.wait_for_selector("#toast:has-text('approved 1')", timeout=20_000)
    page.wait_for_function(f"document.querySelectorAll('#pending tbody tr').length === {before - 1}",
                           timeout=20_000)  # fmt: skip
    assert demo.api(f"/api/v1/registry/hscs/{serial}")["hsc"]["status"] == "registered"
    page.screenshot(path=str(ARTIFACTS / "4-registry-approved.png"))


def emergency_cap_brings_power_under_the_limit(page: Any, demo: RunningDemo) -> None:
    page.click("nav a[data-tab=site]")
    page.wait_for_function("document.querySelector('#v-limit').textContent.includes('W')", timeout=60_000)
    limit_before = kw(page.text_content("#v-limit"))
    page.click("nav a[data-tab=quota]")
    page.fill("#emergency-form input[name=reference]", "KEGOC-E2E-7")
    page.fill("#emergency-form input[name=value]", "30")
    page.select_option("#emergency-form select[name=unit]", "pct")
    page.click("#emergency-form button[type=submit]")
    page.wait_for_selector("#toast:has-text('emergency cap applied')", timeout=20_000)
    page.wait_for_selector("#emergencies:has-text('KEGOC-E2E-7')", timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "5-quota-emergency.png"))
    page.click("nav a[data-tab=site]")
    page.wait_for_function("document.querySelector('#v-reason').textContent.includes('KEGOC-E2E-7')", timeout=30_000)
    limit = kw(page.text_content("#v-limit"))
    assert limit < 0.5 * limit_before, f"the cap should cut the limit to ~30 %: {limit_before} -> {limit} kW"
    page.wait_for_function(
        "() => { const v = t => parseFloat(document.querySelector(t).textContent);"
        " const over = document.querySelector('#card-power').classList.contains('over');"
        " return v('#v-power') <= v('#v-limit') && !over; }",
        timeout=180_000,
    )
    power = kw(page.text_content("#v-power"))
    assert power <= limit
    history = demo.api("/api/v1/dashboard/snapshot")["history"]
    assert any(r["limit_w"] is not None and r["limit_w"] < 0.5 * limit_before * 1000 for r in history)
    assert history[-1]["power_w"] <= history[-1]["limit_w"], history[-3:]  # the chart's line ends under the cap
    page.screenshot(path=str(ARTIFACTS / "6-site-under-cap.png"))


def tablet_layout(browser: Any, url: str) -> None:
    """A tablet in portrait: the page lays out without horizontal scrolling of the site tab."""
    page = browser.new_page(viewport={"width": 820, "height": 1180})
    page.goto(url)
    page.wait_for_selector("#conn.online", timeout=30_000)
    page.wait_for_function("document.querySelector('#v-power').textContent.includes('W')", timeout=30_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, f"the site tab scrolls sideways on a tablet ({width} px)"
    page.screenshot(path=str(ARTIFACTS / "7-tablet.png"), full_page=True)
