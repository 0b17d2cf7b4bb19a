"""The assets whose value is published (data/assets.toml), and those added at a pool's request for one year."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources

from money.errors import InvalidInput


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str
    cmc_id: int | None = None
    pegged_to: str | None = None  # ISO currency of a fixed-value asset (seed para 6)
    published_from: date | None = None  # assets added at a pool's request: the day after the request
    published_to: date | None = None  # ... for one year

    def published_on(self, day: date) -> bool:
        if self.published_from is not None and day < self.published_from:
            return False
        return self.published_to is None or day <= self.published_to


def requested(symbol: str, name: str, requested_on: date, cmc_id: int | None = None,
              pegged_to: str | None = None) -> Asset:
    """An asset a pool asked for on `requested_on`: published for one year from the next day (seed para 8)."""
    start = requested_on + timedelta(days=1)
    try:
        end = start.replace(year=start.year + 1) - timedelta(days=1)
    except ValueError:  # 29 February
        end = start.replace(year=start.year + 1, day=28)
    return Asset(symbol.upper(), name, cmc_id, pegged_to, start, end)


@dataclass(frozen=True)
class AssetList:
    assets: tuple[Asset, ...]

    def on(self, day: date) -> list[Asset]:
        return [a for a in self.assets if a.published_on(day)]

    def get(self, symbol: str) -> Asset:
        for a in self.assets:
            if a.symbol == symbol.upper():
                return a
        raise InvalidInput("asset", f"{symbol!r} is not a published asset ({', '.join(self.symbols())})")

    def symbols(self) -> list[str]:
        return [a.symbol for a in self.assets]

    def with_requests(self, extra: list[Asset]) -> AssetList:
        known = set(self.symbols())
        return AssetList(self.assets + tuple(a for a in extra if a.symbol not in known))


def parse_assets(text: str) -> AssetList:
    data = tomllib.loads(text)
    assets = [Asset(a["symbol"], a["name"], a.get("cmc_id"), a.get("pegged_to")) for a in data.get("asset", [])]
    assets += [requested(r["symbol"], r["name"], r["requested_on"], r.get("cmc_id"), r.get("pegged_to"))
               for r in data.get("requested", [])]
    return AssetList(tuple(assets))


@lru_cache(maxsize=1)
def published() -> AssetList:
    return parse_assets((resources.files("money") / "data" / "assets.toml").read_text(encoding="utf-8"))
