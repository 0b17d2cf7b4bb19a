"""A database outage under the quota loop, in-process (the real-process case is tests/chaos/test_postgres_restart):
what counts as unreachable, one log line per outage, and closed ledger periods kept in memory and written in order
by the first run that can. The store raises the OperationalError SQLAlchemy raises for a refused connection."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from controller.quota.bookkeeping import Bookkeeper
from controller.quota.memory import SiteRuntime
from controller.settings import QuotaSettings
from quota.ledger import Excursion, LedgerRow
from quota.limits import QuotaState, SiteConfig
from serverkit.db import Outage, unavailable

REFUSED = OperationalError("SELECT 1", {}, Exception("connection to server failed: Connection refused"))


class FlakyStore:
    """LoopStore's ledger side in memory; `down` makes every call raise what psycopg2 raises on a dead server."""

    def __init__(self) -> None:
        self.down = False
        self.periods: list[tuple[datetime, datetime]] = []

    def _check(self) -> None:
        if self.down:
            raise REFUSED

    def last_period_end(self, site: str) -> datetime | None:
        self._check()
        return self.periods[-1][1] if self.periods else None

    def stored_kwh(self, site: str, start: datetime, end: datetime) -> float:
        self._check()
        return 0.0

    def flag_gap(self, site: str, start: datetime, end: datetime, reason: str, at: datetime) -> None:
        self._check()

    def write_period(self, site: str, rows: Sequence[LedgerRow], mean_w: float, limit_w: float, target_w: float,
                     found: Sequence[Excursion]) -> None:
        self._check()
        self.periods.append((rows[0].start, rows[0].end))

    def write_excursions(self, site: str, found: Sequence[Excursion]) -> None:
        self._check()


def test_what_counts_as_the_database_unreachable() -> None:
    assert unavailable(REFUSED)
    assert not unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not unavailable(KeyError("a bug"))


def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("quota loop", logging.getLogger("t.outage"))
    with caplog.at_level("INFO", logger="t.outage"):
        for _ in range(5):
            outage.failed(REFUSED, "listing the sites")
        outage.ok()
        outage.ok()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert "database unavailable (listing the sites" in said[0][1] and "5 failed attempts" in said[1][1]
    assert outage.total == 5 and outage.since is None and outage.failures == 0


def test_periods_closed_while_the_database_is_out_are_written_in_order_once_it_is_back() -> None:
    store = FlakyStore()
    books = Bookkeeper(store, QuotaSettings(ledger_period_s=5), Outage("t"))  # type: ignore[arg-type]
    state = QuotaState(SiteConfig("s", connection_kw=100))
    rt = SiteRuntime(deque(maxlen=100))
    t0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def run(second: int) -> None:
        books.account("s", state, rt, t0 + timedelta(seconds=second), 1000.0, {})

    for s in range(0, 11):  # two periods close and are written
        run(s)
    store.down = True
    for s in range(11, 27):  # three close while it is out: kept
        run(s)
    assert len(store.periods) == 2 and len(rt.unwritten) == 3
    store.down = False
    run(27)
    ends = [b for _, b in store.periods]
    assert ends == [t0 + timedelta(seconds=5 * k) for k in range(1, 6)] and not rt.unwritten
    starts = [a for a, _ in store.periods]
    assert starts[1:] == ends[:-1]  # continuous: nothing lost, nothing twice


def test_the_api_answers_503_with_retry_after_while_the_database_is_out() -> None:
    """A refused connection is an outage (503, try again); any other database error stays a 500 (a bug)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from serverkit.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    def down() -> None:
        raise REFUSED

    @app.get("/bug")
    def bug() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/down")
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and "database" in r.json()["detail"]
    assert client.get("/bug").status_code == 500
