"""The backtest's settlement by hand on one tiny day, and the bench's table with its three strategies side by side."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from kuat.catalog import MODELS
from planner.backtest import BacktestConfig, BacktestSite, MarketDay, run_backtest, settle
from planner.bids import BidRules, Step
from planner.curve import energy_curve
from planner.market import ZoneHourResult
from quota.fleet import FleetArrays, Machine

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 23)


def step(hour: int, n: int, mwh: float, price: float) -> Step:
    return Step("z", hour, n, mwh, price, price, price, 0.0, 1.0, "t", (("s", mwh),))


def test_settle_accepts_at_or_above_clearing_within_the_offered_volume() -> None:
    day = MarketDay(DAY, (ZoneHourResult(DAY, "z", 1, 3.0, 3.0, 30_000.0),
                          ZoneHourResult(DAY, "z", 2, 10.0, 1.0, None)), 50.0, 500.0)  # fmt: skip
    steps = [step(1, 1, 2.0, 40_000), step(1, 2, 2.0, 30_000), step(1, 3, 2.0, 29_999),
             step(2, 1, 2.0, 20_000), step(2, 2, 2.0, 19_999)]  # fmt: skip
    won = settle(steps, day, {"z": 20_000.0})
    # hour 1: 40,000 whole, 30,000 (a tie wins) only 1 of 2 MWh (3 offered), 29,999 loses
    assert [(s.price_kzt_per_mwh, s.mwh) for s in won[("z", 1)]] == [(40_000, 2.0), (30_000, 1.0)]
    # hour 2: no clearing price published: the floor cleared
    assert [(s.price_kzt_per_mwh, s.mwh) for s in won[("z", 2)]] == [(20_000, 2.0)]


def test_one_day_margin_by_hand() -> None:
    """1,000 S21 (3.5 MW, 200 TH/s each), connection 3.5 MW; every hour offers 100 MWh and clears at the floor.
    Hashprice 50 USD/PH/day, 500 KZT/USD: a MWh of S21 is worth 59,523.8 KZT. The flat baseline bids 3.5 MWh an hour
    at floor + 0.5 x (59,523.8 - 20,000) = 39,761.9; it wins every hour."""
    fleet = FleetArrays.from_machines([Machine(f"a{i}", MODELS["S21"], presets=(1.0,), sleep=False,
                                               outlet_switchable=True) for i in range(1000)])  # fmt: skip
    site = BacktestSite("s", "z", energy_curve(fleet, points=4), 3.5)
    day = MarketDay(DAY, tuple(ZoneHourResult(DAY, "z", h, 100.0, 10.0, None) for h in range(1, 25)), 50.0, 500.0)
    cfg = BacktestConfig({"z": 20_000.0}, BidRules())
    res = {r.name: r for r in run_backtest([day], [], [site], cfg)}
    value = 200 / 3500 * 1e6 * 50 / 24000 * 500
    flat = res["flat connection"]
    assert flat.won_mwh == pytest.approx(24 * 3.5)
    assert flat.margin_kzt == pytest.approx(24 * 3.5 * (value - (20_000 + 0.5 * (value - 20_000))), rel=1e-6)
    assert flat.avg_ths == pytest.approx(200_000, rel=1e-6)
    # the planner has no history: it shades the same way, rounded down to the tenge
    assert res["planner"].margin_kzt == pytest.approx(flat.margin_kzt, rel=1e-4)
    assert res["planner"].margin_kzt >= flat.margin_kzt


@pytest.mark.timeout(300)
def test_bench_prints_the_table_side_by_side() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "plan_backtest.py"), "--days", "5", "--warmup", "5"],
                         capture_output=True, text=True, timeout=280, cwd=ROOT, check=True)  # fmt: skip
    lines = out.stdout.splitlines()
    assert lines[0].startswith("SYNTHETIC market")
    header = next(line for line in lines if "planner" in line and "flat connection" in line)
    assert "yesterday's use" in header
    margin = next(line for line in lines if line.startswith("margin, M KZT"))
    assert len(margin.split()) == 3 + 3  # the title's words and one figure per strategy
    assert "day 5/5" in out.stderr  # progress on stderr, data on stdout
