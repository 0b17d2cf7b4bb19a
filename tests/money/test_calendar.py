"""The working-day calendar (money/data/calendar/*.toml) and Astana days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from money import timebase
from money.calendar import kazakhstan
from money.errors import MissingInput


def test_every_year_carries_its_weekend_holidays() -> None:
    for year in kazakhstan().years.values():
        assert year.carry_problems() == [], year.year


@pytest.mark.parametrize(("day", "working"), [
    (date(2023, 7, 1), True),    # Saturday worked by decree (2023.toml working_days)
    (date(2023, 7, 7), False),   # Friday off, moved from 1 July
    (date(2024, 5, 4), True),    # Saturday worked (2024.toml)
    (date(2024, 5, 8), False),   # moved day off
    (date(2024, 3, 25), False),  # Nauryz 23 March (Saturday) carried to Monday
    (date(2024, 6, 17), True),   # Kurban Ait on Sunday 16 June is religious: not carried
    (date(2025, 1, 5), True),    # Sunday worked (2025.toml)
    (date(2026, 7, 31), True),   # a Friday
    (date(2026, 8, 1), False),   # a Saturday (nbk_rates_2026-08-01 is dated on it)
    (date(2026, 5, 11), False),  # Victory Day (Saturday) carried
])
def test_working_days(day: date, working: bool) -> None:
    assert kazakhstan().is_working(day) is working


def test_last_working_day_before_skips_holidays_and_moved_days() -> None:
    cal = kazakhstan()
    # 10.07.2023 (Mon): 9 Sun, 8 Sat, 7 moved day off, 6 Capital Day -> 5 July (Wed)
    assert cal.last_working_before(date(2023, 7, 10)) == date(2023, 7, 5)
    # 26.03.2024 (Tue): 25 carried, 24 Sun, 23-21 Nauryz -> 20 March
    assert cal.last_working_before(date(2024, 3, 26)) == date(2024, 3, 20)
    assert cal.last_working_on_or_before(date(2026, 8, 2)) == date(2026, 7, 31)
    assert cal.why_not_working(date(2026, 5, 11)) == "carried: Victory Day on a Saturday"


def test_a_year_without_data_is_not_guessed() -> None:
    with pytest.raises(MissingInput, match="calendar of 2031"):
        kazakhstan().is_working(date(2031, 3, 3))


def test_astana_days_before_and_after_the_2024_zone_change() -> None:
    assert timebase.day_start(date(2023, 7, 10)) == datetime(2023, 7, 9, 18, tzinfo=UTC)  # UTC+6
    assert timebase.day_start(date(2026, 7, 31)) == datetime(2026, 7, 30, 19, tzinfo=UTC)  # UTC+5
    assert len(timebase.hour_starts(date(2024, 2, 29))) == 25  # clocks went back at midnight into 1 March
    assert len(timebase.hour_starts(date(2026, 7, 31))) == 24
    assert timebase.astana_date(datetime(2026, 7, 31, 19, 0, tzinfo=UTC)) == date(2026, 8, 1)
    assert timebase.astana_date(datetime(2026, 7, 31, 18, 59, tzinfo=UTC)) == date(2026, 7, 31)
