"""Reward plans as admins edit them: the rate, approval, expiry and cap of an
incentive program, and its multipliers by category, segment or territory.

Everything an admin types is checked here, once; the views put the messages
beside the fields. A plan and its rules are saved together, in one
transaction, and only when every value and every row is valid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import User
from programs.editing import EditRejected
from programs.models import Program, ProgramKind
from rewards.models import MultiplierDimension, RewardPlan, RewardRule
from territory_rules.conditions import comparable_text, comparable_value
from territory_rules.models import Account, SalesLine, Territory

logger = logging.getLogger(__name__)

CAP_PERIODS = ("month", "quarter", "program")
DIMENSIONS = tuple(dimension.value for dimension in MultiplierDimension)

# Well inside the columns (NUMERIC(12, 4) for the rate, NUMERIC(8, 4) for a
# multiplier, NUMERIC(16, 2) for the cap), and far above any sensible plan.
MAX_RATE = Decimal(10) ** 6
MAX_CAP = Decimal(10) ** 12
MAX_MULTIPLIER = Decimal(100)
MAX_APPROVAL_DAYS = 365
MAX_EXPIRY_DAYS = 3650
RULE_NAME_MAX = 200
MATCH_VALUE_MAX = 200

PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# A number written with a comma: a decimal comma, or thousands grouped.
WITH_COMMA = re.compile(r"[+-]?[0-9.,]*[0-9][0-9.,]*")
SAVED_ELSEWHERE = (
    "Someone else saved this plan at the same moment. Reload the page to see "
    "their changes, then make yours again."
)


@dataclass(frozen=True)
class RuleInput:
    """One multiplier row as typed."""

    name: str = ""
    dimension: str = MultiplierDimension.CATEGORY.value
    match_value: str = ""
    multiplier: str = ""

    @property
    def is_blank(self) -> bool:
        # The dimension always has a value (it is a select), so it does not count.
        return not any(
            (value or "").strip()
            for value in (self.name, self.match_value, self.multiplier)
        )


@dataclass(frozen=True)
class PlanInput:
    """The plan form as typed: numbers as text, rules in page order."""

    points_per_unit: str = "1"
    approval_days: str = "30"
    expiry_days: str = "365"
    cap_points: str = ""
    cap_period: str = "month"
    rules: Sequence[RuleInput] = field(default_factory=tuple)


@dataclass(frozen=True)
class _PlanValues:
    points_per_unit: Decimal
    approval_days: int
    expiry_days: int | None
    cap_points: Decimal | None
    cap_period: str


@dataclass(frozen=True)
class _RuleValues:
    name: str
    dimension: str
    match_value: str
    multiplier: Decimal

    @property
    def match_key(self) -> tuple[str, str]:
        # Categories and segments are compared trimmed with case ignored.
        return self.dimension, self.match_value.casefold()


# Reading the stored plan back into the form ----------------------------------


def plan_of(program: Program) -> RewardPlan | None:
    return db.session.get(RewardPlan, program.id)


def rules_of(program: Program) -> list[RewardRule]:
    return list(
        db.session.scalars(
            select(RewardRule)
            .where(RewardRule.program_id == program.id)
            .order_by(RewardRule.dimension, RewardRule.name, RewardRule.id)
        )
    )


def stored_input(program: Program) -> PlanInput:
    """What the form shows for the program: its plan, or the defaults."""
    plan = plan_of(program)
    rules = [stored_rule_input(rule) for rule in rules_of(program)]
    if plan is None:
        return PlanInput(rules=rules)
    return PlanInput(
        points_per_unit=number_text(plan.points_per_unit),
        approval_days=str(plan.approval_days),
        expiry_days="" if plan.expiry_days is None else str(plan.expiry_days),
        cap_points=number_text(plan.cap_points),
        cap_period=plan.cap_period,
        rules=rules,
    )


def stored_rule_input(rule: RewardRule) -> RuleInput:
    match_value = rule.match_value
    if rule.dimension == MultiplierDimension.TERRITORY:
        match_value = territory_names([rule]).get(rule.match_value, match_value)
    return RuleInput(
        name=rule.name,
        dimension=rule.dimension,
        match_value=match_value,
        multiplier=number_text(rule.multiplier),
    )


def territory_names(rules: Sequence[RewardRule]) -> dict[str, str]:
    """Territory rules' stored ids (as text) -> the territory's name."""
    ids = [
        int(rule.match_value)
        for rule in rules
        if rule.dimension == MultiplierDimension.TERRITORY
        and rule.match_value.isdigit()
    ]
    if not ids:
        return {}
    rows = db.session.execute(
        select(Territory.id, Territory.name).where(Territory.id.in_(ids))
    )
    return {str(territory_id): name for territory_id, name in rows}


def number_text(value: Decimal | None) -> str:
    """A stored number as the form shows it: no trailing zeros, no exponent."""
    if value is None:
        return ""
    return format(value.normalize(), "f")


# Saving ----------------------------------------------------------------------


def save_plan(program: Program, data: PlanInput, user: User) -> RewardPlan:
    """Replace the program's plan and rules with ``data``, all or nothing.

    A rule keeping its dimension and value keeps its row, so ledger entries
    priced by it still name it.

    :raise EditRejected: with a message per field and per rule row.
    """
    values, rules = check_plan(program, data)

    plan = plan_of(program) or RewardPlan(program_id=program.id)
    _apply(plan, values)
    db.session.add(plan)
    _replace_rules(program, rules)
    _commit()

    logger.info(
        "%s saved the reward plan of program %s: %s points per unit, %d rules",
        user.email,
        program.id,
        values.points_per_unit,
        len(rules),
    )
    return plan


# How many of the values found in the data a warning lists.
KNOWN_VALUES_SHOWN = 12


def unmatched_rules(program: Program) -> list[str]:
    """A warning per category or segment rule whose value no sale or account has
    (compared as pricing compares it: trimmed, case ignored), naming the values
    that are there: such a rule is saved, but prices nothing until data matches."""
    columns: dict[str, tuple[str, Any]] = {
        MultiplierDimension.CATEGORY.value: ("category", SalesLine.category),
        MultiplierDimension.SEGMENT.value: ("customer segment", Account.segment),
    }
    warnings = []
    rules = db.session.scalars(
        select(RewardRule)
        .where(RewardRule.program_id == program.id)
        .order_by(RewardRule.id)
    )
    for rule in rules:
        if rule.dimension not in columns:
            continue
        noun, column = columns[rule.dimension]
        wanted = comparable_value(rule.match_value.strip())
        found = db.session.scalar(
            select(column).where(comparable_text(column) == wanted).limit(1)
        )
        if found is not None:
            continue
        known = db.session.scalars(
            select(func.trim(column))
            .where(column.is_not(None), func.trim(column) != "")
            .distinct()
            .order_by(func.trim(column))
            .limit(KNOWN_VALUES_SHOWN + 1)
        ).all()
        listed = ", ".join(f"“{value}”" for value in known[:KNOWN_VALUES_SHOWN])
        more = ", …" if len(known) > KNOWN_VALUES_SHOWN else ""
        there = f" The data has: {listed}{more}." if known else ""
        warnings.append(
            f"Rule “{rule.name}”: no sale has the {noun} “{rule.match_value}”, so it "
            f"multiplies nothing yet; check the spelling.{there}"
        )
    return warnings


def check_plan(
    program: Program, data: PlanInput
) -> tuple[_PlanValues, list[_RuleValues]]:
    """The plan and rules ``data`` describes.

    :raise EditRejected: with every problem found, not just the first.
    """
    errors: dict[str, str] = {}
    if program.kind != ProgramKind.INCENTIVE:
        errors["program"] = "Only incentive programs have a reward plan."
    values = _check_values(data, errors)
    rules, row_errors = _check_rules(data.rules)
    if errors or row_errors:
        raise EditRejected(errors, row_errors)
    return values, rules


def _apply(plan: RewardPlan, values: _PlanValues) -> None:
    plan.points_per_unit = values.points_per_unit
    plan.approval_days = values.approval_days
    # The column's default (365) would replace a plain None on insert; never
    # expiring is written as NULL explicitly.
    plan.expiry_days = null() if values.expiry_days is None else values.expiry_days
    plan.cap_points = values.cap_points
    plan.cap_period = values.cap_period


def _replace_rules(program: Program, rules: list[_RuleValues]) -> None:
    wanted = {rule.match_key: rule for rule in rules}
    kept: dict[tuple[str, str], RewardRule] = {}
    for stored in rules_of(program):
        key = (stored.dimension, stored.match_value.casefold())
        if key in wanted:
            kept[key] = stored
        else:
            db.session.delete(stored)
    # Deletions first: a new row may take the value a deleted one had.
    db.session.flush()

    for key, values in wanted.items():
        rule = kept.get(key) or RewardRule(program_id=program.id)
        rule.name = values.name
        rule.dimension = values.dimension
        rule.match_value = values.match_value
        rule.multiplier = values.multiplier
        db.session.add(rule)


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        # Another admin inserted the plan or the same rule between our read and
        # this commit.
        db.session.rollback()
        raise EditRejected({"plan": SAVED_ELSEWHERE}) from None


# Checks ----------------------------------------------------------------------


def _check_values(data: PlanInput, errors: dict[str, str]) -> _PlanValues:
    rate = parse_number(
        data.points_per_unit,
        "points_per_unit",
        errors,
        missing="Enter the points earned per unit of sales, e.g. 1.",
    )
    if rate is not None:
        _within(rate, "points_per_unit", errors, most=MAX_RATE, places=4)
    cap = parse_number(data.cap_points, "cap_points", errors, missing=None)
    if cap is not None:
        _within(cap, "cap_points", errors, most=MAX_CAP, places=2)
    period = (data.cap_period or "").strip()
    if period not in CAP_PERIODS:
        errors["cap_period"] = "Choose month, quarter or program as the cap period."
    return _PlanValues(
        points_per_unit=rate or Decimal(1),
        approval_days=_days(
            data.approval_days, "approval_days", errors, 0, MAX_APPROVAL_DAYS
        ),
        expiry_days=_expiry_days(data.expiry_days, errors),
        cap_points=cap,
        cap_period=period,
    )


def _days(raw: str, key: str, errors: dict[str, str], lowest: int, highest: int) -> int:
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        errors[key] = (
            f"Enter a whole number of days from {lowest} to {highest:,}, e.g. 30."
        )
        return lowest
    days = int(text)
    if not lowest <= days <= highest:
        errors[key] = f"Enter a number of days from {lowest} to {highest:,}."
    return days


def _expiry_days(raw: str, errors: dict[str, str]) -> int | None:
    if not (raw or "").strip():
        return None
    days = _days(raw, "expiry_days", errors, 1, MAX_EXPIRY_DAYS)
    if "expiry_days" in errors:
        errors["expiry_days"] += " Leave it empty if points never expire."
    return days


def _check_rules(
    rows: Sequence[RuleInput],
) -> tuple[list[_RuleValues], dict[int, dict[str, str]]]:
    rules: list[_RuleValues] = []
    row_errors: dict[int, dict[str, str]] = {}
    seen: dict[tuple[str, str], str] = {}
    for index, row in enumerate(rows):
        if row.is_blank:
            continue
        problems: dict[str, str] = {}
        rule = _check_rule(row, problems)
        if not problems and rule.match_key in seen:
            problems["match_value"] = (
                f"Rule {seen[rule.match_key]!r} already sets a multiplier for "
                f"this {rule.dimension}; keep one rule per {rule.dimension}."
            )
        if problems:
            row_errors[index] = problems
        else:
            seen[rule.match_key] = rule.name
            rules.append(rule)
    return rules, row_errors


def _check_rule(row: RuleInput, problems: dict[str, str]) -> _RuleValues:
    name = check_text(
        row.name,
        "name",
        problems,
        missing="Name the rule, e.g. Technology boost.",
        limit=RULE_NAME_MAX,
    )
    dimension = (row.dimension or "").strip()
    if dimension not in DIMENSIONS:
        problems["dimension"] = "Choose category, segment or territory."
    match_value = _match_value(row.match_value, dimension, problems)
    multiplier = parse_number(
        row.multiplier,
        "multiplier",
        problems,
        missing="Enter the multiplier, e.g. 1.5.",
    )
    if multiplier is not None:
        _within(multiplier, "multiplier", problems, most=MAX_MULTIPLIER, places=4)
    return _RuleValues(name, dimension, match_value, multiplier or Decimal(1))


def _match_value(raw: str, dimension: str, problems: dict[str, str]) -> str:
    """The value to store: the text itself, or a territory's id as text."""
    noun = dimension if dimension in DIMENSIONS else "value"
    text = check_text(
        raw,
        "match_value",
        problems,
        missing=f"Enter the {noun} this multiplier applies to.",
        limit=MATCH_VALUE_MAX,
    )
    if dimension != MultiplierDimension.TERRITORY or "match_value" in problems:
        return text
    territory_id = territory_id_named(text)
    if territory_id is None:
        problems["match_value"] = (
            f"There is no territory named {text!r}; type a territory's name as "
            "it appears on the Territories page."
        )
        return text
    return str(territory_id)


def territory_id_named(name: str) -> int | None:
    """The territory called ``name``; an exact match wins over one ignoring case."""
    rows = db.session.execute(
        select(Territory.id, Territory.name).where(
            func.lower(Territory.name) == name.lower()
        )
    ).all()
    exact = [territory_id for territory_id, found in rows if found == name]
    if exact:
        return exact[0]
    return rows[0][0] if len(rows) == 1 else None


# Shared parsing --------------------------------------------------------------


def parse_number(
    raw: str | None, key: str, errors: dict[str, str], *, missing: str | None
) -> Decimal | None:
    """A plain number with a decimal point ("1.5"); None when empty or wrong.

    A decimal comma is refused rather than guessed at: "1,500" could be one and
    a half or fifteen hundred.
    """
    text = (raw or "").strip()
    if not text:
        if missing:
            errors[key] = missing
        return None
    if PLAIN_NUMBER.fullmatch(text):
        return Decimal(text)
    if "," in text and WITH_COMMA.fullmatch(text):
        errors[key] = (
            f"Write {text!r} with a decimal point and no thousands separator: "
            f"for example 1.5, not 1,5."
        )
    else:
        errors[key] = f"{text!r} is not a number; enter one such as 1.5."
    return None


def _within(
    value: Decimal, key: str, errors: dict[str, str], *, most: Decimal, places: int
) -> None:
    """Above zero, at most ``most``, with at most ``places`` decimals."""
    if value <= 0:
        errors[key] = "Enter a number above zero."
    elif value > most:
        errors[key] = f"Enter a number of at most {most:,}."
    elif value != value.quantize(Decimal(1).scaleb(-places)):
        errors[key] = f"Use at most {places} decimal places."


def check_text(
    raw: str | None,
    key: str,
    errors: dict[str, str],
    *,
    missing: str | None,
    limit: int,
    multiline: bool = False,
) -> str:
    """Trimmed text; ``missing`` is the message when it is required and empty."""
    text = (raw or "").strip()
    allowed = "\n\r\t" if multiline else ""
    if not text and missing:
        errors[key] = missing
    elif len(text) > limit:
        errors[key] = f"Shorten this to at most {limit:,} characters."
    elif any(not (ch.isprintable() or ch in allowed) for ch in text):
        # PostgreSQL refuses NUL in text; other control characters are typos.
        errors[key] = "Remove the control characters; type the text again."
    return text
