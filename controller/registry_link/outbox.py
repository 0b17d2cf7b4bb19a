"""The durable outbox of submissions to the national registry.

A submission is written to the controller's database first (with its idempotency key) and sent afterwards, by
`RegistryLink.drain`; a crash, a restart or a registry outage loses nothing. An item leaves the due list when the
registry answered it: applied (`sent_at`) or refused for good (`refused_status`, kept for an operator). An
unavailable registry backs the item off exponentially (`retry_min_s` doubling up to `retry_max_s`), oldest first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from controller.registry_link.models import RegistryOutbox
from serverkit.db import SQLITE_BEGIN


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    refused: int
    sent: int
    oldest_pending_at: datetime | None


def new_key(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


class Outbox:
    def __init__(self, engine: Engine, now: Callable[[], datetime], retry_min_s: float = 2.0,
                 retry_max_s: float = 300.0) -> None:
        self.engine = engine
        self._write = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self.now = now
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s

    def put(self, kind: str, dpc: str, payload: BaseModel, key: str | None = None) -> str:
        key = key or new_key(kind)
        at = self.now()
        with Session(self._write) as s:
            s.add(RegistryOutbox(kind=kind, dpc=dpc, idempotency_key=key, payload=payload.model_dump_json(),
                                 created_at=at, next_attempt_at=at))  # fmt: skip
            s.commit()
        return key

    def due(self, limit: int = 100) -> list[RegistryOutbox]:
        stmt = (select(RegistryOutbox).where(col(RegistryOutbox.sent_at).is_(None),
                                             col(RegistryOutbox.refused_status).is_(None),
                                             col(RegistryOutbox.next_attempt_at) <= self.now())
                .order_by(col(RegistryOutbox.id)).limit(limit))  # fmt: skip
        with Session(self.engine) as s:
            return list(s.execute(stmt).scalars())

    def sent(self, item_id: int, result: BaseModel) -> None:
        self._update(item_id, sent_at=self.now(), result=result.model_dump_json(), last_error=None)

    def refused(self, item_id: int, status: int, detail: str) -> None:
        self._update(item_id, refused_status=status, last_error=detail[:500])

    def retry_later(self, item_id: int, attempts: int, error: str) -> None:
        delay = min(self.retry_max_s, self.retry_min_s * 2 ** max(0, attempts - 1))
        self._update(item_id, attempts=attempts, last_error=error[:500],
                     next_attempt_at=self.now() + timedelta(seconds=delay))

    def _update(self, item_id: int, **values: object) -> None:
        with Session(self._write) as s:
            row = s.get(RegistryOutbox, item_id)
            if row is None:
                return
            for k, v in values.items():
                setattr(row, k, v)
            s.add(row)
            s.commit()

    def counts(self) -> OutboxCounts:
        pending = (col(RegistryOutbox.sent_at).is_(None)) & (col(RegistryOutbox.refused_status).is_(None))
        with Session(self.engine) as s:
            n_pending = s.execute(select(func.count()).where(pending)).scalar_one()
            refused = s.execute(select(func.count()).where(col(RegistryOutbox.refused_status).is_not(None))
                                ).scalar_one()
            sent = s.execute(select(func.count()).where(col(RegistryOutbox.sent_at).is_not(None))).scalar_one()
            oldest = s.execute(select(func.min(col(RegistryOutbox.created_at))).where(pending)).scalar_one()
        return OutboxCounts(int(n_pending), int(refused), int(sent), oldest)

    def items(self, key: str) -> RegistryOutbox | None:
        with Session(self.engine) as s:
            return s.execute(select(RegistryOutbox).where(col(RegistryOutbox.idempotency_key) == key)
                             ).scalar_one_or_none()
