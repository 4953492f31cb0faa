"""Forms to define territories and their rules.

The forms render the fields and check the CSRF token; what the values must be
is checked once, by :mod:`territory_rules.editing`, whose messages the views put
beside the fields.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import defer, joinedload
from werkzeug.datastructures import MultiDict
from wtforms import SelectChoice, SelectField, SelectMultipleField, StringField

from portal.extensions import db
from portal.models import PartnerOrganisation
from territory_rules.conditions import FIELD_LABELS, OPERATORS
from territory_rules.editing import ConditionInput, RuleInput, TerritoryInput
from territory_rules.models import Boundary, ConditionField, Region, Territory

OPERATOR_LABELS = {
    "inside": "is inside the territory's shape",
    "equals": "is one of",
    "starts_with": "starts with one of",
    "between": "is between",
    "in": "is one of",
}
VALUE_HINTS = {
    "inside": "No value needed.",
    "equals": "Codes separated by commas, e.g. 02139, 02140.",
    "starts_with": "Prefixes separated by commas, e.g. 021, 022.",
    "in": "Values separated by commas, e.g. TX, OK.",
    "between": "A range written low..high, e.g. 02000..02999.",
}
REVENUE_HINT = "A range written low..high; one end may be empty, e.g. 1000000.."


MAX_ID_DIGITS = 18


def to_id(value: Any) -> int | None:
    """A posted id as a number, None when empty.

    Anything else becomes 0, an id no row has, so the domain names the field.
    """
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        return None
    if not (text.isdigit() and text.isascii()) or len(text) > MAX_ID_DIGITS:
        # 0 is never an id: the choice is then refused as not on the list. Longer
        # numbers would overflow the database's integers before the lookup.
        return 0
    return int(text)


def strip(value: str | None) -> str | None:
    return value.strip() if value else value


class TerritoryForm(FlaskForm):
    name = StringField("Name", filters=[strip])
    region = SelectField("Region", coerce=to_id, validate_choice=False)
    parent = SelectField(
        "Part of (parent territory)", coerce=to_id, validate_choice=False
    )
    partner = SelectField("Owner", coerce=to_id, validate_choice=False)
    boundaries = SelectMultipleField("Boundaries", coerce=to_id, validate_choice=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.region.choices = [
            SelectChoice("", "Choose a region"),
            *[SelectChoice(str(r.id), r.name) for r in _all(Region, Region.name)],
        ]
        # Only names are shown: the shapes, megabytes each, stay in the database.
        territories = db.session.scalars(
            select(Territory)
            .options(defer(Territory.shape), joinedload(Territory.region))
            .order_by(Territory.name)
        )
        self.parent.choices = [SelectChoice("", "None: a top-level territory")] + [
            SelectChoice(str(t.id), t.name, optgroup=t.region.name) for t in territories
        ]
        self.partner.choices = [SelectChoice("", "No owner")] + [
            SelectChoice(str(p.id), p.name)
            for p in _all(PartnerOrganisation, PartnerOrganisation.name)
        ]
        self.boundaries.choices = [
            SelectChoice(str(boundary_id), name, optgroup=layer)
            for boundary_id, name, layer in db.session.execute(
                select(Boundary.id, Boundary.name, Boundary.layer).order_by(
                    Boundary.layer, Boundary.name
                )
            )
        ]

    def fill_from(self, territory: Territory) -> None:
        self.name.data = territory.name
        self.region.data = territory.region_id
        self.parent.data = territory.parent_id
        self.partner.data = territory.partner_id
        self.boundaries.data = [b.id for b in territory.boundaries]

    def territory_input(self) -> TerritoryInput:
        return TerritoryInput(
            name=self.name.data or "",
            region_id=self.region.data,
            parent_id=self.parent.data,
            partner_id=self.partner.data,
            boundary_ids=[i or 0 for i in self.boundaries.data or []],
        )


def _all(model: Any, order: Any) -> list[Any]:
    return list(db.session.scalars(select(model).order_by(order)))


class RuleForm(FlaskForm):
    name = StringField("Name", filters=[strip])
    precedence = StringField("Precedence", default="100")


def condition_rows(formdata: MultiDict[str, str]) -> list[ConditionInput]:
    """The condition rows of a posted rule form, in page order.

    Each row sends one ``field``, ``operator`` and ``value``; a row that lost
    one of them (a forged form) gets empty text, which validation then names.
    """
    columns = zip_longest(
        formdata.getlist("field"),
        formdata.getlist("operator"),
        formdata.getlist("value"),
        fillvalue="",
    )
    return [ConditionInput(field, op, value) for field, op, value in columns]


def rule_input(form: RuleForm, rows: list[ConditionInput]) -> RuleInput:
    return RuleInput(
        name=form.name.data or "",
        precedence=form.precedence.data or "",
        conditions=rows,
    )


def field_choices() -> list[tuple[str, str]]:
    return [(field.value, FIELD_LABELS[field]) for field in ConditionField]


def operator_choices(field: str) -> list[tuple[str, str]]:
    """The operators of ``field``; an unknown field offers those of the first."""
    operators = OPERATORS.get(field) or OPERATORS[ConditionField.SHAPE]
    return [(op, OPERATOR_LABELS.get(op, op)) for op in operators]


def value_hint(field: str, operator: str) -> str:
    if field == ConditionField.ANNUAL_REVENUE:
        return REVENUE_HINT
    return VALUE_HINTS.get(operator, "")
