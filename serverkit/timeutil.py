"""Time helpers: services work in aware UTC datetimes (SQLModel's UTCDateTime columns insist on it); the law's days
are Astana calendar days.

Kazakhstan moved to a single time zone, UTC+5, on 2024-03-01, with no daylight saving, so Astana is the fixed offset
UTC+5 (as in quota/timebase.py, which stays free of imports). A licence "valid to 2026-12-31" ends at Astana midnight,
19:00 UTC: compare such dates with `astana_date(now)`, never with `now.date()` of a UTC instant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

Clock = Callable[[], datetime]
ASTANA = timezone(timedelta(hours=5), "Asia/Astana")


def utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def system_clock() -> datetime:
    return datetime.now(UTC)


def astana_date(value: datetime) -> date:
    """The Astana calendar date of an instant (a naive value is taken to be UTC)."""
    return utc(value).astimezone(ASTANA).date()


def astana_midnight(day: date) -> datetime:
    """The UTC instant at which Astana day `day` begins."""
    return datetime(day.year, day.month, day.day, tzinfo=ASTANA).astimezone(UTC)
