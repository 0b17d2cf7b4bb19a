"""The operators' daily tools in a real browser: `kuat demo` (small site: simulated miners, the real agents, mosquitto,
the controller under quota control) and Debian's headless Chromium through Playwright.

The rack view (halls, racks, slots from the agents' config, colour switch, a click to the machine, PDU feeds entered
and checked), a bulk sleep from the fleet table acked machine by machine, a schedule file uploaded, previewed against
the fleet and pushed (and in force in the quota status), machine rules with the API's 422 shown next to the field,
the theme switch (remembered), tables sorted and exported as CSV, the ledger downloaded without a key in any URL.
Screenshots go to artifacts/e2e/ops-*.png (scripts/screenshots.py writes docs/screenshots/).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from quota.timebase import ASTANA
from tests.e2e.demo_support import poll
from tests.e2e.test_demo_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, RunningDemo, demo  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

SMALL_SITE_MINERS = 20


@pytest.fixture(scope="module")
def browser(demo: RunningDemo) -> Iterator[Any]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, demo: RunningDemo) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 950}, accept_downloads=True)
    pg = context.new_page()
    pg.on("dialog", lambda dialog: dialog.accept())  # the page confirms every action once
    pg.requests = []
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto(demo.url)
    pg.wait_for_selector("#conn.online", timeout=60_000)
    yield pg
    context.close()


def open_tab(page: Any, tab: str) -> None:
    page.click(f"nav a[data-tab={tab}]")
    page.wait_for_selector(f"#tab-{tab}.active", timeout=10_000)


def test_rack_view(page: Any, demo: RunningDemo) -> None:  # noqa: F811
    open_tab(page, "racks")
    page.wait_for_function(f"document.querySelectorAll('#racks-body .slot[data-id]').length === {SMALL_SITE_MINERS}",
                           timeout=60_000)  # fmt: skip
    racks = page.eval_on_selector_all("#racks-body .rack", "els => els.map(e => e.dataset.rack)")
    assert racks == ["A01", "B01"]  # small.toml: hall H1, racks A01 (10 miners) and B01 (10 miners)
    assert page.text_content(".racks-hall[data-hall=H1] h3") == "Hall H1"
    assert page.locator(".rack[data-rack=A01] .slot").count() == 10
    first = page.locator(".rack[data-rack=A01] .slot").nth(0)
    assert first.text_content().strip().startswith("1")  # slot numbers, in order
    assert "st-" in (first.get_attribute("class") or "")  # coloured by state
    page.select_option("#rack-colour", "power")
    assert "background" in (page.locator(".rack[data-rack=A01] .slot").nth(0).get_attribute("style") or "")
    page.select_option("#rack-colour", "temp")
    assert "°" in page.text_content(".rack[data-rack=A01] .slot >> nth=0")
    page.select_option("#rack-colour", "state")
    # PDU feeds: a bad entry is refused next to the field, a good one shows the rack's load against it
    page.click(".rack[data-rack=A01] details.feeds summary")
    page.fill(".feed-form[data-rack=A01] input[name=feeds]", "A:-5")
    page.click(".feed-form[data-rack=A01] button[type=submit]")
    page.wait_for_selector(".feed-form[data-rack=A01] .field-error:has-text('capacity_w')", timeout=10_000)
    page.fill(".feed-form[data-rack=A01] input[name=feeds]", "A:22000, B:22000")
    page.click(".feed-form[data-rack=A01] button[type=submit]")
    page.wait_for_selector(".rack[data-rack=A01] .head .pill:has-text('of 44.0 kW')", timeout=10_000)
    rack = next(r for h in demo.api("/api/v1/dashboard/racks")["halls"] for r in h["racks"] if r["rack"] == "A01")
    assert rack["capacity_w"] == 44000 and rack["status"] in ("ok", "near", "over")
    page.screenshot(path=str(ARTIFACTS / "ops-racks.png"), full_page=True)
    page.click(".rack[data-rack=B01] .slot >> nth=0")  # a click opens the machine
    page.wait_for_selector("#device-dialog[open]", timeout=10_000)
    assert "rack B01 slot 1" in page.text_content("#dd-body")
    page.click("#device-dialog form button")
    page.check("#rack-select-mode")  # selection mode: taps pick machines, a rack at once
    page.click(".select-rack[data-rack=B01]")
    page.wait_for_selector("#bulk-bar:not([hidden])", timeout=5_000)
    assert page.text_content("#bulk-count") == "10 selected"
    page.click("#bulk-clear")


def test_bulk_sleep_acked_per_machine(page: Any, demo: RunningDemo) -> None:  # noqa: F811
    open_tab(page, "fleet")
    page.wait_for_selector("#fleet-table tbody tr", timeout=30_000)
    page.fill("#fleet-search", "bmminer")
    page.select_option("#fleet-state", "mining")
    page.wait_for_function("document.querySelectorAll('#fleet-table tbody tr').length >= 3", timeout=60_000)
    picked = [page.get_attribute(f"#fleet-table tbody tr >> nth={i}", "data-id") for i in range(3)]
    for device_id in picked:
        page.check(f"#fleet-table .pick[value='{device_id}']")
    assert page.text_content("#bulk-count") == "3 selected"
    assert not page.locator("#device-dialog[open]").count()  # ticking a box does not open the machine
    page.click("#bulk-bar button[data-bulk=sleep]")  # one confirmation for the three
    page.wait_for_selector("#bulk-result:not([hidden])", timeout=20_000)
    page.wait_for_function("document.querySelectorAll('#bulk-items tbody tr').length === 3", timeout=20_000)
    page.wait_for_function("[...document.querySelectorAll('#bulk-items tbody tr .pill')]"
                           ".every(p => p.textContent === 'acked')", timeout=90_000)  # fmt: skip
    rows = page.eval_on_selector_all("#bulk-items tbody tr", "rs => rs.map(r => r.dataset.id)")
    assert sorted(rows) == sorted(picked)
    assert "3 acked · 0 failed · 0 pending of 3" in page.text_content("#bulk-summary")
    for device_id in picked:  # each machine's own command, acked by its agent
        log = demo.api(f"/api/v1/dashboard/device/{device_id}")["commands"]
        assert any(c["kind"] == "sleep" and c["status"] == "applied" for c in log), log
    page.screenshot(path=str(ARTIFACTS / "ops-bulk-sleep.png"), full_page=True)
    page.click("#bulk-clear")


def test_bulk_approve_names_what_it_could_not_approve(page: Any, demo: RunningDemo) -> None:  # noqa: F811
    open_tab(page, "fleet")
    col = page.evaluate("[...document.querySelectorAll('#fleet-table thead th')]"
                        ".findIndex(th => th.dataset.k === 'registration')")  # fmt: skip
    page.wait_for_function("i => [...document.querySelectorAll('#fleet-table tbody tr')]"
                           ".some(r => r.children[i].textContent.trim() === 'pending')", arg=col,
                           timeout=90_000)  # fmt: skip
    rows = page.eval_on_selector_all("#fleet-table tbody tr", "(rs, i) => rs.map(r => [r.dataset.id, "
                                     "r.children[1].textContent.trim(), r.children[i].textContent.trim()])", col)
    pending = next(r for r in rows if r[2] == "pending")
    registered = next(r for r in rows if r[2] == "registered")
    for device_id in (pending[0], registered[0]):
        page.check(f"#fleet-table .pick[value='{device_id}']")
    page.wait_for_function("document.querySelectorAll('#bulk-owner option').length >= 1", timeout=20_000)
    page.click("#bulk-bar button[data-bulk=approve]")
    page.wait_for_function("document.querySelectorAll('#bulk-items tbody tr').length === 2", timeout=20_000)
    outcome = dict(page.eval_on_selector_all("#bulk-items tbody tr", "rs => rs.map(r => [r.dataset.id, "
                                             "r.children[2].textContent + ' ' + r.children[3].textContent])"))
    assert outcome[pending[0]] == "acked registration approved"
    assert outcome[registered[0]] == "failed not a pending registration (registered)"
    assert demo.api(f"/api/v1/registry/hscs/{pending[1]}")["hsc"]["status"] == "registered"
    page.click("#bulk-clear")


def test_schedule_uploaded_from_a_file_takes_effect(page: Any, demo: RunningDemo, tmp_path: Path) -> None:  # noqa: F811
    snap = demo.api("/api/v1/dashboard/snapshot")
    site = snap["site"]["name"]
    day = datetime.fromisoformat(snap["ts"]).astimezone(ASTANA).date().isoformat()  # the demo's (faster) clock
    before = {r["hour"]: r["kwh"] for r in snap["quota"]["schedule"]}
    current = next(r["hour"] for r in snap["quota"]["schedule"] if r["current"])
    far = (current + 11) % 24 + 1  # an hour the test never reaches: more than the fleet can draw, a warning
    low = round(0.4 * max(v for v in before.values() if v), 1)
    hours = {h: (99_999.0 if h == far else low) for h in range(1, 25)}
    csv_file = tmp_path / "korem-result.csv"
    csv_file.write_text("hour,kwh\n" + "".join(f"{h},{v}\n" for h, v in hours.items()))
    open_tab(page, "schedule")
    page.fill("#sched-day", day)
    page.set_input_files("#sched-file", str(csv_file))
    page.fill("#sched-ref", "E2E-DA-1")
    page.click("#sched-preview-btn")
    page.wait_for_function("document.querySelectorAll('#sched-preview tbody tr').length === 24", timeout=20_000)
    far_row = page.locator(f"#sched-preview tbody tr[data-hour='{far}']")
    assert "unused" in far_row.text_content() and "the fleet can draw at most" in far_row.text_content()
    assert page.locator("#sched-preview tbody .pill.ok").count() == 23
    assert "1 hour(s) with a warning" in page.text_content("#sched-status")
    assert int(page.get_attribute("#sched-chart", "data-ticks") or 0) == 24
    page.click("#sched-preview thead th >> nth=0")  # sort by hour: numbers as numbers (2 before 10)
    page.click("#sched-preview thead th >> nth=0")
    order = page.eval_on_selector_all("#sched-preview tbody tr", "rs => rs.map(r => Number(r.dataset.hour))")
    assert order == list(range(24, 0, -1))
    page.screenshot(path=str(ARTIFACTS / "ops-schedule-preview.png"), full_page=True)
    page.click("#sched-push")
    page.wait_for_selector("#sched-status:has-text('is in force')", timeout=20_000)
    pushed = [s for s in demo.api(f"/api/v1/quota/{site}/schedules?day={day}")["schedules"] if s["replaced_by"] is None]
    assert pushed[-1]["reference"] == "E2E-DA-1" and pushed[-1]["source"] == "csv"
    assert pushed[-1]["hours_kwh"] == [hours[h] for h in range(1, 25)]

    def in_force() -> bool:
        snap = demo.api("/api/v1/dashboard/snapshot")
        now_row = next(r for r in snap["quota"]["schedule"] if r["current"])
        return now_row["kwh"] == low and snap["site"]["limit_w"] is not None
    poll(in_force, "the uploaded schedule in the quota status", 30, log=demo.out)
    # machine rules: the quota API's 422 next to the field, then a good value saved
    page.wait_for_function("document.querySelectorAll('#rules tbody tr').length >= 1", timeout=20_000)
    row = page.locator("#rules tbody tr >> nth=0")
    device_id = row.get_attribute("data-id")
    row.locator("input[name=priority]").fill("high")
    row.locator(".save-rule").click()
    page.wait_for_function("document.querySelector('#rules tbody tr .field-error[data-for=priority]')"
                           ".textContent.length > 0", timeout=10_000)  # fmt: skip
    assert "integer" in row.locator(".field-error[data-for=priority]").text_content()
    assert "invalid" in (row.locator("input[name=priority]").get_attribute("class") or "")
    row.locator("input[name=priority]").fill("7")
    row.locator("input[name=protected]").check()
    row.locator(".save-rule").click()
    page.wait_for_selector(f"#toast:has-text('rule of {device_id} saved')", timeout=10_000)
    rules = {m["device_id"]: m for m in demo.api("/api/v1/dashboard/machine-rules")["machines"]}
    assert (rules[device_id]["protected"], rules[device_id]["priority"]) == (True, 7)


def test_theme_switch_is_remembered(page: Any, demo: RunningDemo) -> None:  # noqa: F811
    start = page.get_attribute("html", "data-theme")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    other = page.get_attribute("html", "data-theme")
    assert {start, other} == {"dark", "light"}
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    page.reload()
    page.wait_for_selector("#conn.online", timeout=60_000)
    assert page.get_attribute("html", "data-theme") == other  # remembered
    page.wait_for_function("document.querySelector('#v-power').textContent.includes('W')", timeout=60_000)
    assert int(page.get_attribute("#chart", "data-ticks") or 0) >= 2  # a time axis with ticks
    assert "Astana" in page.text_content("#chart-range") and "Astana" in page.text_content("#astana-clock")
    page.screenshot(path=str(ARTIFACTS / f"ops-site-{other}.png"))
    page.click("#theme-toggle")
    assert page.get_attribute("html", "data-theme") == start


def test_tables_sort_and_export(page: Any, demo: RunningDemo) -> None:  # noqa: F811
    open_tab(page, "fleet")
    page.wait_for_function(f"document.querySelectorAll('#fleet-table tbody tr').length === {SMALL_SITE_MINERS}",
                           timeout=60_000)  # fmt: skip
    page.click("#fleet-table th[data-k=ip]")
    ips = page.eval_on_selector_all("#fleet-table tbody tr td:nth-child(3)", "tds => tds.map(t => t.textContent)")
    assert ips == sorted(ips) and len(set(ips)) == SMALL_SITE_MINERS
    page.click("#fleet-table th[data-k=ip]")
    ips_desc = page.eval_on_selector_all("#fleet-table tbody tr td:nth-child(3)", "tds => tds.map(t => t.textContent)")
    assert ips_desc == sorted(ips, reverse=True)
    with page.expect_download() as info:
        page.click("#tab-fleet .tabletools .csv-export")
    text = Path(info.value.path()).read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("Device,IP,Rack / slot,Model") and len(lines) == SMALL_SITE_MINERS + 1
    assert lines[1].split(",")[1] == ips_desc[0]  # the rows as shown, in the order shown
    # a table the page renders itself (the Schedule tab's machine rules): sorted by a header click, both ways
    open_tab(page, "schedule")
    page.wait_for_function(f"document.querySelectorAll('#rules tbody tr').length === {SMALL_SITE_MINERS}",
                           timeout=60_000)  # fmt: skip
    serials = "#rules tbody tr td:nth-child(2)"
    page.click("#rules thead th >> nth=1")
    first = page.eval_on_selector_all(serials, "tds => tds.map(t => t.textContent)")
    assert first == sorted(first) and len(set(first)) == SMALL_SITE_MINERS
    page.click("#rules thead th >> nth=1")
    assert page.eval_on_selector_all(serials, "tds => tds.map(t => t.textContent)") == sorted(first, reverse=True)
    assert page.get_attribute("#rules thead th >> nth=1", "class") == "sorted-desc"
    with page.expect_download() as info:
        page.click("#tab-schedule .tabletools:has(+ .tablewrap #rules) .csv-export")
    exported = Path(info.value.path()).read_text().splitlines()
    assert exported[0] == "Machine,Serial,Model,Rack,State,Protected,Priority" and len(exported) == len(first) + 1
    assert exported[1].split(",")[1] == sorted(first, reverse=True)[0]
    open_tab(page, "registry")
    with page.expect_download() as info:
        page.click("#registry-csv")  # the registry export, with the key in a header
    assert Path(info.value.path()).read_text().startswith("id,serial,") and info.value.url.startswith("blob:")
    open_tab(page, "quota")
    with page.expect_download() as info:
        page.click("#ledger-csv")  # the ledger itself, from the server, without a key in the URL
    ledger = Path(info.value.path()).read_text().splitlines()
    assert ledger[0].startswith("hour_astana,")
    # no request carries the key in its URL (the demo's link hands it over in the fragment, which no request
    # carries), and the page took it out of the address bar
    leaked = [u for u in page.requests if "key=" in u]
    assert not leaked, f"a key went into a URL: {leaked}"
    assert "key=" not in page.url
    page.screenshot(path=str(ARTIFACTS / "ops-quota.png"), full_page=True)


def test_tablet(browser: Any, demo: RunningDemo) -> None:  # noqa: F811
    """A tablet in portrait: the Racks tab lays out without sideways scrolling and its buttons are touch-sized."""
    context = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(f"{demo.base}/ui#racks&key={demo.key}")
        page.wait_for_selector("#racks-body .slot", timeout=60_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 820
        height = page.evaluate("document.querySelector('#racks-body .slot').getBoundingClientRect().height")
        assert height >= 44, f"slots are {height} px high: too small to tap"
        page.tap("#racks-body .slot >> nth=0")
        page.wait_for_selector("#device-dialog[open]", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "ops-tablet-racks.png"), full_page=True)
    finally:
        context.close()
