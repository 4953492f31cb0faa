"""Admin pages to upload boundaries, postal-code centroids and accounts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from portal.auth import roles_required
from portal.models import Role
from territory_rules.forms import (
    AccountImportForm,
    BoundaryImportForm,
    PostalCodeImportForm,
)
from territory_rules.imports import (
    ImportReport,
    import_accounts,
    import_boundaries,
    import_postal_codes,
)

logger = logging.getLogger(__name__)

bp = Blueprint("imports", __name__, url_prefix="/territories/imports")

FORMS: dict[str, type[FlaskForm]] = {
    "boundaries": BoundaryImportForm,
    "postal_codes": PostalCodeImportForm,
    "accounts": AccountImportForm,
}
TITLES = {
    "boundaries": "Boundaries",
    "postal_codes": "Postal-code centroids",
    "accounts": "Accounts and sales lines",
}
# What one item of each kind of file is called on the result page.
ITEMS = {"boundaries": "feature", "postal_codes": "row", "accounts": "row"}
ANCHORS = {
    "boundaries": "boundaries",
    "postal_codes": "postal-codes",
    "accounts": "accounts",
}
# Fields that are never carried back to the forms: the file cannot be, the token
# is issued afresh.
NOT_KEPT = {"file", "csrf_token"}


def blank_forms(**bound: FlaskForm) -> dict[str, FlaskForm]:
    """One form per importer; ``bound`` holds the one that was just posted.

    A form whose values come back in the query string (from "Import another file"
    on a result page) is filled in with them, unvalidated.
    """
    return {
        kind: bound.get(kind) or form_class(formdata=kept_values(kind), prefix=kind)
        for kind, form_class in FORMS.items()
    }


def kept_values(kind: str) -> Any:
    """The query string when it holds values of this kind's form, else None."""
    if any(name.startswith(f"{kind}-") for name in request.args):
        return request.args
    return None


def mapping_values(form: FlaskForm) -> dict[str, str]:
    """The posted column mapping, to fill in the form again for the next file."""
    return {
        field.name: str(field.data)
        for field in form
        if field.short_name not in NOT_KEPT and field.data not in (None, "")
    }


def upload_limit() -> str | None:
    """The largest upload accepted, in words (None when there is no limit)."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if not limit:
        return None
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit >= size:
            return f"{limit / size:g} {unit}"
    return f"{limit} bytes"


def render_index(
    status: int = 200, too_large: bool = False, **bound: FlaskForm
) -> tuple[str, int]:
    page = render_template(
        "imports/index.html",
        forms=blank_forms(**bound),
        titles=TITLES,
        upload_limit=upload_limit(),
        too_large=too_large,
    )
    return page, status


def run_import(
    kind: str, form: FlaskForm, importer: Callable[[bytes], ImportReport]
) -> tuple[str, int]:
    """Validate the posted form, run the import, show its report."""
    if not form.validate_on_submit():
        return render_index(400, **{kind: form})

    upload: FileStorage = form.file.data
    report = importer(upload.read())

    logger.info(
        "%s imported %s from %s: %s",
        current_user.email,
        kind,
        upload.filename,
        "done " + str(report.counts) if report.ok else "refused",
    )
    page = render_template(
        "imports/result.html",
        title=TITLES[kind],
        item=ITEMS[kind],
        anchor=ANCHORS[kind],
        kept=mapping_values(form),
        filename=upload.filename,
        report=report,
    )
    return page, 200 if report.ok else 422


@bp.get("/")
@roles_required(Role.ADMIN)
def index() -> Any:
    """The three upload forms."""
    return render_index()


@bp.post("/boundaries")
@roles_required(Role.ADMIN)
def upload_boundaries() -> Any:
    """Import the shapes of a GeoJSON file as boundaries of a layer."""
    form = BoundaryImportForm(prefix="boundaries")
    return run_import(
        "boundaries",
        form,
        lambda data: import_boundaries(
            data,
            form.layer.data or "",
            form.name_property.data or "",
            form.code_property.data or None,
        ),
    )


@bp.post("/postal-codes")
@roles_required(Role.ADMIN)
def upload_postal_codes() -> Any:
    """Import postal-code centroids from a CSV file."""
    form = PostalCodeImportForm(prefix="postal_codes")
    return run_import(
        "postal_codes", form, lambda data: import_postal_codes(data, form.mapping())
    )


@bp.post("/accounts")
@roles_required(Role.ADMIN)
def upload_accounts() -> Any:
    """Import accounts and sales lines from a CSV file."""
    form = AccountImportForm(prefix="accounts")
    return run_import(
        "accounts", form, lambda data: import_accounts(data, form.mapping())
    )


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(error: RequestEntityTooLarge) -> Any:
    """An upload over MAX_CONTENT_LENGTH: the forms again, with the limit said."""
    # The size check can fire before the view's role check (CSRF reads the form
    # first), so only admins get the import page back.
    if not current_user.is_authenticated or current_user.role != Role.ADMIN:
        return render_template("error.html", error=error), 413
    logger.info("%s sent an upload over the size limit", current_user.email)
    return render_index(413, too_large=True)
