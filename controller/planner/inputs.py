"""The planner's market and money inputs for a day, each with its source: hashprice, the USD rate, the zone's floor,
the mining fee and the pool fee.

Forecasts are the plainest ones, and say so in their source: tomorrow's hashprice and USD rate are the latest
imported values on or before that day (the prepayment is made by 08:00, before anything about tomorrow is known).
The mining fee comes from `mining_fee_rate`, the one place that reads it: the money side's rate table
(money/data/fee_rates.toml, sets with effective dates) at the licensee's average price of electricity, unless the
setting `planner.mining_fee_kzt_per_kwh` overrides it. The USD rate is the planner's imported series, else the
National Bank feed the money side stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controller.planner.formats import SeriesRow
from controller.planner.models import PlannerImport, PlannerSeries
from controller.planner.settings import PlannerSettings
from kuat import clock
from planner.economics import Economics
from planner.errors import PlannerProblems, planner_issue
from serverkit.db import SQLITE_BEGIN

KINDS = ("hashprice", "usd_kzt")


@dataclass(frozen=True, slots=True)
class PriceBasis:
    """The average price of the electricity bought that the progressive fee scale is read at, and why that one."""

    kzt_per_kwh: float
    why: str


def mining_fee_rate(settings: PlannerSettings, day: date, basis: PriceBasis,
                    extra_sets: Sequence[str] = ()) -> tuple[float, str]:
    """KZT per kWh of metered grid consumption on `day`, and where the figure comes from. The Tax Code's scale is
    progressive (1-25 KZT/kWh by the average price of the electricity bought in the month, REGULATION.md); the money
    side keeps the rate sets as data with effective dates (`extra_sets`: proposals the settings apply anyway)."""
    if settings.mining_fee_kzt_per_kwh is not None:
        return settings.mining_fee_kzt_per_kwh, settings.mining_fee_source
    from money.errors import MissingInput
    from money.fees import rate_table

    try:
        rates = rate_table().on(day, extra_sets)
    except MissingInput as exc:
        raise planner_issue("mining_fee", str(exc)) from None
    rate, band = rates.grid_rate(Decimal(f"{basis.kzt_per_kwh:.4f}"))
    return float(rate), f"{rates.source}, set {rates.id}: {band} at {basis.why}"


def zone_floor(settings: PlannerSettings, zone: str, day: date) -> tuple[float, str] | None:
    """The floor in force in `zone` on `day` (the latest `valid_from` on or before it), with its source."""
    rows = [f for f in settings.zone_floors if f.zone == zone and f.valid_from <= day]
    if not rows:
        return None
    f = max(rows, key=lambda r: r.valid_from)
    return f.kzt_per_mwh, f"{f.source} (from {f.valid_from})"


def store_series(engine: Engine, kind: str, rows: Sequence[SeriesRow], actor: str, source: str,
                 filename: str | None, body: bytes) -> int:
    """Store imported days of a series; a day given again replaces the older value (kept, `replaced_by`)."""
    now = clock.now()
    with Session(engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}), expire_on_commit=False) as s:
        imp = PlannerImport(kind=kind, day=None, filename=filename, sha256=hashlib.sha256(body).hexdigest(),
                            rows=len(rows), actor=actor, source=source, received_at=now)  # fmt: skip
        s.add(imp)
        for r in rows:
            row = PlannerSeries(kind=kind, day=r.day, value=r.value, source=r.source,
                                inputs_json=None if r.inputs is None else json.dumps(r.inputs), actor=actor,
                                received_at=now)  # fmt: skip
            s.add(row)
            s.flush()
            old = s.exec(select(PlannerSeries).where(col(PlannerSeries.kind) == kind, col(PlannerSeries.day) == r.day,
                                                     col(PlannerSeries.replaced_by).is_(None),
                                                     col(PlannerSeries.id) != row.id)).all()  # fmt: skip
            for o in old:
                o.replaced_by = row.id
                s.add(o)
        s.commit()
        assert imp.id is not None
        return imp.id


def latest(engine: Engine, kind: str, day: date) -> PlannerSeries | None:
    """The newest value of `kind` for a day on or before `day`."""
    with Session(engine) as s:
        return s.exec(select(PlannerSeries).where(col(PlannerSeries.kind) == kind, col(PlannerSeries.day) <= day,
                                                  col(PlannerSeries.replaced_by).is_(None))
                      .order_by(col(PlannerSeries.day).desc(), col(PlannerSeries.id).desc())).first()  # fmt: skip


def series(engine: Engine, kind: str, since: date) -> list[PlannerSeries]:
    with Session(engine) as s:
        return list(s.exec(select(PlannerSeries).where(col(PlannerSeries.kind) == kind,
                                                       col(PlannerSeries.day) >= since,
                                                       col(PlannerSeries.replaced_by).is_(None))
                           .order_by(col(PlannerSeries.day))).all())  # fmt: skip


def _as_of(row: PlannerSeries, day: date) -> str:
    when = "" if row.day == day else f", the latest known (for {day}: no later value)"
    return f"{row.source} of {row.day}{when}"


def nbk_usd(engine: Engine, day: date) -> tuple[float, str] | None:
    """The National Bank's USD rate the money side stored (its NBK feed import), the latest on or before `day`."""
    from sqlmodel import col as c

    from controller.money.codec import CODECS, from_body
    from controller.money.models import MoneyInput

    with Session(engine) as s:
        rows = s.exec(select(MoneyInput).where(c(MoneyInput.kind) == "nbk", c(MoneyInput.day) <= day,
                                               c(MoneyInput.day) >= day - timedelta(days=14))
                      .order_by(c(MoneyInput.day).desc())).all()  # fmt: skip
    for r in rows:
        rate = from_body(CODECS["nbk"].cls, json.loads(r.body))
        if rate.currency == "USD":
            return float(rate.per_unit), f"National Bank of Kazakhstan, feed of {rate.day} (money side's import)"
    return None


def economics(engine: Engine, settings: PlannerSettings, day: date, basis: PriceBasis,
              extra_sets: Sequence[str] = ()) -> Economics:
    """What a TH/s and a kWh are worth and cost on `day`; every missing input is named at once."""
    problems = PlannerProblems()
    hp, usd = latest(engine, "hashprice", day), latest(engine, "usd_kzt", day)
    usd_value = None if usd is None else (usd.value, _as_of(usd, day))
    if usd_value is None:
        usd_value = nbk_usd(engine, day)
    if hp is None:
        problems.add("hashprice", f"no hashprice on or before {day}: import one (POST /api/v1/planner/hashprice)")
    if usd_value is None:
        problems.add("usd_kzt", f"no USD rate on or before {day}: import the National Bank's rate "
                                "(POST /api/v1/planner/usd-rates, or the money side's NBK feed)")
    problems.raise_if_any()
    assert hp is not None and usd_value is not None
    fee, fee_source = mining_fee_rate(settings, day, basis, extra_sets)
    return Economics(hp.value, usd_value[0], settings.pool_fee, fee, _as_of(hp, day), usd_value[1], fee_source)


def econ_doc(e: Economics) -> dict[str, object]:
    return {"hashprice_usd_per_ph_day": e.hashprice_usd_per_ph_day, "hashprice_source": e.hashprice_source,
            "usd_kzt": e.usd_kzt, "usd_source": e.usd_source, "pool_fee": e.pool_fee,
            "mining_fee_kzt_per_kwh": e.mining_fee_kzt_per_kwh, "mining_fee_source": e.fee_source,
            "kzt_per_ths_hour": e.kzt_per_ths_hour}  # fmt: skip

