"""The money services: values, income, sale share, fee, meter and reports, computed by money/ (pure) from what
the store holds and from Kuat's own energy and hash per owner (controller.history.owner_hour)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controller import history
from controller.money import chain
from controller.money.models import MoneyReport, utc
from controller.money.store import MoneyStore
from controller.settings import ControllerSettings
from kuat.canonical import canonical, digest
from money import timebase
from money.assets import AssetList, published, requested
from money.calendar import kazakhstan
from money.errors import InvalidInput, MissingInput
from money.expected import Deviation, deviation
from money.fees import EnergyDay, fee
from money.importers.src import PublishedValue
from money.income import statement
from money.market import CmcDay, Conventions, MarketData, NbkDate, PriceField
from money.meter import Reconciliation, reconcile
from money.numbers import dec, kwh
from money.records import Disposal, Distribution, MeterFeed, MeterReading, PurchasePrice, RewardPoint
from money.reports import LicenseeMonth
from money.sales import Period, period_of, sale_share
from money.valuation.base import Valuation
from money.valuation.catalog import methods_in_force
from money.valuation.table import MonthTable, build_table

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=14)  # rates and quotes before a month that its first days may need


class ValueBook:
    """(asset, day) -> value: the SRC's published value where imported, else computed by the method in force."""

    def __init__(self, svc: MoneyService, start: date, end: date) -> None:
        self.svc = svc
        self.market = svc.market(start, end)
        self.src = {(v.asset, v.day): v.value_kzt for v in svc.store.records(["src"], start, end)
                    if isinstance(v, PublishedValue)}
        self.assets = svc.assets()
        self._cache: dict[tuple[str, date], Valuation] = {}

    def __call__(self, asset: str, day: date) -> Valuation:
        key = (asset, day)
        if key not in self._cache:
            if key in self.src:
                self._cache[key] = Valuation(asset, day, self.src[key], "src-table",
                                             "State Revenue Committee's published table", "published")
            else:
                self._cache[key] = methods_in_force().method_on(day).value(self.assets.get(asset), day, self.market)
        return self._cache[key]


class MoneyService:
    def __init__(self, settings: ControllerSettings, engine: Engine, now: Callable[[], datetime],
                 names: Callable[[], dict[str, str]] | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.now = now
        self.store = MoneyStore(engine, now)
        self.names = names or (lambda: {})

    # ---------------------------------------------------------------- inputs
    @property
    def conventions(self) -> Conventions:
        m = self.settings.money
        return Conventions(NbkDate(m.nbk_date), CmcDay(m.cmc_day), PriceField(m.price_field), m.reading_2023)

    def assets(self) -> AssetList:
        extra = [requested(a.symbol, a.name, a.requested_on, a.cmc_id, a.pegged_to)
                 for a in self.settings.money.requested_assets]
        return published().with_requests(extra)

    def known_assets(self) -> set[str]:
        return set(self.assets().symbols())

    def import_file(self, kind: str, name: str, data: bytes, actor: str) -> dict[str, Any]:
        return self.store.import_file(kind, name, data, actor, self.known_assets()).as_dict()

    def market(self, start: date, end: date) -> MarketData:
        m = MarketData(kazakhstan(), conventions=self.conventions)
        m.add_rates(self.store.records(["nbk"], start - LOOKBACK, end + timedelta(days=1)))
        m.add_quotes(self.store.records(["cmc"], start - LOOKBACK, end + timedelta(days=1)))
        return m

    # ---------------------------------------------------------------- values
    def values_table(self, year: int, month: int) -> MonthTable:
        days = timebase.month_days(year, month)
        src = {(v.asset, v.day): v.value_kzt for v in self.store.records(["src"], days[0], days[-1])}
        return build_table(year, month, self.assets(), self.market(days[0], days[-1]), src)

    def readiness(self, year: int, month: int, today: date | None = None) -> dict[str, Any]:
        table = self.values_table(year, month)
        today = today or timebase.astana_date(self.now())
        state = table.readiness(today)
        missing = table.missing()
        return {"month": f"{year}-{month:02d}", "state": state, "due": table.due().isoformat(),
                "cells": len(table.cells), "missing": len(missing), "first_missing": missing[:20],
                "differences_from_src": len(table.differences())}

    def check_readiness(self) -> dict[str, Any]:
        """The previous month's table: logged at WARNING from the 8th while its inputs are incomplete."""
        today = timebase.astana_date(self.now())
        first = today.replace(day=1) - timedelta(days=1)
        status = self.readiness(first.year, first.month, today)
        if status["state"] in ("warning", "late"):
            log.warning("money: the values table of %s is %s (due %s): %d cell(s) lack inputs, e.g. %s",
                        status["month"], "LATE" if status["state"] == "late" else "incomplete", status["due"],
                        status["missing"], "; ".join(status["first_missing"][:3]))
        return status

    # ---------------------------------------------------------------- energy and hash (Kuat's own measurement)
    def owner_hours(self, start: date, end: date, site: str | None = None) -> list[dict[str, Any]]:
        a, _ = timebase.day_bounds(start)
        _, b = timebase.day_bounds(end)
        return history.owner_hours(self.engine, site, a, b)

    def _feeds(self) -> list[MeterFeed]:
        return [f for f in self.store.records(["feeds"]) if isinstance(f, MeterFeed)]

    def _meter_status(self, start: date, end: date) -> dict[tuple[str, datetime], str]:
        return {(r.meter, utc(r.hour)): r.status for r in self.store.records(["meter"], start, end)
                if isinstance(r, MeterReading)}

    def energy_days(self, licensee: str, year: int, month: int) -> tuple[list[EnergyDay], list[str]]:
        """The licensee's energy per Astana day and source, split by whether a working commercial meter measured
        it: no feed for the site and source, or a faulty reading in the hour, is unmetered (highest fee rate)."""
        days = timebase.month_days(year, month)
        feeds = self._feeds()
        status = self._meter_status(days[0], days[-1])
        acc: dict[tuple[date, str, bool], Decimal] = defaultdict(Decimal)
        flags: set[str] = set()
        for row in self.owner_hours(days[0], days[-1]):
            if row["owner"] != licensee:
                continue
            day = timebase.astana_date(row["hour"])
            meters = [f.meter for f in feeds if f.site == row["site"] and f.source == row["source"]
                      and f.valid_from <= day and (f.valid_to is None or day <= f.valid_to)]
            if not meters:
                flags.add(f"no commercial meter for {row['source']} at {row['site']}: charged at the highest rate")
                metered = False
            else:
                metered = all(status.get((m, row["hour"])) != "faulty" for m in meters)
                if not metered:
                    flags.add("hours with a faulty commercial meter: charged at the highest rate")
            acc[(day, row["source"], metered)] += Decimal(repr(row["energy_kwh"]))
        energy = [EnergyDay(d, s, kwh(float(v)), m) for (d, s, m), v in sorted(acc.items())]
        return energy, sorted(flags)

    def hashrate_by_day(self, licensee: str, start: date, end: date) -> dict[date, Decimal]:
        out: dict[date, Decimal] = defaultdict(Decimal)
        for row in self.owner_hours(start, end):
            if row["owner"] == licensee:
                out[timebase.astana_date(row["hour"])] += dec(row["hash_ths_s"]) / 86400
        return dict(out)

    # ---------------------------------------------------------------- per licensee
    def _check_month(self, year: int, month: int) -> tuple[date, date]:
        if not (2023 <= year <= 2100 and 1 <= month <= 12):
            raise InvalidInput("month", f"{year}-{month:02d} is out of range")
        days = timebase.month_days(year, month)
        return days[0], days[-1]

    def report(self, licensee: str, year: int, month: int) -> LicenseeMonth:
        start, end = self._check_month(year, month)
        m = self.settings.money
        period = Period(m.sale_share_period)
        p_start, p_end = _period_bounds(start, period)
        values = ValueBook(self, min(start, p_start), max(end, p_end))
        dists = [d for d in self.store.records(["distributions"], start, end, licensee) if isinstance(d, Distribution)]
        income = statement(licensee, dists, values)
        disposals = [d for d in self.store.records(["trades", "disposals"], p_start, p_end, licensee)
                     if isinstance(d, Disposal)]
        shares = [r for r in sale_share(licensee, disposals, period, values) if r.period == period_of(start, period)]
        energy, flags = self.energy_days(licensee, year, month)
        price = next((p.price_kzt_per_kwh for p in self.store.records(["prices"], start, start, licensee)
                      if isinstance(p, PurchasePrice)), None)
        fees = fee(licensee, energy, price, extra_sets=m.fee_rate_sets)
        by_source: dict[str, Decimal] = defaultdict(Decimal)
        for e in energy:
            by_source[e.source] += e.kwh
        return LicenseeMonth(licensee, self.names().get(licensee, ""), year, month, dict(by_source), fees, income,
                             shares, self.deviations(licensee, start, end, dists), self.conventions.as_dict()
                             | {"sale_share_period": period.value, "fee_rate_sets": m.fee_rate_sets}, flags)

    def deviations(self, licensee: str, start: date, end: date, dists: list[Distribution]) -> list[Deviation]:
        rewards = [r for r in self.store.records(["rewards"], start, end) if isinstance(r, RewardPoint)]
        hashrate = self.hashrate_by_day(licensee, start, end)
        out = []
        for asset in sorted({d.asset for d in dists} & {r.asset for r in rewards}):
            per_day = {r.day: r.units_per_ths_day for r in rewards if r.asset == asset}
            got = sum((d.quantity for d in dists if d.asset == asset), Decimal(0))
            out.append(deviation(licensee, asset, hashrate, per_day, got, dec(self.settings.money.pool_fee),
                                 dec(self.settings.money.deviation_tolerance)))
        return out

    def evidence(self, licensee: str, year: int, month: int) -> dict[str, Any]:
        """Everything the sale share rests on: distributions, confirmations, other disposals, the computation."""
        rep = self.report(licensee, year, month)
        period = Period(self.settings.money.sale_share_period)
        p_start, p_end = _period_bounds(date(year, month, 1), period)
        disposals = [d for d in self.store.records(["trades", "disposals"], p_start, p_end, licensee)
                     if isinstance(d, Disposal)]
        dists = [d for d in self.store.records(["distributions"], p_start, p_end, licensee)
                 if isinstance(d, Distribution)]
        return {"report": rep.as_dict(), "distributions": dists, "trades": [d for d in disposals if d.exchange
                and d.kind == "sale" and d.price is not None],
                "other_disposals": [d for d in disposals if d.price is None], "imports": self.store.imports()}

    # ---------------------------------------------------------------- meter
    def meter(self, site: str, start: date, end: date) -> dict[str, Reconciliation]:
        """Per energy source of `site`: the commercial meters' hourly sum against Kuat's measured sum."""
        feeds = [f for f in self._feeds() if f.site == site]
        readings = [r for r in self.store.records(["meter"], start, end) if isinstance(r, MeterReading)]
        kuat: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
        for row in self.owner_hours(start, end, site):
            kuat[(row["source"], row["hour"])] += Decimal(repr(row["energy_kwh"]))
        hours = [h for d in _days(start, end) for h in timebase.hour_starts(d)]
        out: dict[str, Reconciliation] = {}
        for source in sorted({f.source for f in feeds}):
            meter_sum: dict[datetime, tuple[Decimal, str]] = {}
            for r in readings:
                day = timebase.astana_date(r.hour)
                if not any(f.meter == r.meter and f.source == source and f.valid_from <= day
                           and (f.valid_to is None or day <= f.valid_to) for f in feeds):
                    continue
                h = utc(r.hour)
                prev = meter_sum.get(h)
                status = r.status if prev is None or prev[1] == "ok" else prev[1]
                meter_sum[h] = ((prev[0] if prev else Decimal(0)) + r.kwh, status)
            out[source] = reconcile(meter_sum, {h: v for (s, h), v in kuat.items() if s == source}, hours)
        return out

    def update_meter_margins(self) -> dict[str, float]:
        """The quota loop's meter-derived margin per site (grid source, last meter_margin_days days)."""
        today = timebase.astana_date(self.now())
        start = today - timedelta(days=self.settings.money.meter_margin_days)
        out = {}
        for site in sorted({f.site for f in self._feeds()}):
            rec = self.meter(site, start, today - timedelta(days=1)).get("grid")
            if rec is None or not rec.compared():
                continue
            share = float(rec.suggested_margin(dec(self.settings.money.meter_margin_percentile)))
            self.settings.quota.set_meter_margin(site, share)
            out[site] = share
        return out

    # ---------------------------------------------------------------- publication and recomputation
    def publish(self, licensee: str, year: int, month: int, actor: str) -> dict[str, Any]:
        body = self.report(licensee, year, month).as_dict()
        sha = digest(body)
        at = self.now()
        with Session(self.engine) as s:
            rep = MoneyReport(kind="licensee-month", licensee=licensee, month=f"{year}-{month:02d}", sha256=sha,
                              body=canonical(body), published_at=at, actor=actor, chain_seq=0)
            s.add(rep)
            s.flush()
            link = chain.append(s, ts=at, actor=actor, kind="report", subject=str(rep.id), body={
                "kind": rep.kind, "licensee": licensee, "month": rep.month, "sha256": sha})
            rep.chain_seq = link.seq
            s.add(rep)
            s.commit()
            s.refresh(rep)
        log.info("money: report %s of %s for %s published by %s (sha256 %s, chain link %d)", rep.month, licensee,
                 rep.id, actor, sha[:12], rep.chain_seq)
        return {"id": rep.id, "sha256": sha, "chain_seq": rep.chain_seq, "published_at": at.isoformat()}

    def published(self, report_id: int) -> MoneyReport:
        with Session(self.engine) as s:
            rep = s.get(MoneyReport, report_id)
        if rep is None:
            raise InvalidInput("report_id", f"no published report {report_id}")
        return rep

    def published_list(self) -> list[MoneyReport]:
        with Session(self.engine) as s:
            return list(s.exec(select(MoneyReport).order_by(col(MoneyReport.id))))

    def recompute(self, report_id: int) -> dict[str, Any]:
        """Recompute a published report from the stored inputs: equal when nothing it rests on changed."""
        rep = self.published(report_id)
        assert rep.licensee is not None
        year, month = timebase.parse_month(rep.month)
        again = self.report(rep.licensee, year, month).as_dict()
        return {"id": rep.id, "sha256": rep.sha256, "recomputed_sha256": digest(again),
                "same": digest(again) == rep.sha256 and json.loads(rep.body) == json.loads(canonical(again))}

    def verify_chain(self) -> dict[str, Any]:
        with Session(self.engine) as s:
            v = chain.verify(s)
        return {"ok": v.ok, "links": v.links, "problems": v.problems}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _period_bounds(day: date, period: Period) -> tuple[date, date]:
    if period is Period.MONTH:
        days = timebase.month_days(day.year, day.month)
        return days[0], days[-1]
    if period is Period.QUARTER:
        first = (day.month - 1) // 3 * 3 + 1
        return date(day.year, first, 1), timebase.month_days(day.year, first + 2)[-1]
    return date(day.year, 1, 1), date(day.year, 12, 31)


__all__ = ["MissingInput", "MoneyService", "ValueBook"]
