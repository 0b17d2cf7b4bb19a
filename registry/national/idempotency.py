"""Submissions applied once per Idempotency-Key: a repeat (same DPC, same endpoint, same key) gets the first answer.

The stored key is sha256(endpoint, dpc, key), so two DPCs choosing the same key never collide and the column
length bounds nothing the client chose.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlmodel import Session

from registry.models import IdempotencyRecord


def record_key(endpoint: str, dpc: str, key: str) -> str:
    return hashlib.sha256(f"{endpoint}\x00{dpc}\x00{key}".encode()).hexdigest()


def stored(session: Session, endpoint: str, dpc: str, key: str) -> dict[str, Any] | None:
    row = session.get(IdempotencyRecord, record_key(endpoint, dpc, key))
    return None if row is None else dict(row.response)


def remember(session: Session, endpoint: str, dpc: str, key: str, response: dict[str, Any], at: datetime) -> None:
    session.add(IdempotencyRecord(key=record_key(endpoint, dpc, key), endpoint=f"{endpoint}:{dpc}"[:200],
                                  status_code=200, response=response, created_at=at))
