"""The sale share (Law Art. 8.4, Art. 14): of the mined assets a miner sells, at least 75 % (50 % in 2024) must go
through exchanges licensed in the AIFC.

Counted on quantity, per licensee, per asset (units of different assets do not add up) and per period
(`Period`: month by default; quarter or year by setting: the law names no period). The threshold is the one in
force on each sale's date (data/sale_share.toml), so a period that straddles a change weighs each sale by its own:
required = sum(quantity x threshold on its date). Disposals of kind `transfer` (between the miner's own wallets)
are not sales; sales, payments in kind and other disposals are. Before 1 January 2024 nothing is required.
The shortfall in tenge values the missing units at the average value of the disposals made outside the AIFC
(each at the published value for its date).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any

from money.errors import MissingInput
from money.numbers import RATIO, UNITS, plain, q
from money.records import Disposal
from money.valuation.base import Valuation

NOT_SALES = frozenset({"transfer"})


class Period(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def period_of(day: date, period: Period) -> str:
    if period is Period.MONTH:
        return f"{day.year}-{day.month:02d}"
    if period is Period.QUARTER:
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)


@dataclass(frozen=True)
class Threshold:
    valid_from: date
    valid_to: date | None
    share: Decimal
    source: str


@lru_cache(maxsize=1)
def thresholds() -> tuple[Threshold, ...]:
    data = tomllib.loads((resources.files("money") / "data" / "sale_share.toml").read_text(encoding="utf-8"))
    return tuple(Threshold(t["valid_from"], t.get("valid_to"), Decimal(t["share"]), t["source"])
                 for t in data["threshold"])


def threshold_on(day: date, table: tuple[Threshold, ...] | None = None) -> Threshold | None:
    for t in table if table is not None else thresholds():
        if t.valid_from <= day and (t.valid_to is None or day <= t.valid_to):
            return t
    return None


@dataclass
class ShareResult:
    licensee: str
    asset: str
    period: str
    sold: Decimal = Decimal(0)
    via_aifc: Decimal = Decimal(0)
    required: Decimal = Decimal(0)
    thresholds: set[str] = field(default_factory=set)
    shortfall_kzt: Decimal | None = None
    missing: list[str] = field(default_factory=list)
    disposals: list[Disposal] = field(default_factory=list)

    @property
    def share(self) -> Decimal | None:
        return q(self.via_aifc / self.sold, RATIO) if self.sold else None

    @property
    def shortfall(self) -> Decimal:
        return max(Decimal(0), q(self.required - self.via_aifc, UNITS))

    @property
    def status(self) -> str:
        if not self.sold:
            return "no_sales"
        if not self.required:
            return "not_required"
        return "shortfall" if self.shortfall > 0 else "compliant"

    def as_dict(self) -> dict[str, Any]:
        return {"licensee": self.licensee, "asset": self.asset, "period": self.period, "sold": plain(self.sold),
                "via_aifc": plain(self.via_aifc), "share": plain(self.share),
                "required": plain(q(self.required, UNITS)), "thresholds": sorted(self.thresholds),
                "status": self.status, "shortfall_units": plain(self.shortfall),
                "shortfall_kzt": plain(self.shortfall_kzt), "missing": self.missing}


def sale_share(licensee: str, disposals: Iterable[Disposal], period: Period,
               value: Callable[[str, date], Valuation], table: tuple[Threshold, ...] | None = None
               ) -> list[ShareResult]:
    results: dict[tuple[str, str], ShareResult] = {}
    outside: dict[tuple[str, str], list[tuple[Decimal, Decimal | None]]] = {}
    for d in sorted(disposals, key=lambda x: (x.day, x.asset, x.reference)):
        if d.licensee != licensee or d.kind in NOT_SALES:
            continue
        key = (d.asset, period_of(d.day, period))
        r = results.setdefault(key, ShareResult(licensee, d.asset, key[1]))
        r.disposals.append(d)
        r.sold += d.quantity
        t = threshold_on(d.day, table)
        if t is not None:
            r.required += d.quantity * t.share
            r.thresholds.add(f"{t.share * 100:.0f} % from {t.valid_from.isoformat()}")
        if d.via_aifc:
            r.via_aifc += d.quantity
            continue
        try:
            v: Decimal | None = value(d.asset, d.day).value_kzt
        except MissingInput as exc:
            v = None
            r.missing.append(f"{d.asset} {d.day.isoformat()}: {exc.what}")
        outside.setdefault(key, []).append((d.quantity, v))
    for key, r in results.items():
        rows = outside.get(key, [])
        if r.shortfall and rows and all(v is not None for _, v in rows):
            units = sum((qty for qty, _ in rows), Decimal(0))
            worth = sum((qty * v for qty, v in rows if v is not None), Decimal(0))
            r.shortfall_kzt = q(r.shortfall * worth / units)
        elif not r.shortfall:
            r.shortfall_kzt = Decimal("0.00")
    return [results[k] for k in sorted(results)]
