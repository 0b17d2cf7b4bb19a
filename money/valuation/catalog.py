"""Which method is in force on which dates: data/methods.toml, read once."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources

from money.assets import Asset
from money.errors import MissingInput
from money.market import MarketData
from money.valuation.base import Method, Valuation
from money.valuation.methods import KINDS


@dataclass(frozen=True)
class Period:
    method: Method
    valid_from: date
    valid_to: date | None

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class MethodCatalog:
    periods: tuple[Period, ...]

    def method_on(self, day: date) -> Method:
        for p in self.periods:
            if p.covers(day):
                return p.method
        raise MissingInput(f"a valuation method in force on {day.isoformat()} (data/methods.toml)")


def parse_methods(text: str) -> MethodCatalog:
    data = tomllib.loads(text)
    periods = []
    for m in data["method"]:
        method: Method = KINDS[m["kind"]](m["id"], m["act"])
        periods.append(Period(method, m["valid_from"], m.get("valid_to")))
    periods.sort(key=lambda p: p.valid_from)
    for a, b in itertools.pairwise(periods):
        if a.valid_to is None or a.valid_to >= b.valid_from:
            raise ValueError(f"methods {a.method.id} and {b.method.id} overlap")
    return MethodCatalog(tuple(periods))


@lru_cache(maxsize=1)
def methods_in_force() -> MethodCatalog:
    return parse_methods((resources.files("money") / "data" / "methods.toml").read_text(encoding="utf-8"))


def value_of(asset: Asset, day: date, data: MarketData, catalog: MethodCatalog | None = None) -> Valuation:
    """The value of `asset` on `day` by the method in force on `day`."""
    return (catalog or methods_in_force()).method_on(day).value(asset, day, data)
