"""Pages to set targets (admins, and managers for their regions), the flag
thresholds (admins), and the partner's own rank on the leaderboard."""

from __future__ import annotations

import logging
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
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import FileStorage

from portal.auth import roles_required
from portal.models import Role
from portal.performance import targets
from portal.performance.admin_forms import SettingsForm, TargetForm, TargetImportForm
from portal.performance.figures import latest_revenue_day, today_utc
from portal.performance.leaderboard import leaderboard, rank_sentence
from portal.performance.models import PerformanceSettings
from portal.performance.periods import Period, quarter_of
from portal.performance.thresholds import (
    SettingsInput,
    SettingsRejected,
    save_settings,
    settings_text,
)
from programs.editing import SEPARATORS
from programs.tiers import TierError, parse_amount
from territory_rules import queries
from territory_rules.models import Region, Territory
from territory_rules.views import wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("performance_admin", __name__)
my_bp = Blueprint("my_performance", __name__, url_prefix="/my")

MONTH_FIELD = "month-"


# --- Targets ------------------------------------------------------------------------


@bp.route("/regions/<int:region_id>/targets", methods=["GET", "POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def targets_page(region_id: int) -> Any:
    """The region's targets, a form to set one and a file upload; htmx asks for
    the month fields of the dates chosen."""
    region = region_or_404(region_id)
    form = TargetForm()
    form.territory.choices = territory_choices(region)
    if request.method == "GET":
        fill_defaults(form)
    if wants_fragment():
        return render_template("manager/_target_months.html", **month_fields(form))
    if not form.validate_on_submit():
        return render_targets(region, form)

    errors, data = read_target(form, region)
    if data is not None:
        try:
            targets.set_target(
                data.territory,
                data.starts_on,
                data.ends_on,
                data.amount,
                data.months,
                current_user,
            )
        except targets.TargetRejected as rejected:
            errors.update(rejected.errors)
    if errors:
        show_errors(form, errors)
        return render_targets(region, form, month_error=errors.get("months"))

    flash("The target was saved.", "success")
    return redirect(url_for("performance_admin.targets_page", region_id=region.id))


@bp.route("/regions/<int:region_id>/targets/import", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def import_targets(region_id: int) -> Any:
    """Import the region's targets from a CSV file, all or nothing."""
    region = region_or_404(region_id)
    form = TargetImportForm()
    upload = form.file.data
    if not form.validate_on_submit() or not isinstance(upload, FileStorage):
        form.file.errors = ["Choose a CSV file to import."]
        return render_targets(region, import_form=form)

    report = targets.import_targets(
        upload.read(),
        current_user,
        leaf_territories(region),
        decimal_separator=SEPARATORS.get(form.decimal_separator.data or "", "."),
        encoding=form.encoding.data or None,
    )
    return render_template(
        "manager/targets_import.html",
        region=region,
        report=report,
        filename=upload.filename or "",
    ), (200 if report.ok else 400)


@bp.route("/regions/<int:region_id>/targets/<int:target_id>/delete", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def delete_target(region_id: int, target_id: int) -> Any:
    """Delete one of the region's targets."""
    region = region_or_404(region_id)
    target = targets.region_target(region, target_id)
    if target is None:
        abort(404)

    words = f"{target.territory.name}, {Period(target.starts_on, target.ends_on).label}"
    targets.delete_target(target, current_user)
    flash(f"The target of {words} was deleted.", "success")
    return redirect(url_for("performance_admin.targets_page", region_id=region.id))


def region_or_404(region_id: int) -> Region:
    region = queries.visible_region(current_user, region_id)
    if region is None:
        abort(404)
    return region


def leaf_territories(region: Region) -> list[Territory]:
    return [territory for territory in region.territories if not territory.children]


def territory_choices(region: Region) -> list[tuple[str, str]]:
    return [("", "Choose a territory")] + [
        (str(territory.id), territory.name) for territory in leaf_territories(region)
    ]


def fill_defaults(form: TargetForm) -> None:
    """The territory and dates asked for in the URL (the period's ``from`` and
    ``to``, or the fields themselves when htmx asks), else this quarter."""
    quarter = quarter_of(today_utc())
    args = request.args
    form.territory.data = args.get("territory", "")
    form.starts_on.data = (
        args.get("starts_on") or args.get("from") or quarter.starts_on.isoformat()
    )
    form.ends_on.data = (
        args.get("ends_on") or args.get("to") or quarter.ends_on.isoformat()
    )


def read_target(
    form: TargetForm, region: Region
) -> tuple[dict[str, str], targets.TargetInput | None]:
    """The form's values as ``set_target`` arguments, or what to fix."""
    errors: dict[str, str] = {}
    territory = next(
        (t for t in leaf_territories(region) if str(t.id) == form.territory.data), None
    )
    if territory is None:
        errors["territory"] = f"Choose one of the territories of {region.name}."
    starts_on = read_date(form.starts_on.data, "start", errors, "starts_on")
    ends_on = read_date(form.ends_on.data, "end", errors, "ends_on")
    separator = SEPARATORS.get(form.decimal_separator.data or "", ".")
    amount = read_amount(form.amount.data or "", separator, errors, "amount")
    months = read_months(separator, errors)
    if errors or territory is None or starts_on is None or ends_on is None:
        return errors, None
    return errors, targets.TargetInput(territory, starts_on, ends_on, amount, months)


def read_date(
    raw: str | None, what: str, errors: dict[str, str], key: str
) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        errors[key] = f"Enter the {what} date as YYYY-MM-DD, e.g. 2018-07-01."
        return None


def read_amount(raw: str, separator: str, errors: dict[str, str], key: str) -> Decimal:
    text = raw.strip()
    if text.startswith(("-", "\u2212")):
        errors[key] = f"{raw!r} is negative; a target is zero or more."
        return Decimal(0)
    try:
        return parse_amount(text, separator)
    except TierError as error:
        message = str(error)
        if "decimal places" in message:
            message = f"{raw!r} has more than two decimals; round it to the cent."
        errors[key] = message
        return Decimal(0)


def read_months(separator: str, errors: dict[str, str]) -> dict[date, Decimal] | None:
    """The monthly distribution typed, none when every month is empty."""
    months: dict[date, Decimal] = {}
    for name, raw in request.form.items():
        if not name.startswith(MONTH_FIELD):
            continue
        try:
            month = date.fromisoformat(name.removeprefix(MONTH_FIELD) + "-01")
        except ValueError:
            continue
        if raw.strip():
            months[month] = read_amount(raw, separator, errors, "months")
    if "months" in errors:
        errors["months"] = f"The amount of a month: {errors['months']}"
    return months or None


def month_fields(form: TargetForm) -> dict[str, Any]:
    """The months between the form's dates, each with the amount typed for it."""
    try:
        starts_on = date.fromisoformat(form.starts_on.data or "")
        ends_on = date.fromisoformat(form.ends_on.data or "")
    except ValueError:
        return {"months": [], "month_note": "Enter both dates to split by month."}
    if ends_on < starts_on:
        return {"months": [], "month_note": "The end date comes before the start date."}
    months = targets.months_of(starts_on, ends_on)
    if len(months) > targets.MAX_MONTHS_SHOWN:
        return {"months": [], "month_note": "Too many months to split by hand."}
    typed = request.form if request.method == "POST" else {}
    return {
        "months": [
            (month, typed.get(f"{MONTH_FIELD}{month:%Y-%m}", "")) for month in months
        ],
        "month_note": None,
    }


def show_errors(form: Any, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        if name in form:
            form[name].errors = [message]


def render_targets(
    region: Region,
    form: TargetForm | None = None,
    import_form: TargetImportForm | None = None,
    month_error: str | None = None,
) -> tuple[str, int]:
    if form is None:
        form = TargetForm()
        form.territory.choices = territory_choices(region)
        fill_defaults(form)
    return render_template(
        "manager/targets.html",
        region=region,
        form=form,
        import_form=import_form or TargetImportForm(),
        targets=targets.region_targets(region),
        month_error=month_error,
        money=targets.money,
        Period=Period,
        **month_fields(form),
    ), (400 if request.method == "POST" else 200)


# --- Settings -----------------------------------------------------------------------


@bp.route("/admin/performance/settings", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def settings() -> Any:
    """The thresholds of the performance flags and the partners' leaderboard."""
    form = SettingsForm()
    if request.method == "GET":
        form.process(data=vars(settings_text(PerformanceSettings.current())))
    if not form.validate_on_submit():
        return render_template("manager/settings.html", form=form)

    try:
        save_settings(settings_input(form), current_user)
    except SettingsRejected as rejected:
        show_errors(form, rejected.errors)
        return render_template("manager/settings.html", form=form), 400

    flash("The performance settings were saved.", "success")
    return redirect(url_for("performance_admin.settings"))


def settings_input(form: SettingsForm) -> SettingsInput:
    return SettingsInput(
        underperform_share=form.underperform_share.data or "",
        underperform_periods=form.underperform_periods.data or "",
        use_bottom_quartile=bool(form.use_bottom_quartile.data),
        stalled_days=form.stalled_days.data or "",
        revenue_drop_share=form.revenue_drop_share.data or "",
        imbalance_factor=form.imbalance_factor.data or "",
        leaderboard_for_partners=bool(form.leaderboard_for_partners.data),
    )


# --- The partner's rank -------------------------------------------------------------


@my_bp.route("/rank/<int:region_id>")
@roles_required(Role.PARTNER)
def my_rank(region_id: int) -> str:
    """The organisation's rank in the region, for htmx to place on its pages;
    nothing when the setting hides it or the organisation owns no territory there."""
    if not PerformanceSettings.current().leaderboard_for_partners:
        return ""
    region = own_region(region_id)
    if region is None:
        return ""

    period, when = rank_period(region)
    places = leaderboard(region, period)
    mine = next(
        (p for p in places if p.partner_id == current_user.organisation_id), None
    )
    if mine is None:
        return ""
    sentence = rank_sentence(mine, len(places), region.name, when)
    return render_template("manager/_my_rank.html", sentence=sentence)


def own_region(region_id: int) -> Region | None:
    """The region if the user's organisation owns one of its territories."""
    for territory in queries.partner_territories(current_user):
        if territory.region_id == region_id:
            return territory.region
    return None


def rank_period(region: Region) -> tuple[Period, str]:
    """This quarter; when the region has no sales in it yet, its latest quarter
    with sales."""
    today = today_utc()
    quarter = quarter_of(today)
    latest = latest_revenue_day([region])
    if latest is None or latest >= quarter.starts_on:
        return quarter, "this quarter"
    before = quarter_of(latest)
    return before, f"in {before.label}, the latest quarter with sales"
