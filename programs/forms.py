"""Forms of the program admin pages.

Like the territory forms, these render the fields and check the CSRF token;
what the values must be is checked once, by :mod:`programs.editing`, whose
messages the views put beside the fields.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.widgets import DateInput, URLInput

from portal.extensions import db
from programs.editing import (
    LadderInput,
    ModuleInput,
    ProgramInput,
    RuleInput,
    StepInput,
    TierInput,
    amount_text,
    module_fingerprint,
)
from programs.models import (
    Kpi,
    KpiDirection,
    Program,
    ProgramKind,
    StepKind,
    Tier,
    TrainingModule,
)
from territory_rules.editing import ConditionInput
from territory_rules.rule_forms import strip, to_id

KIND_LABELS = {
    ProgramKind.ONBOARDING: "Onboarding",
    ProgramKind.TRAINING: "Training",
    ProgramKind.INCENTIVE: "Incentive (tiers)",
    ProgramKind.CAMPAIGN: "Campaign",
}
KPI_LABELS = {
    Kpi.SALES_SUM: "Sales amount",
    Kpi.SALES_COUNT: "Number of sales",
    Kpi.SALES_AVERAGE: "Average sale",
    Kpi.MODULES_COMPLETED: "Training modules completed",
    Kpi.NEW_ACCOUNTS: "New accounts",
}
DIRECTION_LABELS = {
    KpiDirection.HIGHER_IS_BETTER: "Higher is better",
    KpiDirection.LOWER_IS_BETTER: "Lower is better",
}
STEP_KIND_LABELS = {
    StepKind.MODULE: "Complete a training module",
    StepKind.TASK: "A task the partner ticks off",
    StepKind.FIRST_SALE: "The partner's first sale",
}
SEPARATOR_CHOICES = [
    SelectChoice("point", "Point: 1234.50"),
    SelectChoice("comma", "Comma: 1234,50 (a point groups thousands: 1.234,50)"),
]


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class ProgramForm(FlaskForm):
    name = StringField("Name", filters=[strip])
    kind = SelectField(
        "Kind",
        choices=[
            SelectChoice(kind.value, label) for kind, label in KIND_LABELS.items()
        ],
        validate_choice=False,
    )
    description = TextAreaField("Description")
    starts_on = StringField("Starts on", widget=DateInput())
    ends_on = StringField("Ends on", widget=DateInput())
    kpi = SelectField(
        "KPI: what the tiers measure",
        choices=[
            SelectChoice("", "Choose later"),
            *[SelectChoice(k.value, v) for k, v in KPI_LABELS.items()],
        ],
        validate_choice=False,
    )
    kpi_direction = SelectField(
        "Direction",
        choices=[SelectChoice(d.value, label) for d, label in DIRECTION_LABELS.items()],
        validate_choice=False,
    )
    version = HiddenField()

    def fill_from(self, program: Program) -> None:
        self.name.data = program.name
        self.kind.data = program.kind
        self.description.data = program.description or ""
        self.starts_on.data = program.starts_on.isoformat()
        self.ends_on.data = program.ends_on.isoformat()
        self.kpi.data = program.kpi or ""
        self.kpi_direction.data = program.kpi_direction
        self.version.data = str(program.version)

    @property
    def is_incentive(self) -> bool:
        return self.kind.data == ProgramKind.INCENTIVE

    def program_input(self) -> ProgramInput:
        return ProgramInput(
            name=text(self.name.data),
            kind=text(self.kind.data),
            description=text(self.description.data),
            starts_on=text(self.starts_on.data),
            ends_on=text(self.ends_on.data),
            kpi=text(self.kpi.data),
            kpi_direction=text(self.kpi_direction.data),
        )


class RuleForm(FlaskForm):
    name = StringField("Name", filters=[strip])
    # The program's version when the page was opened; see editing.lock_program.
    version = HiddenField()


class ConfirmForm(FlaskForm):
    """A confirmation button, with the version of the program it changes."""

    version = HiddenField()


def condition_rows(formdata: MultiDict[str, str]) -> list[ConditionInput]:
    """The condition rows of a posted rule form, in page order.

    A row that lost one of its fields (a forged form) gets empty text, which
    validation then names.
    """
    columns = zip_longest(
        formdata.getlist("field"),
        formdata.getlist("operator"),
        formdata.getlist("value"),
        fillvalue="",
    )
    return [ConditionInput(field, op, value) for field, op, value in columns]


def rule_input(form: RuleForm, rows: list[ConditionInput]) -> RuleInput:
    return RuleInput(name=text(form.name.data), conditions=rows)


class StepForm(FlaskForm):
    kind = SelectField(
        "Kind of step",
        choices=[
            SelectChoice(kind.value, label) for kind, label in STEP_KIND_LABELS.items()
        ],
        validate_choice=False,
    )
    module = SelectField("Training module", coerce=to_id, validate_choice=False)
    title = StringField(
        "Title (tasks and first sale)",
        filters=[strip],
    )
    required = BooleanField("Required", default=True)
    version = HiddenField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        modules = db.session.scalars(
            select(TrainingModule).order_by(TrainingModule.title)
        )
        self.module.choices = [
            SelectChoice("", "Choose a module (for a module step)"),
            *[SelectChoice(str(m.id), m.title) for m in modules],
        ]

    def step_input(self) -> StepInput:
        return StepInput(
            kind=text(self.kind.data),
            module_id=self.module.data,
            title=text(self.title.data),
            required=bool(self.required.data),
        )


class LadderForm(FlaskForm):
    decimal_separator = SelectField(
        "Decimal separator of thresholds and multipliers",
        choices=SEPARATOR_CHOICES,
        default="point",
        validate_choice=False,
    )
    version = HiddenField()


TIER_COLUMNS = ("tier_name", "threshold", "benefits", "multiplier", "bonus_points")


def tier_rows(formdata: MultiDict[str, str]) -> list[TierInput]:
    """The tier rows of a posted ladder form, in page order."""
    columns = zip_longest(
        *[formdata.getlist(name) for name in TIER_COLUMNS], fillvalue=""
    )
    return [TierInput(*row) for row in columns]


def stored_tier_rows(tiers: list[Tier], separator: str = "point") -> list[TierInput]:
    return [
        TierInput(
            name=tier.name,
            threshold=amount_text(tier.threshold, separator),
            benefits=tier.benefits or "",
            multiplier=amount_text(tier.points_multiplier, separator),
            bonus_points="" if tier.bonus_points is None else str(tier.bonus_points),
        )
        for tier in tiers
    ]


def ladder_input(form: LadderForm, rows: list[TierInput]) -> LadderInput:
    return LadderInput(decimal_separator=text(form.decimal_separator.data), tiers=rows)


class ModuleForm(FlaskForm):
    title = StringField("Title", filters=[strip])
    body = TextAreaField("Text (Markdown)")
    link_url = StringField("Link", widget=URLInput())
    file = FileField("Attached file")
    estimated_minutes = StringField("Estimated minutes", default="10")
    quiz = TextAreaField("Quiz")
    pass_mark = StringField("Pass mark (%)")
    remove_file = BooleanField("Remove the attached file")
    # The module as the page showed it: modules have no version column.
    fingerprint = HiddenField()

    def fill_from(self, module: TrainingModule) -> None:
        from programs.training import quiz_text

        self.fingerprint.data = module_fingerprint(module)
        self.title.data = module.title
        self.body.data = module.body
        self.link_url.data = module.link_url or ""
        self.estimated_minutes.data = str(module.estimated_minutes)
        self.quiz.data = quiz_text(module.quiz) if module.quiz else ""
        self.pass_mark.data = (
            "" if module.pass_mark_percent is None else str(module.pass_mark_percent)
        )

    def module_input(self) -> ModuleInput:
        return ModuleInput(
            title=text(self.title.data),
            body=text(self.body.data),
            link_url=text(self.link_url.data),
            estimated_minutes=text(self.estimated_minutes.data),
            quiz=text(self.quiz.data),
            pass_mark=text(self.pass_mark.data),
            remove_file=bool(self.remove_file.data),
        )
