"""Admin pages to import sales files through saved sources, and to save sources."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import BooleanField, Field, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.auth import roles_required
from portal.extensions import db
from portal.models import Role, User
from rewards.imports import (
    ensure_built_in_sources,
    import_sales,
    imports_page,
    save_source,
    source_named,
    sources,
)
from rewards.models import SalesImport, SalesSource
from territory_rules.forms import AccountImportForm, column, strip
from territory_rules.import_views import upload_limit
from territory_rules.imports import OPTIONAL_FIELDS, date_format_reads_dates
from territory_rules.views import page_number, render_page

logger = logging.getLogger(__name__)

bp = Blueprint("rewards_imports", __name__, url_prefix="/admin/rewards/imports")

IMPORTS_PER_PAGE = 20

SEPARATOR_CHOICES = [
    SelectChoice(".", "Dot: 1234.50"),
    SelectChoice(",", "Comma: 1.234,50"),
]
ENCODING_CHOICES = [
    SelectChoice("auto", "Detect (UTF-8, else Windows-1252)"),
    SelectChoice("utf-8", "UTF-8"),
    SelectChoice("cp1252", "Windows-1252"),
]
AS_THE_SOURCE = SelectChoice("", "As the source says")


def check_date_format(_form: FlaskForm, field: Field) -> None:
    if field.data and not date_format_reads_dates(field.data):
        raise ValidationError(
            f"The date format '{field.data}' cannot read dates; use codes such as "
            f"%Y-%m-%d or %m/%d/%Y."
        )


class SalesUploadForm(FlaskForm):
    file = FileField(
        "CSV file",
        validators=[
            FileRequired("Choose a CSV file."),
            FileAllowed(["csv", "txt"], "Choose a CSV file (ending in .csv or .txt)."),
        ],
    )
    source = SelectField("Source", coerce=int, validate_choice=False)
    date_format = StringField(
        "Date format",
        validators=[Optional(), Length(max=40), check_date_format],
        filters=[strip],
    )
    decimal_separator = SelectField(
        "Decimal separator", choices=[AS_THE_SOURCE, *SEPARATOR_CHOICES], default=""
    )
    encoding = SelectField(
        "Encoding", choices=[AS_THE_SOURCE, *ENCODING_CHOICES], default=""
    )

    def validate_source(self, field: Field) -> None:
        if db.session.get(SalesSource, field.data or 0) is None:
            raise ValidationError("Choose the source whose layout the file has.")


class SalesSourceForm(AccountImportForm):
    """The account importer's column fields, with the sales line ones required."""

    file = None  # a source is saved without a file
    source_name = StringField(
        "Name of the source",
        validators=[
            DataRequired("Name the source, e.g. the system the files come from."),
            Length(max=120),
        ],
        filters=[strip],
    )
    external_id = column("Customer id column", required=True)
    name = column("Customer name column", required=True)
    line_id = column("Sales line id column", required=True)
    amount = column("Amount column", required=True)
    order_date = column("Order date column", required=True)
    date_format = StringField(
        "Date format",
        default="%Y-%m-%d",
        validators=[
            DataRequired("Enter the date format, e.g. %m/%d/%Y."),
            Length(max=40),
            check_date_format,
        ],
        filters=[strip],
    )
    decimal_separator = SelectField(
        "Decimal separator", choices=SEPARATOR_CHOICES, default="."
    )
    encoding = SelectField("Encoding", choices=ENCODING_CHOICES, default="auto")
    optional_may_be_missing = BooleanField(
        "Files may leave out the optional columns", default=False
    )

    def validate_source_name(self, field: Field) -> None:
        if field.data and source_named(field.data) is not None:
            raise ValidationError(
                f"A source is already named '{field.data}'; choose another name."
            )


def source_choices(form: SalesUploadForm) -> SalesUploadForm:
    form.source.choices = [SelectChoice(source.id, source.name) for source in sources()]
    return form


def upload_form(**kwargs: Any) -> SalesUploadForm:
    return source_choices(SalesUploadForm(prefix="upload", **kwargs))


def render_index(
    status: int = 200,
    imported: SalesImport | None = None,
    too_large: bool = False,
    upload: SalesUploadForm | None = None,
    source_form: SalesSourceForm | None = None,
) -> tuple[str, int]:
    preselected = request.args.get("source", type=int)
    page = render_page(
        "rewards/imports/index.html",
        "rewards/imports/_imports.html",
        upload=upload or upload_form(formdata=None, source=preselected),
        source_form=source_form or SalesSourceForm(prefix="source", formdata=None),
        imported=imported,
        too_large=too_large,
        upload_limit=upload_limit(),
        pager=imports_page(page_number(), IMPORTS_PER_PAGE),
        page_link={"endpoint": "rewards_imports.index"},
    )
    return page, status


def the_user() -> User:
    user: User = current_user._get_current_object()
    return user


@bp.get("/")
@roles_required(Role.ADMIN)
def index() -> Any:
    """The upload form, the form to save a source, and the past imports."""
    ensure_built_in_sources()
    return render_index()


@bp.post("/")
@roles_required(Role.ADMIN)
def upload() -> Any:
    """Import an uploaded sales file and show its report above the forms."""
    ensure_built_in_sources()
    form = upload_form()
    if not form.validate_on_submit():
        return render_index(400, upload=form)

    file: FileStorage = form.file.data
    source = db.get_or_404(SalesSource, form.source.data)  # checked by the form
    record = import_sales(
        file.read(),
        source,
        file.filename or "upload.csv",
        the_user(),
        date_format=form.date_format.data or None,
        decimal_separator=form.decimal_separator.data or None,
        encoding=form.encoding.data or None,
    )

    return render_index(200 if record.succeeded else 422, imported=record, upload=form)


@bp.get("/<int:import_id>")
@roles_required(Role.ADMIN)
def show_import(import_id: int) -> Any:
    """One past import and its report."""
    record = db.session.get(SalesImport, import_id)
    if record is None:
        abort(404, "There is no such sales import.")
    return render_template("rewards/imports/import.html", imported=record)


@bp.post("/sources")
@roles_required(Role.ADMIN)
def add_source() -> Any:
    """Save a new source from the columns, dates, decimals and encoding given."""
    form = SalesSourceForm(prefix="source")
    if not form.validate_on_submit():
        return render_index(400, source_form=form)

    mapping = form.mapping()
    if form.optional_may_be_missing.data:
        mapping.optional_columns = [
            name for name in OPTIONAL_FIELDS if getattr(mapping, name)
        ]
    try:
        source = save_source(
            form.source_name.data or "",
            mapping,
            form.date_format.data or "%Y-%m-%d",
            form.decimal_separator.data or ".",
            form.encoding.data or "auto",
        )
    except IntegrityError:
        # Saved under the same name by someone else since the form was checked.
        db.session.rollback()
        form.source_name.errors = [
            f"A source is already named '{form.source_name.data}'; choose another name."
        ]
        return render_index(400, source_form=form)

    logger.info("%s saved the sales source %s", current_user.email, source.name)
    flash(f"The source “{source.name}” was saved; it is chosen below.", "success")
    return redirect(url_for("rewards_imports.index", source=source.id))


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(error: RequestEntityTooLarge) -> Any:
    """An upload over MAX_CONTENT_LENGTH: the page again, with the limit said."""
    # The size check can fire before the view's role check (CSRF reads the form
    # first), so only admins get the import page back.
    if not current_user.is_authenticated or current_user.role != Role.ADMIN:
        return render_template("error.html", error=error), 413
    logger.info("%s sent a sales file over the size limit", current_user.email)
    return render_index(413, too_large=True)
