"""The registry's own page in a real browser (Debian's headless Chromium through Playwright): an authority signs in
with its key, creates a tenant licensee and an accredited pool from the forms (a bad BIN and a bad endpoint are shown
next to their fields first), includes a waiting application, and finds the machine included; a regulator's key
reads but cannot decide. Screenshots go to artifacts/e2e/registry-*.png."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from registry.app import create_app
from registry.db import init_db
from registry.dpc_port import InProcessDpcPort
from registry.models import Role
from registry.national.service import NationalRegistry
from registry.national.setup import create_key
from registry.service import RegistryService
from registry.settings import RegistrySettings
from serverkit.db import make_engine, session_factory
from tests.registry.national_world import application, build_world
from tests.support.servers import free_port, wait_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@dataclass
class Running:
    base: str
    authority: str
    regulator: str
    nat: NationalRegistry


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; run-tests.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    tmp = tmp_path_factory.mktemp("registry-ui")
    engine = make_engine(f"sqlite:///{tmp / 'registry.db'}")
    init_db(engine)
    sessions = session_factory(engine)
    nat = NationalRegistry(sessions)
    build_world(nat)
    InProcessDpcPort(sessions, ["DPC-A"]).submit_applications("DPC-A", application("UI-SN-1"), "ui-1")
    keys = {r: create_key(sessions, f"ui-{r.value}", r) for r in (Role.AUTHORITY, Role.REGULATOR)}
    settings = RegistrySettings(compliance_interval_s=0, signing_key_file=str(tmp / "signing.pem"))
    app = create_app(settings, service=RegistryService(sessions), national=nat)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port("127.0.0.1", port)
        yield Running(f"http://127.0.0.1:{port}", keys[Role.AUTHORITY], keys[Role.REGULATOR], nat)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        engine.dispose()


def test_authority_creates_and_decides_from_the_page(running: Running) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{running.base}/ui")
            page.fill("#key", running.authority)
            page.click("#login-btn")
            page.wait_for_selector("#machines tbody tr", timeout=30_000)
            assert "(authority)" in (page.text_content("#who") or "")
            assert "UI-SN-1" in (page.text_content("#machines tbody") or "")

            page.click("#tabs button[data-tab=reference]")
            form = "#form-licensee"
            page.fill(f"{form} [name=bin]", "123456789012")  # wrong check digit
            page.fill(f"{form} [name=name]", "Tenant Two LLP")
            page.fill(f"{form} [name=licence_number]", "DM-UI-1")
            page.select_option(f"{form} [name=subtype]", "II")
            page.fill(f"{form} [name=valid_from]", "2026-01-15")
            page.click(f"{form} button[type=submit]")
            page.wait_for_selector(f"{form} .field-error[data-field=bin]", timeout=10_000)
            assert "BIN" in (page.text_content(f"{form} .field-error[data-field=bin]") or "")
            page.screenshot(path=str(ARTIFACTS / "registry-1-licensee-422.png"), full_page=True)
            page.fill(f"{form} [name=bin]", "222222222220")
            page.click(f"{form} button[type=submit]")
            page.wait_for_selector("#licensees tbody tr:has-text('Tenant Two LLP')", timeout=10_000)
            assert page.locator(f"{form} .field-error").count() == 0

            form = "#form-pool"
            page.fill(f"{form} [name=name]", "Second Pool")
            page.fill(f"{form} [name=endpoints]", "not-a-url")
            page.fill(f"{form} [name=accreditation_number]", "AP-UI-2")
            page.fill(f"{form} [name=valid_from]", "2026-01-01")
            page.fill(f"{form} [name=valid_to]", "2028-01-01")
            page.click(f"{form} button[type=submit]")
            page.wait_for_selector(f"{form} .field-error[data-field=endpoints]", timeout=10_000)
            page.fill(f"{form} [name=endpoints]", "stratum+tcp://pool2.kz.example:3333")
            page.click(f"{form} button[type=submit]")
            page.wait_for_selector("#pools tbody tr:has-text('AP-UI-2')", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "registry-2-reference.png"), full_page=True)

            page.click("#tabs button[data-tab=applications]")
            app_row = "#applications tbody tr[data-serial=UI-SN-1]"
            page.wait_for_selector(app_row, timeout=10_000)
            page.click(f"{app_row} button.include")
            page.wait_for_selector("#toast:has-text('included')", timeout=10_000)
            page.wait_for_selector("#applications tbody:has-text('nothing waiting')", timeout=10_000)

            page.click("#tabs button[data-tab=machines]")
            page.fill("#search-form [name=serial]", "UI-SN-1")
            page.click("#search-btn")
            page.wait_for_selector("#machines tbody td.status-included", timeout=10_000)
            assert "KZ-HSC-" in (page.text_content("#machines tbody") or "")

            page.click("#tabs button[data-tab=chain]")
            page.click("#verify-btn")
            page.wait_for_selector("#chain-result[data-ok=true]", timeout=30_000)
            assert "BEGIN PUBLIC KEY" in (page.text_content("#chain-key") or "")
            page.screenshot(path=str(ARTIFACTS / "registry-3-chain.png"), full_page=True)
        finally:
            browser.close()
    page_rows = running.nat.reference.list_rows("pool")
    assert {p.accreditation_number for p in page_rows} == {"AP-1", "AP-UI-2"}


def test_regulator_reads_but_cannot_decide(running: Running) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{running.base}/ui")
            page.fill("#key", running.regulator)
            page.click("#login-btn")
            page.wait_for_selector("#machines tbody tr", timeout=30_000)
            assert "(regulator)" in (page.text_content("#who") or "")
            page.click("#tabs button[data-tab=reference]")
            assert page.is_disabled("#form-pool button[type=submit]")
            page.goto(f"{running.base}/ui")  # the key stays in this tab's session, not in the URL
            page.wait_for_selector("#machines tbody tr", timeout=30_000)
            assert running.regulator not in page.url
        finally:
            browser.close()
