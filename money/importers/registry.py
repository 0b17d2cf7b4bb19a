"""Import kinds by name: the parser of each, and whether it needs the list of known assets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from money.errors import InvalidInput
from money.importers.cmc import parse_cmc
from money.importers.energy import parse_feeds, parse_meter, parse_prices, parse_rewards
from money.importers.nbk import parse_nbk
from money.importers.pool import parse_distributions
from money.importers.src import parse_src
from money.importers.trades import parse_disposals, parse_trades


@dataclass(frozen=True)
class Kind:
    name: str
    parser: Callable[..., list[Any]]
    needs_assets: bool
    what: str


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("nbk", parse_nbk, False, "National Bank rates (XML)"),
    Kind("cmc", parse_cmc, True, "CoinMarketCap daily quotes (JSON)"),
    Kind("src", parse_src, True, "the State Revenue Committee's published values (CSV)"),
    Kind("distributions", parse_distributions, True, "pool distribution records (CSV or JSON)"),
    Kind("trades", parse_trades, True, "exchange trade confirmations (CSV or JSON)"),
    Kind("disposals", parse_disposals, True, "other disposals (CSV)"),
    Kind("meter", parse_meter, False, "commercial meter readings, hourly kWh (CSV)"),
    Kind("feeds", parse_feeds, False, "energy source of each meter (CSV)"),
    Kind("prices", parse_prices, False, "average electricity purchase price per licensee and month (CSV)"),
    Kind("rewards", parse_rewards, True, "network reward per TH/s per day (CSV)"),
)}


def parse(kind: str, name: str, data: bytes, known_assets: set[str] | None = None) -> list[Any]:
    """The records of `data` (file `name`) as import kind `kind`, or ImportRefused."""
    k = KINDS.get(kind)
    if k is None:
        raise InvalidInput("kind", f"{kind!r} is not an import kind ({', '.join(KINDS)})")
    if k.needs_assets:
        return k.parser(name, data, known_assets)
    return k.parser(name, data)
