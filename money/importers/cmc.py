"""CoinMarketCap's historical daily quotes, `GET /v2/cryptocurrency/ohlcv/historical` (interval daily, convert USD):

    {"status": {...}, "data": {"id": 1, "name": "Bitcoin", "symbol": "BTC",
      "quotes": [{"time_open": "2026-07-01T00:00:00.000Z", "time_close": "2026-07-01T23:59:59.999Z", ...,
                  "quote": {"USD": {"open": .., "high": .., "low": .., "close": .., "volume": ..,
                                    "market_cap": .., "timestamp": ".."}}}]}}

`data` may also be keyed by id or symbol (`{"1": {...}}`, `{"BTC": [{...}]}`), as the v2 endpoints answer for
several ids. Each quote is one **UTC** day (time_open at 00:00:00Z); the day is stored as that UTC date, and which
one stands for an Astana date is the valuation's convention (stored with every value). An optional
`circulating_supply` in a quote (from /v2/cryptocurrency/quotes/historical) is kept for the 2023 `price` reading.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from money.errors import ImportRefused
from money.importers.common import JsonRecords, Records
from money.market import Quote

NUMBERS = ("open", "high", "low", "close", "volume", "market_cap")


def _assets_of(name: str, data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or "data" not in data:
        raise ImportRefused(name, 1, "expected an object with \"data\" (CoinMarketCap's reply)")
    body = data["data"]
    if isinstance(body, dict) and "quotes" in body:
        return [body]
    found: list[dict[str, Any]] = []
    if isinstance(body, dict):
        for value in body.values():
            for entry in value if isinstance(value, list) else [value]:
                if isinstance(entry, dict) and "quotes" in entry:
                    found.append(entry)
    if not found:
        raise ImportRefused(name, 1, "no asset with \"quotes\" in \"data\"")
    return found


def _instant(raw: Any, field: str, refuse: Any) -> datetime:
    if not isinstance(raw, str):
        raise refuse(f"{field} missing or not text")
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise refuse(f"{field} {raw!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise refuse(f"{field} {raw!r} has no time zone (CoinMarketCap's days are UTC: ...Z)")
    return t.astimezone(UTC)


def parse_cmc(name: str, data: bytes, known: set[str] | None = None) -> Records:
    records = JsonRecords(name, data)
    out: list[tuple[int, Quote]] = []
    seen: dict[tuple[str, Any], int] = {}
    for asset in _assets_of(name, records.value):
        symbol = str(asset.get("symbol", "")).upper()
        if not symbol:
            raise ImportRefused(name, 1, "an asset without \"symbol\"")
        if known is not None and symbol not in known:
            raise ImportRefused(name, records.locate(asset, "symbol"), f"{symbol} is not a published asset")
        if not isinstance(asset["quotes"], list) or not asset["quotes"]:
            raise ImportRefused(name, records.locate(asset, "symbol"), f"{symbol}: no quotes")
        for item in asset["quotes"]:
            line = records.locate(item, "time_open") if isinstance(item, dict) else 0

            def refuse(reason: str, line: int = line, symbol: str = symbol) -> ImportRefused:
                return ImportRefused(name, line, f"{symbol}: {reason}")

            if not isinstance(item, dict):
                raise refuse("a quote that is not an object")
            start = _instant(item.get("time_open"), "time_open", refuse)
            close_t = _instant(item.get("time_close"), "time_close", refuse)
            if (start.hour, start.minute, start.second, start.microsecond) != (0, 0, 0, 0):
                raise refuse(f"time_open {item['time_open']} is not the start of a UTC day (interval must be daily)")
            if not start < close_t <= start.replace(hour=23, minute=59, second=59, microsecond=999999):
                raise refuse(f"time_close {item['time_close']} is not within the day of time_open")
            usd = (item.get("quote") or {}).get("USD") if isinstance(item.get("quote"), dict) else None
            if not isinstance(usd, dict):
                raise refuse("no quote.USD (convert=USD)")
            values: dict[str, Decimal] = {}
            for f in NUMBERS:
                v = usd.get(f)
                if not isinstance(v, Decimal) or not v.is_finite() or v < 0:
                    raise refuse(f"quote.USD.{f} {v!r} is not a number >= 0")
                values[f] = v
            for f in ("close", "volume", "market_cap"):
                if values[f] == 0:
                    raise refuse(f"quote.USD.{f} is 0 (the valuation divides by it)")
            supply = item.get("circulating_supply", usd.get("circulating_supply"))
            if supply is not None and (not isinstance(supply, Decimal) or supply <= 0):
                raise refuse(f"circulating_supply {supply!r} is not a positive number")
            key = (symbol, start.date())
            if key in seen:
                raise refuse(f"UTC day {start.date()} twice (first at line {seen[key]})")
            seen[key] = line
            out.append((line, Quote(symbol, start.date(), start, close_t, values["open"], values["high"], values["low"],
                             values["close"], values["volume"], values["market_cap"], supply)))
    return Records(out)
