"""`kuat plan` without a controller: an offline curve from a fleet file, the backtest as JSON, clear errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def kuat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuat.cli", "plan", *args], capture_output=True, text=True,
                          timeout=240, cwd=ROOT)  # fmt: skip


def test_offline_curve_from_a_fleet_file(tmp_path: Path) -> None:
    """100 S21 on stock firmware (presets 1.0 and 0.75), outlets switched: by hand the first block is the 0.75
    preset (150 TH/s at 60 + 3440 x 0.75**1.7 = 2,169 W: 0.0692 TH/s per W), the second the step to full (50 TH/s
    for 1,331 W). The curve samples 48 powers (every 7.3 kW), so the first block ends at the sample nearest that
    point, where the machines not yet woken still draw their 25 W of sleep: its slope is a hair (< 0.1 %) under."""
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[machines]]\nmodel = "S21"\ncount = 100\n')
    out = kuat("curve", "--fleet", str(fleet), "--hashprice", "50", "--usd", "500", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    blocks = doc["hours"][0]["blocks"]
    p75 = 60 + 3440 * 0.75**1.7
    assert blocks[0]["ths_per_w"] == pytest.approx(150 / p75, rel=1e-3) and blocks[0]["ths_per_w"] <= 150 / p75
    assert blocks[0]["mwh"] == pytest.approx(100 * p75 / 1e6, abs=0.0074)
    assert blocks[-1]["ths_per_w"] == pytest.approx(50 / (3500 - p75), rel=1e-3)
    assert sum(b["ths"] for b in blocks) == pytest.approx(100 * 200, rel=1e-6)
    value = blocks[0]["ths_per_w"] * 1e6 * 50 / 24000 * 500 * 0.98 - 2000  # pool fee 2 %, mining fee 2 KZT/kWh
    assert blocks[0]["value_kzt_per_mwh"] == pytest.approx(value, rel=1e-9)
    assert doc["notes"][0].startswith("offline")
    table = kuat("curve", "--fleet", str(fleet), "--hashprice", "50", "--usd", "500")
    assert table.returncode == 0 and table.stdout.splitlines()[1].split()[0] == "hour"
    assert "note: offline" in table.stderr  # as a table, the notes go to stderr


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[machines]]\nmodel = "S99"\ncount = 1\n')
    out = kuat("curve", "--fleet", str(fleet), "--hashprice", "50", "--usd", "500")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("kuat plan:") and "S99" in out.stderr and len(out.stderr.splitlines()) == 1
    missing = kuat("curve", "--fleet", str(fleet))
    assert missing.returncode == 2 and "--hashprice and --usd" in missing.stderr
    no_key = kuat("bids", "--url", "http://127.0.0.1:9")
    assert no_key.returncode == 2 and "no API key" in no_key.stderr


def test_backtest_json() -> None:
    out = kuat("backtest", "--days", "3", "--warmup", "3", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["label"].startswith("SYNTHETIC")
    assert [s["name"] for s in doc["strategies"]] == ["planner", "flat connection", "yesterday's use"]
    for s in doc["strategies"]:
        assert s["days"] == 3 and len(s["daily_margin_kzt"]) == 3
        assert s["margin_kzt"] == pytest.approx(s["revenue_kzt"] - s["fee_kzt"] - s["cost_kzt"])
