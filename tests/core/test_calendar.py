"""core/calendar.py: month arithmetic (the passport validity rule counts months past a contract start)."""

from __future__ import annotations

from datetime import date

import pytest

from mobility.core.calendar import add_months


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2031, 1, 10), 6, date(2031, 7, 10)),
        (date(2031, 8, 31), 6, date(2032, 2, 29)),  # the month is shorter: its last day (a leap year)
        (date(2032, 8, 31), 6, date(2033, 2, 28)),
        (date(2031, 12, 15), 1, date(2032, 1, 15)),  # over the year's end
        (date(2031, 7, 31), 5, date(2031, 12, 31)),  # into December
        (date(2031, 1, 31), -2, date(2030, 11, 30)),  # backwards
        (date(2031, 1, 10), 0, date(2031, 1, 10)),
        (date(2031, 1, 10), 120, date(2041, 1, 10)),
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected
