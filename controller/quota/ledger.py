"""The ledger's storage side: minute rows and excursions written by the loop, read back per minute or per hour
(site, tenant or zone), and the CSV export. The arithmetic (energy between samples, allotments, excursions) is the
engine's (quota.ledger); this module only stores, sums and formats."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controller.quota.models import QuotaExcursion, QuotaLedgerMinute, utc
from quota.ledger import Excursion, LedgerRow

PERIODS = ("fine", "minute", "hour")  # fine: the stored rows as written (a minute unless configured shorter)
CSV_COLUMNS = ("period_start", "period_end", "kind", "entity", "allotted_kwh", "used_kwh", "over_kwh",
               "excursion_kwh", "excursion_mw_s", "causes")  # fmt: skip


def write_minutes(
    engine: Engine, site: str, rows: Sequence[LedgerRow], power_w: float, limit_w: float, target_w: float
) -> None:
    """Store one closed period's rows (site and tenants); a row written twice is replaced, never doubled."""
    with Session(engine) as s:
        for r in rows:
            s.merge(QuotaLedgerMinute(site=site, kind=r.kind, entity=r.entity, minute=r.start, end=r.end,
                                      allotted_kwh=r.allotted_kwh, used_kwh=r.consumed_kwh, power_w=power_w,
                                      limit_w=limit_w, target_w=target_w))  # fmt: skip
        s.commit()


def write_excursions(engine: Engine, site: str, found: Sequence[Excursion]) -> None:
    """Store excursions; one that continues the site's last stored one (same cause, touching) extends it."""
    if not found:
        return
    with Session(engine) as s:
        last = s.exec(select(QuotaExcursion).where(col(QuotaExcursion.site) == site)
                      .order_by(col(QuotaExcursion.id).desc())).first()
        for e in found:
            if last is not None and utc(last.end) == e.start and (last.cause, last.reference) == (e.cause, e.reference):
                last.end, last.excess_kwh = e.end, last.excess_kwh + e.excess_kwh
                last.excess_mw_s = last.excess_kwh * 3.6
                last.peak_over_w = max(last.peak_over_w, e.peak_over_w)
                s.add(last)
                continue
            last = QuotaExcursion(site=site, start=e.start, end=e.end, peak_over_w=e.peak_over_w,
                                  excess_kwh=e.excess_kwh, excess_mw_s=e.excess_mw_s, cause=e.cause, reason=e.reason,
                                  reference=e.reference)  # fmt: skip
            s.add(last)
            s.flush()
        s.commit()


def _period(m: QuotaLedgerMinute, period: str) -> tuple[datetime, datetime]:
    t, end = utc(m.minute), utc(m.end)
    assert t is not None and end is not None
    if period == "fine":
        return t, end
    if period == "minute":
        t = t.replace(second=0, microsecond=0)
        return t, t + timedelta(minutes=1)
    # Astana is a whole number of hours from UTC, so its schedule hours are UTC hours
    t = t.replace(minute=0, second=0, microsecond=0)
    return t, t + timedelta(hours=1)


def _minutes(engine: Engine, sites: Sequence[str], kind: str, entity: str | None, start: datetime,
             end: datetime) -> list[QuotaLedgerMinute]:
    q = select(QuotaLedgerMinute).where(col(QuotaLedgerMinute.site).in_(sites), col(QuotaLedgerMinute.kind) == kind,
                                        col(QuotaLedgerMinute.minute) >= start, col(QuotaLedgerMinute.minute) < end)
    if entity is not None:
        q = q.where(col(QuotaLedgerMinute.entity) == entity)
    with Session(engine) as s:
        return list(s.exec(q.order_by(col(QuotaLedgerMinute.minute))).all())


def excursion_rows(engine: Engine, site: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    with Session(engine) as s:
        found = s.exec(select(QuotaExcursion).where(col(QuotaExcursion.site) == site, col(QuotaExcursion.end) > start,
                                                    col(QuotaExcursion.start) < end)
                       .order_by(col(QuotaExcursion.start))).all()
    return [{**e.model_dump(), "start": utc(e.start), "end": utc(e.end)} for e in found]


def rows(engine: Engine, site: str, kind: str, entity: str | None, start: datetime, end: datetime,
         period: str) -> list[dict[str, Any]]:
    return _aggregate(_minutes(engine, [site], kind, entity, start, end), period,
                      excursion_rows(engine, site, start, end) if kind == "site" else [])


def zone_rows(engine: Engine, zone: str, sites: Sequence[str], start: datetime, end: datetime,
              period: str) -> list[dict[str, Any]]:
    minutes = _minutes(engine, sites, "site", None, start, end)
    for m in minutes:
        m.entity = zone
    found = [e for site in sites for e in excursion_rows(engine, site, start, end)]
    out = _aggregate(minutes, period, found)
    for r in out:
        r["kind"] = "zone"
    return out


def _aggregate(minutes: Sequence[QuotaLedgerMinute], period: str,
               found: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, datetime, datetime], list[float]] = defaultdict(lambda: [0.0, 0.0])
    kinds: dict[tuple[str, datetime, datetime], str] = {}
    for m in minutes:
        key = (m.entity, *_period(m, period))
        acc[key][0] += m.allotted_kwh
        acc[key][1] += m.used_kwh
        kinds[key] = m.kind
    out = []
    for (entity, t, t_end), (allotted, used) in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        inside = [e for e in found if e["start"] < t_end and e["end"] > t]
        out.append({
            "hour" if period == "hour" else "minute": t, "period_end": t_end, "kind": kinds[(entity, t, t_end)],
            "entity": entity, "allotted_kwh": round(allotted, 6), "used_kwh": round(used, 6),
            "over_kwh": round(max(0.0, used - allotted), 6),
            "excursion_kwh": round(sum(_share(e, t, t_end) * e["excess_kwh"] for e in inside), 6),
            "excursion_mw_s": round(sum(_share(e, t, t_end) * e["excess_mw_s"] for e in inside), 3),
            "causes": sorted({e["cause"] + (f" ({e['reference']})" if e["reference"] else "") for e in inside}),
        })  # fmt: skip
    return out


def _share(e: dict[str, Any], a: datetime, b: datetime) -> float:
    """The part of an excursion inside [a, b) (an excursion across a boundary is split by time)."""
    span = (e["end"] - e["start"]).total_seconds()
    if span <= 0:
        return 1.0 if a <= e["start"] < b else 0.0
    inside = (min(e["end"], b) - max(e["start"], a)).total_seconds()
    return max(0.0, inside) / span


def minute_points(engine: Engine, site: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """History points older than what the loop keeps in memory: one per stored minute."""
    out = []
    for m in _minutes(engine, [site], "site", site, since, until):
        out.append({"ts": utc(m.minute), "power_w": m.power_w, "limit_w": m.limit_w, "target_w": m.target_w})
    return out


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        start = r.get("hour") or r.get("minute")
        assert isinstance(start, datetime)
        w.writerow([start.isoformat(), r["period_end"].isoformat(), r["kind"], r["entity"], r["allotted_kwh"],
                    r["used_kwh"], r["over_kwh"], r["excursion_kwh"], r["excursion_mw_s"], "; ".join(r["causes"])])
    return buf.getvalue()
