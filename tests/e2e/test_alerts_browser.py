"""The Alerts tab in a real browser (Debian's Chromium through Playwright), end to end.

A controller app (SQLite, registry, quota, alerts; no broker) runs under uvicorn on 127.0.0.1 with its scheduler
(evaluation every 0.5 s, delivery every 0.5 s), a real SMTP server (aiosmtpd) and a webhook receiver that checks
the HMAC signature. From the page: a webhook channel and an e-mail channel are saved, a bad rule is refused with
its field named, then a rule "hot S21" (temperature above 85 °C for 2 s, critical) is defined. A machine's
telemetry, fed through the controller's ingest service, reports 92 °C: the alert fires, shows in the tab, reaches
the webhook (signature checked) and the SMTP server, is acknowledged from the page (who is recorded), and
resolves when the machine cools, which reaches both again. Screenshots go to artifacts/e2e/alerts-*.png.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from controller.app import create_app
from controller.runtime import Services, build_services
from controller.scheduler import make_scheduler
from tests.alerts.receivers import SmtpServer, WebhookReceiver
from tests.alerts.site import KEYS, SECRET, Site, miner, settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import free_port, wait_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"


@dataclass
class Running:
    services: Services
    site: Site
    base: str
    hook: WebhookReceiver
    smtp: SmtpServer


def text(page: Any, selector: str) -> str:
    return str(page.text_content(selector) or "")


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; run-tests.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    smtp, hook = SmtpServer(), WebhookReceiver(SECRET)
    services = build_services(settings(tmp_path, smtp.port, evaluate_s=0.5, deliver_s=0.5), with_ingest=False)
    site = Site(services, services.alerts.now())  # type: ignore[union-attr]
    scheduler = make_scheduler(services)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services.settings, services), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port("127.0.0.1", port)
        scheduler.start()
        yield Running(services, site, f"http://127.0.0.1:{port}", hook, smtp)
    finally:
        scheduler.shutdown(wait=False)
        server.should_exit = True
        thread.join(timeout=15)
        services.close()
        services.engine.dispose()
        hook.stop()
        smtp.stop()


def test_rule_defined_in_the_dashboard_fires_reaches_webhook_and_smtp_is_acknowledged_and_resolves(
        running: Running) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    hook, smtp = running.hook, running.smtp
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(f"{running.base}/ui#alerts&key={KEYS['operator']}")
            page.wait_for_selector("#tab-alerts.active")
            page.wait_for_function("document.querySelectorAll('#alert-rule-form select[name=condition] option')"
                                   ".length === 11")  # fmt: skip

            channel = page.locator("#alert-channel-form")
            channel.locator("[name=name]").fill("ops-hook")
            channel.locator("[name=url]").fill(hook.url)
            channel.locator("[name=secret]").fill(SECRET)
            channel.locator("button[type=submit]").click()
            page.wait_for_selector("#alert-channels td:text-is('ops-hook')")
            channel.locator("[name=name]").fill("duty-mail")
            channel.locator("[name=kind]").select_option("email")
            channel.locator("[name=recipients]").fill("duty@site.test, chief@site.test")
            channel.locator("button[type=submit]").click()
            page.wait_for_selector("#alert-channels td:text-is('duty-mail')")
            assert SECRET not in page.content()  # write-only: never sent back to the page
            assert "(signed)" in text(page, "#alert-channels")

            form = page.locator("#alert-rule-form")
            form.locator("[name=name]").fill("hot S21")
            form.locator("[name=condition]").select_option("temperature_high")
            assert "degrees Celsius" in text(page, "#alert-threshold-means")
            form.locator("[name=threshold]").fill("500")  # refused: the API names the field
            form.locator("button[type=submit]").click()
            page.wait_for_selector("#alert-rule-errors .pill")
            assert "threshold" in text(page, "#alert-rule-errors")
            form.locator("[name=threshold]").fill("85")
            form.locator("[name=sustain_s]").fill("2")
            form.locator("[name=severity]").select_option("critical")
            form.locator("[name='scope.models']").fill("S21")
            for name in ("ops-hook", "duty-mail"):
                page.check(f"#alert-rule-channels input[value='{name}']")
            form.locator("button[type=submit]").click()
            page.wait_for_selector("#alert-rules td:text-is('hot S21')")
            [rule] = running.services.alerts.rules()  # type: ignore[union-attr]
            assert (rule["threshold"], rule["sustain_s"], rule["severity"], rule["scope"]) == (
                85, 2, "critical", {"models": ["S21"]})
            assert sorted(rule["channels"]) == ["dashboard", "duty-mail", "ops-hook"]

            running.site.feed(miner(1, temp_c=92.0), miner(2, temp_c=70.0))  # the simulated condition
            page.wait_for_selector("#alerts-open tr[data-status=firing]", timeout=30_000)
            row = page.locator("#alerts-open tr[data-status=firing]")
            assert "92.0 °C" in (row.text_content() or "") and "AL-1" in (row.text_content() or "")
            assert (row.locator("td").nth(5).text_content() or "").endswith("Astana")  # times labelled Astana
            assert text(page, "#alerts-badge") == "1"
            wait_for(lambda: hook.events() == ["firing"], "the webhook's firing")
            assert hook.received[0].signature_ok and hook.received[0].doc["alert"]["rule"] == "hot S21"
            wait_for(lambda: len(smtp.messages) == 1, "the firing e-mail")
            assert smtp.subjects()[0].startswith("[Kuat CRITICAL] FIRING: hot S21")
            assert smtp.envelopes[0] == ["duty@site.test", "chief@site.test"]
            page.screenshot(path=str(ARTIFACTS / "alerts-1-firing.png"), full_page=True)

            row.locator("button[data-ack]").click()
            page.wait_for_function("document.querySelector('#alerts-open tr[data-status=firing] .acked')"
                                   "?.textContent.includes('operator:t-operator')", timeout=20_000)  # fmt: skip

            running.site.feed(miner(1, temp_c=75.0), miner(2, temp_c=70.0))
            page.wait_for_selector("#alerts-none:not([hidden])", timeout=30_000)
            wait_for(lambda: hook.events() == ["firing", "resolved"], "the webhook's resolved")
            assert all(r.signature_ok for r in hook.received)
            assert hook.received[1].doc["alert"]["acknowledged_by"] == "operator:t-operator"
            wait_for(lambda: len(smtp.messages) == 2, "the resolved e-mail")
            assert smtp.subjects()[1].startswith("[Kuat CRITICAL] RESOLVED: hot S21")
            page.wait_for_selector("#alerts-history tr[data-event=resolved]", timeout=20_000)
            events = page.locator("#alerts-history tbody tr td:nth-child(2)").all_text_contents()
            assert events[:4] == ["resolved", "acknowledged", "firing", "pending"]
            assert "operator:t-operator" in text(page, "#alerts-history")
            page.screenshot(path=str(ARTIFACTS / "alerts-2-resolved.png"), full_page=True)
        finally:
            browser.close()
    assert hook.events() == ["firing", "resolved"] and len(smtp.messages) == 2  # nothing sent twice
