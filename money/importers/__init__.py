"""Parsers of the files the money side imports. Each is pure: `parse(name, data) -> list of records`, or one
`ImportRefused` naming the file, the line and the reason (nothing of a refused file is kept by the caller).

| kind | module | format |
|---|---|---|
| nbk | nbk.py | the National Bank's `get_rates.cfm` XML (rates per `quant` units) |
| cmc | cmc.py | CoinMarketCap `/v2/cryptocurrency/ohlcv/historical` JSON (UTC days) |
| src | src.py | the State Revenue Committee's published table (CSV, layout in docs/money.md) |
| distributions | pool.py | pools' distribution records (CSV or JSON) |
| trades, disposals | trades.py | exchanges' trade confirmations (CSV or JSON); other disposals (CSV) |
| meter | energy.py | commercial meter readings, hourly kWh per connection point (CSV) |
| feeds | energy.py | the energy source of each meter or feed (CSV) |
| prices | energy.py | average purchase price of electricity per licensee and month (CSV) |
| rewards | energy.py | network reward series: units per TH/s per day, or difficulty and block reward (CSV) |
"""

from money.importers.registry import KINDS, parse

__all__ = ["KINDS", "parse"]
