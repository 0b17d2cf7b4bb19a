"""The Reports tab in a real browser (Debian's headless Chromium through Playwright), against a controller serving
the month of tests/money/month.py over real HTTP (uvicorn on 127.0.0.1): the operator sees both licensees' reports
with the hand-computed figures, downloads a report as a Blob (the API key never in a URL), the meter beside the
quota ledger; the tenant's key sees only its own licensee. Screenshots go to artifacts/e2e/."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.app import create_app
from tests.money.month import BIN_A, BIN_B, KEYS, build, nbk_files
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; run-tests.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    month = build(tmp_path_factory.mktemp("money-ui"))
    money = month.services.money
    assert money is not None
    for name, data in nbk_files():
        money.import_file("nbk", name, data, "operator:test")
    for kind, (name, data) in month.files.items():
        money.import_file(kind, name, data, "operator:test")
    app = create_app(month.services.settings, month.services)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code in (200, 503):
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=20)
        month.services.close()


def open_reports(browser: Any, base: str, key: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.add_init_script(f"localStorage.setItem('kuat-key', {key!r})")
    page.goto(base + "/ui#reports")
    page.wait_for_selector("#rep-licensee option", state="attached", timeout=30_000)
    page.fill("#rep-month", "2026-07")
    page.dispatch_event("#rep-month", "change")
    return page


def test_reports_tab(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = open_reports(browser, server, KEYS["operator"])
            urls: list[str] = []
            page.on("request", lambda req: urls.append(req.url))
            page.select_option("#rep-licensee", BIN_A)
            page.wait_for_function("document.querySelector('#rep-fee')?.textContent.includes('40197.00')",
                                   timeout=30_000)
            assert page.text_content("#rep-income") == "857410.00 ₸"
            assert page.text_content("#rep-energy") == "2232.000 kWh"
            assert "shortfall" in page.text_content("#rep-share-table")
            assert "late" in page.text_content("#rep-readiness") or "warning" in page.text_content("#rep-readiness")
            page.screenshot(path=str(ARTIFACTS / "money-1-report-host.png"), full_page=True)
            with page.expect_download() as info:
                page.click("#rep-csv")
            saved = info.value.path()
            assert info.value.suggested_filename == f"kuat-report-{BIN_A}-2026-07.csv"
            assert "40197.00" in Path(saved).read_text()
            with page.expect_download() as info:
                page.click("#rep-evidence")
            assert info.value.suggested_filename.endswith(".xlsx") and Path(info.value.path()).stat().st_size > 1000
            money_urls = [u for u in urls if "/api/v1/money/" in u]
            assert money_urls and not any(KEYS["operator"] in u for u in money_urls), money_urls
            page.select_option("#rep-licensee", BIN_B)
            page.wait_for_function("document.querySelector('#rep-fee')?.textContent.includes('7480.00')",
                                   timeout=30_000)
            page.click("nav a[data-tab=quota]")
            page.wait_for_function("document.querySelector('#meter tbody').textContent.includes('1.9608')",
                                   timeout=30_000)
            assert "faulty" in page.text_content("#meter tbody")
            page.screenshot(path=str(ARTIFACTS / "money-2-meter-beside-ledger.png"), full_page=True)
            page.close()

            tenant = open_reports(browser, server, KEYS["tenant"])
            tenant.wait_for_function("document.querySelector('#rep-fee')?.textContent.includes('7480.00')",
                                     timeout=30_000)
            options = tenant.eval_on_selector_all("#rep-licensee option", "os => os.map(o => o.value)")
            assert options == [BIN_B]
            tenant.screenshot(path=str(ARTIFACTS / "money-3-tenant-sees-itself.png"), full_page=True)
        finally:
            browser.close()
