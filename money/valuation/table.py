"""The monthly table of values per asset and day (seed para 7: published by the 10th of the following month).

Where the State Revenue Committee's own table has been imported, its value is the authority and the computed one a
cross-check: the difference is listed. Where neither can be had, the cell names the missing input, and the table is
incomplete. `readiness` says, on a given day, whether the table is ready, due soon (warn from the 8th) or late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from money.assets import AssetList
from money.errors import MissingInput
from money.market import MarketData
from money.numbers import RATIO, plain, q
from money.timebase import month_days, next_month
from money.valuation.base import Valuation
from money.valuation.catalog import MethodCatalog, methods_in_force

WARN_DAY = 8  # inputs still incomplete on the 8th of the next month: warn (dashboard, log)
DUE_DAY = 10  # the table is due by the 10th (seed para 7)


@dataclass(frozen=True)
class Cell:
    asset: str
    day: date
    value: Valuation | None  # the value that applies (the SRC's where imported, else computed)
    computed: Valuation | None
    published: Decimal | None  # the SRC's value
    missing: str | None = None  # why there is no computed value

    @property
    def difference(self) -> Decimal | None:
        if self.published is None or self.computed is None:
            return None
        return self.computed.value_kzt - self.published

    @property
    def difference_pct(self) -> Decimal | None:
        diff = self.difference
        if diff is None or not self.published:
            return None
        return q(diff / self.published * 100, RATIO)

    def as_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "day": self.day.isoformat(),
                "value_kzt": plain(self.value.value_kzt) if self.value else None,
                "source": ("src" if self.published is not None else "computed") if self.value else None,
                "method": self.value.method if self.value else None,
                "reading": self.value.reading if self.value else None,
                "computed_kzt": plain(self.computed.value_kzt) if self.computed else None,
                "published_kzt": plain(self.published), "difference_kzt": plain(self.difference),
                "difference_pct": plain(self.difference_pct), "missing": self.missing,
                "flags": list(self.computed.flags) if self.computed else []}


@dataclass
class MonthTable:
    year: int
    month: int
    cells: list[Cell] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(c.value is not None for c in self.cells)

    def missing(self) -> list[str]:
        return [f"{c.asset} {c.day.isoformat()}: {c.missing}" for c in self.cells if c.value is None]

    def differences(self) -> list[Cell]:
        return [c for c in self.cells if c.difference]

    def value(self, asset: str, day: date) -> Cell | None:
        for c in self.cells:
            if c.asset == asset and c.day == day:
                return c
        return None

    def due(self) -> date:
        y, m = next_month(self.year, self.month)
        return date(y, m, DUE_DAY)

    def readiness(self, today: date) -> str:
        """ready / pending (inputs incomplete, before the 8th) / warning (8th-10th) / late (after the 10th)."""
        if self.complete:
            return "ready"
        y, m = next_month(self.year, self.month)
        if today < date(y, m, WARN_DAY):
            return "pending"
        return "warning" if today <= self.due() else "late"


def build_table(year: int, month: int, assets: AssetList, data: MarketData,
                published: dict[tuple[str, date], Decimal] | None = None,
                catalog: MethodCatalog | None = None) -> MonthTable:
    catalog = catalog or methods_in_force()
    published = published or {}
    table = MonthTable(year, month)
    for day in month_days(year, month):
        for asset in assets.on(day):
            computed: Valuation | None = None
            missing = None
            try:
                computed = catalog.method_on(day).value(asset, day, data)
            except MissingInput as exc:
                missing = exc.what
            src = published.get((asset.symbol, day))
            value = computed
            if src is not None:
                value = Valuation(asset.symbol, day, src, "src-table", "State Revenue Committee's published table",
                                  "published", {"computed_kzt": plain(computed.value_kzt) if computed else None})
            table.cells.append(Cell(asset.symbol, day, value, computed, src, missing))
    return table
