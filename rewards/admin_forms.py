"""Forms of the rewards admin pages.

They render the fields and check the CSRF token; what the values must be is
checked once, by :mod:`rewards.plans` and :mod:`rewards.payouts`, whose
messages the views put beside the fields.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, SelectChoice, SelectField, StringField, TextAreaField

from portal.extensions import db
from portal.models import PartnerOrganisation
from programs.models import Program, ProgramKind
from rewards.payouts import AdjustmentInput
from rewards.plans import CAP_PERIODS, PlanInput, RuleInput

CAP_PERIOD_LABELS = {
    "month": "Per calendar month",
    "quarter": "Per calendar quarter",
    "program": "Over the whole program",
}
DIMENSION_LABELS = {
    "category": "Product category",
    "segment": "Customer segment",
    "territory": "Territory",
}
RULE_COLUMNS = ("rule_name", "dimension", "match_value", "multiplier")


def text(value: Any) -> str:
    return "" if value is None else str(value)


class PlanForm(FlaskForm):
    points_per_unit = StringField("Points per unit of sales")
    approval_days = StringField("Approval window (days)")
    expiry_days = StringField("Expiry (days)")
    cap_points = StringField("Cap (points)")
    cap_period = SelectField(
        "Cap period",
        choices=[
            SelectChoice(period, CAP_PERIOD_LABELS[period]) for period in CAP_PERIODS
        ],
        validate_choice=False,
    )

    def fill_from(self, data: PlanInput) -> None:
        self.points_per_unit.data = data.points_per_unit
        self.approval_days.data = data.approval_days
        self.expiry_days.data = data.expiry_days
        self.cap_points.data = data.cap_points
        self.cap_period.data = data.cap_period

    def plan_input(self, rules: list[RuleInput]) -> PlanInput:
        return PlanInput(
            points_per_unit=text(self.points_per_unit.data),
            approval_days=text(self.approval_days.data),
            expiry_days=text(self.expiry_days.data),
            cap_points=text(self.cap_points.data),
            cap_period=text(self.cap_period.data),
            rules=rules,
        )


def rule_rows(formdata: MultiDict[str, str]) -> list[RuleInput]:
    """The multiplier rows of a posted plan form, in page order."""
    columns = zip_longest(
        *[formdata.getlist(name) for name in RULE_COLUMNS], fillvalue=""
    )
    return [RuleInput(*row) for row in columns]


class ApprovalForm(FlaskForm):
    organisation_id = HiddenField()
    program_id = SelectField("Program", validate_choice=False)


class AdjustmentForm(FlaskForm):
    organisation_id = SelectField("Partner organisation", validate_choice=False)
    program_id = SelectField("Program (optional)", validate_choice=False)
    points = StringField("Points")
    reason = TextAreaField("Reason")

    def adjustment_input(self) -> AdjustmentInput:
        return AdjustmentInput(
            organisation_id=text(self.organisation_id.data),
            program_id=text(self.program_id.data),
            points=text(self.points.data),
            reason=text(self.reason.data),
        )


class PayoutForm(FlaskForm):
    note = StringField("Note (optional)")


def organisation_choices() -> list[SelectChoice]:
    organisations = db.session.execute(
        select(PartnerOrganisation.id, PartnerOrganisation.name).order_by(
            PartnerOrganisation.name
        )
    )
    return [SelectChoice("", "Choose an organisation")] + [
        SelectChoice(str(org_id), name) for org_id, name in organisations
    ]


def program_choices(blank_label: str) -> list[SelectChoice]:
    """The incentive programs, after a first choice meaning none (or all)."""
    programs = db.session.execute(
        select(Program.id, Program.name)
        .where(Program.kind == ProgramKind.INCENTIVE.value)
        .order_by(Program.name)
    )
    return [SelectChoice("", blank_label)] + [
        SelectChoice(str(program_id), name) for program_id, name in programs
    ]
