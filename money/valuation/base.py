"""The interface every valuation method implements, and the value it returns with every raw input kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from money.assets import Asset
from money.market import MarketData
from money.numbers import plain

VALUE_STEP = Decimal("0.0001")  # tenge per unit: values keep 4 decimals (SC and DOGE are worth a few tenge)


@dataclass(frozen=True)
class Valuation:
    """The value of one unit of `asset` on Astana date `day`, in tenge, and how it was reached."""

    asset: str
    day: date
    value_kzt: Decimal
    method: str  # the method's id in data/methods.toml (rules-2023, rules-2024, rules-2026) or "src-table"
    act: str
    reading: str  # rules-2023: "price" or "literal"; later rules: "end_of_day_price"; "published" for the SRC
    inputs: dict[str, Any] = field(default_factory=dict)  # every raw input, JSON-ready (Decimals as text)
    flags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "day": self.day.isoformat(), "value_kzt": plain(self.value_kzt),
                "method": self.method, "act": self.act, "reading": self.reading, "inputs": self.inputs,
                "flags": list(self.flags)}


class Method(Protocol):
    """A valuation method: the value of `asset` on `day` from `data`, or MissingInput naming what is absent."""

    @property
    def id(self) -> str: ...

    @property
    def act(self) -> str: ...

    def value(self, asset: Asset, day: date, data: MarketData) -> Valuation: ...


def text(value: Decimal | None) -> str | None:
    return plain(value)
