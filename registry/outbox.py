"""Outbox for a registry that runs as its own process: submissions wait in a local SQL table until the remote
registry has acknowledged them, so an outage delays but never loses or duplicates one.

Every submission gets an idempotency key (a uuid4) when it is queued; the sender POSTs it with the
``Idempotency-Key`` header, in queue order, and marks it sent only on a 2xx. A connection error or a 5xx stops the
round and the item waits (exponential back-off); a repeat the remote already applied gets back the stored result
(the remote keeps applied keys), so a lost answer is harmless. A 4xx other than 408/429 means the remote refuses
the payload: the item is marked failed and kept for an operator, never silently dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from kuat.wire.v1 import MinerSample
from registry.models import OutboxItem
from serverkit.db import SessionFactory
from serverkit.timeutil import Clock, system_clock, utc

log = logging.getLogger(__name__)
SIGHTINGS_PATH = "/api/v1/registry/sightings"
RETRYABLE_4XX = {408, 425, 429}


class Outbox:
    """The controller's side: queue submissions in the same database transaction as whatever produced them."""

    def __init__(self, session_factory: SessionFactory, clock: Clock = system_clock) -> None:
        self._sessions = session_factory
        self._clock = clock

    def enqueue(self, path: str, payload: dict[str, Any]) -> str:
        key = str(uuid.uuid4())
        now = utc(self._clock())
        with self._sessions() as s, s.begin():
            s.add(OutboxItem(idempotency_key=key, path=path, payload=payload, created_at=now, next_attempt_at=now))
        return key

    def submit_sightings(self, site: str, gateway: str, samples: Sequence[MinerSample], at: datetime) -> str:
        payload = {"site": site, "gateway": gateway, "at": utc(at).isoformat(),
                   "samples": [s.model_dump(mode="json") for s in samples]}
        return self.enqueue(SIGHTINGS_PATH, payload)

    def pending(self) -> int:
        with self._sessions() as s:
            stmt = select(func.count()).select_from(OutboxItem).where(
                col(OutboxItem.sent_at).is_(None), col(OutboxItem.failed_at).is_(None))
            return int(s.execute(stmt).scalar_one())


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    error: str | None = None  # why the round stopped early (remote down, 5xx)


class OutboxSender:
    """Delivers queued submissions to a remote registry (`base_url`, an agent or operator API key)."""

    def __init__(self, session_factory: SessionFactory, base_url: str, api_key: str, *,
                 clock: Clock = system_clock, timeout_s: float = 10.0, max_backoff: timedelta = timedelta(minutes=5),
                 transport: httpx.BaseTransport | None = None) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._max_backoff = max_backoff
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport,
                                    headers={"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        self._client.close()

    def _due(self, limit: int) -> list[OutboxItem]:
        now = utc(self._clock())
        stmt = (select(OutboxItem).where(col(OutboxItem.sent_at).is_(None), col(OutboxItem.failed_at).is_(None),
                                         col(OutboxItem.next_attempt_at) <= now)
                .order_by(col(OutboxItem.id)).limit(limit))
        with self._sessions() as s:
            return list(s.execute(stmt).scalars())

    def _save(self, item: OutboxItem, **changes: Any) -> None:
        with self._sessions() as s, s.begin():
            row = s.get(OutboxItem, item.id)
            assert row is not None
            for name, value in changes.items():
                setattr(row, name, value)

    def _backoff(self, attempts: int) -> timedelta:
        return min(timedelta(seconds=2 ** min(attempts, 16)), self._max_backoff)

    def flush(self, limit: int = 500) -> FlushReport:
        """Send what is due, oldest first; stop at the first transport error or 5xx (the remote is down)."""
        report = FlushReport()
        for item in self._due(limit):
            now = utc(self._clock())
            try:
                response = self._client.post(item.path, json=item.payload,
                                             headers={"Idempotency-Key": item.idempotency_key})
            except httpx.TransportError as exc:
                report.error = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self._save(item, sent_at=now, attempts=item.attempts + 1, response=response.json(),
                               last_error=None)
                    report.sent += 1
                    continue
                report.error = f"HTTP {response.status_code}: {response.text[:500]}"
                if 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
                    self._save(item, failed_at=now, attempts=item.attempts + 1, last_error=report.error)
                    log.error("outbox %s refused by the registry, kept as failed: %s", item.idempotency_key,
                              report.error)
                    report.failed += 1
                    report.error = None
                    continue
            self._save(item, attempts=item.attempts + 1, last_error=report.error,
                       next_attempt_at=now + self._backoff(item.attempts + 1))
            log.warning("registry unreachable, %s waits: %s", item.idempotency_key, report.error)
            break
        report.waiting = Outbox(self._sessions, self._clock).pending()
        return report
