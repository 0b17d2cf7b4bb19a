"""Astana calendar days and months as UTC instants.

Astana was UTC+6 until 1 March 2024 00:00 local time, UTC+5 since (the government's single time zone): the
offset is computed here, without a tz database, so valuation dates of 2023 and energy days of today both fall
right. A day is [local midnight, next local midnight) in UTC; 29 February 2024 has 25 hours (the clocks went back).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

SWITCH_UTC = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)  # 1 March 2024 00:00 at UTC+6
UTC6 = timezone(timedelta(hours=6), "Asia/Astana")
UTC5 = timezone(timedelta(hours=5), "Asia/Astana")
HOUR = timedelta(hours=1)


def zone_at(instant: datetime) -> timezone:
    return UTC6 if instant.astimezone(UTC) < SWITCH_UTC else UTC5


def zone_of_day(day: date) -> timezone:
    return UTC6 if day < date(2024, 3, 1) else UTC5


def astana(instant: datetime) -> datetime:
    """`instant` (aware) in Astana local time."""
    if instant.tzinfo is None:
        raise ValueError("an instant must be timezone-aware")
    return instant.astimezone(zone_at(instant))


def astana_date(instant: datetime) -> date:
    return astana(instant).date()


def day_start(day: date) -> datetime:
    """UTC instant of Astana local midnight starting `day`."""
    return datetime.combine(day, time(0), tzinfo=zone_of_day(day)).astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    return day_start(day), day_start(day + timedelta(days=1))


def month_first(year: int, month: int) -> date:
    return date(year, month, 1)


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def month_days(year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    ny, nm = next_month(year, month)
    n = (date(ny, nm, 1) - first).days
    return [first + timedelta(days=i) for i in range(n)]


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    ny, nm = next_month(year, month)
    return day_start(date(year, month, 1)), day_start(date(ny, nm, 1))


def hour_starts(day: date) -> list[datetime]:
    """UTC starts of the hours of Astana `day` (24; 25 on 29 February 2024)."""
    start, end = day_bounds(day)
    n = round((end - start) / HOUR)
    return [start + i * HOUR for i in range(n)]


def parse_month(text: str) -> tuple[int, int]:
    """'2026-07' -> (2026, 7); ValueError otherwise."""
    year_s, _, month_s = text.partition("-")
    year, month = int(year_s), int(month_s)
    if not (2000 <= year <= 2100 and 1 <= month <= 12) or len(month_s) != 2:
        raise ValueError(f"{text!r} is not a month YYYY-MM")
    return year, month
