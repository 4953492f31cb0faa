"""Partner pages: My programs, their modules and quizzes, and the onboarding bar.

A partner sees the programs its organisation is eligible for. A program it is
not in, a module of such a program or a step of another program answers 404,
the same as one that does not exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from portal.auth import roles_required
from portal.extensions import db
from portal.models import Role, User
from programs import jobs, training
from programs.editing import attachment_name
from programs.models import (
    KpiDirection,
    ModuleCompletion,
    Program,
    ProgramKind,
    ProgramStatus,
    ProgramStep,
    StepKind,
    Tier,
)
from programs.training import (
    ModuleFileError,
    ProgramProgress,
    QuizError,
    StepProgress,
    today_utc,
)

logger = logging.getLogger(__name__)

bp = Blueprint("my_programs", __name__, url_prefix="/my/programs")

RUNNING, UPCOMING, PAST = "running", "upcoming", "past"
KIND_LABELS = {
    ProgramKind.ONBOARDING.value: "Onboarding",
    ProgramKind.TRAINING.value: "Training",
    ProgramKind.INCENTIVE.value: "Incentive",
    ProgramKind.CAMPAIGN.value: "Campaign",
}


@bp.context_processor
def page_helpers() -> dict[str, Any]:
    return {"long_date": long_date, "kind_label": KIND_LABELS.get}


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


# What a partner sees of a program --------------------------------------------


@dataclass(frozen=True)
class IncentiveStanding:
    """The organisation's KPI, tier and what it takes to reach the next tier."""

    value_text: str
    # Each tier of the ladder (lowest first) with its threshold in words.
    ladder: list[tuple[Tier, str]]
    tier: Tier | None
    next_tier: Tier | None
    next_step: str | None
    # Toward the next tier, for higher-is-better KPIs; None where a bar says
    # nothing useful (lower-is-better, or no tier left).
    percent: int | None


@dataclass(frozen=True)
class ProgramCard:
    program: Program
    phase: str
    reasons: list[str]
    progress: ProgramProgress
    standing: IncentiveStanding | None

    @property
    def running(self) -> bool:
        return self.phase == RUNNING


def phase_of(program: Program, today: date) -> str:
    if program.has_ended_by(today):
        return PAST
    if program.starts_on > today:
        return UPCOMING
    return RUNNING


def program_card(program: Program, reasons: dict[int, list[str]]) -> ProgramCard:
    today = today_utc()
    return ProgramCard(
        program=program,
        phase=phase_of(program, today),
        reasons=reasons.get(program.id, []),
        progress=training.program_progress(program, current_user),
        standing=incentive_standing(program, current_user.organisation_id, today),
    )


def incentive_standing(
    program: Program, organisation_id: int, today: date
) -> IncentiveStanding | None:
    if program.kind != ProgramKind.INCENTIVE or not program.kpi:
        return None
    from programs.tiers import format_kpi, kpi_values, next_step, tier_for

    value = kpi_values(program, [organisation_id]).get(organisation_id)
    tiers = list(program.tiers)
    tier = tier_for(value, tiers, program.kpi_direction)
    following = 0 if tier is None else tiers.index(tier) + 1
    next_tier = tiers[following] if following < len(tiers) else None

    return IncentiveStanding(
        value_text=format_kpi(program.kpi, value, program.kpi_direction),
        ladder=[(t, format_kpi(program.kpi, t.threshold)) for t in tiers],
        tier=tier,
        next_tier=next_tier,
        next_step=next_step(program, value, today),
        percent=_percent_toward(value, next_tier, program.kpi_direction),
    )


def _percent_toward(
    value: Decimal | None, target: Tier | None, direction: str
) -> int | None:
    if target is None or direction != KpiDirection.HIGHER_IS_BETTER:
        return None
    if target.threshold <= 0:
        return 100
    share = (value or Decimal(0)) * 100 / target.threshold
    return int(max(Decimal(0), min(Decimal(100), share)))


def reasons_for_user() -> dict[int, list[str]]:
    from programs.eligibility import reasons_for

    return reasons_for(current_user.organisation_id)


# Lookups that answer 404 -----------------------------------------------------


def visible_programs() -> list[Program]:
    """Active programs the user's organisation is eligible for.

    Drafts and archived programs are never shown, even to partners once in them.
    """
    from programs.eligibility import eligible_program_ids

    if current_user.organisation_id is None:
        return []
    ids = eligible_program_ids(current_user.organisation_id)
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(Program).where(
                Program.id.in_(ids), Program.status == ProgramStatus.ACTIVE.value
            )
        )
    )


def program_or_404(program_id: int) -> Program:
    from programs.eligibility import eligible_program_ids

    program = db.session.get(Program, program_id)
    organisation_id = current_user.organisation_id
    if (
        program is None
        or organisation_id is None
        or program.status != ProgramStatus.ACTIVE
        or program.id not in eligible_program_ids(organisation_id)
    ):
        abort(404)
    return program


def module_step_or_404(program: Program, module_id: int) -> ProgramStep:
    for step in program.steps:
        if step.kind == StepKind.MODULE and step.module_id == module_id:
            return step
    abort(404)


def step_or_404(program: Program, step_id: int) -> ProgramStep:
    step = db.session.get(ProgramStep, step_id)
    if step is None or step.program_id != program.id:
        abort(404)
    return step


def require_running(program: Program) -> None:
    """Steps of a program that has not started or has ended cannot change."""
    today = today_utc()
    if program.starts_on > today:
        abort(
            400,
            f"{program.name} starts on {long_date(program.starts_on)}; its steps "
            "can be done from then.",
        )
    if program.has_ended_by(today):
        abort(
            400,
            f"{program.name} ended on {long_date(program.ends_on)}; its steps can "
            "no longer be changed.",
        )


def signed_in_user() -> User:
    """The user record itself: what is kept beyond the request (a run's starter)
    must not be the request-bound proxy."""
    return current_user._get_current_object()


def note_progress(user: User) -> bool:
    """After a partner's action: refresh its onboarding status; True when changed.

    A programs run follows when it can matter: targeting rules can test the
    onboarding status, and tiers can count completed modules.
    """
    if user.organisation_id is None:
        return False
    changed = training.refresh_onboarding_status(user.organisation_id)
    jobs.after_partner_progress(user, changed)
    return changed


def is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


# Pages -----------------------------------------------------------------------


@bp.route("")
@roles_required(Role.PARTNER)
def index() -> str:
    """The organisation's programs: running, then starting soon, then past."""
    reasons = reasons_for_user()
    cards = [program_card(program, reasons) for program in visible_programs()]

    running = sorted(
        (c for c in cards if c.phase == RUNNING), key=lambda c: c.program.ends_on
    )
    upcoming = sorted(
        (c for c in cards if c.phase == UPCOMING), key=lambda c: c.program.starts_on
    )
    past = sorted(
        (c for c in cards if c.phase == PAST),
        key=lambda c: c.program.ends_on,
        reverse=True,
    )
    return render_template(
        "programs/partner/index.html", current=running + upcoming, past=past
    )


@bp.route("/<int:program_id>")
@roles_required(Role.PARTNER)
def program(program_id: int) -> str:
    """One program in full: why the partner is in it, its steps and tiers."""
    found = program_or_404(program_id)

    card = program_card(found, reasons_for_user())

    return render_template("programs/partner/program.html", card=card)


@bp.route("/<int:program_id>/modules/<int:module_id>")
@roles_required(Role.PARTNER)
def module(program_id: int, module_id: int) -> str:
    """A module of the program, to read and mark as done or pass its quiz."""
    found = program_or_404(program_id)
    step = module_step_or_404(found, module_id)

    return render_template(
        "programs/partner/module.html", **module_context(found, step)
    )


@bp.post("/<int:program_id>/modules/<int:module_id>/done")
@roles_required(Role.PARTNER)
def mark_module_done(program_id: int, module_id: int) -> Any:
    """Mark a module without a quiz as done by the user."""
    found = program_or_404(program_id)
    step = module_step_or_404(found, module_id)
    require_running(found)
    assert step.module is not None
    if step.module.has_quiz:
        abort(400, "This module is completed by passing its quiz.")

    training.complete_module(signed_in_user(), step.module)
    note_progress(signed_in_user())

    if is_htmx():
        context = module_context(found, step)
        return render_template(
            "programs/partner/_module_completion.html", **context
        ) + render_template(
            "programs/partner/_progress.html", card=context["card"], oob=True
        )
    flash(f"You completed {step.module.title}.", "success")
    return redirect(url_for(".module", program_id=found.id, module_id=module_id))


@bp.post("/<int:program_id>/modules/<int:module_id>/quiz")
@roles_required(Role.PARTNER)
def take_quiz(program_id: int, module_id: int) -> Any:
    """Grade the user's answers; a pass completes the module."""
    found = program_or_404(program_id)
    step = module_step_or_404(found, module_id)
    require_running(found)
    assert step.module is not None
    if not step.module.has_quiz:
        abort(404)

    try:
        answers = training.answers_from_form(step.module.quiz or [], request.form)
    except QuizError as error:
        context = module_context(found, step)
        context.update(quiz_errors=error.by_question, chosen=request.form)
        return render_template("programs/partner/module.html", **context), 400

    completed_before = my_completion(step.module.id) is not None
    result = training.submit_quiz(signed_in_user(), step.module, answers)
    if result.passed:
        note_progress(signed_in_user())
        flash(
            f"You scored {result.score_percent}% and passed: "
            f"{step.module.title} is complete.",
            "success",
        )
    elif completed_before:
        # A retake below the pass mark does not undo an earlier pass.
        flash(
            f"You scored {result.score_percent}% this time. You completed "
            f"{step.module.title} earlier, and it stays complete.",
            "info",
        )
    else:
        flash(
            f"You scored {result.score_percent}%; the pass mark is "
            f"{result.pass_mark_percent}%. Read the module again and retake the quiz.",
            "error",
        )
    return redirect(url_for(".module", program_id=found.id, module_id=module_id))


@bp.get("/<int:program_id>/modules/<int:module_id>/file")
@roles_required(Role.PARTNER)
def module_file(program_id: int, module_id: int) -> Any:
    """Download the module's attached file under its original name."""
    found = program_or_404(program_id)
    step = module_step_or_404(found, module_id)
    module = step.module
    if module is None or not module.file_stored_as:
        abort(404)

    try:
        path = training.module_file_path(module.file_stored_as)
    except ModuleFileError:
        abort(404)
    if not path.is_file():
        logger.warning("File %s of module %s is missing", path.name, module.id)
        abort(404)

    return send_file(
        path, as_attachment=True, download_name=attachment_name(module.file_name)
    )


@bp.post("/<int:program_id>/steps/<int:step_id>/done")
@roles_required(Role.PARTNER)
def tick_step(program_id: int, step_id: int) -> Any:
    """Tick a task step off for the whole organisation."""
    found = program_or_404(program_id)
    step = step_or_404(found, step_id)
    require_running(found)
    if step.kind != StepKind.TASK:
        abort(400, "Only tasks are ticked off; modules and sales complete themselves.")

    training.complete_task_step(signed_in_user(), step)
    note_progress(signed_in_user())

    if is_htmx():
        card = program_card(found, reasons_for_user())
        row = next(row for row in card.progress.steps if row.step.id == step.id)
        return render_template(
            "programs/partner/_step.html", card=card, row=row
        ) + render_template("programs/partner/_progress.html", card=card, oob=True)
    flash(f"“{step.label}” is done.", "success")
    return redirect(url_for(".program", program_id=found.id))


@bp.get("/onboarding-bar")
@roles_required(Role.PARTNER)
def onboarding_bar() -> str:
    """The onboarding progress bar, for htmx to place on the partner's pages."""
    organisation_id = current_user.organisation_id
    if organisation_id is None:
        return ""

    progress = training.onboarding_progress(organisation_id)
    if not progress.programs:
        return ""
    return render_template("programs/partner/_onboarding_bar.html", progress=progress)


def module_context(program: Program, step: ProgramStep) -> dict[str, Any]:
    """What the module page and its fragments show."""
    module = step.module
    assert module is not None
    card = program_card(program, reasons_for_user())
    row: StepProgress = next(r for r in card.progress.steps if r.step.id == step.id)
    return {
        "card": card,
        "row": row,
        "module": module,
        "body_html": training.render_markdown(module.body),
        "link_url": module.link_url if training.is_web_link(module.link_url) else None,
        "completion": my_completion(module.id),
        "attempt": training.latest_attempt(current_user, module),
        "pass_mark": training.pass_mark(module),
        "quiz_errors": {},
        "chosen": {},
    }


def my_completion(module_id: int) -> ModuleCompletion | None:
    """The signed-in user's completion of the module, if any."""
    return db.session.scalar(
        select(ModuleCompletion).where(
            ModuleCompletion.user_id == current_user.id,
            ModuleCompletion.module_id == module_id,
        )
    )
