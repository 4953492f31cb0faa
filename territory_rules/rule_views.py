"""Admin pages to define territories and their rules.

A change here does not move any account: assignments change when an admin
starts an assignment run, which every page after a change offers to do.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from portal.auth import roles_required
from portal.extensions import db
from portal.models import Role
from territory_rules import editing
from territory_rules.editing import ConditionInput, EditRejected
from territory_rules.models import ConditionField, Rule, Territory
from territory_rules.rule_forms import (
    RuleForm,
    TerritoryForm,
    condition_rows,
    field_choices,
    operator_choices,
    rule_input,
    value_hint,
)

logger = logging.getLogger(__name__)

bp = Blueprint("rules", __name__, url_prefix="/territories")

NEW_ROW = ConditionInput(ConditionField.POSTAL_CODE.value, "equals", "")


def territory_or_404(territory_id: int) -> Territory:
    territory = db.session.get(Territory, territory_id)
    if territory is None:
        abort(404)
    return territory


def rule_or_404(territory: Territory, rule_id: int) -> Rule:
    rule = db.session.get(Rule, rule_id)
    if rule is None or rule.territory_id != territory.id:
        abort(404)
    return rule


def changed(territory: Territory) -> Any:
    """Back to the territory's page, which then offers to recompute assignments."""
    return redirect(
        url_for("territories.territory", territory_id=territory.id, changed=1)
    )


def show_errors(form: Any, rejected: EditRejected) -> None:
    for name, message in rejected.errors.items():
        if name in form:
            form[name].errors = [message]


# Territories -----------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def new_territory() -> Any:
    """Define a territory from a region, an owner and imported boundaries."""
    form = TerritoryForm()
    if not form.validate_on_submit():
        return render_territory_form(form, None)

    try:
        territory = editing.create_territory(form.territory_input(), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_territory_form(form, None)

    flash(f"Territory {territory.name} was created.", "success")
    return changed(territory)


@bp.route("/<int:territory_id>/edit", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_territory(territory_id: int) -> Any:
    """Change a territory's name, region, parent, owner and boundaries."""
    territory = territory_or_404(territory_id)
    form = TerritoryForm()
    if request.method == "GET":
        form.fill_from(territory)
    if not form.validate_on_submit():
        return render_territory_form(form, territory)

    try:
        editing.update_territory(territory, form.territory_input(), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_territory_form(form, territory)

    flash(f"Territory {territory.name} was saved.", "success")
    return changed(territory)


def render_territory_form(
    form: TerritoryForm, territory: Territory | None
) -> tuple[str, int]:
    page = render_template("rules/territory_form.html", form=form, territory=territory)
    return page, 400 if request.method == "POST" else 200


# Rules -----------------------------------------------------------------------


@bp.route("/<int:territory_id>/rules/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def new_rule(territory_id: int) -> Any:
    """Add a rule with its conditions to a territory."""
    territory = territory_or_404(territory_id)
    form = RuleForm()
    rows = condition_rows(request.form) if request.method == "POST" else [NEW_ROW]
    if not form.validate_on_submit():
        return render_rule_form(form, territory, None, rows)

    try:
        rule = editing.add_rule(territory, rule_input(form, rows), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_rule_form(form, territory, None, rows, rejected)

    flash(f"Rule {rule.name} was added to {territory.name}.", "success")
    return changed(territory)


@bp.route("/<int:territory_id>/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_rule(territory_id: int, rule_id: int) -> Any:
    """Change a rule's name, precedence and conditions."""
    territory = territory_or_404(territory_id)
    rule = rule_or_404(territory, rule_id)
    form = RuleForm(obj=rule) if request.method == "GET" else RuleForm()
    rows = condition_rows(request.form) if request.method == "POST" else stored(rule)
    if not form.validate_on_submit():
        return render_rule_form(form, territory, rule, rows)

    try:
        editing.update_rule(rule, rule_input(form, rows), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_rule_form(form, territory, rule, rows, rejected)

    flash(f"Rule {rule.name} was saved.", "success")
    return changed(territory)


@bp.route("/<int:territory_id>/rules/<int:rule_id>/delete", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def delete_rule(territory_id: int, rule_id: int) -> Any:
    """Ask to confirm, then delete the rule."""
    territory = territory_or_404(territory_id)
    rule = rule_or_404(territory, rule_id)
    form = FlaskForm()
    if not form.validate_on_submit():
        page = render_template(
            "rules/confirm_delete.html", form=form, territory=territory, rule=rule
        )
        return page, 400 if request.method == "POST" else 200

    name = rule.name
    editing.delete_rule(rule, current_user)

    flash(f"Rule {name} was deleted from {territory.name}.", "success")
    return changed(territory)


def stored(rule: Rule) -> list[ConditionInput]:
    """The rule's conditions as rows, with values in the syntax they are typed in."""
    return [
        ConditionInput(c.field, c.operator, editing.condition_text(c.value))
        for c in rule.conditions
    ]


def render_rule_form(
    form: RuleForm,
    territory: Territory,
    rule: Rule | None,
    rows: list[ConditionInput],
    rejected: EditRejected | None = None,
) -> tuple[str, int]:
    page = render_template(
        "rules/rule_form.html",
        form=form,
        territory=territory,
        rule=rule,
        rows=rows,
        row_errors=rejected.condition_errors if rejected else {},
        conditions_error=rejected.errors.get("conditions") if rejected else None,
        **row_choices(),
    )
    return page, 400 if request.method == "POST" else 200


def row_choices() -> dict[str, Any]:
    return {
        "field_choices": field_choices(),
        "operator_choices": operator_choices,
        "value_hint": value_hint,
        "row_endpoint": "rules.condition_row",
    }


@bp.get("/rules/condition-row")
@roles_required(Role.ADMIN)
def condition_row() -> str:
    """One condition row; htmx asks for it to add a row or when a field changes.

    The operator is kept when the new field allows it, else the field's first.
    """
    field = request.args.get("field", NEW_ROW.field)
    if field not in dict(field_choices()):
        field = NEW_ROW.field
    operators = [value for value, _label in operator_choices(field)]
    operator = request.args.get("operator", "")
    row = ConditionInput(
        field,
        operator if operator in operators else operators[0],
        request.args.get("value", ""),
    )

    return render_template(
        "rules/_condition_row.html", row=row, error=None, **row_choices()
    )
