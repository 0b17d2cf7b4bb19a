"""The mining fee: per metered kWh, by energy source, at the rate set in force on the day (data/fee_rates.toml).

Grid energy is charged by the progressive scale on the average price of the electricity the licensee bought in
the month (no price given: the highest rate, flagged); own renewables and off-grid own generation at their flat
rates; energy with no meter or a faulty one at the set's highest rate. A set reported only as proposed
(`adopted = false`) applies only when named in `extra_sets`. Where several sets cover a day, the one that started
last wins.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from money.errors import MissingInput
from money.numbers import KWH, plain, q

SOURCE_RATE = {"renewables": "own_renewables", "own_generation": "off_grid_own_generation"}


@dataclass(frozen=True)
class Band:
    up_to: Decimal | None
    rate: Decimal


@dataclass(frozen=True)
class RateSet:
    id: str
    adopted: bool
    valid_from: date
    valid_to: date | None
    source: str
    grid: tuple[Band, ...]
    flat: dict[str, Decimal]

    @property
    def highest(self) -> Decimal:
        return max([b.rate for b in self.grid] + list(self.flat.values()))

    def grid_rate(self, price: Decimal) -> tuple[Decimal, str]:
        for b in self.grid:
            if b.up_to is None or price <= b.up_to:
                return b.rate, f"average price {price} <= {b.up_to}" if b.up_to is not None else "top band"
        return self.grid[-1].rate, "top band"


@dataclass(frozen=True)
class RateTable:
    sets: tuple[RateSet, ...]

    def on(self, day: date, extra_sets: Iterable[str] = ()) -> RateSet:
        wanted = set(extra_sets)
        found = [s for s in self.sets if (s.adopted or s.id in wanted) and s.valid_from <= day
                 and (s.valid_to is None or day <= s.valid_to)]
        if not found:
            raise MissingInput(f"a mining-fee rate set in force on {day.isoformat()} (data/fee_rates.toml)")
        return max(found, key=lambda s: s.valid_from)


def parse_rates(text: str) -> RateTable:
    data = tomllib.loads(text)
    sets = []
    for s in data["set"]:
        grid = tuple(Band(Decimal(b["up_to"]) if "up_to" in b else None, Decimal(b["rate"])) for b in s["grid"])
        flat = {k: Decimal(s[k]) for k in ("own_renewables", "off_grid_own_generation") if k in s}
        sets.append(RateSet(s["id"], bool(s["adopted"]), s["valid_from"], s.get("valid_to"), s["source"], grid, flat))
    return RateTable(tuple(sets))


@lru_cache(maxsize=1)
def rate_table() -> RateTable:
    return parse_rates((resources.files("money") / "data" / "fee_rates.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class EnergyDay:
    """A licensee's energy of one source on one Astana day; `metered` False: no meter or a faulty one."""

    day: date
    source: str
    kwh: Decimal
    metered: bool = True


@dataclass
class FeeLine:
    rate_set: str
    source: str
    basis: str
    rate: Decimal
    kwh: Decimal = Decimal(0)

    @property
    def fee_kzt(self) -> Decimal:
        return q(self.kwh * self.rate)

    def as_dict(self) -> dict[str, Any]:
        return {"rate_set": self.rate_set, "source": self.source, "basis": self.basis, "rate": plain(self.rate),
                "kwh": plain(q(self.kwh, KWH)), "fee_kzt": plain(self.fee_kzt)}


@dataclass
class FeeStatement:
    licensee: str
    lines: list[FeeLine] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def total_kzt(self) -> Decimal:
        return sum((line.fee_kzt for line in self.lines), Decimal(0))

    @property
    def kwh(self) -> Decimal:
        return sum((line.kwh for line in self.lines), Decimal(0))


def fee(licensee: str, energy: Iterable[EnergyDay], price: Decimal | None, table: RateTable | None = None,
        extra_sets: Iterable[str] = ()) -> FeeStatement:
    """The fee of one licensee's month. `price`: the month's average purchase price (tenge/kWh) or None."""
    table = table or rate_table()
    extra = tuple(extra_sets)
    out = FeeStatement(licensee)
    lines: dict[tuple[str, str, str, Decimal], FeeLine] = {}
    for e in sorted(energy, key=lambda x: (x.day, x.source)):
        rs = table.on(e.day, extra)
        if not e.metered:
            rate, basis = rs.highest, "no meter or faulty meter: highest rate"
        elif e.source in SOURCE_RATE:
            rate, basis = rs.flat[SOURCE_RATE[e.source]], SOURCE_RATE[e.source]
        elif price is None:
            rate, basis = rs.highest, "no average purchase price: highest rate"
            flag = "no average purchase price for the month: grid energy charged at the highest rate"
            if flag not in out.flags:
                out.flags.append(flag)
        else:
            rate, basis = rs.grid_rate(price)
        key = (rs.id, e.source, basis, rate)
        line = lines.get(key)
        if line is None:
            line = lines[key] = FeeLine(rs.id, e.source, basis, rate)
        line.kwh += e.kwh
    out.lines = list(lines.values())
    return out
