"""The State Revenue Committee's published monthly table of values, as a CSV (our layout; docs/money.md):

    asset,date,value_kzt[,note]
    BTC,2026-07-01,31250000.50

One row per asset and Astana date; value in tenge per unit (a decimal point or comma; no thousands separators);
dates YYYY-MM-DD or DD.MM.YYYY. Once imported, these values are the authority; computed values become the
cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from money.importers.common import csv_rows, no_duplicates, records


@dataclass(frozen=True)
class PublishedValue:
    asset: str
    day: date
    value_kzt: Decimal
    note: str = ""


def parse_src(name: str, data: bytes, known: set[str] | None = None) -> list[PublishedValue]:
    rows = []
    for row in csv_rows(name, data, ("asset", "date", "value_kzt"), ("note",)):
        asset = row.text("asset").upper()
        if known is not None and asset not in known:
            raise row.refuse(f"asset: {asset} is not a published asset")
        day = row.day("date")
        value = row.number("value_kzt", positive=True)
        assert day is not None and value is not None
        rows.append((row, PublishedValue(asset, day, value, row.text("note", required=False))))
    no_duplicates(rows, lambda v: (v.asset, v.day), "asset and date")
    return records(rows)
