"""The grid signal's intake on the service side: every message judged by quota.grid (freshness from its own
timestamp, skew in both directions, order per broker), recorded in `quota_grid_message` whatever the verdict,
counted by broker and outcome (`kuat_grid_signal_messages_total` on /metrics), and kept per broker so the site
follows the primary unless it is stale (quota.grid.choose).

A reading counts from the message's own time (or our clock's now, if the message is dated slightly ahead): after
a restart, the last accepted message of each broker is reloaded the same way, and is usually stale by then."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controller.quota.models import QuotaGridMessage, utc
from kuat import clock
from kuat.wire import v1
from quota.errors import QuotaInputError
from quota.grid import Outcome, Skew, Verdict, choose, judge
from quota.limits import GridContract, GridReading, validate_grid_reading

log = logging.getLogger(__name__)

PRIMARY = "primary"
Contract = Callable[[str], GridContract | None]  # site -> its grid contract (None: none, or not under quota)


class GridIntake:
    def __init__(self, engine: Engine, session: Callable[[], AbstractContextManager[Session]], skew: Skew,
                 brokers: list[str] | None = None) -> None:
        """`session`: a write transaction (QuotaService._session); `brokers`: names in preference order."""
        self.engine = engine
        self.session = session
        self.skew = skew
        self.brokers = brokers or [PRIMARY]
        self.counts: Counter[tuple[str, str]] = Counter()  # (broker, outcome) -> messages
        self._lock = threading.Lock()
        self._readings: dict[str, dict[str, GridReading]] = {}  # site -> broker -> last accepted reading
        self._followed: dict[str, tuple[str, float | None, float | None]] = {}  # site -> (broker, pct, MW)

    def rank(self, broker: str) -> int:
        return self.brokers.index(broker) if broker in self.brokers else len(self.brokers)

    def reading(self, site: str, at: datetime, stale_after_s: float) -> tuple[str, GridReading] | None:
        """The broker and reading the site follows at `at` (quota.grid.choose)."""
        with self._lock:
            mine = dict(self._readings.get(site, {}))
        names = sorted(mine, key=self.rank)
        found = choose([mine[n] for n in names], at, stale_after_s)
        return None if found is None else (names[found[0]], found[1])

    def forget(self, site: str) -> None:
        with self._lock:
            self._readings.pop(site, None)
            self._followed.pop(site, None)

    def receive(self, site: str, signal: v1.GridSignal | None, error: str | None, contract: GridContract | None,
                actor: str, broker: str = PRIMARY, retained: bool = False) -> bool:
        """Judge, record and count one message; True if it is now the site's reading (the caller kicks the loop
        when `changed` says the followed target moved)."""
        now = clock.now()
        verdict = self._verdict(site, signal, error, contract, now, broker)
        if retained:
            actor = f"{actor} (retained)"
        self._record(site, signal, verdict, actor, broker, now)
        self.counts[(broker, verdict.outcome.value)] += 1
        if not verdict.accepted:
            quiet = verdict.outcome == Outcome.NOT_NEWER  # a duplicate or a retained copy: routine
            (log.info if quiet else log.warning)("grid signal for %s from %s%s refused: %s", site, broker,
                                                 " (retained)" if retained else "", verdict.reason)
            return False
        assert signal is not None and verdict.ts is not None
        with self._lock:
            self._readings.setdefault(site, {})[broker] = GridReading(verdict.ts, signal.target_pct,
                                                                      signal.target_mw, signal.reference)
        return True

    def changed(self, site: str, stale_after_s: float) -> bool:
        """Whether the followed broker or target changed since last asked (logged)."""
        found = self.reading(site, clock.now(), stale_after_s)
        if found is None:
            return False
        broker, r = found
        now = (broker, r.target_pct, r.target_mw)
        with self._lock:
            before, self._followed[site] = self._followed.get(site), now
        if before == now:
            return False
        log.info("grid signal for %s: %s from %s", site, f"{r.target_pct} %" if r.target_mw is None
                 else f"{r.target_mw} MW", broker)  # fmt: skip
        return True

    def _verdict(self, site: str, signal: v1.GridSignal | None, error: str | None, contract: GridContract | None,
                 now: datetime, broker: str) -> Verdict:
        if signal is None or error is not None:
            return Verdict(Outcome.INVALID, error or "no message")
        if contract is None:
            return Verdict(Outcome.NO_CONTRACT, "the site has no grid-signal contract (or is not under quota "
                                                "control)")  # fmt: skip
        with self._lock:
            last = self._readings.get(site, {}).get(broker)
        verdict = judge(signal.ts if "ts" in signal.model_fields_set else None, now,
                        None if last is None else last.ts, self.skew)  # fmt: skip
        if not verdict.accepted:
            return verdict
        try:
            validate_grid_reading(GridReading(now, signal.target_pct, signal.target_mw, signal.reference))
        except QuotaInputError as err:
            return Verdict(Outcome.INVALID, str(err))
        return verdict

    def _record(self, site: str, signal: v1.GridSignal | None, verdict: Verdict, actor: str, broker: str,
                now: datetime) -> None:
        with self.session() as s:
            s.add(QuotaGridMessage(site=site, ts=None if signal is None else signal.ts,
                                   target_pct=None if signal is None else signal.target_pct,
                                   target_mw=None if signal is None else signal.target_mw,
                                   reference=None if signal is None else signal.reference,
                                   accepted=verdict.accepted, error=verdict.reason, actor=actor[:200],
                                   source=f"mqtt:{broker}"[:16], received_at=now))  # fmt: skip

    def restore(self, sites: list[str]) -> None:
        """After a restart: each broker's last accepted message per site, counting from its own time."""
        with Session(self.engine) as s:
            for site in sites:
                for broker in self.brokers:
                    sources = [f"mqtt:{broker}"[:16], *(["mqtt"] if broker == self.brokers[0] else [])]
                    row = s.exec(select(QuotaGridMessage).where(col(QuotaGridMessage.site) == site,
                                                                col(QuotaGridMessage.accepted),
                                                                col(QuotaGridMessage.source).in_(sources))
                                 .order_by(col(QuotaGridMessage.id).desc())).first()
                    if row is not None:
                        self._readings.setdefault(site, {})[broker] = _reading_of(row)

    def counted(self) -> Iterator[tuple[str, float]]:
        """The counts as Prometheus labels and values."""
        for (broker, outcome), n in sorted(self.counts.items()):
            yield f'{{broker="{broker}",outcome="{outcome}"}}', float(n)


def _reading_of(row: QuotaGridMessage) -> GridReading:
    received = utc(row.received_at)
    assert received is not None
    ts = utc(row.ts)
    counts_from = received if ts is None else min(ts, received)
    return GridReading(counts_from, row.target_pct, row.target_mw, row.reference)
