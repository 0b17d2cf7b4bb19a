"""Pools' distribution records, with the fields of the pool's report to the tax authority (form of 20.02.2026):
miner IIN/BIN, name, licence number and date, wallet, date of distribution, asset, quantity; plus the pool and
its payout reference. CSV with a header, or JSON (a list of objects, or {"distributions": [...]}), same names:

    licensee_bin,name,licence_number,licence_date,wallet,date,asset,quantity,pool,reference
"""

from __future__ import annotations

from typing import Any

from money.errors import ImportRefused
from money.importers.common import JsonRecords, Row, check_keys, csv_rows, json_row, no_duplicates, records
from money.records import Distribution

REQUIRED = ("licensee_bin", "licence_number", "licence_date", "wallet", "date", "asset", "quantity")
OPTIONAL = ("name", "pool", "reference")


def _record(row: Row, known: set[str] | None) -> Distribution:
    asset = row.text("asset").upper()
    if known is not None and asset not in known:
        raise row.refuse(f"asset: {asset} is not a published asset")
    licence_date, day = row.day("licence_date"), row.day("date")
    qty = row.number("quantity", positive=True)
    assert licence_date is not None and day is not None and qty is not None
    if day < licence_date:
        raise row.refuse(f"date {day} is before the licence date {licence_date}")
    return Distribution(row.bin("licensee_bin"), row.text("licence_number"), licence_date, row.text("wallet"), day,
                        asset, qty, row.text("pool", required=False), row.text("reference", required=False),
                        row.text("name", required=False))


def key(d: Distribution) -> tuple[Any, ...]:
    return (d.licensee, d.pool, d.reference, d.day, d.asset, d.wallet) if d.reference else (
        d.licensee, d.pool, d.day, d.asset, d.wallet, d.quantity)


def parse_distributions(name: str, data: bytes, known: set[str] | None = None) -> list[Distribution]:
    rows: list[tuple[Row, Distribution]] = []
    if name.lower().endswith(".json") or data.lstrip()[:1] in (b"[", b"{"):
        doc = JsonRecords(name, data)
        items = doc.value.get("distributions") if isinstance(doc.value, dict) else doc.value
        if not isinstance(items, list) or not items:
            raise ImportRefused(name, 1, "expected a list of distributions (or {\"distributions\": [...]})")
        for item in items:
            row = json_row(name, doc.locate(item, "licensee_bin") if isinstance(item, dict) else 0, item)
            check_keys(row, REQUIRED, OPTIONAL)
            rows.append((row, _record(row, known)))
    else:
        rows = [(row, _record(row, known)) for row in csv_rows(name, data, REQUIRED, OPTIONAL)]
    no_duplicates(rows, key, "distribution")
    return records(rows)
