"""Miners' income: quantity distributed x the value for the date of distribution, in tenge, with the method named
(GRATA's reading of the Tax Code: the pool's distribution is the miner's income when received)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from money.errors import MissingInput
from money.numbers import plain, q
from money.records import Distribution
from money.valuation.base import Valuation

ValueLookup = Callable[[str, date], Valuation]  # (asset, day) -> value, or MissingInput


@dataclass(frozen=True)
class IncomeLine:
    distribution: Distribution
    value: Valuation | None
    income_kzt: Decimal | None  # rounded to the tiyn per distribution
    missing: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = self.distribution
        return {"day": d.day.isoformat(), "asset": d.asset, "quantity": plain(d.quantity), "pool": d.pool,
                "wallet": d.wallet, "reference": d.reference,
                "value_kzt": plain(self.value.value_kzt) if self.value else None,
                "method": self.value.method if self.value else None,
                "reading": self.value.reading if self.value else None,
                "income_kzt": plain(self.income_kzt), "missing": self.missing}


@dataclass
class IncomeStatement:
    licensee: str
    lines: list[IncomeLine] = field(default_factory=list)

    def by_asset(self) -> dict[str, tuple[Decimal, Decimal]]:
        """asset -> (units, tenge), over the lines that could be valued."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for line in self.lines:
            units, kzt = out.get(line.distribution.asset, (Decimal(0), Decimal(0)))
            out[line.distribution.asset] = (units + line.distribution.quantity, kzt + (line.income_kzt or 0))
        return dict(sorted(out.items()))

    @property
    def total_kzt(self) -> Decimal:
        return sum((line.income_kzt or Decimal(0) for line in self.lines), Decimal(0))

    def missing(self) -> list[str]:
        return [line.missing for line in self.lines if line.missing]


def income_line(d: Distribution, lookup: ValueLookup) -> IncomeLine:
    try:
        value = lookup(d.asset, d.day)
    except MissingInput as exc:
        return IncomeLine(d, None, None, f"{d.asset} {d.day.isoformat()}: {exc.what}")
    return IncomeLine(d, value, q(d.quantity * value.value_kzt))


def statement(licensee: str, distributions: Iterable[Distribution], lookup: ValueLookup) -> IncomeStatement:
    lines = [income_line(d, lookup) for d in sorted(distributions, key=lambda d: (d.day, d.asset, d.reference))
             if d.licensee == licensee]
    return IncomeStatement(licensee, lines)
