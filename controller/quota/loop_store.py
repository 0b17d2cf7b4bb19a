"""The quota loop's persistence: the ledger's closed periods and excursions, an hour's stored energy after a
restart, and one `quota_dispatch` row per run that changed a setpoint. Reads go to `engine`, writes to
`write_engine` (on SQLite: BEGIN IMMEDIATE, see QuotaService). The arithmetic is elsewhere (quota.ledger,
controller.quota.bookkeeping); the SQL of the ledger is controller.quota.ledger's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from controller.quota import ledger as ledger_store
from controller.quota.gaps import QuotaLedgerGap
from controller.quota.models import QuotaDispatch, QuotaLedgerMinute, utc
from quota.ledger import Excursion, LedgerRow


class LoopStore:
    def __init__(self, engine: Engine, write_engine: Engine) -> None:
        self.engine = engine
        self.write_engine = write_engine

    def stored_kwh(self, site: str, start: datetime, end: datetime) -> float:
        """What the ledger already holds for the site between `start` and `end` (after a restart)."""
        rows = ledger_store.rows(self.engine, site, "site", site, start, end, "hour")
        return float(sum(r["used_kwh"] for r in rows))

    def last_period_end(self, site: str) -> datetime | None:
        """The end of the site's newest stored ledger period (None: nothing stored)."""
        with Session(self.engine) as s:
            end = s.exec(select(func.max(QuotaLedgerMinute.end)).where(col(QuotaLedgerMinute.site) == site,
                                                                       col(QuotaLedgerMinute.kind) == "site")).one()
        return utc(end)

    def flag_gap(self, site: str, start: datetime, end: datetime, reason: str, at: datetime) -> None:
        with Session(self.write_engine) as s:
            s.add(QuotaLedgerGap(site=site, start=start, end=end, reason=reason[:200], detected_at=at))
            s.commit()

    def hour_rows(self, site: str, end: datetime) -> list[LedgerRow]:
        """The site's ledger for the hour ending at `end`, as the engine's rows."""
        start = end - timedelta(hours=1)
        rows = ledger_store.rows(self.engine, site, "site", site, start, end, "hour")
        return [LedgerRow("site", site, start, end, r["allotted_kwh"], r["used_kwh"]) for r in rows]

    def write_period(self, site: str, rows: Sequence[LedgerRow], mean_w: float, limit_w: float, target_w: float,
                     found: Sequence[Excursion]) -> None:
        """One closed period: its ledger rows (site and tenants) and the excursions in it."""
        ledger_store.write_minutes(self.write_engine, site, rows, mean_w, limit_w, target_w)
        ledger_store.write_excursions(self.write_engine, site, found)

    def write_excursions(self, site: str, found: Sequence[Excursion]) -> None:
        ledger_store.write_excursions(self.write_engine, site, found)

    def log_dispatch(self, row: QuotaDispatch) -> None:
        """One run that changed setpoints."""
        with Session(self.write_engine) as s:
            s.add(row)
            s.commit()
