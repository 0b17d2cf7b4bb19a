"""`kuat demo --sites 2` in a real browser (Debian's headless Chromium through Playwright): each site's own
dashboard, from endpoints.json, lists its own 20 machines with a Power column saying why each has or has no power
(the four left pending, the machine on a pool nobody accredited in other site files, the machine that moved away);
screenshots go to artifacts/e2e/."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo_support import ROOT, SMALL_SITE, kill_if_running, launch_demo, poll
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(360)]

ARTIFACTS = ROOT / "artifacts" / "e2e"


def power_cells(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#fleet-table tbody tr td:last-child").all_text_contents()]


def test_each_site_dashboard_says_why_machines_are_dark(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; run-tests.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    from playwright.sync_api import sync_playwright

    out, work = tmp_path / "demo.out", tmp_path / "work"
    proc = launch_demo(out, "--sites", "2", "--site", str(SMALL_SITE), "--speed", "60", "--poll-s", "2",
                       "--duration", "150", "--port", str(free_port()), "--work-dir", str(work))
    try:
        endpoints_file = work / "endpoints.json"
        poll(lambda: endpoints_file.exists(), "endpoints.json", 150, log=out)
        sites = json.loads(endpoints_file.read_text())["sites"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for i, site in enumerate(sites):
                    page = browser.new_page(viewport={"width": 1500, "height": 900})
                    page.goto(site["dashboard"])
                    page.click("nav a[data-tab=fleet]")
                    page.wait_for_selector("#fleet-table th[data-k=power_right]", timeout=30_000)

                    def settled(page: Any = page, i: int = i) -> bool:
                        page.click("nav a[data-tab=fleet]")  # reloads the table
                        cells = power_cells(page)
                        moved = i > 0 or "moved" in cells
                        return len(cells) == 20 and cells.count("pending") == 4 and moved

                    try:
                        poll(settled, f"{site['site']}: 20 rows, 4 pending" + (", 1 moved" if i == 0 else ""), 120,
                             interval_s=2.0)
                    except AssertionError as exc:
                        page.screenshot(path=str(ARTIFACTS / f"national-{site['site']}-failed.png"), full_page=True)
                        raise AssertionError(f"{exc}; Power column: {power_cells(page)}") from None
                    cells = power_cells(page)
                    assert set(cells) <= {"included", "pending", "moved"}, cells
                    title = page.get_attribute("#fleet-table tbody tr td:last-child >> nth=0", "title")
                    assert title, "the Power cell explains itself on hover"
                    page.screenshot(path=str(ARTIFACTS / f"national-{site['site']}-fleet.png"), full_page=True)
                    page.close()
            finally:
                browser.close()
    finally:
        kill_if_running(proc)
