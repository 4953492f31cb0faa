"""Creating and changing programs, their targeting rules, steps and tiers, and
training modules, as a program admin does.

As with territories, every operation checks all of its input first and writes
nothing unless all of it is valid; the writes then happen in one transaction. A
refusal is raised as :class:`EditRejected`, whose messages name the field (or the
row and field) to fix. Eligibility is not touched here: the views ask for an
eligibility run after a change that targeting can see.

Every change to a program, its rules, steps or tiers first locks the program's
row and compares its version with the one the admin's page showed (see
:func:`lock_program`), then moves the version on: two admins saving the same
program from two tabs never silently overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal.extensions import db
from portal.models import PartnerOrganisation, User, utc_now
from programs import targeting
from programs.models import (
    Kpi,
    KpiDirection,
    Program,
    ProgramCondition,
    ProgramKind,
    ProgramRule,
    ProgramStatus,
    ProgramStep,
    StepKind,
    Tier,
    TrainingModule,
)
from territory_rules.conditions import (
    ConditionError,
    ConditionSpec,
    comparable_text,
    comparable_value,
)
from territory_rules.editing import ConditionInput

if TYPE_CHECKING:
    from werkzeug.datastructures import FileStorage

logger = logging.getLogger(__name__)

NAME_MAX = 200
TIER_NAME_MAX = 80
LINK_MAX = 500
LONG_TEXT_MAX = 100_000
BENEFITS_MAX = 2_000
MINUTES_RANGE = (1, 600)
PASS_MARK_RANGE = (1, 100)
# What the tier columns hold: NUMERIC(16, 4) thresholds, NUMERIC(8, 4) multipliers.
DECIMAL_PLACES = 4
THRESHOLD_LIMIT = Decimal(10) ** 12
MULTIPLIER_MAX = Decimal(100)
BONUS_LIMIT = 1_000_000_000
SEPARATORS = {"point": ".", "comma": ","}
KIND_NOUNS = {
    ProgramKind.ONBOARDING.value: "An onboarding program",
    ProgramKind.TRAINING.value: "A training program",
    ProgramKind.CAMPAIGN.value: "A campaign",
}
# Beyond this a rule is hard to read; two rules (joined by OR) say it better.
MAX_CONDITIONS = 20
FIRST_SALE_TITLE = "First sale registered"
KINDS = {kind.value for kind in ProgramKind}
KPIS = {kpi.value for kpi in Kpi}
DIRECTIONS = {direction.value for direction in KpiDirection}
LOWER_ONLY_FOR_AVERAGE = (
    "Lower is better only suits the average sale. A sum or count of sales, "
    "completed modules and new accounts only grow during the program, so every "
    "partner would start in the top tier and fall out of it; choose higher is "
    "better, or the average sale as KPI."
)
STALE = (
    "Someone else changed this program since you opened it. Reload to see their "
    "changes, then make yours again."
)
STALE_MODULE = (
    "Someone else changed this module since you opened it. Reload to see their "
    "changes, then make yours again."
)


class EditRejected(ValueError):
    """Input that cannot be saved.

    ``errors`` maps a field name to its message; ``row_errors`` maps the index of
    a row (a condition or a tier) to its messages by field name.
    """

    def __init__(
        self,
        errors: dict[str, str] | None = None,
        row_errors: dict[int, dict[str, str]] | None = None,
    ) -> None:
        self.errors = errors or {}
        self.row_errors = row_errors or {}
        messages = [*self.errors.values()]
        messages += [m for row in self.row_errors.values() for m in row.values()]
        super().__init__("; ".join(messages))


# Shared checks ---------------------------------------------------------------


def _text(
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
        errors[key] = (
            "Remove the control characters (such as tabs or NUL); type the text "
            "again as plain text."
        )
    return text


def _whole_number(raw: str | None) -> int | None:
    text = (raw or "").strip()
    if not text or not (text.isdigit() and text.isascii()) or len(text) > 12:
        return None
    return int(text)


def _commit_program(program: Program) -> None:
    name = program.name
    try:
        db.session.commit()
    except IntegrityError:
        # Another admin took the name between our check and this commit.
        db.session.rollback()
        raise EditRejected({"name": _program_name_taken(name)}) from None
    except StaleDataError:
        db.session.rollback()
        raise EditRejected({"version": STALE}) from None


def lock_program(program: Program, seen_version: str | None) -> None:
    """Hold the program's row until the transaction ends; check the page's version.

    Saves of one program then happen one after the other: PostgreSQL makes a
    second ``SELECT ... FOR UPDATE`` wait for the first save's commit, and
    SQLite lets one writer in at a time (a save that slipped in between is
    caught by the version at commit). What the save checks (the steps already
    there, the rule names taken) is read afresh after the lock.

    :raise EditRejected: under ``version`` when the program changed since the
        page showing ``seen_version`` was opened; nothing is kept locked then.
    """
    _lock(program)
    if (seen_version or "").strip() != str(program.version):
        raise _refused({"version": STALE})


def _lock(program: Program) -> None:
    # Objects loaded before the lock may hold what another save has replaced.
    db.session.expire_all()
    db.session.refresh(program, with_for_update=True)


def _touch(program: Program) -> None:
    """Move the program's version on: pages opened before this save are stale."""
    program.updated_at_utc = utc_now()


def _refused(
    errors: dict[str, str], row_errors: dict[int, dict[str, str]] | None = None
) -> EditRejected:
    """The refusal to raise once the transaction (and the lock) is let go."""
    db.session.rollback()
    return EditRejected(errors, row_errors)


# Programs --------------------------------------------------------------------


@dataclass(frozen=True)
class ProgramInput:
    """A program as typed; dates as the date inputs send them (YYYY-MM-DD)."""

    name: str
    kind: str
    description: str = ""
    starts_on: str = ""
    ends_on: str = ""
    kpi: str = ""
    kpi_direction: str = KpiDirection.HIGHER_IS_BETTER.value


@dataclass(frozen=True)
class _ProgramValues:
    name: str
    kind: str
    description: str | None
    starts_on: date
    ends_on: date
    kpi: str | None
    kpi_direction: str


def create_program(data: ProgramInput, user: User) -> Program:
    """Create a program as a draft."""
    values = _check_program(None, data)

    program = Program(status=ProgramStatus.DRAFT.value)
    _apply(program, values)
    db.session.add(program)
    _commit_program(program)

    logger.info("%s created program %s (%s)", user.email, program.id, program.name)
    return program


def update_program(
    program: Program, data: ProgramInput, seen_version: str, user: User
) -> bool:
    """Save a program edited from the page showing ``seen_version``.

    Returns whether a programs run must follow: new dates change who it
    targets, a new kind whether its steps count for onboarding, a new KPI or
    direction the standings (which rules can test).
    :raise EditRejected: also when the program changed since that page was shown.
    """
    lock_program(program, seen_version)
    try:
        values = _check_program(program, data)
    except EditRejected as rejected:
        raise _refused(rejected.errors) from None
    needs_run = _run_relevant(program) != _run_relevant(values)

    _apply(program, values)
    _commit_program(program)

    logger.info("%s updated program %s (%s)", user.email, program.id, program.name)
    return needs_run


def _run_relevant(program: Program | _ProgramValues) -> tuple[Any, ...]:
    """What a programs run reads from the program itself."""
    return (
        program.starts_on,
        program.ends_on,
        program.kind,
        program.kpi,
        program.kpi_direction,
    )


def _apply(program: Program, values: _ProgramValues) -> None:
    program.name = values.name
    program.kind = values.kind
    program.description = values.description
    program.starts_on = values.starts_on
    program.ends_on = values.ends_on
    program.kpi = values.kpi
    program.kpi_direction = values.kpi_direction
    program.updated_at_utc = utc_now()


def _check_program(program: Program | None, data: ProgramInput) -> _ProgramValues:
    errors: dict[str, str] = {}
    name = _text(
        data.name,
        "name",
        errors,
        missing="Enter a name for the program.",
        limit=NAME_MAX,
    )
    if "name" not in errors and _program_name_used(program, name):
        errors["name"] = _program_name_taken(name)
    description = _text(
        data.description, "description", errors, missing=None, limit=LONG_TEXT_MAX
    )
    kind = data.kind if data.kind in KINDS else None
    if kind is None:
        errors["kind"] = "Choose the kind of program from the list."
    starts_on = _date(data.starts_on, "starts_on", "start", errors)
    ends_on = _date(data.ends_on, "ends_on", "end", errors)
    if starts_on and ends_on and ends_on < starts_on:
        errors["ends_on"] = (
            "The program would end before it starts; choose an end date on or "
            "after the start date."
        )
    kpi, direction = _check_kpi(program, kind, data, errors)

    if errors:
        raise EditRejected(errors)
    assert kind and starts_on and ends_on, "missing values are reported above"
    return _ProgramValues(
        name, kind, description or None, starts_on, ends_on, kpi, direction
    )


def _program_name_used(program: Program | None, name: str) -> bool:
    query = select(Program.id).where(func.lower(Program.name) == name.lower())
    if program is not None:
        query = query.where(Program.id != program.id)
    return db.session.scalar(query) is not None


def _program_name_taken(name: str) -> str:
    return f"A program named {name!r} already exists; choose another name."


def _date(raw: str, key: str, word: str, errors: dict[str, str]) -> date | None:
    text = (raw or "").strip()
    if not text:
        errors[key] = f"Enter the {word} date."
        return None
    try:
        if not text.isascii():
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        errors[key] = f"Enter the {word} date as year-month-day, e.g. 2026-01-31."
        return None


def _check_kpi(
    program: Program | None,
    kind: str | None,
    data: ProgramInput,
    errors: dict[str, str],
) -> tuple[str | None, str]:
    """The KPI and its direction; only incentive programs keep a KPI."""
    direction = data.kpi_direction or KpiDirection.HIGHER_IS_BETTER.value
    if kind != ProgramKind.INCENTIVE:
        return None, KpiDirection.HIGHER_IS_BETTER.value
    kpi = data.kpi or None
    if kpi is not None and kpi not in KPIS:
        errors["kpi"] = "Choose what the tiers measure from the list."
    if direction not in DIRECTIONS:
        errors["kpi_direction"] = "Choose whether higher or lower values are better."
    elif direction == KpiDirection.LOWER_IS_BETTER and kpi != Kpi.SALES_AVERAGE:
        errors["kpi_direction"] = LOWER_ONLY_FOR_AVERAGE
    elif program is not None and program.tiers and direction != program.kpi_direction:
        # The ladder's order depends on the direction: keep them consistent.
        problems = _ladder_problems(
            [(t.name, t.threshold) for t in program.tiers], direction
        )
        if problems:
            errors["kpi_direction"] = (
                "The tiers are ordered for the other direction; change their "
                "thresholds first. " + " ".join(problems)
            )
    return kpi, direction


# Status ----------------------------------------------------------------------


def activation_problems(program: Program) -> list[str]:
    """What keeps the program from being activated, in sentences; empty when ready."""
    problems = []
    if program.kind == ProgramKind.INCENTIVE:
        if not program.kpi:
            problems.append(
                "An incentive program needs a KPI before it can be activated; "
                "edit the program and choose what its tiers measure."
            )
        if not program.tiers:
            problems.append(
                "An incentive program needs at least one tier before it can be "
                "activated; add its tiers first."
            )
    elif not program.steps:
        noun = KIND_NOUNS.get(program.kind, "A program")
        problems.append(
            f"{noun} needs at least one step before it can be activated; add a "
            "training module, a task or the first sale under Steps."
        )
    if not program.rules:
        problems.append(
            "A program needs at least one targeting rule before it can be "
            "activated, so that it knows which partners it is for."
        )
    return problems


def activate_program(program: Program, seen_version: str, user: User) -> bool:
    """Make the program active; False when it already was (nothing is done then).

    :raise EditRejected: with the reasons under ``status`` when it is not ready,
        or under ``version`` when the page showing ``seen_version`` is stale.
    """
    return _set_status(program, ProgramStatus.ACTIVE, seen_version, user)


def archive_program(program: Program, seen_version: str, user: User) -> bool:
    """Archive the program; its eligibility rows stay as its history."""
    return _set_status(program, ProgramStatus.ARCHIVED, seen_version, user)


def reopen_program(program: Program, seen_version: str, user: User) -> bool:
    """Put the program back to draft."""
    return _set_status(program, ProgramStatus.DRAFT, seen_version, user)


def _set_status(
    program: Program, status: ProgramStatus, seen_version: str, user: User
) -> bool:
    # Checked on the locked row: a second click, or another tab that already
    # made the same change, is not an error and needs no programs run.
    _lock(program)
    if program.status == status:
        db.session.rollback()
        return False
    if (seen_version or "").strip() != str(program.version):
        raise _refused({"version": STALE})
    problems = activation_problems(program) if status == ProgramStatus.ACTIVE else []
    if problems:
        raise _refused({"status": " ".join(problems)})

    previous = program.status
    program.status = status.value
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s moved program %s (%s) from %s to %s",
        user.email,
        program.id,
        program.name,
        previous,
        status.value,
    )
    return True


# Targeting rules -------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    name: str
    conditions: Sequence[ConditionInput] = field(default_factory=tuple)


@dataclass(frozen=True)
class RulePreview:
    """Who a rule being edited would target; nothing is saved to find out."""

    targets: list[targeting.Target]
    row_errors: dict[int, str]
    has_conditions: bool

    @property
    def ok(self) -> bool:
        return self.has_conditions and not self.row_errors


def add_rule(
    program: Program, data: RuleInput, seen_version: str, user: User
) -> ProgramRule:
    """Add a targeting rule with its conditions to the program."""
    lock_program(program, seen_version)
    name, specs = _check_rule(program, None, data)

    rule = ProgramRule(program=program, name=name)
    rule.conditions = [_condition(spec) for spec in specs]
    db.session.add(rule)
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s added targeting rule %s (%s) to program %s: %s",
        user.email,
        rule.id,
        rule.name,
        program.id,
        _summary(specs),
    )
    return rule


def update_rule(
    rule: ProgramRule, data: RuleInput, seen_version: str, user: User
) -> None:
    """Replace a targeting rule's name and conditions."""
    program = rule.program
    lock_program(program, seen_version)
    name, specs = _check_rule(program, rule, data)

    rule.name = name
    rule.conditions = [_condition(spec) for spec in specs]
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s updated targeting rule %s (%s) of program %s: %s",
        user.email,
        rule.id,
        rule.name,
        rule.program_id,
        _summary(specs),
    )


def delete_rule(rule: ProgramRule, seen_version: str, user: User) -> None:
    """Delete a targeting rule; the eligibility rows it made go with it."""
    program = rule.program
    lock_program(program, seen_version)
    rule_id, name = rule.id, rule.name

    db.session.delete(rule)
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s deleted targeting rule %s (%s) of program %s",
        user.email,
        rule_id,
        name,
        program.id,
    )


def preview_rule(rows: Sequence[ConditionInput], name: str = "") -> RulePreview:
    """The partners a rule with these condition rows would target now.

    The reasons name the rule by ``name`` as typed, or "this rule" without one.
    """
    specs, errors = check_conditions(rows)
    if errors or not rows:
        return RulePreview([], errors, bool(rows))
    # ConditionSpec is frozen: its fields are read-only, which the protocol
    # targeting declares does not say, so the type checker is told here.
    targets = targeting.preview([specs])
    label = f"Rule “{name.strip()}”" if name.strip() else "This rule"
    return RulePreview([_named(target, label) for target in targets], {}, True)


def _named(target: targeting.Target, label: str) -> targeting.Target:
    # targeting.preview numbers the rules it is given; one rule is "rule 1".
    reasons = [re.sub(r"^[Rr]ule 1\b", lambda _m: label, r) for r in target.reasons]
    return targeting.Target(target.organisation_id, target.organisation_name, reasons)


def check_conditions(
    rows: Sequence[ConditionInput],
) -> tuple[list[ConditionSpec], dict[int, str]]:
    """The rows in stored form, and a message for each row that is not valid."""
    specs: list[ConditionSpec] = []
    errors: dict[int, str] = {}
    for index, row in enumerate(rows):
        try:
            specs.append(_parse_condition(row))
        except ConditionError as error:
            errors[index] = str(error)
    return specs, errors


# What a range of each field looks like; the shared parser's own example is a
# postal-code range, which says nothing to an admin typing an amount.
RANGE_EXAMPLES = {
    targeting.TargetField.TERRITORY_POTENTIAL.value: (
        "e.g. 50000.. or ..20000 or 10000..90000"
    ),
    targeting.TargetField.TERRITORY_ACCOUNTS.value: "e.g. 50.. or ..20 or 10..90",
}


def _parse_condition(row: ConditionInput) -> ConditionSpec:
    """:raise ConditionError: with a message fit for the field typed."""
    example = RANGE_EXAMPLES.get(row.field)
    if example and row.operator == "between" and ".." not in (row.value or ""):
        raise ConditionError(f"Write a range as low..high, {example}.")
    spec = targeting.parse_target(row.field, row.operator, row.value)
    if spec.field == targeting.TargetField.PARTNER_TYPE:
        _check_partner_types(spec.value)
    return spec


def _check_partner_types(values: Sequence[str]) -> None:
    """:raise ConditionError: for a type no partner organisation has."""
    column = PartnerOrganisation.__table__.c.partner_type
    folded = comparable_text(column)
    rows = db.session.execute(
        select(folded, func.min(func.trim(column)))
        .where(column.is_not(None))
        .group_by(folded)
    ).all()
    known = {key: shown for key, shown in rows if key}
    unknown = [value for value in values if comparable_value(value) not in known]
    if not unknown:
        return
    listed = ", ".join(sorted(known.values(), key=str.lower)) or "none yet"
    raise ConditionError(
        f"No partner organisation has the type "
        f"{', '.join(repr(value) for value in unknown)}; the partner types in use "
        f"are: {listed}."
    )


def stored_rows(rule: ProgramRule) -> list[ConditionInput]:
    """A rule's conditions as rows, values in the syntax they are typed in."""
    return [
        ConditionInput(c.field, c.operator, targeting.condition_text(c.field, c.value))
        for c in rule.conditions
    ]


def _check_rule(
    program: Program, rule: ProgramRule | None, data: RuleInput
) -> tuple[str, list[ConditionSpec]]:
    """The rule's name and conditions; run with the program locked.

    :raise EditRejected: after letting the lock go.
    """
    errors: dict[str, str] = {}
    name = _text(
        data.name, "name", errors, missing="Enter a name for the rule.", limit=NAME_MAX
    )
    if "name" not in errors and _rule_name_used(program, rule, name):
        errors["name"] = (
            f"{program.name} already has a rule named {name!r}; give this rule "
            "a name of its own."
        )
    specs, condition_errors = check_conditions(data.conditions)
    if not data.conditions:
        errors["conditions"] = "Add at least one condition to the rule."
    elif len(data.conditions) > MAX_CONDITIONS:
        errors["conditions"] = (
            f"A rule can have at most {MAX_CONDITIONS} conditions; this one has "
            f"{len(data.conditions)}. Split it into rules of their own: a partner "
            "is in the program when any of its rules matches."
        )

    if errors or condition_errors:
        rows = {i: {"condition": m} for i, m in condition_errors.items()}
        raise _refused(errors, rows)
    return name, specs


def _rule_name_used(program: Program, rule: ProgramRule | None, name: str) -> bool:
    folded = name.casefold()
    return any(
        other.name.casefold() == folded for other in program.rules if other is not rule
    )


def _condition(spec: ConditionSpec) -> ProgramCondition:
    return ProgramCondition(field=spec.field, operator=spec.operator, value=spec.value)


def _summary(specs: Iterable[ConditionSpec]) -> str:
    return " and ".join(
        targeting.describe_target(s.field, s.operator, s.value) for s in specs
    )


# Steps -----------------------------------------------------------------------


@dataclass(frozen=True)
class StepInput:
    kind: str
    module_id: int | None = None
    title: str = ""
    required: bool = True


def add_step(
    program: Program, data: StepInput, seen_version: str, user: User
) -> ProgramStep:
    """Add a step at the end of the program's steps.

    The steps already there are read with the program locked, so that two
    admins adding the same module (or a first sale) at once cannot both succeed.
    """
    lock_program(program, seen_version)
    errors: dict[str, str] = {}
    module, title = None, None
    if data.kind == StepKind.MODULE:
        module = _check_step_module(program, data.module_id, errors)
    elif data.kind == StepKind.TASK:
        title = _text(
            data.title,
            "title",
            errors,
            missing="Enter what the partner has to do, e.g. Sign the partner "
            "agreement.",
            limit=NAME_MAX,
        )
    elif data.kind == StepKind.FIRST_SALE:
        title = _text(data.title, "title", errors, missing=None, limit=NAME_MAX)
        title = title or FIRST_SALE_TITLE
        if any(step.kind == StepKind.FIRST_SALE for step in program.steps):
            errors["kind"] = (
                "This program already has a first-sale step; a partner makes its "
                "first sale only once."
            )
    else:
        errors["kind"] = "Choose the kind of step from the list."
    if errors:
        raise _refused(errors)

    step = ProgramStep(
        kind=data.kind, module=module, title=title, required=data.required
    )
    program.steps.append(step)
    _renumber(program.steps)
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s added step %s (%s) to program %s",
        user.email,
        step.id,
        step.label,
        program.id,
    )
    return step


def _check_step_module(
    program: Program, module_id: int | None, errors: dict[str, str]
) -> TrainingModule | None:
    module = db.session.get(TrainingModule, module_id) if module_id else None
    if module is None:
        errors["module"] = "Choose the training module from the list."
    elif any(step.module_id == module.id for step in program.steps):
        errors["module"] = (
            f"The module {module.title!r} is already a step of this program."
        )
    return module


def remove_step(step: ProgramStep, seen_version: str, user: User) -> None:
    """Remove a step; the remaining steps close up."""
    program = step.program
    lock_program(program, seen_version)
    label, step_id = step.label, step.id

    program.steps.remove(step)
    _renumber(program.steps)
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s removed step %s (%s) from program %s",
        user.email,
        step_id,
        label,
        program.id,
    )


def move_step(step: ProgramStep, offset: int, seen_version: str, user: User) -> bool:
    """Move a step ``offset`` places (-1 up, 1 down); False when at an end."""
    program = step.program
    lock_program(program, seen_version)
    steps = list(program.steps)
    index = steps.index(step)
    target = index + offset
    if not 0 <= target < len(steps):
        db.session.rollback()
        return False

    steps[index], steps[target] = steps[target], steps[index]
    _renumber(steps)
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s moved step %s of program %s to place %s",
        user.email,
        step.id,
        step.program_id,
        target + 1,
    )
    return True


def set_step_required(
    step: ProgramStep, required: bool, seen_version: str, user: User
) -> None:
    program = step.program
    lock_program(program, seen_version)

    step.required = required
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s made step %s of program %s %s",
        user.email,
        step.id,
        step.program_id,
        "required" if required else "optional",
    )


def _renumber(steps: Iterable[ProgramStep]) -> None:
    for position, step in enumerate(steps):
        step.position = position


# Tiers -----------------------------------------------------------------------


@dataclass(frozen=True)
class TierInput:
    """One row of the ladder as typed; numbers in the chosen decimal syntax."""

    name: str = ""
    threshold: str = ""
    benefits: str = ""
    multiplier: str = ""
    bonus_points: str = ""

    @property
    def is_blank(self) -> bool:
        return not any(
            (value or "").strip()
            for value in (
                self.name,
                self.threshold,
                self.benefits,
                self.multiplier,
                self.bonus_points,
            )
        )


@dataclass(frozen=True)
class LadderInput:
    """The whole ladder, lowest tier first; blank rows are left out."""

    decimal_separator: str
    tiers: Sequence[TierInput] = field(default_factory=tuple)


@dataclass(frozen=True)
class _TierValues:
    name: str
    threshold: Decimal
    benefits: str | None
    multiplier: Decimal | None
    bonus_points: int | None


def replace_tiers(
    program: Program, data: LadderInput, seen_version: str, user: User
) -> None:
    """Replace the program's tiers with the ladder, all or nothing.

    A tier keeping its name keeps its row, so standings still point at it.
    """
    lock_program(program, seen_version)
    try:
        values = _check_ladder(program, data)
    except EditRejected as rejected:
        raise _refused(rejected.errors, rejected.row_errors) from None

    kept = {v.name for v in values}
    for tier in [t for t in program.tiers if t.name not in kept]:
        program.tiers.remove(tier)
    # Deletions first: a new tier may take a name a deleted one had.
    db.session.flush()
    by_name = {tier.name: tier for tier in program.tiers}
    program.tiers = [
        _tier(by_name.get(v.name) or Tier(), v, position)
        for position, v in enumerate(values)
    ]
    _touch(program)
    _commit_program(program)

    logger.info(
        "%s set the tiers of program %s to %s",
        user.email,
        program.id,
        ", ".join(f"{v.name} at {v.threshold}" for v in values) or "none",
    )


def _tier(tier: Tier, values: _TierValues, position: int) -> Tier:
    tier.position = position
    tier.name = values.name
    tier.threshold = values.threshold
    tier.benefits = values.benefits
    tier.points_multiplier = values.multiplier
    tier.bonus_points = values.bonus_points
    return tier


def _check_ladder(program: Program, data: LadderInput) -> list[_TierValues]:
    errors: dict[str, str] = {}
    row_errors: dict[int, dict[str, str]] = {}
    separator = SEPARATORS.get(data.decimal_separator)
    if separator is None:
        errors["decimal_separator"] = "Choose point or comma as the decimal separator."
        separator = "."
    values: list[_TierValues] = []
    seen: set[str] = set()
    for index, row in enumerate(data.tiers):
        if row.is_blank:
            continue
        problems: dict[str, str] = {}
        tier = _check_tier(row, separator, problems)
        if tier.name.lower() in seen and "name" not in problems:
            problems["name"] = (
                f"Another tier is already named {tier.name!r}; give each tier "
                "its own name."
            )
        seen.add(tier.name.lower())
        if problems:
            row_errors[index] = problems
        values.append(tier)

    if not row_errors and not errors:
        _check_whole_ladder(program, values, errors)
    if errors or row_errors:
        raise EditRejected(errors, row_errors)
    return values


def _check_whole_ladder(
    program: Program, values: list[_TierValues], errors: dict[str, str]
) -> None:
    if program.kind != ProgramKind.INCENTIVE:
        errors["tiers"] = "Only incentive programs have tiers."
    elif not values and program.status == ProgramStatus.ACTIVE:
        errors["tiers"] = (
            "An active incentive program needs at least one tier; put the "
            "program back to draft before removing them all."
        )
    elif values:
        direction = program.kpi_direction or KpiDirection.HIGHER_IS_BETTER.value
        problems = _ladder_problems([(v.name, v.threshold) for v in values], direction)
        if problems:
            errors["tiers"] = " ".join(problems)


def _ladder_problems(tiers: Sequence[tuple[str, Decimal]], direction: str) -> list[str]:
    from programs.tiers import check_ladder

    return check_ladder(tiers, direction)


def _check_tier(
    row: TierInput, separator: str, problems: dict[str, str]
) -> _TierValues:
    name = _text(
        row.name,
        "name",
        problems,
        missing="Enter a name for the tier, e.g. Gold.",
        limit=TIER_NAME_MAX,
    )
    threshold = _amount(
        row.threshold,
        separator,
        "threshold",
        problems,
        missing="Enter the KPI value that reaches this tier.",
        limit=THRESHOLD_LIMIT,
    )
    multiplier = _multiplier(row.multiplier, separator, problems)
    bonus = _bonus_points(row.bonus_points, separator, problems)
    benefits = _text(
        row.benefits,
        "benefits",
        problems,
        missing=None,
        limit=BENEFITS_MAX,
        multiline=True,
    )
    return _TierValues(
        name, threshold or Decimal(0), benefits or None, multiplier, bonus
    )


def _amount(
    raw: str,
    separator: str,
    key: str,
    problems: dict[str, str],
    *,
    missing: str | None,
    limit: Decimal,
) -> Decimal | None:
    from programs.tiers import TierError, parse_amount

    text = (raw or "").strip()
    if not text:
        if missing:
            problems[key] = missing
        return None
    try:
        value = parse_amount(text, separator)
    except TierError as error:
        problems[key] = str(error)
        return None
    if not value.is_finite() or abs(value) >= limit:
        problems[key] = f"Enter a number below {limit:,}."
        return None
    if value != value.quantize(Decimal(1).scaleb(-DECIMAL_PLACES)):
        problems[key] = f"Use at most {DECIMAL_PLACES} decimal places."
        return None
    return value


def _multiplier(raw: str, separator: str, problems: dict[str, str]) -> Decimal | None:
    """A points multiplier: above 0, at most 100, in the chosen decimal syntax."""
    text = (raw or "").strip()
    if not text:
        return None
    value = _plain_decimal(text, separator)
    other = "," if separator == "." else "."
    if value is None and _plain_decimal(text, other) is not None:
        problems["multiplier"] = (
            f"{raw!r} looks like it uses a decimal {_SEPARATOR_WORDS[other]}: "
            f"choose the {_SEPARATOR_WORDS[other]} as decimal separator, or write "
            f"{text.replace(other, separator)}."
        )
    elif value is None or value <= 0:
        problems["multiplier"] = (
            f"A points multiplier is a number above 0, such as 1{separator}5; "
            "leave it empty for none."
        )
    elif value > MULTIPLIER_MAX:
        problems["multiplier"] = (
            f"A points multiplier is at most {MULTIPLIER_MAX}, such as 1{separator}5."
        )
    elif value != value.quantize(Decimal(1).scaleb(-DECIMAL_PLACES)):
        problems["multiplier"] = (
            f"A points multiplier has at most {DECIMAL_PLACES} decimal places, "
            f"such as 1{separator}25."
        )
    else:
        return value
    return None


_SEPARATOR_WORDS = {".": "point", ",": "comma"}


def _plain_decimal(text: str, separator: str) -> Decimal | None:
    """Digits with at most one ``separator`` and no grouping, sign or exponent."""
    point = re.escape(separator)
    if not re.fullmatch(rf"[0-9]+(?:{point}[0-9]+)?|{point}[0-9]+", text):
        return None
    return Decimal(text.replace(separator, "."))


def _bonus_points(raw: str, separator: str, problems: dict[str, str]) -> int | None:
    """Whole points; thousands may be grouped as the decimal separator implies."""
    text = (raw or "").strip()
    if not text:
        return None
    grouping = re.escape("," if separator == "." else ".")
    if re.fullmatch(rf"[0-9]{{1,3}}(?:{grouping}[0-9]{{3}})+", text):
        text = re.sub("[^0-9]", "", text)
    number = _whole_number(text)
    if number is None:
        problems["bonus_points"] = (
            "Enter the bonus points as a whole number, e.g. 500, or leave it empty."
        )
    elif number > BONUS_LIMIT:
        problems["bonus_points"] = f"Bonus points are at most {BONUS_LIMIT:,}."
    return number


def amount_text(value: Decimal | None, decimal_separator: str = "point") -> str:
    """A stored amount as the ladder form shows it: no trailing zeros."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    if decimal_separator == "comma":
        return text.replace(".", ",")
    return text


def rows_in_separator(
    rows: Sequence[TierInput], typed_in: str, wanted: str
) -> list[TierInput]:
    """The ladder's rows with their numbers rewritten for another decimal separator.

    A number that cannot be read in ``typed_in`` is left as typed, so that its
    message shows when the ladder is saved.
    """
    if typed_in not in SEPARATORS or wanted not in SEPARATORS or typed_in == wanted:
        return list(rows)
    return [
        TierInput(
            name=row.name,
            threshold=_rewritten(row.threshold, typed_in, wanted),
            benefits=row.benefits,
            multiplier=_rewritten(row.multiplier, typed_in, wanted),
            bonus_points=_rewritten(row.bonus_points, typed_in, wanted),
        )
        for row in rows
    ]


def _rewritten(raw: str, typed_in: str, wanted: str) -> str:
    from programs.tiers import TierError, parse_amount

    if not (raw or "").strip():
        return raw
    try:
        value = parse_amount(raw, SEPARATORS[typed_in])
    except TierError:
        return raw
    return amount_text(value, wanted)


# Training modules ------------------------------------------------------------


@dataclass(frozen=True)
class ModuleInput:
    title: str
    body: str = ""
    link_url: str = ""
    estimated_minutes: str = "10"
    quiz: str = ""
    pass_mark: str = ""
    # Drop the attached file (a newly uploaded one replaces it anyway).
    remove_file: bool = False


@dataclass(frozen=True)
class _ModuleValues:
    title: str
    body: str
    link_url: str | None
    estimated_minutes: int
    quiz: list[dict[str, Any]] | None
    pass_mark: int | None


def create_module(
    data: ModuleInput, upload: FileStorage | None, user: User
) -> TrainingModule:
    """Create a training module, storing its file when one is uploaded."""
    module = TrainingModule()
    _save_module(module, data, upload)

    logger.info("%s created module %s (%s)", user.email, module.id, module.title)
    return module


def update_module(
    module: TrainingModule,
    data: ModuleInput,
    upload: FileStorage | None,
    seen: str,
    user: User,
) -> None:
    """Change a module edited from a page that showed it as ``seen`` (its
    :func:`module_fingerprint`); an uploaded file replaces the one it had.

    Modules have no version column, so the row is locked and compared as a
    whole: a save from a page opened before another admin's is refused.
    """
    db.session.refresh(module, with_for_update=True)
    if (seen or "").strip() != module_fingerprint(module):
        db.session.rollback()
        raise EditRejected({"fingerprint": STALE_MODULE})
    _save_module(module, data, upload)

    logger.info("%s updated module %s (%s)", user.email, module.id, module.title)


def module_fingerprint(module: TrainingModule) -> str:
    """A digest of everything an admin can change in a module, as stored."""
    stored = [
        module.title,
        module.body,
        module.link_url,
        module.file_name,
        module.file_stored_as,
        module.estimated_minutes,
        module.quiz,
        module.pass_mark_percent,
    ]
    text = json.dumps(stored, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _save_module(
    module: TrainingModule, data: ModuleInput, upload: FileStorage | None
) -> None:
    errors: dict[str, str] = {}
    values = _check_module(module, data, errors)
    has_upload = upload is not None and bool(upload.filename)
    keeps_file = bool(module.file_stored_as) and not data.remove_file
    if not (values.body or values.link_url or has_upload or keeps_file):
        errors["body"] = "Give the module some content: text, a link or a file."
    # The file is checked even when other fields are wrong, so that every
    # message shows at once; it is then discarded until the form is valid.
    stored = _store_file(upload, errors) if upload and has_upload else None
    if errors:
        db.session.rollback()
        _discard_file(stored[1] if stored else None)
        raise EditRejected(errors)

    previous_file = module.file_stored_as
    _apply_module(module, values, stored, drop_file=data.remove_file)
    _commit_module(module, stored)
    if previous_file and previous_file != module.file_stored_as:
        _discard_file(previous_file)


def _check_module(
    module: TrainingModule, data: ModuleInput, errors: dict[str, str]
) -> _ModuleValues:
    title = _text(
        data.title,
        "title",
        errors,
        missing="Enter a title for the module.",
        limit=NAME_MAX,
    )
    if "title" not in errors and _module_title_used(module, title):
        errors["title"] = _module_title_taken(title)
    body = _text(
        data.body, "body", errors, missing=None, limit=LONG_TEXT_MAX, multiline=True
    )
    link = _link(data.link_url, errors)
    minutes = _whole_number(data.estimated_minutes)
    low, high = MINUTES_RANGE
    if minutes is None or not low <= minutes <= high:
        errors["estimated_minutes"] = (
            f"Enter the estimated time in whole minutes, from {low} to {high}."
        )
    quiz = _quiz(data.quiz, errors)
    pass_mark = _pass_mark(data.pass_mark, errors) if quiz else None
    return _ModuleValues(title, body, link, minutes or low, quiz, pass_mark)


def _module_title_used(module: TrainingModule, title: str) -> bool:
    query = select(TrainingModule.id).where(
        func.lower(TrainingModule.title) == title.lower()
    )
    if module.id is not None:
        query = query.where(TrainingModule.id != module.id)
    return db.session.scalar(query) is not None


def _module_title_taken(title: str) -> str:
    return f"A module titled {title!r} already exists; choose another title."


def _link(raw: str, errors: dict[str, str]) -> str | None:
    link = _text(raw, "link_url", errors, missing=None, limit=LINK_MAX)
    if not link or "link_url" in errors:
        return None
    parts = urlsplit(link)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in link:
        errors["link_url"] = (
            "Enter a web address starting with http:// or https://, e.g. "
            "https://example.com/guide."
        )
    return link


def _quiz(raw: str, errors: dict[str, str]) -> list[dict[str, Any]] | None:
    from programs.training import QuizError, parse_quiz

    text = _text(raw, "quiz", errors, missing=None, limit=LONG_TEXT_MAX, multiline=True)
    if not text or "quiz" in errors:
        return None
    try:
        return parse_quiz(text) or None
    except QuizError as error:
        errors["quiz"] = str(error)
        return None


def _pass_mark(raw: str, errors: dict[str, str]) -> int | None:
    # The field is labelled in percent; "80%" says the same as 80.
    text = (raw or "").strip().removesuffix("%").strip()
    mark = _whole_number(text)
    low, high = PASS_MARK_RANGE
    if not text:
        errors["pass_mark"] = (
            f"A module with a quiz needs a pass mark: write it as a whole number "
            f"from {low} to {high}, e.g. 80."
        )
    elif mark is None or not low <= mark <= high:
        errors["pass_mark"] = (
            f"Write the pass mark as a whole number from {low} to {high}, e.g. 80."
        )
    else:
        return mark
    return None


def _store_file(upload: FileStorage, errors: dict[str, str]) -> tuple[str, str] | None:
    from programs.training import ModuleFileError, store_module_file

    try:
        original, stored_as = store_module_file(upload)
    except ModuleFileError as error:
        errors["file"] = str(error)
        return None
    return attachment_name(original), stored_as


def attachment_name(name: str | None) -> str:
    """The name a file is downloaded under; "attachment.pdf" for a bare ".pdf"."""
    stem, dot, extension = (name or "").rpartition(".")
    if not dot:
        return name or "attachment"
    if not stem.strip(" ."):
        return f"attachment.{extension}"
    return name or "attachment"


def _discard_file(stored_as: str | None) -> None:
    """Remove a stored module file no module points at."""
    from programs.training import remove_module_file

    try:
        remove_module_file(stored_as)
    except (OSError, ValueError):
        # Only disk space is at stake; the module itself is saved correctly.
        logger.warning("Could not remove the module file %s", stored_as)


def _apply_module(
    module: TrainingModule,
    values: _ModuleValues,
    stored: tuple[str, str] | None,
    *,
    drop_file: bool = False,
) -> None:
    module.title = values.title
    module.body = values.body
    module.link_url = values.link_url
    module.estimated_minutes = values.estimated_minutes
    module.quiz = values.quiz
    module.pass_mark_percent = values.pass_mark
    if stored:
        module.file_name, module.file_stored_as = stored
    elif drop_file:
        module.file_name, module.file_stored_as = None, None


def _commit_module(module: TrainingModule, stored: tuple[str, str] | None) -> None:
    title = module.title
    if module.id is None:
        db.session.add(module)
    try:
        db.session.commit()
    except IntegrityError:
        # Another admin took the title between our check and this commit.
        db.session.rollback()
        _discard_file(stored[1] if stored else None)
        raise EditRejected({"title": _module_title_taken(title)}) from None
