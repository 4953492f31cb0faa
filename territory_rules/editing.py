"""Creating and changing territories and their rules, as a program admin does.

Every operation checks all of its input first and writes nothing unless all of it
is valid; the writes then happen in one transaction. A refusal is raised as
:class:`EditRejected`, whose messages name the field (or condition row) to fix.
Assignments are not touched: they change only when an assignment run is started.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import PartnerOrganisation, User
from portal.signals import territories_changed
from territory_rules.conditions import ConditionError, ConditionSpec, parse_condition
from territory_rules.imports import build_territory_shape
from territory_rules.models import (
    Assignment,
    Boundary,
    Condition,
    ConditionField,
    Region,
    Rule,
    Territory,
)

logger = logging.getLogger(__name__)

NAME_MAX = 200
# Precedence is stored as a 32-bit integer on PostgreSQL; this keeps well inside it.
PRECEDENCE_LIMIT = 1_000_000


class EditRejected(ValueError):
    """Input that cannot be saved.

    ``errors`` maps a field name to its message; ``condition_errors`` maps the
    index of a condition row to its message.
    """

    def __init__(
        self,
        errors: dict[str, str] | None = None,
        condition_errors: dict[int, str] | None = None,
    ) -> None:
        self.errors = errors or {}
        self.condition_errors = condition_errors or {}
        super().__init__("; ".join([*self.errors.values()]))


@dataclass(frozen=True)
class TerritoryInput:
    name: str
    region_id: int | None
    parent_id: int | None = None
    partner_id: int | None = None
    boundary_ids: Sequence[int] = ()


@dataclass(frozen=True)
class ConditionInput:
    """One condition row as typed: the value in the syntax the admin writes."""

    field: str
    operator: str
    value: str = ""


@dataclass(frozen=True)
class RuleInput:
    name: str
    precedence: str
    conditions: Sequence[ConditionInput] = field(default_factory=tuple)


# Territories -----------------------------------------------------------------


def create_territory(data: TerritoryInput, user: User) -> Territory:
    """Create a territory; its shape is the union of the chosen boundaries."""
    territory = Territory()
    _save_territory(territory, data, is_new=True)

    logger.info(
        "%s created territory %s (%s)", user.email, territory.id, territory.name
    )
    return territory


def update_territory(territory: Territory, data: TerritoryInput, user: User) -> None:
    """Change a territory's name, region, parent, owner and boundaries."""
    _save_territory(territory, data, is_new=False)

    logger.info(
        "%s updated territory %s (%s)", user.email, territory.id, territory.name
    )


def _save_territory(territory: Territory, data: TerritoryInput, is_new: bool) -> None:
    name = data.name.strip()
    errors: dict[str, str] = {}
    region = _check_region(data.region_id, errors)
    parent = _check_parent(territory, data.parent_id, region, errors)
    partner = _check_partner(data.partner_id, errors)
    boundaries = _check_boundaries(data.boundary_ids, errors)
    _check_territory_name(territory, name, errors)
    _check_children_region(territory, region, errors)
    shape_changes = is_new or _boundaries_changed(territory, boundaries)
    if shape_changes and not boundaries and _has_shape_rule(territory):
        errors["boundaries"] = (
            "A rule of this territory tests the location against its shape; "
            "keep at least one boundary, or remove that rule first."
        )
    if errors:
        raise EditRejected(errors)

    territory.name = name
    territory.region = region  # type: ignore[assignment]
    territory.parent = parent
    territory.partner = partner
    if shape_changes:
        # A territory whose shape came from elsewhere (no boundaries on file)
        # keeps it until boundaries are chosen for it.
        territory.boundaries = boundaries
        build_territory_shape(territory)
    _commit(territory, is_new)


def _commit(territory: Territory, is_new: bool) -> None:
    name = territory.name
    if is_new:
        db.session.add(territory)
    try:
        db.session.commit()
    except IntegrityError:
        # Another admin took the name between our check and this commit.
        db.session.rollback()
        raise EditRejected({"name": _name_taken(name)}) from None
    territories_changed.send(territory)


def _name_taken(name: str) -> str:
    return f"A territory named {name!r} already exists; choose another name."


def _check_territory_name(
    territory: Territory, name: str, errors: dict[str, str]
) -> None:
    if not name:
        errors["name"] = "Enter a name for the territory."
        return
    if len(name) > NAME_MAX:
        errors["name"] = f"Shorten the name to at most {NAME_MAX} characters."
        return
    query = select(Territory.id).where(func.lower(Territory.name) == name.lower())
    if territory.id is not None:
        query = query.where(Territory.id != territory.id)
    if db.session.scalar(query) is not None:
        errors["name"] = _name_taken(name)


def _check_region(region_id: int | None, errors: dict[str, str]) -> Region | None:
    region = db.session.get(Region, region_id) if region_id is not None else None
    if region is None:
        errors["region"] = "Choose the region of the territory from the list."
    return region


def _check_children_region(
    territory: Territory, region: Region | None, errors: dict[str, str]
) -> None:
    """A territory cannot leave its region while sub-territories stay behind."""
    if territory.id is None or region is None or region.id == territory.region_id:
        return
    if territory.children:
        names = ", ".join(sorted(child.name for child in territory.children))
        errors["region"] = (
            f"{territory.name} has sub-territories in the {territory.region.name} "
            f"region ({names}); move them or choose another parent for them first."
        )


def _check_parent(
    territory: Territory,
    parent_id: int | None,
    region: Region | None,
    errors: dict[str, str],
) -> Territory | None:
    if parent_id is None:
        return None
    parent = db.session.get(Territory, parent_id)
    if parent is None:
        errors["parent"] = "Choose the parent territory from the list, or none."
    elif territory.id is not None and _is_within(parent, territory):
        errors["parent"] = (
            "A territory cannot be placed inside itself or one of its "
            "sub-territories; choose another parent."
        )
    elif region is not None and parent.region_id != region.id:
        errors["parent"] = (
            f"The parent territory {parent.name} is in the "
            f"{parent.region.name} region; choose a parent in the same region."
        )
    return parent


def _is_within(candidate: Territory, ancestor: Territory) -> bool:
    """True when ``candidate`` is ``ancestor`` or lies somewhere below it."""
    seen: set[int] = set()
    node: Territory | None = candidate
    while node is not None and node.id not in seen:
        if node.id == ancestor.id:
            return True
        seen.add(node.id)
        node = node.parent
    return False


def _check_partner(
    partner_id: int | None, errors: dict[str, str]
) -> PartnerOrganisation | None:
    if partner_id is None:
        return None
    partner = db.session.get(PartnerOrganisation, partner_id)
    if partner is None:
        errors["partner"] = "Choose the owner from the list, or no owner."
    return partner


def _check_boundaries(
    boundary_ids: Iterable[int], errors: dict[str, str]
) -> list[Boundary]:
    wanted = set(boundary_ids)
    if not wanted:
        return []
    boundaries = db.session.scalars(
        select(Boundary).where(Boundary.id.in_(wanted)).order_by(Boundary.name)
    ).all()
    if len(boundaries) != len(wanted):
        errors["boundaries"] = (
            "Some of the chosen boundaries no longer exist; reload the page and "
            "choose again."
        )
    return list(boundaries)


def _boundaries_changed(territory: Territory, boundaries: list[Boundary]) -> bool:
    return {b.id for b in territory.boundaries} != {b.id for b in boundaries}


def _has_shape_rule(territory: Territory) -> bool:
    if territory.id is None:
        return False
    query = (
        select(Condition.id)
        .join(Rule, Rule.id == Condition.rule_id)
        .where(Rule.territory_id == territory.id)
        .where(Condition.field == ConditionField.SHAPE.value)
    )
    return db.session.scalar(query.limit(1)) is not None


# Rules -----------------------------------------------------------------------


def add_rule(territory: Territory, data: RuleInput, user: User) -> Rule:
    """Add a rule with its conditions to the territory."""
    name, precedence, specs = _check_rule(territory, data)

    rule = Rule(territory=territory, name=name, precedence=precedence)
    rule.conditions = [_condition(spec) for spec in specs]
    db.session.add(rule)
    db.session.commit()

    logger.info(
        "%s added rule %s (%s) to territory %s: %s",
        user.email,
        rule.id,
        rule.name,
        territory.id,
        _summary(specs),
    )
    return rule


def update_rule(rule: Rule, data: RuleInput, user: User) -> None:
    """Replace a rule's name, precedence and conditions."""
    name, precedence, specs = _check_rule(rule.territory, data)

    rule.name = name
    rule.precedence = precedence
    rule.conditions = [_condition(spec) for spec in specs]
    db.session.commit()

    logger.info(
        "%s updated rule %s (%s) of territory %s: %s",
        user.email,
        rule.id,
        rule.name,
        rule.territory_id,
        _summary(specs),
    )


def delete_rule(rule: Rule, user: User) -> None:
    """Delete a rule; accounts it assigned keep their territory until the next run."""
    rule_id, name, territory_id = rule.id, rule.name, rule.territory_id

    # The assignments table carries no foreign keys, so its rows are told here.
    db.session.execute(
        update(Assignment).where(Assignment.rule_id == rule_id).values(rule_id=None)
    )
    db.session.delete(rule)
    db.session.commit()

    logger.info(
        "%s deleted rule %s (%s) of territory %s",
        user.email,
        rule_id,
        name,
        territory_id,
    )


def _check_rule(
    territory: Territory, data: RuleInput
) -> tuple[str, int, list[ConditionSpec]]:
    errors: dict[str, str] = {}
    name = data.name.strip()
    if not name:
        errors["name"] = "Enter a name for the rule."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Shorten the name to at most {NAME_MAX} characters."
    precedence = _precedence(data.precedence, errors)
    specs, condition_errors = _check_conditions(territory, data.conditions)
    if not data.conditions:
        errors["conditions"] = "Add at least one condition to the rule."

    if errors or condition_errors:
        raise EditRejected(errors, condition_errors)
    assert precedence is not None, "a missing precedence is reported above"
    return name, precedence, specs


def _precedence(raw: str, errors: dict[str, str]) -> int | None:
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not text or not digits.isdigit() or not digits.isascii():
        errors["precedence"] = (
            "Enter the precedence as a whole number, e.g. 100; higher wins."
        )
        return None
    value = int(text)
    if abs(value) > PRECEDENCE_LIMIT:
        errors["precedence"] = (
            f"Enter a precedence between -{PRECEDENCE_LIMIT:,} and "
            f"{PRECEDENCE_LIMIT:,}."
        )
        return None
    return value


def _check_conditions(
    territory: Territory, rows: Sequence[ConditionInput]
) -> tuple[list[ConditionSpec], dict[int, str]]:
    specs: list[ConditionSpec] = []
    errors: dict[int, str] = {}
    for index, row in enumerate(rows):
        try:
            spec = parse_condition(row.field, row.operator, row.value)
        except ConditionError as error:
            errors[index] = str(error)
            continue
        if spec.field == ConditionField.SHAPE and territory.shape is None:
            errors[index] = (
                "This territory has no shape yet; choose its boundaries first, "
                "or test postal codes, states or other fields instead."
            )
            continue
        specs.append(spec)
    return specs, errors


def _condition(spec: ConditionSpec) -> Condition:
    return Condition(field=spec.field, operator=spec.operator, value=spec.value)


def _summary(specs: Iterable[ConditionSpec]) -> str:
    return " and ".join(
        f"{spec.field} {spec.operator} {condition_text(spec.value)}".rstrip()
        for spec in specs
    )


def condition_text(value: Any) -> str:
    """A stored condition value in the syntax it is typed in.

    Lists come back comma-separated and ranges as ``low..high`` (an open end
    left empty), so that saving the text again gives the same value.
    """
    if value is None:
        return ""
    if isinstance(value, dict):
        low, high = value.get("low"), value.get("high")
        return f"{low if low is not None else ''}..{high if high is not None else ''}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
