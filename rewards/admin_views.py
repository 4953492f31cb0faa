"""Admin pages of rewards: balances per partner, the recompute, reward plans
and their multipliers, early approval, manual adjustments and payouts.

A saved plan changes what earns points, so it asks for a full rewards run;
approvals, adjustments and payouts only move or add ledger entries and need
none.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from portal.auth import roles_required
from portal.extensions import db
from portal.models import PartnerOrganisation, Role
from portal.runs import Run, RunStatus
from programs.editing import EditRejected
from programs.models import Program, ProgramKind
from rewards import jobs, payouts, plans
from rewards.admin_forms import (
    CAP_PERIOD_LABELS,
    DIMENSION_LABELS,
    AdjustmentForm,
    ApprovalForm,
    PayoutForm,
    PlanForm,
    organisation_choices,
    program_choices,
    rule_rows,
)
from rewards.csv_safe import csv_lines
from rewards.models import Payout, RewardPlan
from rewards.plans import RuleInput
from territory_rules.models import Territory

logger = logging.getLogger(__name__)

bp = Blueprint("rewards_admin", __name__, url_prefix="/admin/rewards")

PAYOUTS_PER_PAGE = 25
ENTRIES_PER_PAGE = 100
MAX_PAGE = 10**6


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {
        "points_text": points_text,
        "number_text": plans.number_text,
        "currency": current_app.config["CURRENCY_SYMBOL"],
        "dimension_labels": DIMENSION_LABELS,
        "cap_period_labels": CAP_PERIOD_LABELS,
        "has_endpoint": lambda endpoint: endpoint in current_app.view_functions,
    }


def points_text(value: Decimal | int | None) -> str:
    """Points with thousands separators and two decimals at most (1,234.50)."""
    number = Decimal(value or 0)
    if number == number.to_integral_value():
        return f"{number:,.0f}"
    return f"{number:,.2f}"


def status_code() -> int:
    return 400 if request.method == "POST" else 200


def page_number() -> int:
    page = request.args.get("page", 1, type=int)
    return max(1, min(page, MAX_PAGE))


def wants_fragment() -> bool:
    return bool(request.headers.get("HX-Request")) and not request.headers.get(
        "HX-History-Restore-Request"
    )


def show_errors(form: Any, rejected: EditRejected) -> None:
    for name, message in rejected.errors.items():
        if name in form:
            form[name].errors = [message]


def incentive_program_or_404(program_id: int) -> Program:
    program = db.session.get(Program, program_id)
    if program is None or program.kind != ProgramKind.INCENTIVE:
        abort(404)
    return program


def to_index() -> Response:
    return redirect(url_for("rewards_admin.index"))  # type: ignore[return-value]


# Overview --------------------------------------------------------------------


@bp.route("/")
@roles_required(Role.ADMIN)
def index() -> str:
    """Points per partner by status, the latest rewards run and the reward plans."""
    balances = payouts.balances()

    return render_template(
        "rewards/admin/index.html",
        balances=balances,
        totals=balance_totals(balances),
        latest_run=latest_rewards_run(),
        programs=incentive_programs(),
        plans=stored_plans(),
        approval_form=approval_form(),
    )


def balance_totals(balances: list[payouts.Balance]) -> dict[str, Decimal]:
    return {
        status: sum((getattr(b, status) for b in balances), Decimal(0))
        for status in ("pending", "available", "paid")
    }


def latest_rewards_run() -> Run | None:
    return db.session.scalars(
        select(Run).where(Run.kind == jobs.REWARDS_KIND).order_by(Run.id.desc())
    ).first()


def incentive_programs() -> list[Program]:
    return list(
        db.session.scalars(
            select(Program)
            .where(Program.kind == ProgramKind.INCENTIVE.value)
            .order_by(Program.name)
        )
    )


def stored_plans() -> dict[int, RewardPlan]:
    return {plan.program_id: plan for plan in db.session.scalars(select(RewardPlan))}


def approval_form() -> ApprovalForm:
    form = ApprovalForm()
    form.program_id.choices = program_choices("All programs")
    return form


@bp.post("/recompute")
@roles_required(Role.ADMIN)
def recompute() -> Response:
    """Start a full rewards run now, or point at the one already active."""
    run, created = jobs.start_rewards_run(current_user, full=True)

    if not created:
        flash(
            f"Rewards run {run.id} was already {run.status}, so no other run was "
            "started.",
            "info",
        )
    elif run.status == RunStatus.FAILED:
        flash(f"Rewards run {run.id} failed: {run.error}", "error")
    else:
        flash(
            f"Rewards run {run.id} started; its progress shows on the runs page.",
            "info",
        )
    return to_index()


# Reward plans ----------------------------------------------------------------


@bp.route("/programs/<int:program_id>", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_plan(program_id: int) -> Any:
    """Edit an incentive program's reward plan and its multipliers."""
    program = incentive_program_or_404(program_id)
    form = PlanForm()
    if request.method == "POST":
        rows = rule_rows(request.form)
    else:
        stored = plans.stored_input(program)
        form.fill_from(stored)
        rows = [*stored.rules, RuleInput()]
    if not form.validate_on_submit():
        return render_plan(form, program, rows)

    try:
        plans.save_plan(program, form.plan_input(rows), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_plan(form, program, rows, rejected)

    # Through the module, so that tests can record the request instead.
    jobs.request_rewards_run(current_user, full=True)
    flash(
        f"The reward plan of {program.name} was saved. Points are being "
        "recomputed; the run shows on the runs page.",
        "success",
    )
    for warning in plans.unmatched_rules(program):
        flash(warning, "warning")
    return redirect(url_for("rewards_admin.edit_plan", program_id=program.id))


def render_plan(
    form: PlanForm,
    program: Program,
    rows: list[RuleInput],
    rejected: EditRejected | None = None,
) -> tuple[str, int]:
    errors = rejected.errors if rejected else {}
    page = render_template(
        "rewards/admin/plan.html",
        form=form,
        program=program,
        rows=rows,
        row_errors=rejected.row_errors if rejected else {},
        plan_error=errors.get("plan") or errors.get("program"),
        territory_names=territory_names(),
    )
    return page, status_code()


def territory_names() -> list[str]:
    return list(db.session.scalars(select(Territory.name).order_by(Territory.name)))


@bp.get("/programs/rule-row")
@roles_required(Role.ADMIN)
def rule_row() -> str:
    """An empty multiplier row; htmx appends it to the rules table."""
    return render_template("rewards/admin/_rule_row.html", row=RuleInput(), errors={})


# Early approval --------------------------------------------------------------


@bp.post("/approve")
@roles_required(Role.ADMIN)
def approve() -> Response:
    """Approve an organisation's pending points now, in one program or all."""
    form = ApprovalForm()
    organisation = record_or_404(PartnerOrganisation, form.organisation_id.data)
    program = None
    if form.program_id.data:
        program = record_or_404(Program, form.program_id.data)

    approved = payouts.approve_pending(organisation, program, current_user)

    where = f" in {program.name}" if program else ""
    if approved:
        noun = "entry" if approved == 1 else "entries"
        flash(
            f"{approved:,} pending {noun} of {organisation.name}{where} "
            f"{'was' if approved == 1 else 'were'} approved.",
            "success",
        )
    else:
        flash(f"{organisation.name} had no pending points{where} to approve.", "info")
    return to_index()


def record_or_404(model: Any, raw: Any) -> Any:
    """The record whose id was posted as ``raw``; 404 when there is none."""
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        abort(404)
    record = db.session.get(model, int(text))
    if record is None:
        abort(404)
    return record


# Manual adjustments ----------------------------------------------------------


@bp.route("/adjustments/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def new_adjustment() -> Any:
    """Add or take away points by hand, with a reason partners can read."""
    form = AdjustmentForm()
    form.organisation_id.choices = organisation_choices()
    form.program_id.choices = program_choices("No program")
    if request.method == "GET" and request.args.get("organisation"):
        form.organisation_id.data = request.args["organisation"]
    if not form.validate_on_submit():
        return render_adjustment(form)

    try:
        entry = payouts.add_adjustment(form.adjustment_input(), current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_adjustment(form)

    flash(
        f"{points_text(entry.points)} points were recorded for "
        f"{entry.organisation.name} as approved.",
        "success",
    )
    return to_index()


def render_adjustment(form: AdjustmentForm) -> tuple[str, int]:
    page = render_template("rewards/admin/adjustment_form.html", form=form)
    return page, status_code()


# Payouts ---------------------------------------------------------------------


@bp.route("/payouts", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def payout_list() -> Any:
    """What each partner can be paid, a form to pay them, and earlier payouts."""
    form = PayoutForm()
    chosen = request.form.getlist("organisation_id")
    if wants_fragment() and request.method == "GET":
        return render_template("rewards/admin/_payout_history.html", **history())
    if not form.validate_on_submit():
        return render_payouts(form, chosen)

    try:
        payout = payouts.create_payout(chosen, form.note.data or "", current_user)
    except EditRejected as rejected:
        show_errors(form, rejected)
        return render_payouts(form, chosen, rejected.errors.get("organisations"))

    flash(
        f"Payout {payout.id} pays {points_text(payout.points)} points "
        f"({payout.entries:,} entries).",
        "success",
    )
    return redirect(url_for("rewards_admin.payout", payout_id=payout.id))


def render_payouts(
    form: PayoutForm, chosen: list[str], error: str | None = None
) -> tuple[str, int]:
    page = render_template(
        "rewards/admin/payouts.html",
        form=form,
        balances=payouts.balances(only_payable=True),
        chosen=set(chosen),
        organisations_error=error,
        **history(),
    )
    return page, status_code()


def history() -> dict[str, Any]:
    query = select(Payout).order_by(Payout.id.desc())
    pager = db.paginate(
        query, page=page_number(), per_page=PAYOUTS_PER_PAGE, max_per_page=None
    )
    return {"pager": pager, "page_link": {"endpoint": "rewards_admin.payout_list"}}


@bp.route("/payouts/<int:payout_id>")
@roles_required(Role.ADMIN)
def payout(payout_id: int) -> str:
    """One payout: its totals per organisation and its entries."""
    batch = payout_or_404(payout_id)
    pager = db.paginate(
        payouts.payout_entries_query(batch.id),
        page=page_number(),
        per_page=ENTRIES_PER_PAGE,
        max_per_page=None,
    )
    context = {
        "payout": batch,
        "pager": pager,
        "page_link": {"endpoint": "rewards_admin.payout", "payout_id": batch.id},
    }

    if wants_fragment():
        return render_template("rewards/admin/_payout_entries.html", **context)
    return render_template(
        "rewards/admin/payout.html", lines=payouts.payout_lines(batch.id), **context
    )


@bp.route("/payouts/<int:payout_id>/export.csv")
@roles_required(Role.ADMIN)
def export_payout(payout_id: int) -> Response:
    """The payout's entries as CSV, one row per entry."""
    batch = payout_or_404(payout_id)

    lines = csv_lines(payouts.EXPORT_HEADER, payouts.export_rows(batch))
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="payout-{batch.id}.csv"'
    )
    return response


def payout_or_404(payout_id: int) -> Payout:
    batch = db.session.get(Payout, payout_id)
    if batch is None:
        abort(404)
    return batch
