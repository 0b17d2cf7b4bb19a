"""Time helpers: the registry works in aware UTC datetimes (SQLModel's UTCDateTime columns insist on it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def system_clock() -> datetime:
    return datetime.now(UTC)
