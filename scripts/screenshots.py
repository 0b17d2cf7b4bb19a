#!/usr/bin/env python3
"""Screenshots of every dashboard view for docs/dashboard.md: starts `kuat demo` (the small simulated site, fast
clock) on a free loopback port, opens each tab in Debian's headless Chromium (Playwright) and writes PNGs to
docs/screenshots/ (or --out). The demo is stopped at the end, whatever happens.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--settle 40]
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.demo_support import SMALL_SITE, kill_if_running, launch_demo, poll  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SCHEDULE_CSV = "hour,kwh\n" + "".join(f"{h},{60.0 if 8 <= h <= 20 else 45.0}\n" for h in range(1, 25))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--settle", type=float, default=40.0, help="seconds of live data before the first shot")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "demo.out"
        proc = launch_demo(log, "--site", str(SMALL_SITE), "--speed", "10", "--port", str(free_port()), "--work-dir",
                           str(Path(work) / "run"), "--duration", "900", "--poll-s", "2", "--unregistered", "2",
                           "--no-emergency")  # fmt: skip
        try:
            url = poll(lambda: re.search(r"Dashboard:\s+(\S+)", log.read_text()), "the demo's banner", 120, log=log)
            shoot(url.group(1), opts.out, opts.settle, Path(work))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                finally:
                    kill_if_running(proc)
    print("\n".join(sorted(str(p.relative_to(ROOT)) for p in opts.out.glob("*.png"))))
    return 0


def shoot(url: str, out: Path, settle_s: float, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
            page = ctx.new_page()
            page.on("dialog", lambda d: d.accept())
            page.goto(url)
            page.wait_for_selector("#conn.online", timeout=60_000)
            page.wait_for_timeout(settle_s * 1000)
            views(page, out, work)
            ctx.close()
            tablet = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True, is_mobile=True,
                                         color_scheme="light")  # fmt: skip
            tp = tablet.new_page()
            tp.goto(url + "#racks")
            tp.wait_for_selector("#racks-body .slot", timeout=60_000)
            tp.screenshot(path=str(out / "tablet-racks.png"), full_page=True)
            tablet.close()
        finally:
            browser.close()


def tab(page: Any, name: str, ready: str, out: Path, shot: str, full: bool = False) -> None:
    page.click(f"nav a[data-tab={name}]")
    page.wait_for_selector(ready, timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / f"{shot}.png"), full_page=full)


def views(page: Any, out: Path, work: Path) -> None:
    tab(page, "site", "#v-power:has-text('W')", out, "site")
    tab(page, "fleet", "#fleet-table tbody tr", out, "fleet")
    page.check("#fleet-table tbody tr >> nth=0 >> .pick")
    page.check("#fleet-table tbody tr >> nth=1 >> .pick")
    page.click("#bulk-bar button[data-bulk=sleep]")
    page.wait_for_selector("#bulk-items tbody tr .pill.acked", timeout=60_000)
    page.screenshot(path=str(out / "fleet-bulk.png"), full_page=True)
    page.click("#bulk-clear")
    page.click("nav a[data-tab=racks]")
    page.wait_for_selector("#racks-body .slot", timeout=60_000)
    page.click(".rack[data-rack=A01] details.feeds summary")
    page.fill(".feed-form[data-rack=A01] input[name=feeds]", "A:22000, B:22000")
    page.click(".feed-form[data-rack=A01] button[type=submit]")
    page.wait_for_selector(".rack[data-rack=A01] .head .pill:has-text('of 44.0 kW')", timeout=20_000)
    page.screenshot(path=str(out / "racks.png"), full_page=True)
    page.select_option("#rack-colour", "temp")
    page.screenshot(path=str(out / "racks-temperature.png"), full_page=True)
    tab(page, "quota", "#schedule-chart", out, "quota", full=True)
    csv_file = work / "day-ahead.csv"
    csv_file.write_text(SCHEDULE_CSV)
    page.click("nav a[data-tab=schedule]")
    page.set_input_files("#sched-file", str(csv_file))
    page.click("#sched-preview-btn")
    page.wait_for_selector("#sched-preview tbody tr", timeout=20_000)
    page.wait_for_timeout(800)
    page.screenshot(path=str(out / "schedule.png"), full_page=True)
    tab(page, "registry", "#pending tbody tr", out, "registry", full=True)
    tab(page, "reports", "#rep-status", out, "reports")
    tab(page, "plan", "#plan-curve", out, "plan")
    page.click("#theme-toggle")
    tab(page, "site", "#v-power:has-text('W')", out, "site-light")
    page.click("#theme-toggle")


if __name__ == "__main__":
    sys.exit(main())
