"""Calendar arithmetic for input rules that depend on the day: ages, "at most N years ahead".

Rules read "today" from the validation context (`model_validate(data, context={"today": date})`)
when one is given, else from the UTC clock: a service or a test can fix the day, a request body cannot.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import ValidationInfo


def today(info: ValidationInfo | None = None) -> date:
    """The day the input is judged on: the validation context's `today`, else today in UTC."""
    context = info.context if info is not None else None
    if isinstance(context, dict) and isinstance(context.get("today"), date):
        return context["today"]
    return datetime.now(UTC).date()


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later (earlier when negative); 29 February becomes 28 February
    in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age_on(born: date, day: date) -> int:
    """Completed years on `day`. Someone born on 29 February completes a year on 1 March in a common
    year (their birthday has not come while the date is still before 29 February)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def add_months(day: date, months: int) -> date:
    """The same day of the month `months` later (earlier when negative), or the month's last day when
    it is shorter: 31 August + 6 months is 28 (29) February."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = (following - date.resolution).day
    return date(year, month, min(day.day, last))
