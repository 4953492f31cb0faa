"""Incentive tiers: thresholds as admins type them, ladders, KPIs and standings.

A KPI is measured over the program's period on the sales credited to each
partner organisation (see :mod:`territory_rules.credit`) or on the modules its
people completed. A tier is reached when the KPI is at its threshold or better.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    delete,
    distinct,
    func,
    insert,
    select,
    union_all,
)
from sqlalchemy.sql import Subquery

from portal.extensions import db
from portal.models import PartnerOrganisation, utc_now
from programs.models import (
    Eligibility,
    Kpi,
    KpiDirection,
    ModuleCompletion,
    Program,
    ProgramKind,
    ProgramStatus,
    Standing,
    Tier,
)
from territory_rules.credit import credited_sales
from territory_rules.models import SalesLine

logger = logging.getLogger(__name__)


class TierError(ValueError):
    """A threshold or a ladder an admin typed cannot be used; says what to fix."""


# Thresholds are stored as NUMERIC(16, 4): twelve digits before the point, four after.
MAX_AMOUNT = Decimal(10) ** 12
MAX_DECIMALS = 4
MAX_TIER_NAME = 80
CENT = Decimal("0.01")
# Sales amounts are stored with four decimal places.
AMOUNT_PLACES = Decimal("0.0001")

MONEY_KPIS = frozenset({Kpi.SALES_SUM, Kpi.SALES_AVERAGE})

# What a count KPI counts, one and many.
COUNT_NOUNS = {
    Kpi.SALES_COUNT: ("sale", "sales"),
    Kpi.MODULES_COMPLETED: ("completed module", "completed modules"),
    Kpi.NEW_ACCOUNTS: ("new account", "new accounts"),
}

# The KPI as the subject of "Bring your ... down".
KPI_SUBJECTS = {
    Kpi.SALES_SUM: "sales total",
    Kpi.SALES_COUNT: "number of sales",
    Kpi.SALES_AVERAGE: "average sale",
    Kpi.MODULES_COMPLETED: "number of completed modules",
    Kpi.NEW_ACCOUNTS: "number of new accounts",
}

# The separator that groups thousands under each decimal separator.
GROUPING = {".": ",", ",": "."}
SEPARATOR_NAMES = {".": "point", ",": "comma"}
SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})
NOT_FINITE = {"nan", "snan", "inf", "infinity"}


# --- Amounts typed by admins ---------------------------------------------------


def parse_amount(raw: str, decimal_separator: str = ".") -> Decimal:
    """An amount typed with ``decimal_separator`` and optional grouping.

    Groups of three digits may be separated by spaces or by the other separator
    ("1,234.50" with a point, "1.234,50" with a comma).

    :raise TierError: with a sentence saying what to type instead.
    """
    if decimal_separator not in GROUPING:
        raise TierError("Choose a point or a comma as the decimal separator.")
    text = (raw or "").translate(SPACES).strip()
    if not text:
        raise TierError("Enter an amount, e.g. 5000.")

    _refuse_sign_and_specials(raw, text)
    digits = _plain_number(text.removeprefix("+"), decimal_separator)
    if digits is None:
        raise TierError(_unreadable(raw, text.removeprefix("+"), decimal_separator))

    return _within_limits(raw, Decimal(digits))


def _refuse_sign_and_specials(raw: str, text: str) -> None:
    if text[0] in "-\u2212":
        raise TierError(f"{raw!r} is negative; thresholds are zero or more.")
    if text.lstrip("+").lower() in NOT_FINITE:
        raise TierError(f"{raw!r} is not an amount; enter a number such as 5000.")


def _amount_pattern(decimal_separator: str) -> re.Pattern[str]:
    group = re.escape(GROUPING[decimal_separator])
    point = re.escape(decimal_separator)
    return re.compile(
        rf"(?P<whole>[0-9]{{1,3}}(?P<sep>[{group} ])[0-9]{{3}}(?:(?P=sep)[0-9]{{3}})*"
        rf"|[0-9]+)?(?:{point}(?P<fraction>[0-9]*))?"
    )


PATTERNS = {separator: _amount_pattern(separator) for separator in GROUPING}


def _plain_number(text: str, decimal_separator: str) -> str | None:
    """``text`` without grouping and with a decimal point, or None if unreadable."""
    match = PATTERNS[decimal_separator].fullmatch(text)
    if match is None or not (match["whole"] or match["fraction"]):
        return None
    whole = re.sub("[^0-9]", "", match["whole"] or "0")
    fraction = match["fraction"]
    return f"{whole}.{fraction}" if fraction else whole


def _unreadable(raw: str, text: str, decimal_separator: str) -> str:
    """Why ``text`` cannot be read, and how to write it, in one sentence."""
    other = GROUPING[decimal_separator]
    as_other = _plain_number(text, other)
    if as_other is not None:
        written = as_other.replace(".", decimal_separator)
        return (
            f"{raw!r} looks like it uses a decimal {SEPARATOR_NAMES[other]}: "
            f"choose the {SEPARATOR_NAMES[other]} as decimal separator, "
            f"or write {written}."
        )
    if re.fullmatch(r"[0-9., ]*[0-9][0-9., ]*", text):
        example = f"1{GROUPING[decimal_separator]}234{decimal_separator}50"
        return (
            f"{raw!r} is not an amount: group digits in threes, as in {example}, "
            f"or leave the grouping out."
        )
    return (
        f"{raw!r} is not a number; enter an amount such as 1234{decimal_separator}50."
    )


def _within_limits(raw: str, amount: Decimal) -> Decimal:
    exponent = amount.normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > MAX_DECIMALS:
        raise TierError(
            f"{raw!r} has {decimals} decimal places; "
            f"thresholds keep at most {MAX_DECIMALS}."
        )
    if amount >= MAX_AMOUNT:
        raise TierError(f"{raw!r} is too large; amounts stay below {MAX_AMOUNT:,}.")
    return amount


# --- Ladders -------------------------------------------------------------------


def check_ladder(tiers: Sequence[tuple[str, Decimal]], direction: str) -> list[str]:
    """What is wrong with tiers listed lowest first; empty when the ladder is fine."""
    if direction not in set(KpiDirection):
        return ["Choose whether a higher or a lower value is better."]
    if not tiers:
        return ["Add at least one tier."]

    messages = _name_problems([name for name, _ in tiers])
    # A tier without a name is called by its place in the ladder.
    labelled = [
        (name.strip() or f"Tier {position}", threshold)
        for position, (name, threshold) in enumerate(tiers, start=1)
    ]
    for (lower_name, lower), (name, threshold) in itertools.pairwise(labelled):
        problem = _step_problem(lower_name, lower, name, threshold, direction)
        if problem:
            messages.append(problem)
    return messages


def _name_problems(names: list[str]) -> list[str]:
    messages: list[str] = []
    seen: set[str] = set()
    repeated: set[str] = set()
    for position, name in enumerate(names, start=1):
        cleaned, folded = name.strip(), name.strip().casefold()
        if not cleaned:
            messages.append(f"Tier {position} needs a name.")
        elif len(cleaned) > MAX_TIER_NAME:
            messages.append(
                f"Tier {position}'s name is longer than {MAX_TIER_NAME} characters."
            )
        elif folded in seen and folded not in repeated:
            repeated.add(folded)
            messages.append(
                f"Two tiers are named {cleaned!r}; give each tier its own name."
            )
        seen.add(folded)
    return messages


def _step_problem(
    lower_name: str, lower: Decimal, name: str, threshold: Decimal, direction: str
) -> str | None:
    """A tier against the one before it in the ladder."""
    rising = direction == KpiDirection.HIGHER_IS_BETTER
    if (threshold > lower) if rising else (threshold < lower):
        return None
    relation = "above" if rising else "below"
    head = (
        f"{name} ({_plain(threshold)}) must be {relation} "
        f"{lower_name} ({_plain(lower)})"
    )
    if threshold == lower:
        return f"{head}: two tiers cannot share a threshold."
    return f"{head}: each tier's threshold is {relation} the one before it."


def _plain(amount: Decimal) -> str:
    """5000.0000 as "5,000", 1234.5000 as "1,234.5"."""
    if amount == amount.to_integral_value():
        return f"{amount.quantize(Decimal(1)):,}"
    return f"{amount.normalize():,f}"


# --- KPI values ----------------------------------------------------------------


def kpi_values(
    program: Program, organisation_ids: Iterable[int] | None = None
) -> dict[int, Decimal | None]:
    """Each organisation's KPI over the program's period, in one query.

    Without ``organisation_ids``: every organisation eligible to the program;
    with them, those of them that exist, eligible or not. An organisation with
    no activity gets 0, or None for an average.
    """
    kpi = _kpi_of(program)
    ids = None if organisation_ids is None else list(organisation_ids)
    if ids == []:
        return {}

    organisations = _organisations(program, ids)
    measure = MEASURES[kpi](program, _organisation_filter(program, ids)).subquery()
    query = select(organisations.c.organisation_id, measure.c.value).outerjoin(
        measure, measure.c.organisation_id == organisations.c.organisation_id
    )

    rows = db.session.execute(query).all()
    return {organisation_id: _kpi_value(kpi, value) for organisation_id, value in rows}


def _kpi_of(program: Program) -> Kpi:
    if program.kpi is None:
        raise TierError(f"The program {program.name!r} does not measure a KPI.")
    return Kpi(program.kpi)


def _organisations(program: Program, ids: list[int] | None) -> Subquery:
    if ids is None:
        query = select(Eligibility.organisation_id.label("organisation_id")).where(
            Eligibility.program_id == program.id
        )
        return query.distinct().subquery("organisations")
    query = select(PartnerOrganisation.id.label("organisation_id")).where(
        PartnerOrganisation.id.in_(ids)
    )
    return query.subquery("organisations")


# Given an organisation id column, the condition that keeps the ones asked about.
OrganisationFilter = Callable[[SQLColumnExpression[Any]], ColumnElement[bool]]
Measure = Callable[[Program, OrganisationFilter], Select[Any, Any]]


def _organisation_filter(program: Program, ids: list[int] | None) -> OrganisationFilter:
    """Keeps each measure to the organisations asked about, before it groups."""

    def condition(column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        if ids is not None:
            return column.in_(ids)
        return column.in_(
            select(Eligibility.organisation_id).where(
                Eligibility.program_id == program.id
            )
        )

    return condition


# Sales a partner reports itself and has credited outside the sales lines (the
# approved claims of rewards), registered at start-up: each gives a query of
# ``organisation_id``, ``order_date`` and ``amount``.
OtherSales = Callable[[], Select[Any, Any]]
_OTHER_SALES: list[OtherSales] = []


def count_other_sales(source: OtherSales) -> None:
    """Count the sales ``source`` gives in the sales KPIs, beside the sales lines."""
    if source not in _OTHER_SALES:
        _OTHER_SALES.append(source)


def counted_sales() -> Subquery:
    """Every sale a sales KPI counts: credited sales lines, then the other sales.

    Columns: ``organisation_id``, ``order_date``, ``amount``.
    """
    lines = credited_sales()
    query: Any = select(lines.c.organisation_id, lines.c.order_date, lines.c.amount)
    if _OTHER_SALES:
        query = union_all(query, *(source() for source in _OTHER_SALES))
    return query.subquery("counted_sales")


def _sales_measure(aggregate: Callable[[Any], ColumnElement[Any]]) -> Measure:
    def measure(program: Program, keep: OrganisationFilter) -> Select[Any, Any]:
        sales = counted_sales()
        return (
            select(sales.c.organisation_id, aggregate(sales.c).label("value"))
            .where(
                sales.c.order_date.between(program.starts_on, program.ends_on),
                keep(sales.c.organisation_id),
            )
            .group_by(sales.c.organisation_id)
        )

    return measure


def _modules_measure(program: Program, keep: OrganisationFilter) -> Select[Any, Any]:
    completed = ModuleCompletion.completed_at_utc
    return (
        select(
            ModuleCompletion.organisation_id,
            func.count(distinct(ModuleCompletion.module_id)).label("value"),
        )
        .where(
            completed.between(
                datetime.combine(program.starts_on, time.min),
                datetime.combine(program.ends_on, time.max),
            ),
            keep(ModuleCompletion.organisation_id),
        )
        .group_by(ModuleCompletion.organisation_id)
    )


def _new_accounts_measure(
    program: Program, keep: OrganisationFilter
) -> Select[Any, Any]:
    # An account is new when its first sale ever, credited or not, is in the period.
    first_sale = func.min(SalesLine.order_date)
    firsts = (
        select(SalesLine.account_id, first_sale.label("first_on"))
        .group_by(SalesLine.account_id)
        .having(first_sale.between(program.starts_on, program.ends_on))
        .subquery("first_sales")
    )
    sales = credited_sales()
    return (
        select(
            sales.c.organisation_id,
            func.count(distinct(sales.c.account_id)).label("value"),
        )
        .join(firsts, firsts.c.account_id == sales.c.account_id)
        .where(
            sales.c.order_date == firsts.c.first_on,
            keep(sales.c.organisation_id),
        )
        .group_by(sales.c.organisation_id)
    )


MEASURES: dict[Kpi, Measure] = {
    Kpi.SALES_SUM: _sales_measure(lambda sales: func.sum(sales.amount)),
    Kpi.SALES_COUNT: _sales_measure(lambda sales: func.count()),
    Kpi.SALES_AVERAGE: _sales_measure(lambda sales: func.avg(sales.amount)),
    Kpi.MODULES_COMPLETED: _modules_measure,
    Kpi.NEW_ACCOUNTS: _new_accounts_measure,
}


def _kpi_value(kpi: Kpi, value: Any) -> Decimal | None:
    """The database's number as a Decimal, whole for counts. A sales total is a
    sum of money, to the cent (rounded half up) as everywhere it is shown; an
    average keeps the amounts' own four places, so that 220.797 does not reach
    a tier set at 220.80."""
    if value is None:
        return None if kpi is Kpi.SALES_AVERAGE else Decimal(0)
    # SQLite returns averages (and sums of REAL) as floats: through str, not binary.
    number = Decimal(str(value))
    if kpi is Kpi.SALES_SUM:
        return number.quantize(AMOUNT_PLACES, rounding=ROUND_HALF_UP).quantize(
            CENT, rounding=ROUND_HALF_UP
        )
    if kpi in MONEY_KPIS:
        return number.quantize(AMOUNT_PLACES, rounding=ROUND_HALF_UP)
    return Decimal(int(number))


# --- Tiers reached and the next step ---------------------------------------------


def tier_for(
    value: Decimal | None, tiers: Sequence[Tier], direction: str
) -> Tier | None:
    """The best tier ``value`` reaches; tiers in ladder order, lowest first."""
    if value is None:
        return None
    reached = [tier for tier in tiers if _reaches(value, tier.threshold, direction)]
    return reached[-1] if reached else None


def _reaches(value: Decimal, threshold: Decimal, direction: str) -> bool:
    if KpiDirection(direction) is KpiDirection.HIGHER_IS_BETTER:
        return value >= threshold
    return value <= threshold


def next_step(program: Program, value: Decimal | None, today: date) -> str | None:
    """What it takes to reach the next tier before the program ends, in words.

    None when there is no tier left to reach or the program has ended.
    """
    tiers = list(program.tiers)
    if not tiers or program.kpi is None or program.has_ended_by(today):
        return None
    kpi, direction = Kpi(program.kpi), KpiDirection(program.kpi_direction)
    if value is None and kpi is not Kpi.SALES_AVERAGE:
        value = Decimal(0)

    target = _next_tier(value, tiers, direction)
    if target is None:
        return None

    by = _long_date(program.ends_on)
    if value is None:
        bound = "more" if direction is KpiDirection.HIGHER_IS_BETTER else "less"
        amount = _money(target.threshold)
        return f"An average sale of {amount} or {bound} by {by} reaches {target.name}"
    if direction is KpiDirection.HIGHER_IS_BETTER:
        return _step_up(kpi, target.threshold - value, by, target.name)
    gap = _gap_text(kpi, value - target.threshold)
    return (
        f"Bring your {KPI_SUBJECTS[kpi]} down by {gap} by {by} to reach {target.name}"
    )


def _next_tier(
    value: Decimal | None, tiers: list[Tier], direction: KpiDirection
) -> Tier | None:
    current = tier_for(value, tiers, direction)
    following = 0 if current is None else tiers.index(current) + 1
    return tiers[following] if following < len(tiers) else None


def _step_up(kpi: Kpi, gap: Decimal, by: str, tier_name: str) -> str:
    if kpi is Kpi.SALES_AVERAGE:
        gap_text = _gap_text(kpi, gap)
        return f"Raise your average sale by {gap_text} by {by} to reach {tier_name}"
    if kpi is Kpi.SALES_SUM:
        return f"{_gap_text(kpi, gap)} more in sales by {by} reaches {tier_name}"
    count = _whole_up(gap)
    singular, plural = COUNT_NOUNS[kpi]
    noun = singular if count == 1 else plural
    return f"{count:,} more {noun} by {by} reaches {tier_name}"


def _gap_text(kpi: Kpi, gap: Decimal) -> str:
    """A distance to a threshold, rounded up so that covering it is enough."""
    if kpi in MONEY_KPIS:
        return _money(gap.quantize(CENT, rounding=ROUND_CEILING))
    return f"{_whole_up(gap):,}"


def _whole_up(gap: Decimal) -> int:
    return int(gap.to_integral_value(rounding=ROUND_CEILING))


def _long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


# --- Display -----------------------------------------------------------------------


def format_kpi(
    kpi: str, value: Decimal | None, direction: str = KpiDirection.HIGHER_IS_BETTER
) -> str:
    """A KPI value for people: "$12,345.67", "12 sales", "No sales yet".

    Money is rounded to the cent away from the next tier (down when more is
    better), the way :func:`next_step` rounds the distance towards it, so that
    the value shown plus the distance shown is the threshold to the cent.
    """
    kind = Kpi(kpi)
    if kind is Kpi.SALES_AVERAGE and value is None:
        return "No sales yet"
    number = value if value is not None else Decimal(0)
    if kind in MONEY_KPIS:
        higher = KpiDirection(direction) is KpiDirection.HIGHER_IS_BETTER
        return _money(
            number.quantize(CENT, rounding=ROUND_FLOOR if higher else ROUND_CEILING)
        )
    singular, plural = COUNT_NOUNS[kind]
    return f"{_plain(number)} {singular if number == 1 else plural}"


def _money(amount: Decimal) -> str:
    symbol = (
        current_app.config.get("CURRENCY_SYMBOL", "$") if has_app_context() else "$"
    )
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


# --- Standings -----------------------------------------------------------------------


def refresh_standings(run_id: int | None) -> int:
    """Rewrite the standings of every incentive program still running or to come.

    Programs that have ended or are archived keep their rows: they are the
    history. All programs are rewritten in one transaction, so a page never
    shows some programs refreshed and others not. Returns the rows written.
    """
    today = utc_now().date()
    programs = db.session.scalars(
        select(Program)
        .where(
            Program.kind == ProgramKind.INCENTIVE.value,
            Program.status != ProgramStatus.ARCHIVED.value,
            Program.ends_on >= today,
            Program.kpi.is_not(None),
        )
        .order_by(Program.id)
    ).all()

    written = sum(_rewrite_standings(program, run_id) for program in programs)
    db.session.commit()

    logger.info(
        "Run %s wrote %d standings for %d incentive programs",
        run_id,
        written,
        len(programs),
    )
    return written


def _rewrite_standings(program: Program, run_id: int | None) -> int:
    values = kpi_values(program)
    tiers = list(program.tiers)
    now = utc_now()
    rows = [
        {
            "program_id": program.id,
            "organisation_id": organisation_id,
            "kpi_value": value if value is not None else Decimal(0),
            "tier_id": _tier_id(tier_for(value, tiers, program.kpi_direction)),
            "run_id": run_id,
            "computed_at_utc": now,
        }
        for organisation_id, value in values.items()
    ]

    db.session.execute(delete(Standing).where(Standing.program_id == program.id))
    if rows:
        db.session.execute(insert(Standing), rows)
    return len(rows)


def _tier_id(tier: Tier | None) -> int | None:
    return tier.id if tier is not None else None


def programs_measuring(kpi: Kpi) -> bool:
    """Whether an incentive program still open measures ``kpi``."""
    found = db.session.scalar(
        select(func.count())
        .select_from(Program)
        .where(
            Program.kind == ProgramKind.INCENTIVE.value,
            Program.kpi == kpi.value,
            Program.status != ProgramStatus.ARCHIVED.value,
            Program.ends_on >= utc_now().date(),
        )
    )
    return bool(found)
