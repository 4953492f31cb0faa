"""Admin pages to define programs: their targeting rules, steps and tiers, and
the training modules the steps point at.

A change that a programs run reads (a rule saved or deleted, a program
activated, archived or given new dates, kind or KPI, a step added, moved,
removed or made optional, tiers saved) asks for one, so that partners see the
change without an admin having to think of it. Every form that changes a
program carries the version it was opened with; a stale one is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select

from portal.auth import roles_required
from portal.extensions import db
from portal.models import PartnerOrganisation, Role, User, utc_now
from portal.runs import Run, RunStatus
from programs import editing, eligibility, targeting, training
from programs.editing import EditRejected
from programs.forms import (
    DIRECTION_LABELS,
    KIND_LABELS,
    KPI_LABELS,
    ConfirmForm,
    LadderForm,
    ModuleForm,
    ProgramForm,
    RuleForm,
    StepForm,
    condition_rows,
    ladder_input,
    rule_input,
    stored_tier_rows,
    tier_rows,
)
from programs.jobs import request_eligibility_run, start_eligibility_run
from programs.models import (
    Program,
    ProgramKind,
    ProgramRule,
    ProgramStep,
    TrainingModule,
)
from programs.tiers import format_kpi
from territory_rules.editing import ConditionInput

logger = logging.getLogger(__name__)

bp = Blueprint("programs_admin", __name__, url_prefix="/admin/programs")

NEW_ROW = ConditionInput(targeting.TargetField.TERRITORY.value, "in", "")
CONDITIONS_CHANGED = "conditions-changed"
# The decimal separator an admin last chose for tiers, kept for their next visit.
SEPARATOR_KEY = "tier_decimal_separator"
RULE_GONE = "That rule no longer exists; it may have been deleted already."


@bp.context_processor
def labels() -> dict[str, Any]:
    return {
        "kind_labels": KIND_LABELS,
        "kpi_labels": KPI_LABELS,
        "direction_labels": DIRECTION_LABELS,
        "long_date": long_date,
        "amount_text": editing.amount_text,
        "format_kpi": format_kpi,
    }


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def today() -> date:
    return utc_now().date()


def program_or_404(program_id: int) -> Program:
    program = db.session.get(Program, program_id)
    if program is None:
        abort(404)
    return program


def rule_or_404(program: Program, rule_id: int) -> ProgramRule:
    """The program's rule; else a 404 showing the program's rules as they are now.

    Usually another tab (or a second click) deleted it, so the page says so.
    """
    rule = db.session.get(ProgramRule, rule_id)
    if rule is None or rule.program_id != program.id:
        page, _status = render_program(program, rules_error=RULE_GONE)
        abort(make_response(page, 404))
    return rule


def step_or_404(program: Program, step_id: int) -> ProgramStep:
    step = db.session.get(ProgramStep, step_id)
    if step is None or step.program_id != program.id:
        abort(404)
    return step


def module_or_404(module_id: int) -> TrainingModule:
    module = db.session.get(TrainingModule, module_id)
    if module is None:
        abort(404)
    return module


def show_errors(form: Any, rejected: EditRejected) -> None:
    for name, message in rejected.errors.items():
        if name in form:
            form[name].errors = [message]


def status_code() -> int:
    return 400 if request.method == "POST" else 200


def to_program(program_id: int, anchor: str | None = None) -> Any:
    return redirect(
        url_for("programs_admin.program", program_id=program_id, _anchor=anchor)
    )


def recompute_eligibility() -> None:
    """Ask for a programs run after a change it reads."""
    run = request_eligibility_run(current_user)
    if run.status == RunStatus.SUCCEEDED:
        flash(f"Partner eligibility was recomputed (run {run.id}).", "info")
    elif run.status == RunStatus.FAILED:
        flash(failed_run(run), "error")
    else:
        flash(
            f"Partner eligibility is being recomputed (run {run.id}); the partner "
            "lists follow when it finishes.",
            "info",
        )


def failed_run(run: Run) -> str:
    return (
        f"Eligibility run {run.id} failed, so the partner lists may be out of "
        "date; the runs page says why."
    )


def seen_version() -> str:
    """The program version the posted page was opened with."""
    return request.form.get("version", "")


# Programs --------------------------------------------------------------------


@bp.route("/")
@roles_required(Role.ADMIN)
def index() -> str:
    """Every program with its status, period and number of eligible partners."""
    programs = db.session.scalars(
        select(Program).order_by(Program.starts_on.desc(), Program.name)
    ).all()

    return render_template(
        "programs/admin/index.html",
        programs=programs,
        counts=eligibility.eligible_counts(),
        today=today(),
    )


@bp.post("/recompute")
@roles_required(Role.ADMIN)
def recompute() -> Any:
    """Start an eligibility run now, or point at the one already active."""
    run, created = start_eligibility_run(current_user)

    # Without a worker the run has already finished by now.
    if created and run.status == RunStatus.SUCCEEDED:
        flash(f"Eligibility run {run.id} finished.", "success")
    elif created and run.status == RunStatus.FAILED:
        flash(failed_run(run), "error")
    elif created:
        flash(
            f"Eligibility run {run.id} started; its progress shows on the runs page.",
            "info",
        )
    else:
        flash(f"Run {run.id} was already active, so no other run was started.", "info")
    return redirect(url_for("programs_admin.index"))


@bp.route("/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def new_program() -> Any:
    """Create a program as a draft."""
    form = ProgramForm()
    if request.method == "GET":
        form.kind.data = ProgramKind.TRAINING.value
    if not form.validate_on_submit():
        return render_program_form(form, None)

    try:
        program = editing.create_program(form.program_input(), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_program_form(form, None)

    flash(f"Program {program.name} was created as a draft.", "success")
    return to_program(program.id)


@bp.route("/<int:program_id>/edit", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_program(program_id: int) -> Any:
    """Change a program's name, kind, description, dates and KPI."""
    program = program_or_404(program_id)
    form = ProgramForm()
    if request.method == "GET":
        form.fill_from(program)
    if not form.validate_on_submit():
        return render_program_form(form, program)

    try:
        needs_run = editing.update_program(
            program, form.program_input(), form.version.data or "", current_user
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_program_form(form, program)

    flash(f"Program {program.name} was saved.", "success")
    if needs_run:
        recompute_eligibility()
    return to_program(program.id)


def render_program_form(form: ProgramForm, program: Program | None) -> tuple[str, int]:
    page = render_template(
        "programs/admin/program_form.html", form=form, program=program
    )
    return page, status_code()


@bp.get("/kpi-fields")
@roles_required(Role.ADMIN)
def kpi_fields() -> str:
    """The KPI fields, shown for incentive programs; htmx asks when the kind changes."""
    form = ProgramForm(formdata=request.args, meta={"csrf": False})

    return render_template("programs/admin/_kpi_fields.html", form=form)


@bp.route("/<int:program_id>")
@roles_required(Role.ADMIN)
def program(program_id: int) -> str:
    """A program's details, rules, steps, tiers and eligible partners."""
    return render_program(program_or_404(program_id))[0]


@dataclass(frozen=True)
class RuleRow:
    rule: ProgramRule
    words: str
    missing: list[str]


def render_program(
    program: Program,
    step_form: StepForm | None = None,
    status_error: str | None = None,
    steps_error: str | None = None,
    rules_error: str | None = None,
) -> tuple[str, int]:
    """The program page; a refused action or step shows its message in place."""
    if step_form is None:
        fresh = StepForm(formdata=None)
        fresh.version.data = str(program.version)
    rules = [
        RuleRow(
            rule,
            " and ".join(
                targeting.describe_target(c.field, c.operator, c.value)
                for c in rule.conditions
            ),
            targeting.missing_references(rule.conditions),
        )
        for rule in program.rules
    ]
    page = render_template(
        "programs/admin/program.html",
        program=program,
        rules=rules,
        partners=eligible_partners(program),
        problems=editing.activation_problems(program),
        step_form=step_form or fresh,
        status_error=status_error,
        steps_error=steps_error,
        rules_error=rules_error,
        today=today(),
    )
    refused = step_form is not None or status_error or steps_error or rules_error
    return page, 400 if refused else 200


def eligible_partners(program: Program) -> list[tuple[str, list[str]]]:
    """(organisation name, reasons) of the program's partners, by name."""
    reasons = eligibility.eligible_organisations(program.id)
    if not reasons:
        return []
    names = dict(
        db.session.execute(
            select(PartnerOrganisation.id, PartnerOrganisation.name).where(
                PartnerOrganisation.id.in_(reasons)
            )
        ).all()
    )
    return sorted(
        ((names.get(org_id, "?"), lines) for org_id, lines in reasons.items()),
        key=lambda item: item[0].lower(),
    )


@bp.post("/<int:program_id>/activate")
@roles_required(Role.ADMIN)
def activate_program(program_id: int) -> Any:
    """Activate the program, unless something it needs is missing."""
    return _change_status(
        program_id, editing.activate_program, "is active", "is already active"
    )


@bp.post("/<int:program_id>/archive")
@roles_required(Role.ADMIN)
def archive_program(program_id: int) -> Any:
    """Archive the program; who took part stays on record."""
    return _change_status(
        program_id, editing.archive_program, "was archived", "is already archived"
    )


@bp.post("/<int:program_id>/draft")
@roles_required(Role.ADMIN)
def reopen_program(program_id: int) -> Any:
    """Put the program back to draft, where partners no longer see it."""
    return _change_status(
        program_id, editing.reopen_program, "is a draft again", "is already a draft"
    )


def _change_status(
    program_id: int,
    change: Callable[[Program, str, User], bool],
    outcome: str,
    already: str,
) -> Any:
    program = program_or_404(program_id)

    try:
        changed = change(program, seen_version(), current_user)
    except EditRejected as rejected:
        return render_program(program, status_error=str(rejected))

    if not changed:
        # Nothing moved, so no run: a second click, or another tab did it.
        flash(f"Program {program.name} {already}; nothing changed.", "info")
        return to_program(program.id)
    flash(f"Program {program.name} {outcome}.", "success")
    recompute_eligibility()
    return to_program(program.id)


# Targeting rules -------------------------------------------------------------


@bp.route("/<int:program_id>/rules/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def new_rule(program_id: int) -> Any:
    """Add a targeting rule with its conditions to a program."""
    program = program_or_404(program_id)
    form = RuleForm()
    rows = condition_rows(request.form) if request.method == "POST" else [NEW_ROW]
    if request.method == "GET":
        form.version.data = str(program.version)
    if not form.validate_on_submit():
        return render_rule_form(form, program, None, rows)

    try:
        rule = editing.add_rule(
            program, rule_input(form, rows), form.version.data or "", current_user
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_rule_form(form, program, None, rows, rejected)

    flash(f"Rule {rule.name} was added to {program.name}.", "success")
    recompute_eligibility()
    return to_program(program.id, "rules")


@bp.route("/<int:program_id>/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_rule(program_id: int, rule_id: int) -> Any:
    """Change a targeting rule's name and conditions."""
    program = program_or_404(program_id)
    rule = rule_or_404(program, rule_id)
    form = RuleForm(obj=rule) if request.method == "GET" else RuleForm()
    if request.method == "POST":
        rows = condition_rows(request.form)
    else:
        rows = editing.stored_rows(rule)
        form.version.data = str(program.version)
    if not form.validate_on_submit():
        return render_rule_form(form, program, rule, rows)

    try:
        editing.update_rule(
            rule, rule_input(form, rows), form.version.data or "", current_user
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_rule_form(form, program, rule, rows, rejected)

    flash(f"Rule {rule.name} was saved.", "success")
    recompute_eligibility()
    return to_program(program.id, "rules")


@bp.route("/<int:program_id>/rules/<int:rule_id>/delete", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def delete_rule(program_id: int, rule_id: int) -> Any:
    """Ask to confirm, then delete the targeting rule."""
    program = program_or_404(program_id)
    rule = rule_or_404(program, rule_id)
    form = ConfirmForm()
    if request.method == "GET":
        form.version.data = str(program.version)
    if not form.validate_on_submit():
        return render_delete_rule(form, program, rule)

    name = rule.name
    try:
        editing.delete_rule(rule, form.version.data or "", current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_delete_rule(form, program, rule_or_404(program, rule_id))

    flash(f"Rule {name} was deleted from {program.name}.", "success")
    recompute_eligibility()
    return to_program(program.id, "rules")


def render_delete_rule(
    form: ConfirmForm, program: Program, rule: ProgramRule
) -> tuple[str, int]:
    page = render_template(
        "programs/admin/confirm_delete_rule.html",
        form=form,
        program=program,
        rule=rule,
        words=rule_words(rule),
    )
    return page, status_code()


def rule_words(rule: ProgramRule) -> str:
    return " and ".join(
        targeting.describe_target(c.field, c.operator, c.value) for c in rule.conditions
    )


def render_rule_form(
    form: RuleForm,
    program: Program,
    rule: ProgramRule | None,
    rows: list[ConditionInput],
    rejected: EditRejected | None = None,
) -> tuple[str, int]:
    page = render_template(
        "programs/admin/rule_form.html",
        form=form,
        program=program,
        rule=rule,
        rows=rows,
        row_errors={
            index: errors.get("condition")
            for index, errors in (rejected.row_errors if rejected else {}).items()
        },
        conditions_error=rejected.errors.get("conditions") if rejected else None,
        # A fresh form has one empty row: no preview until something is typed.
        preview=editing.preview_rule(rows, form.name.data or "")
        if rule is not None or request.method == "POST"
        else None,
        **row_choices(),
    )
    return page, status_code()


def row_choices() -> dict[str, Any]:
    return {
        "field_choices": targeting.field_choices(),
        "operator_choices": targeting.operator_choices,
        "value_hint": targeting.value_hint,
        "row_endpoint": "programs_admin.condition_row",
    }


@bp.get("/rules/condition-row")
@roles_required(Role.ADMIN)
def condition_row() -> Response:
    """One condition row; htmx asks for it to add a row or when a field changes.

    The operator is kept when the new field allows it, else the field's first.
    The preview hears of the change through the ``conditions-changed`` event.
    """
    field = request.args.get("field", NEW_ROW.field)
    if field not in dict(targeting.field_choices()):
        field = NEW_ROW.field
    operators = [value for value, _label in targeting.operator_choices(field)]
    operator = request.args.get("operator", "")
    row = ConditionInput(
        field,
        operator if operator in operators else operators[0],
        request.args.get("value", ""),
    )

    response = Response(
        render_template(
            "rules/_condition_row.html", row=row, error=None, **row_choices()
        )
    )
    # After the swap, so that the preview reads the form with this row in it.
    response.headers["HX-Trigger-After-Settle"] = CONDITIONS_CHANGED
    return response


@bp.post("/rules/preview")
@roles_required(Role.ADMIN)
def preview_rule() -> str:
    """Who the rule being edited would target now; nothing is saved."""
    preview = editing.preview_rule(
        condition_rows(request.form), request.form.get("name", "")
    )

    return render_template("programs/admin/_preview.html", preview=preview)


# Steps -----------------------------------------------------------------------


@bp.post("/<int:program_id>/steps")
@roles_required(Role.ADMIN)
def add_step(program_id: int) -> Any:
    """Add a module, a task or the first sale as the program's last step."""
    program = program_or_404(program_id)
    form = StepForm()
    if not form.validate_on_submit():
        return render_program(program, step_form=form)

    try:
        step = editing.add_step(
            program, form.step_input(), form.version.data or "", current_user
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_program(program, step_form=form)

    flash(f"Step {step.label} was added.", "success")
    # Required steps decide onboarding statuses, which rules can test.
    recompute_eligibility()
    return to_program(program.id, "steps")


@bp.post("/<int:program_id>/steps/<int:step_id>/remove")
@roles_required(Role.ADMIN)
def remove_step(program_id: int, step_id: int) -> Any:
    """Remove a step from the program."""
    program = program_or_404(program_id)
    step = step_or_404(program, step_id)
    label = step.label

    try:
        editing.remove_step(step, seen_version(), current_user)
    except EditRejected as rejected:
        return render_program(program, steps_error=str(rejected))

    flash(f"Step {label} was removed.", "success")
    recompute_eligibility()
    return to_program(program.id, "steps")


@bp.post("/<int:program_id>/steps/<int:step_id>/<any(up, down):direction>")
@roles_required(Role.ADMIN)
def move_step(program_id: int, step_id: int, direction: str) -> Any:
    """Move a step one place up or down."""
    program = program_or_404(program_id)
    step = step_or_404(program, step_id)
    offset = -1 if direction == "up" else 1

    try:
        moved = editing.move_step(step, offset, seen_version(), current_user)
    except EditRejected as rejected:
        return render_program(program, steps_error=str(rejected))

    if moved:
        recompute_eligibility()
    return to_program(program.id, "steps")


@bp.post("/<int:program_id>/steps/<int:step_id>/required")
@roles_required(Role.ADMIN)
def set_step_required(program_id: int, step_id: int) -> Any:
    """Make a step required or optional."""
    program = program_or_404(program_id)
    step = step_or_404(program, step_id)
    required = request.form.get("required") == "1"

    try:
        editing.set_step_required(step, required, seen_version(), current_user)
    except EditRejected as rejected:
        return render_program(program, steps_error=str(rejected))

    flash(f"Step {step.label} is {'required' if required else 'optional'}.", "success")
    recompute_eligibility()
    return to_program(program.id, "steps")


# Tiers -----------------------------------------------------------------------


@bp.route("/<int:program_id>/tiers", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_tiers(program_id: int) -> Any:
    """Edit an incentive program's ladder of tiers, lowest first."""
    program = program_or_404(program_id)
    if program.kind != ProgramKind.INCENTIVE:
        abort(404)
    form = LadderForm()
    if request.method == "POST":
        rows = tier_rows(request.form)
    else:
        separator = chosen_separator()
        form.decimal_separator.data = separator
        form.version.data = str(program.version)
        rows = [*stored_tier_rows(program.tiers, separator), editing.TierInput()]
    if not form.validate_on_submit():
        return render_tiers(form, program, rows)

    try:
        editing.replace_tiers(
            program, ladder_input(form, rows), form.version.data or "", current_user
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_tiers(form, program, rows, rejected)

    session[SEPARATOR_KEY] = form.decimal_separator.data
    flash(f"The tiers of {program.name} were saved.", "success")
    # Standings, and rules testing a partner's tier, follow the new ladder.
    recompute_eligibility()
    return to_program(program.id, "tiers")


def chosen_separator() -> str:
    """The separator asked for, else the one the admin last used, else point."""
    for candidate in (request.args.get("separator"), session.get(SEPARATOR_KEY)):
        if candidate in editing.SEPARATORS:
            return str(candidate)
    return "point"


def render_tiers(
    form: LadderForm,
    program: Program,
    rows: list[editing.TierInput],
    rejected: EditRejected | None = None,
) -> tuple[str, int]:
    page = render_template(
        "programs/admin/tiers.html",
        form=form,
        program=program,
        rows=rows,
        row_errors=rejected.row_errors if rejected else {},
        tiers_error=rejected.errors.get("tiers") if rejected else None,
        version_error=rejected.errors.get("version") if rejected else None,
    )
    return page, status_code()


@bp.get("/tiers/row")
@roles_required(Role.ADMIN)
def tier_row() -> str:
    """An empty tier row; htmx appends it to the ladder."""
    return render_template(
        "programs/admin/_tier_row.html", row=editing.TierInput(), errors={}
    )


@bp.post("/tiers/rows")
@roles_required(Role.ADMIN)
def tier_rows_in_separator() -> str:
    """The ladder's rows rewritten for the separator just chosen; nothing is saved.

    htmx asks when the separator changes, so that the numbers on the page (the
    stored ones and those typed) follow the choice; it is remembered too.
    """
    typed_in = request.form.get("rows_separator", "point")
    wanted = request.form.get("decimal_separator", "point")
    rows = editing.rows_in_separator(tier_rows(request.form), typed_in, wanted)
    if wanted in editing.SEPARATORS:
        session[SEPARATOR_KEY] = wanted

    return render_template(
        "programs/admin/_tier_rows.html",
        rows=rows,
        row_errors={},
        rows_separator=wanted if wanted in editing.SEPARATORS else typed_in,
        oob=True,
    )


# Training modules ------------------------------------------------------------


@bp.route("/modules")
@roles_required(Role.ADMIN)
def modules() -> str:
    """Every training module, with how many programs use it."""
    uses = dict(
        db.session.execute(
            select(ProgramStep.module_id, func.count(ProgramStep.program_id.distinct()))
            .where(ProgramStep.module_id.is_not(None))
            .group_by(ProgramStep.module_id)
        ).all()
    )
    rows = db.session.scalars(
        select(TrainingModule).order_by(TrainingModule.title)
    ).all()

    return render_template("programs/admin/modules.html", modules=rows, uses=uses)


@bp.route("/modules/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def new_module() -> Any:
    """Create a training module."""
    form = ModuleForm()
    if not form.validate_on_submit():
        return render_module_form(form, None)

    try:
        module = editing.create_module(
            form.module_input(), form.file.data, current_user
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_module_form(form, None)

    flash(f"Module {module.title} was created.", "success")
    return redirect(url_for("programs_admin.modules"))


@bp.route("/modules/<int:module_id>/edit", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_module(module_id: int) -> Any:
    """Change a training module; a new file replaces the attached one."""
    module = module_or_404(module_id)
    form = ModuleForm()
    if request.method == "GET":
        form.fill_from(module)
    if not form.validate_on_submit():
        return render_module_form(form, module)

    try:
        editing.update_module(
            module,
            form.module_input(),
            form.file.data,
            form.fingerprint.data or "",
            current_user,
        )
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_module_form(form, module)

    flash(f"Module {module.title} was saved.", "success")
    return redirect(url_for("programs_admin.modules"))


@bp.get("/modules/<int:module_id>/file")
@roles_required(Role.ADMIN)
def module_file(module_id: int) -> Any:
    """Download the module's attached file, as partners get it."""
    module = module_or_404(module_id)
    if not module.file_stored_as:
        abort(404)

    try:
        path = training.module_file_path(module.file_stored_as)
    except training.ModuleFileError:
        abort(404)
    if not path.is_file():
        logger.warning("File %s of module %s is missing", path.name, module.id)
        abort(404)

    return send_file(
        path,
        as_attachment=True,
        download_name=editing.attachment_name(module.file_name),
    )


def render_module_form(
    form: ModuleForm, module: TrainingModule | None
) -> tuple[str, int]:
    page = render_template(
        "programs/admin/module_form.html",
        form=form,
        module=module,
        body_html=training.render_markdown(form.body.data or ""),
    )
    return page, status_code()


@bp.post("/modules/preview")
@roles_required(Role.ADMIN)
def preview_markdown() -> str:
    """The module text as partners will see it; htmx refreshes it while typing."""
    body = request.form.get("body", "")
    too_long = len(body) > editing.LONG_TEXT_MAX

    return render_template(
        "programs/admin/_markdown_preview.html",
        body_html=None if too_long else training.render_markdown(body),
        too_long=too_long,
    )
