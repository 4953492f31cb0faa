"""What a rule's conditions may say, how they are checked, and how they become SQL.

Postal codes are text: ``"02139"`` keeps its zero and is not ``2139``. A range
compares codes of the range's own length only, so that ``"02000".."02999"`` never
catches ``"2100"``. A condition on a value the account does not have never matches:
SQL's NULL comparisons give exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, or_, text

from territory_rules.models import ConditionField

TEXT_LIST_FIELDS = {
    ConditionField.STATE: "state",
    ConditionField.CITY: "city",
    ConditionField.SEGMENT: "segment",
    ConditionField.INDUSTRY: "industry",
}

OPERATORS: dict[str, tuple[str, ...]] = {
    ConditionField.SHAPE: ("inside",),
    ConditionField.POSTAL_CODE: ("equals", "starts_with", "between"),
    ConditionField.STATE: ("in",),
    ConditionField.CITY: ("in",),
    ConditionField.SEGMENT: ("in",),
    ConditionField.INDUSTRY: ("in",),
    ConditionField.ANNUAL_REVENUE: ("between",),
}

FIELD_LABELS = {
    ConditionField.SHAPE: "location",
    ConditionField.POSTAL_CODE: "postal code",
    ConditionField.STATE: "state or province",
    ConditionField.CITY: "city",
    ConditionField.SEGMENT: "customer segment",
    ConditionField.INDUSTRY: "industry",
    ConditionField.ANNUAL_REVENUE: "annual revenue",
}


# Annual revenue is stored as NUMERIC(16, 2): bounds beyond it could never match.
MAX_REVENUE = Decimal(10) ** 14


class ConditionError(ValueError):
    """A condition that cannot be saved; the message says what to change."""


@dataclass(frozen=True)
class ConditionSpec:
    field: str
    operator: str
    value: Any


def parse_condition(field: str, operator: str, raw: str | None) -> ConditionSpec:
    """Check a condition typed by an admin and return it in stored form.

    List values are separated by commas or new lines. Ranges are written
    ``low..high``; for annual revenue either end may be left empty.
    """
    if field not in OPERATORS:
        raise ConditionError(f"Unknown field {field!r}.")
    if operator not in OPERATORS[field]:
        allowed = ", ".join(OPERATORS[field])
        label = FIELD_LABELS[ConditionField(field)]
        raise ConditionError(f"A {label} condition can use: {allowed}.")

    raw = (raw or "").strip()
    if field == ConditionField.SHAPE:
        return ConditionSpec(field, operator, None)
    if operator == "between" and field == ConditionField.POSTAL_CODE:
        return ConditionSpec(field, operator, _postal_range(raw))
    if operator == "between":
        return ConditionSpec(field, operator, parse_amount_range(raw))
    return ConditionSpec(field, operator, parse_text_list(raw))


def parse_text_list(raw: str) -> list[str]:
    items = [item.strip() for item in raw.replace("\n", ",").split(",")]
    values = [item for item in items if item]
    if not values:
        raise ConditionError("Enter at least one value, separated by commas.")
    if any(not item.isprintable() for item in values):
        raise ConditionError(
            "Values cannot hold control characters (such as tabs or NUL); "
            "type them again as plain text."
        )
    return values


def _split_range(raw: str) -> tuple[str, str]:
    if ".." not in raw:
        raise ConditionError("Write a range as low..high, for example 02000..02999.")
    low, _, high = raw.partition("..")
    return low.strip(), high.strip()


def _postal_range(raw: str) -> dict[str, str]:
    low, high = _split_range(raw)
    if not low or not high:
        raise ConditionError("A postal-code range needs both ends, e.g. 02000..02999.")
    if len(low) != len(high):
        raise ConditionError(
            f"Both ends of a postal-code range must have the same length "
            f"({low!r} has {len(low)} characters, {high!r} has {len(high)})."
        )
    if low > high:
        raise ConditionError(f"The range starts after it ends: {low} > {high}.")
    return {"low": low, "high": high}


def parse_amount_range(raw: str) -> dict[str, str | None]:
    low, high = _split_range(raw)
    bounds = {"low": _amount(low), "high": _amount(high)}
    if bounds["low"] is None and bounds["high"] is None:
        raise ConditionError("Give at least one bound, e.g. 1000000.. or ..500000.")
    low_value, high_value = bounds["low"], bounds["high"]
    both = low_value is not None and high_value is not None
    if both and Decimal(low_value or 0) > Decimal(high_value or 0):
        raise ConditionError("The lower bound is above the upper bound.")
    return bounds


def _amount(raw: str) -> str | None:
    if not raw:
        return None
    cleaned = raw.replace("_", "").replace(" ", "")
    if "," in cleaned:
        raise ConditionError(
            f"Write {raw!r} without thousands separators or decimal commas, "
            "e.g. 1250000.50."
        )
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise ConditionError(f"{raw!r} is not a number.") from None
    if not number.is_finite() or abs(number) >= MAX_REVENUE:
        raise ConditionError(
            f"{raw!r} is not an amount; write a plain number such as 1250000."
        )
    return str(number)


def describe(field: str, operator: str, value: Any) -> str:
    """The condition in words, as shown beside each assignment."""
    label = FIELD_LABELS.get(ConditionField(field), field)
    if field == ConditionField.SHAPE:
        return "location inside the territory's shape"
    if operator == "between":
        return describe_range(label, value)
    joined = ", ".join(value)
    if operator == "starts_with":
        return f"{label} starts with {joined}"
    if operator == "equals":
        return f"{label} is {joined}"
    return f"{label} in {joined}"


def describe_range(label: str, value: Any, unit: str = "") -> str:
    """A stored range in words: "annual revenue from 10 to 20"."""
    low, high = value.get("low"), value.get("high")
    if low is None:
        return f"{label} at most {unit}{high}"
    if high is None:
        return f"{label} at least {unit}{low}"
    return f"{label} from {unit}{low} to {unit}{high}"


def condition_sql(
    field: str,
    operator: str,
    value: Any,
    accounts: Table,
    territories: Table,
    dialect: str,
) -> ColumnElement[bool]:
    """The condition as a SQL predicate over ``accounts`` and the rule's territory."""
    if field == ConditionField.SHAPE:
        return inside_shape_sql(accounts, territories, dialect)
    if field == ConditionField.POSTAL_CODE:
        return _postal_sql(operator, value, accounts)
    if field == ConditionField.ANNUAL_REVENUE:
        return _revenue_sql(value, accounts)
    column = accounts.c[TEXT_LIST_FIELDS[ConditionField(field)]]
    return text_in_sql(column, value)


def comparable_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """An account's text as list conditions compare it: trimmed, case ignored."""
    return func.upper(func.trim(column))


def comparable_value(item: str) -> str:
    """A listed value as list conditions compare it (values are stored trimmed)."""
    return item.upper()


def inside_shape_sql(
    accounts: Table, territories: Table, dialect: str
) -> ColumnElement[bool]:
    """Point-in-territory, written so that each database uses its spatial index.

    PostGIS uses the GiST index on its own. SpatiaLite only uses its R*Tree when
    asked through the ``SpatialIndex`` virtual table, so the candidates come from
    there and the exact test follows.
    """
    if dialect != "sqlite":
        return func.ST_Intersects(territories.c.shape, accounts.c.location)

    exact = func.ST_Intersects(territories.c.shape, accounts.c.location) == 1
    candidates = text(
        f"{accounts.name}.id IN (SELECT ROWID FROM SpatialIndex "
        f"WHERE f_table_name = '{accounts.name}' "
        "AND f_geometry_column = 'location' "
        f"AND search_frame = {territories.name}.shape)"
    )
    return and_(candidates, exact)


def _postal_sql(operator: str, value: Any, accounts: Table) -> ColumnElement[bool]:
    code = accounts.c.postal_code
    if operator == "equals":
        return code.in_(value)
    if operator == "starts_with":
        return or_(*[code.startswith(prefix, autoescape=True) for prefix in value])
    low, high = value["low"], value["high"]
    return and_(func.length(code) == len(low), code >= low, code <= high)


def _revenue_sql(value: Any, accounts: Table) -> ColumnElement[bool]:
    return range_sql(accounts.c.annual_revenue, value)


def range_sql(column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    """``column`` within a stored ``{"low": .., "high": ..}`` range, ends included."""
    clauses: list[ColumnElement[bool]] = [column.is_not(None)]
    if value.get("low") is not None:
        clauses.append(column >= Decimal(value["low"]))
    if value.get("high") is not None:
        clauses.append(column <= Decimal(value["high"]))
    return and_(*clauses)


def text_in_sql(column: ColumnElement[str], values: list[str]) -> ColumnElement[bool]:
    """``column`` is one of ``values``, compared as list conditions compare."""
    return comparable_text(column).in_([comparable_value(item) for item in values])
