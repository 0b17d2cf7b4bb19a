"""Sales: exchanges' trade confirmations, and other disposals.

Trade confirmations (CSV or JSON list), one per executed sale or buy:

    exchange,aifc_licence,licensee_bin,account,date,asset,quantity,price,currency,side,reference

`aifc_licence` is the exchange's AIFC licence number (empty: not an AIFC-licensed exchange); `side` sell or buy
(buys are not disposals and are skipped). Other disposals (CSV), e.g. sales abroad, payments in kind, transfers
between the miner's own wallets (kind `transfer`, which the sale share does not count):

    licensee_bin,date,asset,quantity,kind,counterparty,reference
"""

from __future__ import annotations

from typing import Any

from money.errors import ImportRefused
from money.importers.common import JsonRecords, Row, check_keys, csv_rows, json_row, no_duplicates, records
from money.records import Disposal

TRADE_REQUIRED = ("exchange", "aifc_licence", "licensee_bin", "account", "date", "asset", "quantity", "price",
                  "currency", "reference")
TRADE_OPTIONAL = ("side",)
DISPOSAL_REQUIRED = ("licensee_bin", "date", "asset", "quantity", "kind", "reference")
DISPOSAL_OPTIONAL = ("counterparty",)
KINDS = ("sale", "payment", "transfer", "other")


def _asset(row: Row, known: set[str] | None) -> str:
    asset = row.text("asset").upper()
    if known is not None and asset not in known:
        raise row.refuse(f"asset: {asset} is not a published asset")
    return asset


def _trade(row: Row, known: set[str] | None) -> Disposal | None:
    side = (row.text("side", required=False) or "sell").lower()
    if side not in ("sell", "buy"):
        raise row.refuse(f"side: {side!r} is not sell or buy")
    asset = _asset(row, known)
    day, qty, price = row.day("date"), row.number("quantity", positive=True), row.number("price", positive=True)
    currency = row.text("currency").upper()
    if len(currency) < 3 or len(currency) > 5 or not currency.isalpha():
        raise row.refuse(f"currency: {currency!r} is not a currency code")
    assert day is not None and qty is not None
    d = Disposal(row.bin("licensee_bin"), day, asset, qty, "sale", row.text("exchange"),
                 row.text("aifc_licence", required=False), row.text("account"), price, currency,
                 row.text("reference"))
    return d if side == "sell" else None


def _disposal(row: Row, known: set[str] | None) -> Disposal:
    kind = row.text("kind").lower()
    if kind not in KINDS:
        raise row.refuse(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    day, qty = row.day("date"), row.number("quantity", positive=True)
    assert day is not None and qty is not None
    return Disposal(row.bin("licensee_bin"), day, _asset(row, known), qty, kind,
                    row.text("counterparty", required=False), "", "", None, "", row.text("reference"))


def trade_key(d: Disposal) -> tuple[Any, ...]:
    return (d.exchange, d.reference)


def disposal_key(d: Disposal) -> tuple[Any, ...]:
    return (d.licensee, d.reference)


def parse_trades(name: str, data: bytes, known: set[str] | None = None) -> list[Disposal]:
    rows: list[tuple[Row, Disposal | None]] = []
    if name.lower().endswith(".json") or data.lstrip()[:1] in (b"[", b"{"):
        doc = JsonRecords(name, data)
        items = doc.value.get("trades") if isinstance(doc.value, dict) else doc.value
        if not isinstance(items, list) or not items:
            raise ImportRefused(name, 1, "expected a list of trade confirmations (or {\"trades\": [...]})")
        for item in items:
            row = json_row(name, doc.locate(item, "reference") if isinstance(item, dict) else 0, item)
            check_keys(row, TRADE_REQUIRED, TRADE_OPTIONAL)
            rows.append((row, _trade(row, known)))
    else:
        rows = [(row, _trade(row, known)) for row in csv_rows(name, data, TRADE_REQUIRED, TRADE_OPTIONAL)]
    sells = [(row, d) for row, d in rows if d is not None]
    no_duplicates(sells, trade_key, "exchange and reference")
    return records(sells)


def parse_disposals(name: str, data: bytes, known: set[str] | None = None) -> list[Disposal]:
    rows = [(row, _disposal(row, known)) for row in csv_rows(name, data, DISPOSAL_REQUIRED, DISPOSAL_OPTIONAL)]
    no_duplicates(rows, disposal_key, "licensee and reference")
    return records(rows)
