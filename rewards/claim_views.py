"""Claim pages: partners claim sales at /my/claims, admins review them at
/admin/rewards/claims."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import StringField
from wtforms.widgets import DateInput

from portal import uploads
from portal.auth import roles_required
from portal.extensions import db
from portal.models import Role, User
from rewards import claims, partner_views, statements
from rewards.models import Claim, ClaimStatus
from territory_rules.imports import latest_sale_day
from territory_rules.views import page_number, render_page

my_claims_bp = Blueprint("my_claims", __name__, url_prefix="/my/claims")
claims_admin_bp = Blueprint(
    "claims_admin", __name__, url_prefix="/admin/rewards/claims"
)

CLAIMS_PER_PAGE = 25
STATUS_LABELS = {
    ClaimStatus.SUBMITTED.value: "Submitted",
    ClaimStatus.FLAGGED.value: "Flagged",
    ClaimStatus.APPROVED.value: "Approved",
    ClaimStatus.REJECTED.value: "Rejected",
}
# What the ledger table of a claim's entries needs from the rewards pages.
LEDGER_HELPERS = ("points", "pricing", "source_label", "status_label", "claim_url")
# The admin list's filters: the claims waiting for review first, then by status.
TO_REVIEW, ALL = "review", "all"
FILTERS = {
    TO_REVIEW: "To review",
    **STATUS_LABELS,
    ALL: "All claims",
}


def page_helpers() -> dict[str, Any]:
    return {
        "long_date": claims.long_date,
        "money": money,
        "status_labels": STATUS_LABELS,
    }


my_claims_bp.context_processor(page_helpers)
claims_admin_bp.context_processor(page_helpers)


def money(amount: Decimal) -> str:
    return f"{current_app.config['CURRENCY_SYMBOL']}{amount:,.2f}"


def signed_in_user() -> User:
    """The user record itself, not the request-bound proxy."""
    return current_user._get_current_object()


def claims_page(query: Any) -> Any:
    return db.paginate(
        query, page=page_number(), per_page=CLAIMS_PER_PAGE, max_per_page=None
    )


class ClaimForm(FlaskForm):
    # Checked by rewards.claims, which says what to fix beside each field.
    customer_name = StringField("Customer")
    postal_code = StringField("Postal code of the delivery")
    amount = StringField("Amount")
    sale_date = StringField("Sale date", widget=DateInput())
    invoice_number = StringField("Invoice number")
    category = StringField("Product category")
    file = FileField("Invoice (optional)")


# Partner pages --------------------------------------------------------------------


def own_claim_or_404(claim_id: int) -> Claim:
    claim = claims.organisation_claim(current_user.organisation_id, claim_id)
    if claim is None:
        abort(404)
    return claim


@my_claims_bp.route("")
@roles_required(Role.PARTNER)
def index() -> str:
    """The organisation's claims, newest first, with their status and notes."""
    pager = claims_page(claims.organisation_claims(current_user.organisation_id))

    return render_page(
        "rewards/claims/my_claims.html",
        "rewards/claims/_my_claims.html",
        pager=pager,
        page_link={"endpoint": "my_claims.index"},
    )


@my_claims_bp.route("/new", methods=["GET", "POST"])
@roles_required(Role.PARTNER)
def new_claim() -> Any:
    """Claim a sale; it is located by its postal code and judged at once."""
    form = ClaimForm()
    if not form.validate_on_submit():
        return render_claim_form(form)

    try:
        claim = claims.submit_claim(
            signed_in_user(), request.form, request.files.get(form.file.name)
        )
    except claims.ClaimRejected as rejected:
        show_errors(form, rejected.errors)
        return render_claim_form(form)

    flash_submitted(claim)
    return redirect(url_for("my_claims.claim", claim_id=claim.id))


def render_claim_form(form: ClaimForm) -> tuple[str, int]:
    status = 400 if request.method == "POST" else 200
    return render_template(
        "rewards/claims/claim_form.html",
        form=form,
        limit=uploads.size_in_words(claims.CLAIM_FILES.limit_bytes),
        latest_day=latest_sale_day().isoformat(),
    ), status


def show_errors(form: ClaimForm, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        if name in form:
            form[name].errors = [message]
        else:
            flash(message, "error")


def flash_submitted(claim: Claim) -> None:
    if claim.status == ClaimStatus.SUBMITTED:
        flash(
            f"Claim {claim.id} for invoice {claim.invoice_number} was submitted; an "
            "admin reviews it next.",
            "success",
        )
        return
    flash(
        f"Claim {claim.id} for invoice {claim.invoice_number} was recorded but "
        f"flagged: {claim.location_note} An admin reviews it; a flagged claim earns "
        "nothing unless the sale turns out to be in your territory.",
        "info",
    )


@my_claims_bp.route("/<int:claim_id>")
@roles_required(Role.PARTNER)
def claim(claim_id: int) -> str:
    """One of the organisation's claims in full."""
    found = own_claim_or_404(claim_id)
    ledger = partner_views.page_helpers()
    return render_template(
        "rewards/claims/my_claim.html",
        claim=found,
        rows=statements.claim_rows(found.organisation_id, found.id),
        **{name: ledger[name] for name in LEDGER_HELPERS},
    )


@my_claims_bp.route("/<int:claim_id>/file")
@roles_required(Role.PARTNER)
def claim_file(claim_id: int) -> Any:
    """Download the invoice file of one of the organisation's claims."""
    return send_claim_file(own_claim_or_404(claim_id))


def send_claim_file(claim: Claim) -> Any:
    path = claims.claim_file_path(claim)
    if path is None:
        abort(404)
    return send_file(
        path, as_attachment=True, download_name=claim.file_name or path.name
    )


# Admin pages ----------------------------------------------------------------------


def claim_or_404(claim_id: int) -> Claim:
    claim = db.session.get(Claim, claim_id)
    if claim is None:
        abort(404)
    return claim


@claims_admin_bp.route("", endpoint="index")
@roles_required(Role.ADMIN)
def review_list() -> str:
    """Claims to review, oldest first; htmx swaps the list when the filter changes."""
    chosen = request.args.get("status", TO_REVIEW)
    if chosen not in FILTERS:
        chosen = TO_REVIEW
    pager = claims_page(filtered_claims(chosen))

    return render_page(
        "rewards/claims/review.html",
        "rewards/claims/_review_list.html",
        pager=pager,
        chosen=chosen,
        filters=FILTERS,
        page_link={"endpoint": "claims_admin.index", "status": chosen},
    )


def filtered_claims(chosen: str) -> Any:
    if chosen == ALL:
        return claims.all_claims()
    return claims.claims_for_review(None if chosen == TO_REVIEW else chosen)


@claims_admin_bp.route("/<int:claim_id>", endpoint="claim")
@roles_required(Role.ADMIN)
def review_claim(claim_id: int) -> str:
    """A claim with where its postal code lies, its file and the decisions left."""
    found = claim_or_404(claim_id)

    return render_review(found)


def render_review(
    claim: Claim, reason: str = "", reason_error: str | None = None
) -> str:
    return render_template(
        "rewards/claims/review_claim.html",
        claim=claim,
        reason=reason,
        reason_error=reason_error,
        to_review=claims.TO_REVIEW,
    )


@claims_admin_bp.post("/<int:claim_id>/approve")
@roles_required(Role.ADMIN)
def approve(claim_id: int) -> Any:
    """Approve a submitted claim; a rewards run prices it."""
    found = claim_or_404(claim_id)

    try:
        claims.approve_claim(found, signed_in_user())
    except claims.ReviewRefused as refused:
        flash(str(refused), "error")
        return redirect(url_for("claims_admin.claim", claim_id=claim_id))

    flash(
        f"Claim {found.id} of {found.organisation.name} was approved; its points "
        "follow with the rewards run.",
        "success",
    )
    return redirect(url_for("claims_admin.index"))


@claims_admin_bp.post("/<int:claim_id>/reject")
@roles_required(Role.ADMIN)
def reject(claim_id: int) -> Any:
    """Reject a claim with a reason the partner reads."""
    found = claim_or_404(claim_id)
    reason = request.form.get("reason", "")

    try:
        claims.reject_claim(found, signed_in_user(), reason)
    except claims.ReviewRefused as refused:
        if refused.field == "reason":
            return render_review(found, reason, str(refused)), 400
        flash(str(refused), "error")
        return redirect(url_for("claims_admin.claim", claim_id=claim_id))

    flash(f"Claim {found.id} of {found.organisation.name} was rejected.", "success")
    return redirect(url_for("claims_admin.index"))


@claims_admin_bp.post("/<int:claim_id>/recheck")
@roles_required(Role.ADMIN)
def recheck(claim_id: int) -> Any:
    """Locate the claim again, e.g. after territories or owners changed."""
    found = claim_or_404(claim_id)

    try:
        claims.recheck_claim(found, signed_in_user())
    except claims.ReviewRefused as refused:
        flash(str(refused), "error")
        return redirect(url_for("claims_admin.claim", claim_id=claim_id))

    label = STATUS_LABELS[found.status].lower()
    flash(
        f"Claim {found.id} was checked again and is {label}: {found.location_note}",
        "success" if found.status == ClaimStatus.SUBMITTED else "info",
    )
    return redirect(url_for("claims_admin.claim", claim_id=claim_id))


@claims_admin_bp.route("/<int:claim_id>/file", endpoint="claim_file")
@roles_required(Role.ADMIN)
def review_claim_file(claim_id: int) -> Any:
    """Download a claim's invoice file."""
    return send_claim_file(claim_or_404(claim_id))
