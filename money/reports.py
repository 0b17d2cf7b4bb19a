"""The monthly report per licensee: energy by source, the mining fee, income by asset (units and tenge), the sale
share, and the expected-vs-distributed check. Pure assembly of the pieces computed elsewhere; `as_dict` is the
canonical form that is hashed into the controller's chain when a report is published."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from money.expected import Deviation
from money.fees import FeeStatement
from money.income import IncomeStatement
from money.numbers import KWH, plain, q
from money.sales import ShareResult

REPORT_VERSION = 1


@dataclass
class LicenseeMonth:
    licensee: str
    name: str
    year: int
    month: int
    energy_kwh: dict[str, Decimal]  # source -> kWh (Astana days of the month)
    fee: FeeStatement
    income: IncomeStatement
    shares: list[ShareResult]
    deviations: list[Deviation]
    conventions: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def month_text(self) -> str:
        return f"{self.year}-{self.month:02d}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION, "licensee": self.licensee, "name": self.name, "month": self.month_text,
            "energy": [{"source": s, "kwh": plain(q(v, KWH))} for s, v in sorted(self.energy_kwh.items())],
            "energy_total_kwh": plain(q(sum(self.energy_kwh.values(), Decimal(0)), KWH)),
            "fee": {"lines": [line.as_dict() for line in self.fee.lines], "total_kzt": plain(self.fee.total_kzt),
                    "flags": self.fee.flags},
            "income": {"by_asset": [{"asset": a, "units": plain(u), "kzt": plain(k)}
                                    for a, (u, k) in self.income.by_asset().items()],
                       "total_kzt": plain(self.income.total_kzt),
                       "lines": [line.as_dict() for line in self.income.lines],
                       "missing": self.income.missing()},
            "sale_share": [r.as_dict() for r in self.shares],
            "expected_vs_distributed": [d.as_dict() for d in self.deviations],
            "conventions": self.conventions, "flags": self.flags,
        }
