"""The planner's file formats (docs/planner.md, "File formats"): CSV in (results, hashprice, USD rate), bids out.

Every parser reads the whole file first and refuses it whole: each bad line is named by its number (the header is
line 1) with the reason, and nothing is written. UTF-8 with or without a BOM; blank lines are skipped; columns are
found by the header's names, in any order; extra columns are refused (a typo must not pass for an absent value).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from planner.bids import Step
from planner.errors import PlannerInputError, PlannerProblems
from planner.market import HOURS
from quota.errors import Issue

RESULT_COLUMNS = ("day", "zone", "hour", "offered_mwh", "sold_mwh", "clearing_kzt_per_mwh", "won_mwh", "paid_kzt")
RESULT_REQUIRED = ("day", "zone", "hour", "offered_mwh", "won_mwh")
HASHPRICE_COLUMNS = ("day", "usd_per_ph_day", "difficulty", "subsidy_btc", "fees_btc_per_block", "btc_usd", "source")
USD_COLUMNS = ("day", "kzt_per_usd", "source")
BID_COLUMNS = ("day", "zone", "hour", "step", "price_kzt_per_mwh", "quantity_mwh")
BIDS_FORMAT = "kuat-bids/1"


@dataclass(frozen=True, slots=True)
class ResultRow:
    day: date
    zone: str
    hour: int
    offered_mwh: float
    sold_mwh: float | None
    clearing_kzt_per_mwh: float | None
    won_mwh: float
    paid_kzt: float | None


@dataclass(frozen=True, slots=True)
class SeriesRow:
    day: date
    value: float
    source: str
    inputs: dict[str, float] | None = None  # a hashprice computed from the network's figures


def _rows(body: bytes, allowed: Sequence[str], required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlannerInputError([Issue("body", "the CSV is not UTF-8 text")]) from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    problems = PlannerProblems()
    unknown = [h for h in header if h not in allowed]
    missing = [h for h in required if h not in header]
    if unknown:
        problems.add("line 1", f"unknown column(s) {', '.join(unknown)}; the columns are {', '.join(allowed)}")
    if missing:
        problems.add("line 1", f"missing column(s) {', '.join(missing)}")
    if len(set(header)) != len(header):
        problems.add("line 1", "a column is named twice")
    problems.raise_if_any()
    out = []
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            problems.add(f"line {n}", f"{len(row)} fields, the header has {len(header)}")
            continue
        out.append((n, {k: v.strip() for k, v in zip(header, row, strict=True)}))
    problems.raise_if_any()
    if not out:
        raise PlannerInputError([Issue("body", "no rows after the header")])
    return out


def _num(v: str, name: str, n: int, problems: PlannerProblems, optional: bool = False,
         positive: bool = False) -> float | None:
    if v == "":
        if not optional:
            problems.add(f"line {n}", f"{name} is empty")
        return None
    try:
        x = float(v)
    except ValueError:
        problems.add(f"line {n}", f"{name} {v!r} is not a number")
        return None
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        problems.add(f"line {n}", f"{name} {v!r} must be a {'positive' if positive else 'non-negative'} number")
        return None
    return x


def _day(v: str, n: int, problems: PlannerProblems) -> date | None:
    try:
        return date.fromisoformat(v)
    except ValueError:
        problems.add(f"line {n}", f"day {v!r} is not a date (YYYY-MM-DD, the Astana day)")
        return None


def parse_results(body: bytes, known_zones: Sequence[str] | None = None) -> list[ResultRow]:
    """The published results of one day: one row per zone and hour 1..24, every hour of each zone present."""
    problems = PlannerProblems()
    rows: list[ResultRow] = []
    seen: dict[tuple[str, int], int] = {}
    for n, r in _rows(body, RESULT_COLUMNS, RESULT_REQUIRED):
        day = _day(r["day"], n, problems)
        zone = r["zone"]
        if not zone:
            problems.add(f"line {n}", "zone is empty")
        elif known_zones is not None and zone not in known_zones:
            problems.add(f"line {n}", f"zone {zone!r} is not the zone of any site here ({', '.join(known_zones)})")
        try:
            hour = int(r["hour"])
        except ValueError:
            problems.add(f"line {n}", f"hour {r['hour']!r} is not a whole number")
            continue
        if not 1 <= hour <= HOURS:
            problems.add(f"line {n}", f"hour {hour} is not 1..{HOURS}")
        if (zone, hour) in seen:
            problems.add(f"line {n}", f"{zone} hour {hour} given twice (first on line {seen[zone, hour]})")
        seen[zone, hour] = n
        offered = _num(r["offered_mwh"], "offered_mwh", n, problems)
        won = _num(r["won_mwh"], "won_mwh", n, problems)
        sold = _num(r.get("sold_mwh", ""), "sold_mwh", n, problems, optional=True)
        clearing = _num(r.get("clearing_kzt_per_mwh", ""), "clearing_kzt_per_mwh", n, problems, optional=True,
                        positive=True)
        paid = _num(r.get("paid_kzt", ""), "paid_kzt", n, problems, optional=True)
        if offered is not None and won is not None and won > offered + 1e-9:
            problems.add(f"line {n}", f"won_mwh {won:g} is more than the offered {offered:g}")
        if day is not None and offered is not None and won is not None:
            rows.append(ResultRow(day, zone, hour, offered, sold, clearing, won, paid))
    days = {r.day for r in rows}
    if len(days) > 1:
        problems.add("day", f"one file holds one day's results (found {', '.join(sorted(map(str, days)))})")
    for zone in sorted({z for z, _ in seen}):
        hours = sorted(h for z, h in seen if z == zone)
        if hours != list(range(1, HOURS + 1)):
            absent = sorted(set(range(1, HOURS + 1)) - set(hours))
            problems.add("hour", f"{zone}: hours {absent} are missing: a register covers hours 1..{HOURS}")
    problems.raise_if_any()
    return rows


def parse_hashprice(body: bytes, network: Callable[[float, float, float, float], float]) -> list[SeriesRow]:
    """Rows of `day,usd_per_ph_day,source`, or of `day,difficulty,subsidy_btc,fees_btc_per_block,btc_usd,source`
    (computed with `network`, planner.economics.hashprice_from_network)."""
    problems = PlannerProblems()
    out: list[SeriesRow] = []
    net_cols = ("difficulty", "subsidy_btc", "fees_btc_per_block", "btc_usd")
    for n, r in _rows(body, HASHPRICE_COLUMNS, ("day", "source")):
        day = _day(r["day"], n, problems)
        if not r["source"]:
            problems.add(f"line {n}", "source is empty: say where the figure comes from")
        given = r.get("usd_per_ph_day", "")
        if given:
            value = _num(given, "usd_per_ph_day", n, problems, positive=True)
            inputs = None
        elif all(r.get(c, "") for c in net_cols):
            vals = [_num(r[c], c, n, problems, positive=c != "fees_btc_per_block") for c in net_cols]
            if any(v is None for v in vals):
                continue
            inputs = dict(zip(net_cols, [float(v) for v in vals if v is not None], strict=True))
            value = network(*inputs.values())
        else:
            problems.add(f"line {n}", "give usd_per_ph_day, or difficulty, subsidy_btc, fees_btc_per_block and btc_usd")
            continue
        if day is not None and value is not None:
            out.append(SeriesRow(day, value, r["source"], inputs))
    _unique_days(out, problems)
    problems.raise_if_any()
    return out


def parse_usd(body: bytes) -> list[SeriesRow]:
    """Rows of `day,kzt_per_usd,source` (the National Bank of Kazakhstan's rate, tenge per dollar)."""
    problems = PlannerProblems()
    out: list[SeriesRow] = []
    for n, r in _rows(body, USD_COLUMNS, USD_COLUMNS):
        day = _day(r["day"], n, problems)
        value = _num(r["kzt_per_usd"], "kzt_per_usd", n, problems, positive=True)
        if not r["source"]:
            problems.add(f"line {n}", "source is empty: say where the rate comes from")
        if day is not None and value is not None:
            out.append(SeriesRow(day, value, r["source"]))
    _unique_days(out, problems)
    problems.raise_if_any()
    return out


def _unique_days(rows: list[SeriesRow], problems: PlannerProblems) -> None:
    days = [r.day for r in rows]
    twice = sorted({d for d in days if days.count(d) > 1})
    if twice:
        problems.add("day", f"given more than once: {', '.join(map(str, twice))}")


def bids_csv(day: date, steps: Sequence[Step]) -> str:
    """The submission: one row per step, highest price first within each zone and hour."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BID_COLUMNS)
    for s in sorted(steps, key=lambda s: (s.zone, s.hour, s.step)):
        w.writerow([day.isoformat(), s.zone, s.hour, s.step, f"{s.price_kzt_per_mwh:.2f}", f"{s.mwh:.3f}"])
    return buf.getvalue()


def bids_json(bid_set_id: int, day: date, created_at: str, steps: Sequence[Step], summary: dict[str, Any],
              inputs: dict[str, Any]) -> str:
    """The same bids with what they were made from: every step's value, win chance and sites, the summary."""
    doc = {
        "format": BIDS_FORMAT, "bid_set": bid_set_id, "day": day.isoformat(), "created_at": created_at,
        "currency": "KZT", "energy_unit": "MWh", "hours": "Astana local hours 1..24",
        "steps": [step_doc(s) for s in sorted(steps, key=lambda s: (s.zone, s.hour, s.step))],
        "summary": summary, "inputs": inputs,
    }  # fmt: skip
    return json.dumps(doc, indent=1)


def step_doc(s: Step) -> dict[str, Any]:
    return {"zone": s.zone, "hour": s.hour, "step": s.step, "price_kzt_per_mwh": round(s.price_kzt_per_mwh, 2),
            "quantity_mwh": round(s.mwh, 3), "value_kzt_per_mwh": round(s.value_kzt_per_mwh, 2),
            "avg_value_kzt_per_mwh": round(s.avg_value_kzt_per_mwh, 2), "ths": round(s.ths, 3),
            "win_probability": round(s.win_probability, 4), "price_rule": s.price_rule,
            "sites": {site: round(q, 6) for site, q in s.sites}}  # fmt: skip


def step_from_doc(d: dict[str, Any]) -> Step:
    return Step(d["zone"], d["hour"], d["step"], d["quantity_mwh"], d["price_kzt_per_mwh"], d["value_kzt_per_mwh"],
                d["avg_value_kzt_per_mwh"], d["ths"], d["win_probability"], d["price_rule"],
                tuple(sorted(d["sites"].items())))  # fmt: skip
