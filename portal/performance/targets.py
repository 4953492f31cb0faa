"""Revenue targets per territory and period: set one at a time, or imported from CSV.

A target covers the days from its start to its end (both included) and spreads
over months: by an explicit monthly distribution, which must add up to the
target, or by the number of days of the target in each month (to the cent, the
remainder on the last month). Targets of one territory never overlap; saving a
target with the same dates as an existing one replaces it. Targets are set on
territories that receive accounts (those without territories below them), so a
region's target is never counted twice. Their dates lie within ``TARGET_DATES``.

A file is read and checked whole before anything is written; the targets it
holds are then written in chunks of rows, and checked against the stored ones in
one query, so that tens of thousands of rows import in seconds.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

from flask import current_app, has_app_context
from sqlalchemy import ColumnElement, delete, exists, func, insert, select
from sqlalchemy.orm import aliased, contains_eager, joinedload, selectinload

from portal.extensions import db
from portal.models import User
from portal.performance.figures import Page
from portal.performance.models import TargetMonth, TerritoryTarget
from portal.performance.periods import Period, next_month
from territory_rules.editing import EditRejected

# The CSV reading (encodings, byte-order marks, decimal commas, row problems) is
# the territory importer's, so that every import in the portal reads files alike.
from territory_rules.imports import (
    MAX_LISTED_PROBLEMS,
    CsvRow,
    ImportRefused,
    ImportReport,
    RowProblems,
    check_columns,
    in_one_transaction,
    read_csv,
    refused_report,
)
from territory_rules.models import Region, Territory, table_of

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 13
# Read amounts finer than cents, so that 12.345 is refused instead of rounded.
READ_STEP = Decimal("0.000001")
ISO_DATE = "%Y-%m-%d"
# What ISO_DATE reads, matched without strptime, which is slow on large files.
ISO_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
MONTH_COLUMN = re.compile(r"(\d{4})-(\d{2})")
COLUMNS = ("territory", "starts_on", "ends_on", "amount")
MAX_NAMES_LISTED = 20
# Beyond three years, a month-by-month split is a file to import, not a form.
MAX_MONTHS_SHOWN = 36
# The days a target may cover. A date outside them is a typing mistake (a year
# 9999 meaning "no end", a year 1 or 19 for 2019), never a plan, and their months
# stay within the calendar dates can be computed in.
TARGET_DATES = Period(date(2000, 1, 1), date(2100, 12, 31))
PER_PAGE = 50
CHUNK_SIZE = 1000

TARGETS = table_of(TerritoryTarget)
TARGET_MONTHS = table_of(TargetMonth)

T = TypeVar("T")


@dataclass(frozen=True)
class TargetInput:
    """A target as typed or read from a file, not checked yet."""

    territory: Territory
    starts_on: date
    ends_on: date
    amount: Decimal
    months: dict[date, Decimal] | None = None


@dataclass(frozen=True)
class SavedTarget:
    """A target just saved, and the amount of the one it replaced, if any."""

    target: TerritoryTarget
    replaced_amount: Decimal | None


@dataclass(frozen=True)
class TargetFilter:
    """Which of a region's targets a list shows: one territory's, one year's."""

    territory_id: int | None = None
    year: int | None = None


# --- Months -------------------------------------------------------------------------


def months_of(starts_on: date, ends_on: date) -> list[date]:
    """The first day of each month the days from ``starts_on`` to ``ends_on`` touch."""
    return Period(starts_on, ends_on).months()


def month_count(starts_on: date, ends_on: date) -> int:
    """How many months :func:`months_of` gives, without listing them."""
    return max(
        (ends_on.year - starts_on.year) * 12 + ends_on.month - starts_on.month + 1, 0
    )


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


def month_amounts(data: TargetInput) -> list[tuple[date, Decimal]]:
    """Each month of the target with its part: as given (a month left out counts
    as zero), or by days when no month is given."""
    months = data.months or spread_by_days(data.starts_on, data.ends_on, data.amount)
    return [
        (month, months.get(month, Decimal(0)))
        for month in months_of(data.starts_on, data.ends_on)
    ]


# --- Checking -----------------------------------------------------------------------


def money(amount: Decimal) -> str:
    symbol = (
        current_app.config.get("CURRENCY_SYMBOL", "$") if has_app_context() else "$"
    )
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


def period_words(starts_on: date, ends_on: date) -> str:
    return Period(starts_on, ends_on).label


def date_error(day: date, what: str) -> str | None:
    """Why ``day`` cannot be the ``what`` ("start", "end") date of a target."""
    if TARGET_DATES.contains(day):
        return None
    return (
        f"The {what} date {day.isoformat()} is outside the years targets cover; "
        f"choose a date from {TARGET_DATES.starts_on.year} to "
        f"{TARGET_DATES.ends_on.year}."
    )


def check_target(data: TargetInput) -> dict[str, str]:
    """What is wrong with ``data`` on its own (not against stored targets)."""
    errors: dict[str, str] = {}
    if data.territory.children:
        errors["territory"] = (
            f"{data.territory.name} has territories below it; set targets on those, "
            f"which receive the accounts."
        )
    for key, what, day in (
        ("starts_on", "start", data.starts_on),
        ("ends_on", "end", data.ends_on),
    ):
        error = date_error(day, what)
        if error:
            errors[key] = error
    if data.ends_on < data.starts_on and not errors.keys() & {"starts_on", "ends_on"}:
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


def _clash(data: TargetInput, starts_on: date, ends_on: date, amount: Decimal) -> str:
    """Why ``data`` cannot be saved beside the stored target of these dates."""
    return (
        f"{data.territory.name} already has a target for "
        f"{period_words(starts_on, ends_on)} ({money(amount)}) that shares days "
        f"with this one; change the dates, or delete that target first."
    )


def _same_dates(data: TargetInput, starts_on: date, ends_on: date) -> bool:
    """A stored target with the very dates of ``data`` is replaced, not a clash."""
    return (starts_on, ends_on) == (data.starts_on, data.ends_on)


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

    :raise EditRejected: with a message per field when it cannot be saved.
    """
    data = TargetInput(territory, starts_on, ends_on, amount, months)
    return save_target(data, user).target


def save_target(data: TargetInput, user: User | None) -> SavedTarget:
    """Save a target (replacing one with the same dates) and commit; say what
    amount it replaced.

    :raise EditRejected: with a message per field when it cannot be saved.
    """
    errors = check_target(data)
    if errors:
        raise EditRejected(errors)

    _lock([data.territory.id])
    stored = overlapping(data.territory.id, data.starts_on, data.ends_on)
    for other in stored:
        if not _same_dates(data, other.starts_on, other.ends_on):
            db.session.rollback()
            raise EditRejected(
                {
                    "starts_on": _clash(
                        data, other.starts_on, other.ends_on, other.amount
                    )
                }
            )

    replaced_amount = stored[0].amount if stored else None
    target = _write(data, stored, user)
    db.session.commit()
    logger.info(
        "%s set the target of territory %s for %s to %s (%s)",
        user.email if user else "The system",
        data.territory.id,
        period_words(data.starts_on, data.ends_on),
        data.amount,
        "new" if replaced_amount is None else f"was {replaced_amount}",
    )
    return SavedTarget(target, replaced_amount)


def _lock(territory_ids: Sequence[int]) -> None:
    """Hold the territories' rows, so that two saves cannot both pass the overlap
    check (PostgreSQL; SQLite lets one writer in at a time anyway)."""
    db.session.execute(
        select(Territory.id)
        .where(Territory.id.in_(territory_ids))
        .order_by(Territory.id)
        .with_for_update()
    )


def _write(
    data: TargetInput, stored: Sequence[TerritoryTarget], user: User | None
) -> TerritoryTarget:
    for replaced in stored:
        db.session.delete(replaced)
    db.session.flush()
    target = TerritoryTarget(
        territory_id=data.territory.id,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        amount=data.amount,
        set_by_id=user.id if user else None,
        months=[
            TargetMonth(month=month, amount=amount)
            for month, amount in month_amounts(data)
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


def leaf_territories(region: Region) -> list[Territory]:
    """The region's territories that receive accounts (none below them), by name."""
    child = aliased(Territory)
    return list(
        db.session.scalars(
            select(Territory)
            .where(
                Territory.region_id == region.id,
                ~exists().where(child.parent_id == Territory.id),
            )
            .options(selectinload(Territory.children))
            .order_by(Territory.name)
        )
    )


def region_targets(
    region: Region, shown: TargetFilter, page: int, per_page: int = PER_PAGE
) -> Page:
    """One page of the region's targets that ``shown`` picks: the latest periods
    first, then by territory. A page past the last gives the last."""
    conditions = _filter_conditions(region, shown)
    total = (
        db.session.scalar(
            select(func.count(TerritoryTarget.id))
            .join(Territory, Territory.id == TerritoryTarget.territory_id)
            .where(*conditions)
        )
        or 0
    )
    page = min(max(page, 1), max(1, -(-total // per_page)))

    items = db.session.scalars(
        select(TerritoryTarget)
        .join(TerritoryTarget.territory)
        .where(*conditions)
        .options(
            contains_eager(TerritoryTarget.territory),
            joinedload(TerritoryTarget.set_by),
            selectinload(TerritoryTarget.months),
        )
        .order_by(TerritoryTarget.starts_on.desc(), Territory.name, TerritoryTarget.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page(list(items), page, per_page, total)


def _filter_conditions(
    region: Region, shown: TargetFilter
) -> list[ColumnElement[bool]]:
    conditions = [Territory.region_id == region.id]
    if shown.territory_id is not None:
        conditions.append(TerritoryTarget.territory_id == shown.territory_id)
    if shown.year is not None:
        conditions += [
            TerritoryTarget.starts_on <= date(shown.year, 12, 31),
            TerritoryTarget.ends_on >= date(shown.year, 1, 1),
        ]
    return conditions


def target_years(region: Region) -> list[int]:
    """The years the region's targets cover, latest first (within the years
    targets may cover: targets stored before dates were bounded may lie outside)."""
    first, last = db.session.execute(
        select(func.min(TerritoryTarget.starts_on), func.max(TerritoryTarget.ends_on))
        .join(Territory, Territory.id == TerritoryTarget.territory_id)
        .where(Territory.region_id == region.id)
    ).one()
    if first is None or last is None:
        return []
    latest = min(last.year, TARGET_DATES.ends_on.year)
    earliest = max(first.year, TARGET_DATES.starts_on.year)
    return list(range(latest, earliest - 1, -1))


def region_target(region: Region, target_id: int) -> TerritoryTarget | None:
    """The target if it belongs to a territory of ``region``; ids a BIGINT
    cannot hold (typed into an address) are no target."""
    if not 0 < target_id < 2**63:
        return None
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
    (empty months count as zero), a row giving none is spread by days. A row with
    the dates of a stored target replaces it.
    """
    notes: list[str] = []
    try:
        rows = _read_target_rows(data, territories, decimal_separator, encoding, notes)
    except ImportRefused as refused:
        refused.notes = notes
        return refused_report(refused, "targets")

    try:
        report = in_one_transaction("targets", lambda: _write_rows(rows, user, notes))
    except ImportRefused as refused:
        db.session.rollback()  # lets go of the territories held for the check
        refused.notes = notes
        return refused_report(refused, "targets")
    if report.ok:
        logger.info(
            "%s imported %s targets", user.email if user else "The system", len(rows)
        )
    return report


def _write_rows(
    rows: list[tuple[int, TargetInput]], user: User | None, notes: list[str]
) -> ImportReport:
    """Check the rows against the stored targets and write them, in a few
    statements per thousand rows.

    :raise ImportRefused: when a row shares days with a stored target.
    """
    _lock(sorted({target.territory.id for _, target in rows}))
    replaced = _stored_to_replace(rows)

    for ids in _chunks(replaced):
        db.session.execute(
            delete(TARGET_MONTHS).where(TARGET_MONTHS.c.target_id.in_(ids))
        )
        db.session.execute(delete(TARGETS).where(TARGETS.c.id.in_(ids)))
    set_by_id = user.id if user else None
    for chunk in _chunks([target for _, target in rows]):
        _insert_targets(chunk, set_by_id)

    counts = {"targets": len(rows) - len(replaced), "replaced": len(replaced)}
    return ImportReport(ok=True, notes=notes, counts=counts)


def _insert_targets(targets: Sequence[TargetInput], set_by_id: int | None) -> None:
    # RETURNING rows come back in no set order (asking for one makes SQLite insert
    # row by row), so each id is matched by its territory and start date, which
    # no two targets of a file share.
    inserted = db.session.execute(
        insert(TARGETS).returning(
            TARGETS.c.id, TARGETS.c.territory_id, TARGETS.c.starts_on
        ),
        [
            {
                "territory_id": target.territory.id,
                "starts_on": target.starts_on,
                "ends_on": target.ends_on,
                "amount": target.amount,
                "set_by_id": set_by_id,
            }
            for target in targets
        ],
    )
    ids = {(row.territory_id, row.starts_on): row.id for row in inserted}
    db.session.execute(
        insert(TARGET_MONTHS),
        [
            {
                "target_id": ids[(target.territory.id, target.starts_on)],
                "month": month,
                "amount": amount,
            }
            for target in targets
            for month, amount in month_amounts(target)
        ],
    )


def _chunks(items: Sequence[T], size: int = CHUNK_SIZE) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read_target_rows(
    data: bytes,
    territories: Sequence[Territory],
    separator: str,
    encoding: str | None,
    notes: list[str],
) -> list[tuple[int, TargetInput]]:
    table = read_csv(data, encoding, notes)
    table.header = _known_column_names(table.header)
    check_columns(table, {f"{name} column": name for name in COLUMNS})
    months = _month_columns(table.header)
    by_name = {territory.name.casefold(): territory for territory in territories}
    known_names = _known_names(by_name)
    problems = RowProblems()
    columns = table.column_index()

    read = []
    for index, (number, values) in enumerate(table.rows):
        if problems.total >= MAX_LISTED_PROBLEMS:
            _refuse_unchecked(problems, len(table.rows) - index)
        row = CsvRow(number, values, columns, problems, separator)
        target = _read_row(row, months, by_name, known_names)
        if target is not None:
            read.append((number, target))
    problems.refuse_if_any()

    _check_against_each_other(read, problems)
    problems.refuse_if_any()
    return read


def _refuse_unchecked(problems: RowProblems, unchecked: int) -> None:
    """Stop at a full list of problems: the file is refused whatever the other
    rows hold, and reading them for detail would only keep the user waiting."""
    rows = "row was" if unchecked == 1 else "rows were"
    raise ImportRefused(
        [
            *problems.messages(),
            f"{unchecked:,} more {rows} not checked; fix the problems above and "
            f"import the file again to check the rest.",
        ]
    )


def _known_column_names(header: list[str]) -> list[str]:
    """The header with the known columns named as we write them, whatever their
    case (``Starts_On`` is ``starts_on``); other names are kept as they are."""
    return [name.lower() if name.lower() in COLUMNS else name for name in header]


def _month_columns(header: list[str]) -> dict[str, date]:
    """The month columns (``2018-01``) by name; any other extra column is refused."""
    problems = RowProblems()
    months = {}
    first, last = TARGET_DATES.starts_on, TARGET_DATES.ends_on
    for name in header:
        if name in COLUMNS:
            continue
        match = MONTH_COLUMN.fullmatch(name)
        if match and not first.year <= int(match[1]) <= last.year:
            problems.add(
                f"The column '{name}' is a month outside the years targets cover; "
                f"give months from {first:%Y-%m} to {last:%Y-%m}."
            )
        elif match and 1 <= int(match[2]) <= 12:
            months[name] = date(int(match[1]), int(match[2]), 1)
        else:
            problems.add(
                f"The column '{name}' is neither one of {', '.join(COLUMNS)} nor a "
                f"month written YYYY-MM (e.g. 2018-01); rename or remove it."
            )
    problems.refuse_if_any()
    return months


def _read_row(
    row: CsvRow,
    months: dict[str, date],
    by_name: dict[str, Territory],
    known_names: str,
) -> TargetInput | None:
    name = row.required("territory", "territory", 200)
    territory = by_name.get(name.casefold()) if name else None
    if name and territory is None:
        row.fail(f"there is no territory named '{name}' {known_names}")
    starts_on = _read_day(row, "starts_on", "start date")
    ends_on = _read_day(row, "ends_on", "end date")
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

    data = TargetInput(territory, starts_on, ends_on, amount)
    errors = check_target(data)
    if given and not errors:
        data = replace(data, months=_distribution(given, starts_on, ends_on))
        errors = check_target(data)
    for message in errors.values():
        row.fail(message.rstrip("."))
    return data if row.ok else None


def _read_day(row: CsvRow, column: str, label: str) -> date | None:
    """The date in ``column``, read as ``CsvRow.date`` reads ISO_DATE."""
    match = ISO_DAY.fullmatch(row.values[row.columns[column]].strip())
    if match:
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    return row.date(column, label, ISO_DATE)


def _distribution(
    given: dict[date, Decimal], starts_on: date, ends_on: date
) -> dict[date, Decimal]:
    """The row's months, empty ones of the target counting as zero."""
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


def _has_room(problems: RowProblems) -> bool:
    """Whether the list of problems shown has room; past it problems are only
    counted, so their words need not be put together."""
    return len(problems.listed) < MAX_LISTED_PROBLEMS


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
                f"row {furthest[0]}; give each day one target."
                if _has_room(problems)
                else "",
                row=number,
            )
        if target.ends_on > furthest[1].ends_on:
            furthest = (number, target)


def _stored_to_replace(read: list[tuple[int, TargetInput]]) -> list[int]:
    """Check each row against the stored targets of its territory (one query): a
    row with the dates of a stored target replaces it, any other shared day is
    refused. The ids of the stored targets replaced.

    :raise ImportRefused: listing the rows that share days with stored targets.
    """
    stored = _stored_spans(read)
    problems = RowProblems()
    replaced = []
    for number, target in read:
        spans = stored.get(target.territory.id)
        if spans is None:
            continue
        # Stored targets of a territory never overlap, so sorted by start they
        # are sorted by end too: the first one ending on or after the row's start
        # is the first that may share days with it.
        index = bisect_left(spans.ends, target.starts_on)
        while index < len(spans.rows) and spans.rows[index].starts_on <= target.ends_on:
            other = spans.rows[index]
            if _same_dates(target, other.starts_on, other.ends_on):
                replaced.append(other.id)
            else:
                clash = (
                    _clash(target, other.starts_on, other.ends_on, other.amount)
                    if _has_room(problems)
                    else ""
                )
                problems.add(f"Row {number}: {clash}", row=number)
                break
            index += 1
    problems.refuse_if_any()
    return replaced


@dataclass
class _Spans:
    """A territory's stored targets by start date, and their end dates alike."""

    rows: list[Any]
    ends: list[date]


def _stored_spans(read: list[tuple[int, TargetInput]]) -> dict[int, _Spans]:
    """The stored targets of the rows' territories within the rows' dates."""
    territory_ids = sorted({target.territory.id for _, target in read})
    first = min(target.starts_on for _, target in read)
    last = max(target.ends_on for _, target in read)
    stored: dict[int, _Spans] = defaultdict(lambda: _Spans([], []))
    for row in db.session.execute(
        select(
            TARGETS.c.id,
            TARGETS.c.territory_id,
            TARGETS.c.starts_on,
            TARGETS.c.ends_on,
            TARGETS.c.amount,
        )
        .where(
            TARGETS.c.territory_id.in_(territory_ids),
            TARGETS.c.starts_on <= last,
            TARGETS.c.ends_on >= first,
        )
        .order_by(TARGETS.c.territory_id, TARGETS.c.starts_on)
    ):
        spans = stored[row.territory_id]
        spans.rows.append(row)
        spans.ends.append(row.ends_on)
    return dict(stored)
