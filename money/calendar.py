"""Kazakhstan's working-day calendar: data per year (`data/calendar/YYYY.toml`), not code.

A day is non-working when it is a Saturday or Sunday, a public holiday, or a day off carried or moved by decree,
unless a decree made that weekend day a working day. A year with no data file is not guessed: asking about it
raises `MissingInput` (add the year's file when the government publishes its moved days, usually in the autumn
before). `carry_problems` checks a year's file against the Labour Code's carry rule (Art. 85: a holiday on a day off
moves the day off to the next working day; religious holidays do not carry).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources

from money.errors import MissingInput

MAX_LOOKBACK_DAYS = 31


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str
    religious: bool = False


@dataclass(frozen=True)
class YearCalendar:
    year: int
    holidays: tuple[Holiday, ...]
    days_off: dict[date, str]  # carried or moved days off -> why
    working_days: dict[date, str]  # weekend days worked by decree -> why

    def carry_problems(self) -> list[str]:
        """Holidays on weekends (not religious) against the carried days off listed: a count mismatch names them."""
        on_weekend = [h for h in self.holidays if not h.religious and h.day.weekday() >= 5]
        carried = [d for d, why in self.days_off.items() if why.startswith("carried")]
        if len(on_weekend) == len(carried):
            return []
        names = ", ".join(f"{h.name} {h.day.isoformat()}" for h in on_weekend)
        return [f"{self.year}: {len(on_weekend)} holiday(s) on a weekend ({names}) "
                f"but {len(carried)} carried day(s) off"]


@dataclass
class Calendar:
    years: dict[int, YearCalendar] = field(default_factory=dict)

    def year(self, year: int) -> YearCalendar:
        found = self.years.get(year)
        if found is None:
            raise MissingInput(f"the working-day calendar of {year} (money/data/calendar/{year}.toml)")
        return found

    def is_working(self, day: date) -> bool:
        y = self.year(day.year)
        if day in y.working_days:
            return True
        if day.weekday() >= 5 or day in y.days_off:
            return False
        return all(h.day != day for h in y.holidays)

    def why_not_working(self, day: date) -> str | None:
        y = self.year(day.year)
        if self.is_working(day):
            return None
        for h in y.holidays:
            if h.day == day:
                return h.name
        if day in y.days_off:
            return y.days_off[day]
        return "Saturday" if day.weekday() == 5 else "Sunday"

    def last_working_before(self, day: date) -> date:
        """The last working day strictly before `day` (the 2023 rules' K: 'the last working day preceding')."""
        return self.last_working_on_or_before(day - timedelta(days=1))

    def last_working_on_or_before(self, day: date) -> date:
        """`day` when it is a working day, else the working day before it (the 2024 rules' carry)."""
        d = day
        for _ in range(MAX_LOOKBACK_DAYS):
            if self.is_working(d):
                return d
            d -= timedelta(days=1)
        raise MissingInput(f"a working day within {MAX_LOOKBACK_DAYS} days before {day.isoformat()}")


def parse_year(text: str, source: str) -> YearCalendar:
    data = tomllib.loads(text)
    year = int(data["year"])
    holidays = tuple(Holiday(h["date"], h["name"], bool(h.get("religious", False))) for h in data["holidays"])
    days_off = {d["date"]: d["reason"] for d in data.get("days_off", [])}
    working = {d["date"]: d["reason"] for d in data.get("working_days", [])}
    for d in [h.day for h in holidays] + list(days_off) + list(working):
        if d.year != year:
            raise ValueError(f"{source}: {d.isoformat()} is not in {year}")
    return YearCalendar(year, holidays, days_off, working)


@lru_cache(maxsize=1)
def kazakhstan() -> Calendar:
    """The calendar from the package's data files."""
    cal = Calendar()
    folder = resources.files("money") / "data" / "calendar"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            y = parse_year(entry.read_text(encoding="utf-8"), entry.name)
            cal.years[y.year] = y
    return cal
