"""Energy-side files: commercial meter readings, which source each meter measures, purchase prices, and the
network reward series.

Meter readings (the grid operator's hourly values at a connection point), Astana date and hour 1-24 (hour n
starts n-1 hours after local midnight, as the day-ahead market numbers them):

    meter,date,hour,kwh[,status]          status: ok (default) / estimated / faulty / missing

Feeds (which energy source a meter measures, at which site; a meter's feed can change on a date):

    meter,site,source,valid_from[,valid_to]      source: grid / renewables / own_generation

Average purchase price of electricity (the fee scale's input), per licensee and month:

    licensee_bin,month,price_kzt_per_kwh      month: YYYY-MM

Network reward (per asset and Astana date): a hashprice in units, or difficulty and block reward (incl. fees):

    asset,date,units_per_ths_day     or     asset,date,difficulty,block_reward
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from money.errors import ImportRefused
from money.expected import reward_per_ths_day
from money.importers.common import csv_rows, no_duplicates, records
from money.records import MeterFeed, MeterReading, PurchasePrice, RewardPoint
from money.timebase import hour_starts, parse_month

STATUSES = ("ok", "estimated", "faulty", "missing")
SOURCES = ("grid", "renewables", "own_generation")


def parse_meter(name: str, data: bytes) -> list[MeterReading]:
    rows = []
    for row in csv_rows(name, data, ("meter", "date", "hour", "kwh"), ("status",)):
        day = row.day("date")
        assert day is not None
        hours = hour_starts(day)
        raw_hour = row.text("hour")
        if not raw_hour.isdigit() or not 1 <= int(raw_hour) <= len(hours):
            raise row.refuse(f"hour: {raw_hour!r} is not an hour 1-{len(hours)} of {day}")
        status = (row.text("status", required=False) or "ok").lower()
        if status not in STATUSES:
            raise row.refuse(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        kwh = row.number("kwh", required=status != "missing")
        if kwh is not None and kwh > 10_000_000:
            raise row.refuse(f"kwh: {kwh} in one hour is beyond any connection point (10 GWh)")
        reading = kwh if kwh is not None else Decimal(0)
        rows.append((row, MeterReading(row.text("meter"), hours[int(raw_hour) - 1], reading, status)))
    no_duplicates(rows, lambda r: (r.meter, r.hour), "meter and hour")
    return records(rows)


def parse_feeds(name: str, data: bytes) -> list[MeterFeed]:
    rows = []
    for row in csv_rows(name, data, ("meter", "site", "source", "valid_from"), ("valid_to",)):
        source = row.text("source").lower()
        if source not in SOURCES:
            raise row.refuse(f"source: {source!r} is not one of {', '.join(SOURCES)}")
        start, end = row.day("valid_from"), row.day("valid_to", required=False)
        assert start is not None
        if end is not None and end < start:
            raise row.refuse(f"valid_to {end} is before valid_from {start}")
        rows.append((row, MeterFeed(row.text("meter"), row.text("site"), source, start, end)))
    no_duplicates(rows, lambda f: (f.meter, f.valid_from), "meter and valid_from")
    by_meter: dict[str, list[MeterFeed]] = {}
    for _, f in rows:
        by_meter.setdefault(f.meter, []).append(f)
    for meter, feeds in by_meter.items():
        feeds.sort(key=lambda f: f.valid_from)
        for a, b in itertools.pairwise(feeds):
            if a.valid_to is None or a.valid_to >= b.valid_from:
                line = next(r.line for r, f in rows if f is b)
                raise ImportRefused(name, line, f"meter {meter}: overlaps its feed from {a.valid_from}")
    return records(rows)


def parse_prices(name: str, data: bytes) -> list[PurchasePrice]:
    rows = []
    for row in csv_rows(name, data, ("licensee_bin", "month", "price_kzt_per_kwh")):
        try:
            year, month = parse_month(row.text("month"))
        except ValueError:
            raise row.refuse(f"month: {row.text('month')!r} is not YYYY-MM") from None
        price = row.number("price_kzt_per_kwh", positive=True)
        assert price is not None
        rows.append((row, PurchasePrice(row.bin("licensee_bin"), year, month, price)))
    no_duplicates(rows, lambda p: (p.licensee, p.year, p.month), "licensee and month")
    return records(rows)


def parse_rewards(name: str, data: bytes, known: set[str] | None = None) -> list[RewardPoint]:
    rows = []
    for row in csv_rows(name, data, ("asset", "date"), ("units_per_ths_day", "difficulty", "block_reward")):
        asset = row.text("asset").upper()
        if known is not None and asset not in known:
            raise row.refuse(f"asset: {asset} is not a published asset")
        day = row.day("date")
        assert day is not None
        direct = row.number("units_per_ths_day", required=False)
        difficulty = row.number("difficulty", positive=True, required=False)
        reward = row.number("block_reward", positive=True, required=False)
        if direct is None and (difficulty is None or reward is None):
            raise row.refuse("give units_per_ths_day, or difficulty and block_reward")
        if direct is not None and (difficulty is not None or reward is not None):
            raise row.refuse("give units_per_ths_day or difficulty and block_reward, not both")
        units = direct if direct is not None else reward_per_ths_day(difficulty, reward)  # type: ignore[arg-type]
        rows.append((row, RewardPoint(asset, day, units, difficulty, reward)))
    no_duplicates(rows, lambda r: (r.asset, r.day), "asset and date")
    return records(rows)

