"""Revenue targets per territory and period: set one at a time, or imported from CSV.

A target covers the days from its start to its end (both included) and spreads
over months: by an explicit monthly distribution, which must add up to the
target, or by the number of days of the target in each month (to the cent, the
remainder on the last month). Targets of one territory never overlap; saving a
target with the same dates as an existing one replaces it. Targets are set on
territories that receive accounts (those without territories below them), so a
region's target is never counted twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import User
from portal.performance.models import TargetMonth, TerritoryTarget
from portal.performance.periods import Period, next_month

# The CSV reading (encodings, byte-order marks, decimal commas, row problems) is
# the territory importer's, so that every import in the portal reads files alike.
from territory_rules.imports import (
    CsvRow,
    ImportRefused,
    ImportReport,
    RowProblems,
    check_columns,
    in_one_transaction,
    read_csv,
    refused_report,
)
from territory_rules.models import Region, Territory

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 13
# Read amounts finer than cents, so that 12.345 is refused instead of rounded.
READ_STEP = Decimal("0.000001")
ISO_DATE = "%Y-%m-%d"
MONTH_COLUMN = re.compile(r"(\d{4})-(\d{2})")
COLUMNS = ("territory", "starts_on", "ends_on", "amount")
MAX_NAMES_LISTED = 20
# Beyond three years, a month-by-month split is a file to import, not a form.
MAX_MONTHS_SHOWN = 36


class TargetRejected(ValueError):
    """A target that cannot be saved; ``errors`` maps each field to what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


@dataclass(frozen=True)
class TargetInput:
    """A target as typed or read from a file, not checked yet."""

    territory: Territory
    starts_on: date
    ends_on: date
    amount: Decimal
    months: dict[date, Decimal] | None = None


# --- Months -------------------------------------------------------------------------


def months_of(starts_on: date, ends_on: date) -> list[date]:
    """The first day of each month the days from ``starts_on`` to ``ends_on`` touch."""
    return Period(starts_on, ends_on).months()


def days_in_month_part(month: date, starts_on: date, ends_on: date) -> int:
    """How many days of ``month`` lie between ``starts_on`` and ``ends_on``."""
    first = max(month, starts_on)
    last = min(next_month(month) - timedelta(days=1), ends_on)
    return max((last - first).days + 1, 0)


def spread_by_days(
    starts_on: date, ends_on: date, amount: Decimal
) -> dict[date, Decimal]:
    """``amount`` over the months by their days in the target, cut to the cent;
    what the cuts leave goes to the last month."""
    total_days = (ends_on - starts_on).days + 1
    months = months_of(starts_on, ends_on)
    spread = {
        month: (
            amount * days_in_month_part(month, starts_on, ends_on) / total_days
        ).quantize(CENT, ROUND_DOWN)
        for month in months[:-1]
    }
    spread[months[-1]] = amount - sum(spread.values(), Decimal(0))
    return spread


# --- Checking -----------------------------------------------------------------------


def money(amount: Decimal) -> str:
    symbol = (
        current_app.config.get("CURRENCY_SYMBOL", "$") if has_app_context() else "$"
    )
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


def period_words(starts_on: date, ends_on: date) -> str:
    return Period(starts_on, ends_on).label


def check_target(data: TargetInput) -> dict[str, str]:
    """What is wrong with ``data`` on its own (not against stored targets)."""
    errors: dict[str, str] = {}
    if data.territory.children:
        errors["territory"] = (
            f"{data.territory.name} has territories below it; set targets on those, "
            f"which receive the accounts."
        )
    if data.ends_on < data.starts_on:
        errors["ends_on"] = "The end date comes before the start date; swap them."
    amount_error = _amount_error(data.amount, "The target")
    if amount_error:
        errors["amount"] = amount_error
    if data.months is not None and not errors:
        month_error = _months_error(data)
        if month_error:
            errors["months"] = month_error
    return errors


def _amount_error(amount: Decimal, what: str) -> str | None:
    if amount < 0:
        return f"{what} is negative; enter an amount of zero or more."
    if amount >= MAX_AMOUNT:
        return f"{what} is too large; enter an amount below {MAX_AMOUNT:,}."
    if amount != amount.quantize(CENT):
        return f"{what} has more than two decimals; round it to the cent."
    return None


def _months_error(data: TargetInput) -> str | None:
    months = data.months or {}
    wanted = months_of(data.starts_on, data.ends_on)
    outside = sorted(set(months) - set(wanted))
    if outside:
        names = ", ".join(f"{month:%b %Y}" for month in outside)
        return (
            f"{names} {'is' if len(outside) == 1 else 'are'} outside the target's "
            f"dates; give amounts only for {wanted[0]:%b %Y} to {wanted[-1]:%b %Y}."
        )
    for month, amount in sorted(months.items()):
        error = _amount_error(amount, f"The amount of {month:%b %Y}")
        if error:
            return error
    total = sum(months.values(), Decimal(0))
    if total != data.amount:
        return (
            f"The months add up to {money(total)} but the target is "
            f"{money(data.amount)}; change them so that they add up to the target, "
            f"or leave them all empty to spread the target by days."
        )
    return None


def overlapping(
    territory_id: int, starts_on: date, ends_on: date
) -> list[TerritoryTarget]:
    """The territory's stored targets sharing a day with ``starts_on``..``ends_on``."""
    return list(
        db.session.scalars(
            select(TerritoryTarget)
            .where(
                TerritoryTarget.territory_id == territory_id,
                TerritoryTarget.starts_on <= ends_on,
                TerritoryTarget.ends_on >= starts_on,
            )
            .order_by(TerritoryTarget.starts_on)
        )
    )


def _clash(data: TargetInput, stored: Sequence[TerritoryTarget]) -> str | None:
    """Why ``data`` cannot be saved beside ``stored``; a target with the very same
    dates is replaced, any other overlap refused."""
    for target in stored:
        if (target.starts_on, target.ends_on) == (data.starts_on, data.ends_on):
            continue
        return (
            f"{data.territory.name} already has a target for "
            f"{period_words(target.starts_on, target.ends_on)} "
            f"({money(target.amount)}) that shares days with this one; change the "
            f"dates, or delete that target first."
        )
    return None


# --- Saving -------------------------------------------------------------------------


def set_target(
    territory: Territory,
    starts_on: date,
    ends_on: date,
    amount: Decimal,
    months: dict[date, Decimal] | None,
    user: User | None,
) -> TerritoryTarget:
    """Save a target (replacing one with the same dates) and commit.

    :raise TargetRejected: with a message per field when it cannot be saved.
    """
    data = TargetInput(territory, starts_on, ends_on, amount, months)
    errors = check_target(data)
    if errors:
        raise TargetRejected(errors)

    _lock(territory)
    stored = overlapping(territory.id, starts_on, ends_on)
    clash = _clash(data, stored)
    if clash:
        db.session.rollback()
        raise TargetRejected({"starts_on": clash})

    target = _write(data, stored, user)
    db.session.commit()
    logger.info(
        "%s set the target of territory %s for %s to %s",
        user.email if user else "The system",
        territory.id,
        period_words(starts_on, ends_on),
        amount,
    )
    return target


def _lock(territory: Territory) -> None:
    """Hold the territory's row, so that two saves cannot both pass the overlap
    check (PostgreSQL; SQLite lets one writer in at a time anyway)."""
    db.session.execute(
        select(Territory.id).where(Territory.id == territory.id).with_for_update()
    )


def _write(
    data: TargetInput, stored: Sequence[TerritoryTarget], user: User | None
) -> TerritoryTarget:
    for replaced in stored:
        db.session.delete(replaced)
    db.session.flush()
    months = data.months or spread_by_days(data.starts_on, data.ends_on, data.amount)
    target = TerritoryTarget(
        territory_id=data.territory.id,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        amount=data.amount,
        set_by_id=user.id if user else None,
        months=[
            TargetMonth(month=month, amount=months.get(month, Decimal(0)))
            for month in months_of(data.starts_on, data.ends_on)
        ],
    )
    db.session.add(target)
    db.session.flush()
    return target


def delete_target(target: TerritoryTarget, user: User) -> None:
    """Delete a target and its months, and commit."""
    logger.info(
        "%s deleted the target %s of territory %s (%s)",
        user.email,
        target.id,
        target.territory_id,
        period_words(target.starts_on, target.ends_on),
    )
    db.session.delete(target)
    db.session.commit()


# --- Reading ------------------------------------------------------------------------


def region_targets(region: Region) -> list[TerritoryTarget]:
    """The targets of the region's territories, by territory, latest first."""
    return list(
        db.session.scalars(
            select(TerritoryTarget)
            .join(Territory, Territory.id == TerritoryTarget.territory_id)
            .where(Territory.region_id == region.id)
            .options(
                selectinload(TerritoryTarget.months),
                selectinload(TerritoryTarget.territory),
                selectinload(TerritoryTarget.set_by),
            )
            .order_by(Territory.name, TerritoryTarget.starts_on.desc())
        )
    )


def region_target(region: Region, target_id: int) -> TerritoryTarget | None:
    """The target if it belongs to a territory of ``region``."""
    target = db.session.get(TerritoryTarget, target_id)
    if target is None or target.territory.region_id != region.id:
        return None
    return target


# --- CSV import ---------------------------------------------------------------------


def import_targets(
    data: bytes,
    user: User | None,
    territories: Sequence[Territory],
    decimal_separator: str = ".",
    encoding: str | None = None,
) -> ImportReport:
    """Import ``territory,starts_on,ends_on,amount[,2018-01,...]`` rows, all or none.

    ``territories`` are the ones the user may set targets for (by name); any
    other name is refused as unknown. A month column holds that month's part of
    the row's target; a row giving any month gives the monthly distribution
    (empty months count as zero), a row giving none is spread by days.
    """
    notes: list[str] = []
    try:
        rows = _read_target_rows(data, territories, decimal_separator, encoding, notes)
    except ImportRefused as refused:
        refused.notes = notes
        return refused_report(refused, "targets")

    def write() -> ImportReport:
        replaced = 0
        for row in rows:
            stored = overlapping(row.territory.id, row.starts_on, row.ends_on)
            replaced += len(stored)
            _write(row, stored, user)
        counts = {"targets": len(rows) - replaced, "replaced": replaced}
        return ImportReport(ok=True, notes=notes, counts=counts)

    report = in_one_transaction("targets", write)
    if report.ok:
        logger.info(
            "%s imported %s targets", user.email if user else "The system", len(rows)
        )
    return report


def _read_target_rows(
    data: bytes,
    territories: Sequence[Territory],
    separator: str,
    encoding: str | None,
    notes: list[str],
) -> list[TargetInput]:
    table = read_csv(data, encoding, notes)
    check_columns(table, {f"{name} column": name for name in COLUMNS})
    months = _month_columns(table.header)
    by_name = {territory.name.casefold(): territory for territory in territories}
    problems = RowProblems()
    columns = table.column_index()

    read = []
    for number, values in table.rows:
        row = CsvRow(number, values, columns, problems, separator)
        target = _read_row(row, months, by_name)
        if target is not None:
            read.append((number, target))
    problems.refuse_if_any()

    _check_against_each_other(read, problems)
    _check_against_stored(read, problems)
    problems.refuse_if_any()
    return [target for _, target in read]


def _month_columns(header: list[str]) -> dict[str, date]:
    """The month columns (``2018-01``) by name; any other extra column is refused."""
    problems = RowProblems()
    months = {}
    for name in header:
        if name in COLUMNS:
            continue
        match = MONTH_COLUMN.fullmatch(name)
        if match and 1 <= int(match[2]) <= 12:
            months[name] = date(int(match[1]), int(match[2]), 1)
        else:
            problems.add(
                f"The column '{name}' is neither one of {', '.join(COLUMNS)} nor a "
                f"month written YYYY-MM (e.g. 2018-01); rename or remove it."
            )
    problems.refuse_if_any()
    return months


def _read_row(
    row: CsvRow, months: dict[str, date], by_name: dict[str, Territory]
) -> TargetInput | None:
    name = row.required("territory", "territory", 200)
    territory = by_name.get(name.casefold()) if name else None
    if name and territory is None:
        row.fail(f"there is no territory named '{name}' {_known_names(by_name)}")
    starts_on = row.date("starts_on", "start date", ISO_DATE)
    ends_on = row.date("ends_on", "end date", ISO_DATE)
    amount = row.decimal("amount", "amount", MAX_AMOUNT, required=True, step=READ_STEP)
    given = {
        month: value
        for column, month in months.items()
        if (
            value := row.decimal(
                column, f"amount of {column}", MAX_AMOUNT, step=READ_STEP
            )
        )
        is not None
    }
    if not row.ok or territory is None or starts_on is None or ends_on is None:
        return None
    if amount is None:
        return None

    data = TargetInput(
        territory, starts_on, ends_on, amount, _distribution(given, starts_on, ends_on)
    )
    for message in check_target(data).values():
        row.fail(message.rstrip("."))
    return data if row.ok else None


def _distribution(
    given: dict[date, Decimal], starts_on: date, ends_on: date
) -> dict[date, Decimal] | None:
    """The row's months, empty ones of the target counting as zero; none given, none."""
    if not given:
        return None
    if starts_on > ends_on:
        return given
    months = dict.fromkeys(months_of(starts_on, ends_on), Decimal(0))
    months.update(given)
    return months


def _known_names(by_name: dict[str, Territory]) -> str:
    names = sorted(territory.name for territory in by_name.values())
    if not names:
        return "you may set targets for"
    if len(names) > MAX_NAMES_LISTED:
        return "among the territories you may set targets for"
    return f"among {', '.join(names)}"


def _check_against_each_other(
    read: list[tuple[int, TargetInput]], problems: RowProblems
) -> None:
    """Two rows of one territory must not share a day."""
    ordered = sorted(read, key=lambda item: (item[1].territory.id, item[1].starts_on))
    # The row reaching furthest so far in the territory: any later start before
    # its end shares days with it.
    furthest: tuple[int, TargetInput] | None = None
    for number, target in ordered:
        if furthest is None or furthest[1].territory.id != target.territory.id:
            furthest = (number, target)
            continue
        if target.starts_on <= furthest[1].ends_on:
            problems.add(
                f"Row {number}: the target of {target.territory.name} for "
                f"{period_words(target.starts_on, target.ends_on)} shares days with "
                f"row {furthest[0]}; give each day one target.",
                row=number,
            )
        if target.ends_on > furthest[1].ends_on:
            furthest = (number, target)


def _check_against_stored(
    read: list[tuple[int, TargetInput]], problems: RowProblems
) -> None:
    """Each row against the stored targets of its territory (one query)."""
    territory_ids = {target.territory.id for _, target in read}
    stored = db.session.scalars(
        select(TerritoryTarget).where(TerritoryTarget.territory_id.in_(territory_ids))
    ).all()
    for number, target in read:
        same_territory = [
            other
            for other in stored
            if other.territory_id == target.territory.id
            and other.starts_on <= target.ends_on
            and other.ends_on >= target.starts_on
        ]
        clash = _clash(target, same_territory)
        if clash:
            problems.add(f"Row {number}: {clash}", row=number)
