"""Time conventions of the quota engine.

All instants at the API are timezone-aware datetimes, normalised to UTC; durations are seconds.
Day-ahead schedules are published per *Astana local* hour 1..24. Kazakhstan unified on UTC+5 on 2024-03-01
and has no daylight saving, so the default zone is the fixed offset UTC+5 (no tz database read: the engine
stays free of I/O). A caller may pass any tzinfo (e.g. a zoneinfo zone) to handle other or historical zones;
then days with a DST change have 23 or 25 hours, and hour n always starts n-1 real hours after local midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

ASTANA = timezone(timedelta(hours=5), "Asia/Astana")
HOUR = timedelta(hours=1)


def require_aware(value: datetime, field: str = "time") -> datetime:
    """Return `value` in UTC; a naive datetime is a caller bug, not something to guess about."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def local_midnight_utc(day: date, tz: tzinfo = ASTANA) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def hours_in_day(day: date, tz: tzinfo = ASTANA) -> int:
    """23, 24 or 25: real hours between two local midnights."""
    span = local_midnight_utc(day + timedelta(days=1), tz) - local_midnight_utc(day, tz)
    return round(span / HOUR)


def hour_window(day: date, hour: int, tz: tzinfo = ASTANA) -> tuple[datetime, datetime]:
    """UTC [start, end) of schedule hour `hour` (1-based) of local `day`."""
    start = local_midnight_utc(day, tz) + (hour - 1) * HOUR
    return start, start + HOUR


def local_day_and_hour(at: datetime, tz: tzinfo = ASTANA) -> tuple[date, int]:
    """Which local day and schedule hour (1-based) the instant `at` falls in."""
    at = require_aware(at)
    local = at.astimezone(tz)
    day = local.date()
    return day, int((at - local_midnight_utc(day, tz)) // HOUR) + 1
