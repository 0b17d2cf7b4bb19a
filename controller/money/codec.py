"""Records as stored: each import kind's record <-> the JSON body of its `money_input` row, its natural key, the
Astana day and licensee it concerns. Decoding gives back exactly the record the parser produced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, get_args, get_type_hints

from money.importers.src import PublishedValue
from money.market import FxRate, Quote
from money.records import Disposal, Distribution, MeterFeed, MeterReading, PurchasePrice, RewardPoint
from money.timebase import astana_date


def to_body(record: Any) -> dict[str, Any]:
    assert is_dataclass(record)
    out: dict[str, Any] = {}
    for f in fields(record):
        v = getattr(record, f.name)
        if isinstance(v, Decimal):
            v = format(v, "f")
        elif isinstance(v, (datetime, date)):
            v = v.isoformat()
        out[f.name] = v
    return out


def from_body(cls: type[Any], body: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        v = body.get(f.name)
        types = set(get_args(hints[f.name])) or {hints[f.name]}
        if v is None:
            values[f.name] = None
        elif Decimal in types:
            values[f.name] = Decimal(v)
        elif datetime in types:
            values[f.name] = datetime.fromisoformat(v)
        elif date in types:
            values[f.name] = date.fromisoformat(v)
        else:
            values[f.name] = v
    return cls(**values)


@dataclass(frozen=True)
class Codec:
    cls: type[Any]
    key: Callable[[Any], str]
    day: Callable[[Any], date]
    licensee: Callable[[Any], str | None] = lambda r: None


def _dist_key(d: Distribution) -> str:
    if d.reference:
        return f"{d.licensee}|{d.pool}|{d.reference}|{d.day}|{d.asset}|{d.wallet}"
    return f"{d.licensee}|{d.pool}|{d.day}|{d.asset}|{d.wallet}|{d.quantity}"


CODECS: dict[str, Codec] = {
    "nbk": Codec(FxRate, lambda r: f"{r.currency}|{r.day}", lambda r: r.day),
    "cmc": Codec(Quote, lambda r: f"{r.asset}|{r.utc_day}", lambda r: r.utc_day),
    "src": Codec(PublishedValue, lambda r: f"{r.asset}|{r.day}", lambda r: r.day),
    "distributions": Codec(Distribution, _dist_key, lambda r: r.day, lambda r: r.licensee),
    "trades": Codec(Disposal, lambda r: f"trade|{r.exchange}|{r.reference}", lambda r: r.day, lambda r: r.licensee),
    "disposals": Codec(Disposal, lambda r: f"other|{r.licensee}|{r.reference}", lambda r: r.day,
                       lambda r: r.licensee),
    "meter": Codec(MeterReading, lambda r: f"{r.meter}|{r.hour.isoformat()}", lambda r: astana_date(r.hour)),
    "feeds": Codec(MeterFeed, lambda r: f"{r.meter}|{r.valid_from}", lambda r: r.valid_from),
    "prices": Codec(PurchasePrice, lambda r: f"{r.licensee}|{r.year}-{r.month:02d}",
                    lambda r: date(r.year, r.month, 1), lambda r: r.licensee),
    "rewards": Codec(RewardPoint, lambda r: f"{r.asset}|{r.day}", lambda r: r.day),
}
