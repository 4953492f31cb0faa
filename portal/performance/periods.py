"""Periods of days that figures are computed over, and reading them from a URL."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any


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
        """The period of the same length just before; a quarter's is a quarter."""
        if self.is_quarter:
            return quarter_of(self.starts_on - timedelta(days=1))
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


def quarter_of(day: date) -> Period:
    """The calendar quarter holding ``day``."""
    first_month = (day.month - 1) // 3 * 3 + 1
    starts_on = date(day.year, first_month, 1)
    after = next_month(next_month(next_month(starts_on)))
    return Period(starts_on, after - timedelta(days=1))


def period_from_args(args: Mapping[str, str], today: date) -> tuple[Period, str | None]:
    """The period in the ``from`` and ``to`` query arguments, this quarter by default.

    A date that cannot be read, or an end before the start, gives the default
    period and a sentence saying what to fix.
    """
    default = quarter_of(today)
    raw_from, raw_to = args.get("from", "").strip(), args.get("to", "").strip()
    if not raw_from and not raw_to:
        return default, None

    try:
        starts_on = date.fromisoformat(raw_from) if raw_from else default.starts_on
        ends_on = date.fromisoformat(raw_to) if raw_to else default.ends_on
    except ValueError:
        return default, (
            "Dates must be written as YYYY-MM-DD, e.g. 2018-07-01; "
            f"showing {default.label} instead."
        )

    if ends_on < starts_on:
        return default, (
            "The end of the period comes before its start; "
            f"showing {default.label} instead."
        )
    if starts_on.year < 1900 or ends_on.year > 9000:
        return default, f"Choose dates between 1900 and 9000; showing {default.label}."
    return Period(starts_on, ends_on), None
