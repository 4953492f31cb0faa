"""Periods of days that figures are computed over, and reading them from a URL."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

# The years a period may cover. With periods of at most ``LONGEST_YEARS`` years,
# every period derived from one (up to twelve earlier ones for the flags, each
# compared with the year before) still falls in years a date can hold.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2200
LONGEST_YEARS = 100


class PeriodRejected(ValueError):
    """A period that cannot be shown; the message says what to fix."""


@dataclass(frozen=True)
class Period:
    """The days from ``starts_on`` to ``ends_on``, both included."""

    starts_on: date
    ends_on: date

    @property
    def days(self) -> int:
        return (self.ends_on - self.starts_on).days + 1

    @property
    def is_quarter(self) -> bool:
        return quarter_of(self.starts_on) == self

    @property
    def whole_months(self) -> int | None:
        """How many calendar months the period is, when it is whole months."""
        if self.starts_on.day != 1 or self.ends_on != month_end(self.ends_on):
            return None
        start, end = self.starts_on, self.ends_on
        return (end.year - start.year) * 12 + end.month - start.month + 1

    @property
    def label(self) -> str:
        if self.is_quarter:
            return f"Q{(self.starts_on.month - 1) // 3 + 1} {self.starts_on.year}"
        return f"{day_label(self.starts_on)} - {day_label(self.ends_on)}"

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on

    def previous_year(self) -> Period:
        """The same dates a year earlier (29 February becomes the 28th)."""
        return Period(year_before(self.starts_on), year_before(self.ends_on))

    def previous(self) -> Period:
        """The period just before: as many calendar months before a period of
        whole months (the quarter before a quarter), else as many days before."""
        months = self.whole_months
        if months is not None:
            starts_on = months_before(self.starts_on, months)
            return Period(starts_on, self.starts_on - timedelta(days=1))
        ends_on = self.starts_on - timedelta(days=1)
        return Period(ends_on - timedelta(days=self.days - 1), ends_on)

    def months(self) -> list[date]:
        """The first day of every month the period touches."""
        month = self.starts_on.replace(day=1)
        months = []
        while month <= self.ends_on:
            months.append(month)
            month = next_month(month)
        return months

    def query_args(self) -> dict[str, Any]:
        return {"from": self.starts_on.isoformat(), "to": self.ends_on.isoformat()}


def day_label(day: date) -> str:
    return f"{day.day} {calendar.month_abbr[day.month]} {day.year}"


def year_before(day: date) -> date:
    if day.month == 2 and day.day == 29:
        return date(day.year - 1, 2, 28)
    return day.replace(year=day.year - 1)


def next_month(month: date) -> date:
    if month.month == 12:
        return date(month.year + 1, 1, 1)
    return date(month.year, month.month + 1, 1)


def months_before(month: date, count: int) -> date:
    """The first day of the month ``count`` months before ``month``'s."""
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def quarter_of(day: date) -> Period:
    """The calendar quarter holding ``day``."""
    first_month = (day.month - 1) // 3 * 3 + 1
    starts_on = date(day.year, first_month, 1)
    after = next_month(next_month(next_month(starts_on)))
    return Period(starts_on, after - timedelta(days=1))


def read_period(args: Mapping[str, str], today: date) -> Period:
    """The period in the ``from`` and ``to`` query arguments, this quarter by
    default; a missing end is taken from this quarter too.

    :raise PeriodRejected: for a date that cannot be read, an end before the
        start, a year outside the years covered or a period too long.
    """
    default = quarter_of(today)
    raw_from, raw_to = args.get("from", "").strip(), args.get("to", "").strip()
    if not raw_from and not raw_to:
        return default

    try:
        starts_on = date.fromisoformat(raw_from) if raw_from else default.starts_on
        ends_on = date.fromisoformat(raw_to) if raw_to else default.ends_on
    except ValueError:
        raise PeriodRejected(
            "Dates must be written as YYYY-MM-DD, e.g. 2018-07-01"
        ) from None

    if ends_on < starts_on:
        raise PeriodRejected("The end of the period comes before its start")
    if starts_on.year < EARLIEST_YEAR or ends_on.year > LATEST_YEAR:
        raise PeriodRejected(f"Choose dates from {EARLIEST_YEAR} to {LATEST_YEAR}")
    if ends_on >= _years_after(starts_on, LONGEST_YEARS):
        raise PeriodRejected(
            f"A period can be at most {LONGEST_YEARS} years long: choose a later "
            "start or an earlier end"
        )
    return Period(starts_on, ends_on)


def _years_after(day: date, years: int) -> date:
    if day.month == 2 and day.day == 29:
        return date(day.year + years, 3, 1)
    return day.replace(year=day.year + years)


def period_from_args(args: Mapping[str, str], today: date) -> tuple[Period, str | None]:
    """The period in the ``from`` and ``to`` query arguments, this quarter by default.

    A period that cannot be shown gives this quarter and a sentence saying what
    to fix.
    """
    try:
        return read_period(args, today), None
    except PeriodRejected as rejected:
        default = quarter_of(today)
        return default, f"{rejected}; showing {default.label} instead."
