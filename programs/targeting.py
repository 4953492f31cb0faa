"""What a program's targeting conditions may test, and how they become SQL.

Targeting speaks the condition language of territory rules: each condition is a
field, an operator and a stored value; conditions join with AND within a rule and
rules with OR. Parsing, range and list comparison come from
:mod:`territory_rules.conditions`; this module adds the partner's fields.

A condition is tested against one row per partner organisation and territory it
owns (an organisation without territory has one row with no territory), so a
rule on territory attributes names the territory that matched.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    cast,
    exists,
    func,
    literal,
    null,
    select,
)
from sqlalchemy.sql import Select, Subquery

from portal.database import round_cents
from portal.extensions import db
from portal.models import PartnerOrganisation
from programs.models import OnboardingStatus, Standing, Tier
from territory_rules.conditions import (
    ConditionError,
    ConditionSpec,
    comparable_value,
    describe_range,
    parse_amount_range,
    parse_text_list,
    range_sql,
    text_in_sql,
)
from territory_rules.models import (
    Assignment,
    AssignmentStatus,
    Region,
    SalesLine,
    Territory,
)

# A territory's revenue potential: its accounts' sales over this many days up to
# the latest sale on record (not up to today, so that an old sales file still
# ranks territories).
POTENTIAL_DAYS = 365


class TargetField(enum.StrEnum):
    TERRITORY = "territory"
    REGION = "region"
    PARTNER_TYPE = "partner_type"
    TIER = "tier"
    ONBOARDING_STATUS = "onboarding_status"
    TERRITORY_POTENTIAL = "territory_potential"
    TERRITORY_ACCOUNTS = "territory_accounts"


LABELS = {
    TargetField.TERRITORY: "territory",
    TargetField.REGION: "region",
    TargetField.PARTNER_TYPE: "partner type",
    TargetField.TIER: "current incentive tier",
    TargetField.ONBOARDING_STATUS: "onboarding status",
    TargetField.TERRITORY_POTENTIAL: "territory revenue potential",
    TargetField.TERRITORY_ACCOUNTS: "accounts in the territory",
}

OPERATORS: dict[TargetField, tuple[str, ...]] = {
    TargetField.TERRITORY: ("in",),
    TargetField.REGION: ("in",),
    TargetField.PARTNER_TYPE: ("in",),
    TargetField.TIER: ("in",),
    TargetField.ONBOARDING_STATUS: ("in",),
    TargetField.TERRITORY_POTENTIAL: ("between",),
    TargetField.TERRITORY_ACCOUNTS: ("between",),
}

OPERATOR_LABELS = {"in": "is one of", "between": "is within"}

# Fields read from the territory row: a rule using one matches territories.
TERRITORY_FIELDS = {
    TargetField.TERRITORY,
    TargetField.REGION,
    TargetField.TERRITORY_POTENTIAL,
    TargetField.TERRITORY_ACCOUNTS,
}

HINTS = {
    TargetField.TERRITORY: "Territory names, separated by commas",
    TargetField.REGION: "Region names, separated by commas",
    TargetField.PARTNER_TYPE: "e.g. reseller, distributor",
    TargetField.TIER: "Tier names, e.g. Gold, Silver",
    TargetField.ONBOARDING_STATUS: "not started, in progress or complete",
    TargetField.TERRITORY_POTENTIAL: "e.g. 100000.. or ..50000 or 10000..90000",
    TargetField.TERRITORY_ACCOUNTS: "e.g. 50.. or ..20",
}

FIELD_VALUES = frozenset(field.value for field in TargetField)

STATUS_WORDS = {
    status.value.replace("_", " "): status.value for status in OnboardingStatus
}


class ConditionLike(Protocol):
    """A stored condition or a parsed one: both read the same."""

    @property
    def field(self) -> str: ...

    @property
    def operator(self) -> str: ...

    @property
    def value(self) -> Any: ...


@dataclass(frozen=True)
class Target:
    """A partner organisation a set of rules targets, and why."""

    organisation_id: int
    organisation_name: str
    reasons: list[str]


def field_choices() -> list[tuple[str, str]]:
    return [(field.value, LABELS[field]) for field in TargetField]


def operator_choices(field: str) -> list[tuple[str, str]]:
    known = TargetField(field) if field in FIELD_VALUES else TargetField.TERRITORY
    return [(op, OPERATOR_LABELS[op]) for op in OPERATORS[known]]


def value_hint(field: str, operator: str) -> str:
    return HINTS.get(TargetField(field), "") if field in FIELD_VALUES else ""


def parse_target(field: str, operator: str, raw: str | None) -> ConditionSpec:
    """Check a targeting condition typed by an admin; return it in stored form."""
    if field not in FIELD_VALUES:
        raise ConditionError(f"Unknown field {field!r}.")
    target = TargetField(field)
    if operator not in OPERATORS[target]:
        raise ConditionError(
            f"A {LABELS[target]} condition can use: {', '.join(OPERATORS[target])}."
        )

    text = (raw or "").strip()
    if target is TargetField.TERRITORY:
        territory_ids = _ids_by_name(Territory, "territory", text)
        return ConditionSpec(field, operator, territory_ids)
    if target is TargetField.REGION:
        return ConditionSpec(field, operator, _ids_by_name(Region, "region", text))
    if target is TargetField.ONBOARDING_STATUS:
        return ConditionSpec(field, operator, _statuses(text))
    if target is TargetField.TIER:
        return ConditionSpec(field, operator, _tier_names(text))
    if operator == "between":
        return ConditionSpec(field, operator, parse_amount_range(text))
    return ConditionSpec(field, operator, parse_text_list(text))


NamedModel = type[Territory] | type[Region]


def _ids_by_name(model: NamedModel, noun: str, raw: str) -> list[int]:
    names = parse_text_list(raw)
    found: dict[str, int] = dict(
        db.session.execute(
            select(func.upper(model.name), model.id).where(
                func.upper(model.name).in_([comparable_value(n) for n in names])
            )
        ).all()
    )
    missing = [name for name in names if comparable_value(name) not in found]
    if missing:
        raise ConditionError(
            f"No {noun} is named {', '.join(repr(n) for n in missing)}; "
            f"use the names shown on the territories page."
        )
    return sorted({found[comparable_value(name)] for name in names})


def _statuses(raw: str) -> list[str]:
    values = []
    for item in parse_text_list(raw):
        word = item.lower().replace("_", " ").replace("-", " ")
        if word not in STATUS_WORDS:
            raise ConditionError(
                f"{item!r} is not an onboarding status; "
                "use not started, in progress or complete."
            )
        values.append(STATUS_WORDS[word])
    return sorted(set(values))


def _tier_names(raw: str) -> list[str]:
    names = parse_text_list(raw)
    known = set(db.session.scalars(select(func.upper(Tier.name)).distinct()))
    missing = [name for name in names if comparable_value(name) not in known]
    if missing:
        raise ConditionError(
            f"No incentive program has a tier named "
            f"{', '.join(repr(n) for n in missing)}."
        )
    return names


def condition_text(field: str, value: Any) -> str:
    """A stored value in the syntax an admin types it."""
    if value is None:
        return ""
    if isinstance(value, dict):
        low, high = value.get("low"), value.get("high")
        return f"{low or ''}..{high or ''}"
    if field == TargetField.TERRITORY:
        return ", ".join(_names(Territory, value).values())
    if field == TargetField.REGION:
        return ", ".join(_names(Region, value).values())
    if field == TargetField.ONBOARDING_STATUS:
        return ", ".join(item.replace("_", " ") for item in value)
    return ", ".join(str(item) for item in value)


def _names(model: NamedModel, ids: Iterable[int]) -> dict[int, str]:
    """Names by id; an id whose row was deleted reads "a deleted <noun> (#id)"."""
    ids = list(ids)
    rows = dict(
        db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all()
    )
    noun = "territory" if model is Territory else "region"
    return {i: rows.get(i, f"a deleted {noun} (#{i})") for i in ids}


def missing_references(conditions: Iterable[ConditionLike]) -> list[str]:
    """Territories or regions a rule names that no longer exist, in words."""
    missing = []
    for condition in conditions:
        if condition.field == TargetField.TERRITORY:
            model: NamedModel = Territory
        elif condition.field == TargetField.REGION:
            model = Region
        else:
            continue
        names = _names(model, condition.value or [])
        missing += [name for name in names.values() if name.startswith("a deleted")]
    return missing


def money(amount: Any) -> str:
    """An amount for people: whole when it is, to the cent otherwise."""
    symbol = current_app.config.get("CURRENCY_SYMBOL", "$")
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    sign = "-" if value < 0 else ""
    digits = (
        f"{abs(value):,.0f}" if value == value.to_integral() else f"{abs(value):,.2f}"
    )
    return f"{sign}{symbol}{digits}"


def describe_target(field: str, operator: str, value: Any) -> str:
    """A targeting condition in words, as shown in the "why" of a program."""
    if field not in FIELD_VALUES:
        return f"{field} {operator} {value}"
    target = TargetField(field)
    label = LABELS[target]
    if target is TargetField.TERRITORY_POTENTIAL:
        return _money_range(label, value)
    if operator == "between":
        return describe_range(label, value)
    if target in (TargetField.TERRITORY, TargetField.REGION):
        model = Territory if target is TargetField.TERRITORY else Region
        items = list(_names(model, value or []).values())
    elif target is TargetField.ONBOARDING_STATUS:
        items = [item.replace("_", " ") for item in value or []]
    else:
        items = [str(item) for item in value or []]
    if len(items) == 1:
        return f"{label} is {items[0]}"
    return f"{label} is one of {', '.join(items)}"


def _money_range(label: str, value: Any) -> str:
    low, high = value.get("low"), value.get("high")
    if low is None:
        return f"{label} at most {money(high)}"
    if high is None:
        return f"{label} at least {money(low)}"
    return f"{label} from {money(low)} to {money(high)}"


# --- SQL -----------------------------------------------------------------------


def partner_facts() -> Subquery:
    """One row per partner organisation and owned territory, with what rules test.

    Columns: organisation_id, organisation_name, partner_type, onboarding_status,
    territory_id, territory_name, region_id, account_count, potential.
    """
    accounts = (
        select(
            Assignment.territory_id,
            func.count().label("account_count"),
        )
        .where(Assignment.status == AssignmentStatus.ASSIGNED.value)
        .group_by(Assignment.territory_id)
        .subquery("territory_accounts")
    )
    potential = _potential_by_territory()
    organisation = PartnerOrganisation
    return (
        select(
            organisation.id.label("organisation_id"),
            organisation.name.label("organisation_name"),
            organisation.partner_type,
            organisation.onboarding_status,
            Territory.id.label("territory_id"),
            Territory.name.label("territory_name"),
            Territory.region_id,
            func.coalesce(accounts.c.account_count, 0).label("account_count"),
            func.coalesce(potential.c.potential, 0).label("potential"),
        )
        .outerjoin(Territory, Territory.partner_id == organisation.id)
        .outerjoin(accounts, accounts.c.territory_id == Territory.id)
        .outerjoin(potential, potential.c.territory_id == Territory.id)
        .subquery("partner_facts")
    )


def _potential_by_territory() -> Subquery:
    latest = db.session.scalar(select(func.max(SalesLine.order_date)))
    cents = round_cents(func.sum(SalesLine.amount), db.engine.dialect.name)
    query = (
        select(
            Assignment.territory_id,
            cents.label("potential"),
        )
        .join(Assignment, Assignment.account_id == SalesLine.account_id)
        .where(Assignment.status == AssignmentStatus.ASSIGNED.value)
        .group_by(Assignment.territory_id)
    )
    if latest is not None:
        query = query.where(SalesLine.order_date > latest - timedelta(POTENTIAL_DAYS))
    return query.subquery("territory_potential")


def rule_predicate(
    conditions: Sequence[ConditionLike], facts: Subquery
) -> ColumnElement[bool]:
    """The rule's conditions, joined by AND, over a row of :func:`partner_facts`."""
    clauses = [_condition_sql(c, facts) for c in conditions]
    if uses_territory(conditions):
        clauses.append(facts.c.territory_id.is_not(None))
    return and_(*clauses)


def uses_territory(conditions: Iterable[ConditionLike]) -> bool:
    return any(c.field in TERRITORY_FIELDS for c in conditions)


def _condition_sql(condition: ConditionLike, facts: Subquery) -> ColumnElement[bool]:
    field, value = TargetField(condition.field), condition.value
    if field is TargetField.TERRITORY:
        return facts.c.territory_id.in_(_with_descendants(value))
    if field is TargetField.REGION:
        return facts.c.region_id.in_(value)
    if field is TargetField.PARTNER_TYPE:
        return text_in_sql(facts.c.partner_type, value)
    if field is TargetField.ONBOARDING_STATUS:
        return facts.c.onboarding_status.in_(value)
    if field is TargetField.TIER:
        return exists(
            select(literal(1))
            .select_from(Standing)
            .join(Tier, Tier.id == Standing.tier_id)
            .where(
                Standing.organisation_id == facts.c.organisation_id,
                text_in_sql(Tier.__table__.c.name, value),
            )
        )
    if field is TargetField.TERRITORY_POTENTIAL:
        return range_sql(facts.c.potential, value)
    return range_sql(facts.c.account_count, value)


def _with_descendants(territory_ids: Iterable[int]) -> list[int]:
    """The territories and every territory below them: a parent means its children."""
    parents = dict(
        db.session.execute(
            select(Territory.id, Territory.parent_id).where(
                Territory.parent_id.is_not(None)
            )
        ).all()
    )
    chosen = set(territory_ids)
    for territory_id in parents:
        ancestor: int | None = territory_id
        seen: set[int] = set()
        while ancestor is not None and ancestor not in seen:
            if ancestor in chosen:
                chosen.add(territory_id)
                break
            seen.add(ancestor)
            ancestor = parents.get(ancestor)
    return sorted(chosen)


def matches(conditions: Sequence[ConditionLike], facts: Subquery) -> Select[Any]:
    """(organisation_id, territory_id) pairs a rule matches, each once."""
    territory = (
        facts.c.territory_id if uses_territory(conditions) else cast(null(), Integer)
    )
    return (
        select(facts.c.organisation_id, territory.label("territory_id"))
        .where(rule_predicate(conditions, facts))
        .distinct()
    )


def preview(rules: Sequence[Sequence[ConditionLike]]) -> list[Target]:
    """The partners these rules would target now, with reasons; nothing is saved."""
    facts = partner_facts()
    found: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for number, conditions in enumerate(rules, start=1):
        if not conditions:
            continue
        rows = db.session.execute(
            select(
                facts.c.organisation_id,
                facts.c.organisation_name,
                facts.c.territory_name,
                facts.c.potential,
            )
            .where(rule_predicate(conditions, facts))
            .order_by(facts.c.organisation_name, facts.c.territory_name)
        ).all()
        for row in rows:
            names[row.organisation_id] = row.organisation_name
            reason = reason_text(
                f"rule {number}",
                conditions,
                row.territory_name if uses_territory(conditions) else None,
                row.potential,
            )
            found.setdefault(row.organisation_id, [])
            if reason not in found[row.organisation_id]:
                found[row.organisation_id].append(reason)
    return [
        Target(organisation_id, names[organisation_id], reasons)
        for organisation_id, reasons in sorted(
            found.items(), key=lambda item: names[item[0]].lower()
        )
    ]


def reason_text(
    rule_name: str,
    conditions: Sequence[ConditionLike],
    territory_name: str | None,
    potential: Any = None,
) -> str:
    """Why a rule picked a partner: the rule, the territory and what matched."""
    words = [describe_target(c.field, c.operator, c.value) for c in conditions]
    if potential is not None and any(
        c.field == TargetField.TERRITORY_POTENTIAL for c in conditions
    ):
        words.append(f"its potential is {money(potential)}")
    where = f" for territory {territory_name}" if territory_name else ""
    return f"{rule_name}{where}: {'; '.join(words)}"
