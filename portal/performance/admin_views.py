"""Pages to set targets (admins, and managers for their regions), the flag
thresholds (admins), and the partner's own rank on the leaderboard."""

from __future__ import annotations

import logging
import re
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
from portal.performance.models import PerformanceSettings, TerritoryTarget
from portal.performance.periods import Period, quarter_of
from portal.performance.thresholds import (
    SettingsInput,
    save_settings,
    settings_text,
)
from programs.editing import SEPARATORS
from programs.tiers import TierError, parse_amount
from territory_rules import queries
from territory_rules.editing import EditRejected
from territory_rules.models import Region, Territory
from territory_rules.views import wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("performance_admin", __name__)
my_bp = Blueprint("my_performance", __name__, url_prefix="/my")

MONTH_FIELD = "month-"
# Plain digits only: str.isdigit() passes "²", which int() refuses.
YEAR = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class TargetList:
    """What the list of targets shows, as read from the query arguments
    ``list_territory``, ``year`` and ``page``."""

    shown: targets.TargetFilter
    page: int
    error: str | None

    def args(self, page: int | None = None) -> dict[str, Any]:
        """The query arguments that show this list again (on ``page``)."""
        args: dict[str, Any] = {}
        if self.shown.territory_id is not None:
            args["list_territory"] = self.shown.territory_id
        if self.shown.year is not None:
            args["year"] = self.shown.year
        page = self.page if page is None else page
        if page > 1:
            args["page"] = page
        return args


# --- Targets ------------------------------------------------------------------------


@bp.route("/regions/<int:region_id>/targets", methods=["GET", "POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def targets_page(region_id: int) -> Any:
    """The region's targets, a form to set one and a file upload; htmx asks for
    the month fields of the dates chosen."""
    region = region_or_404(region_id)
    territories = targets.leaf_territories(region)
    form = TargetForm()
    form.territory.choices = territory_choices(territories)
    if request.method == "GET":
        fill_defaults(form)
    if wants_fragment():
        return render_template("manager/_target_months.html", **month_fields(form))
    if not form.validate_on_submit():
        return render_targets(region, territories, form)

    errors, data = read_target(form, region, territories)
    saved = None
    if data is not None:
        try:
            saved = targets.save_target(data, current_user)
        except EditRejected as rejected:
            errors.update(rejected.errors)
    if saved is None or data is None:
        show_errors(form, errors)
        return render_targets(
            region, territories, form, month_error=errors.get("months")
        )

    flash(saved_message(saved, data), "success")
    listed = target_list(territories)
    return redirect(
        url_for("performance_admin.targets_page", region_id=region.id, **listed.args())
    )


@bp.route("/regions/<int:region_id>/targets/import", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def import_targets(region_id: int) -> Any:
    """Import the region's targets from a CSV file, all or nothing."""
    region = region_or_404(region_id)
    territories = targets.leaf_territories(region)
    form = TargetImportForm()
    upload = form.file.data
    if not form.validate_on_submit() or not isinstance(upload, FileStorage):
        form.file.errors = ["Choose a CSV file to import."]
        return render_targets(region, territories, import_form=form)

    report = targets.import_targets(
        upload.read(),
        current_user,
        territories,
        decimal_separator=SEPARATORS.get(form.decimal_separator.data or "", "."),
        encoding=form.encoding.data or None,
    )
    return render_template(
        "manager/targets_import.html",
        region=region,
        report=report,
        filename=upload.filename or "",
    ), (200 if report.ok else 400)


@bp.route(
    "/regions/<int:region_id>/targets/<int:target_id>/delete", methods=["GET", "POST"]
)
@roles_required(Role.MANAGER, Role.ADMIN)
def delete_target(region_id: int, target_id: int) -> Any:
    """Delete one of the region's targets (POST); GET asks first, on the list."""
    region = region_or_404(region_id)
    target = targets.region_target(region, target_id)
    if target is None:
        abort(404)
    listed = target_list(targets.leaf_territories(region))
    if request.method == "GET":
        return redirect(
            url_for(
                "performance_admin.targets_page",
                region_id=region.id,
                delete=target.id,
                _anchor=f"target-{target.id}",
                **listed.args(),
            )
        )

    words = target_words(target)
    targets.delete_target(target, current_user)
    flash(f"The target of {words} was deleted.", "success")
    return redirect(
        url_for("performance_admin.targets_page", region_id=region.id, **listed.args())
    )


def region_or_404(region_id: int) -> Region:
    region = queries.visible_region(current_user, region_id)
    if region is None:
        abort(404)
    return region


def territory_choices(territories: list[Territory]) -> list[tuple[str, str]]:
    return [("", "Choose a territory")] + [
        (str(territory.id), territory.name) for territory in territories
    ]


def target_words(target: TerritoryTarget) -> str:
    """The target's territory, period and amount, as a sentence says them."""
    period = Period(target.starts_on, target.ends_on).label
    return f"{target.territory.name} for {period} ({targets.money(target.amount)})"


def saved_message(saved: targets.SavedTarget, data: targets.TargetInput) -> str:
    what = (
        f"The target of {data.territory.name} for "
        f"{Period(data.starts_on, data.ends_on).label}"
    )
    amount = targets.money(data.amount)
    if saved.replaced_amount is None:
        return f"{what} was saved: {amount}."
    return (
        f"{what} was replaced: it is now {amount} instead of "
        f"{targets.money(saved.replaced_amount)}."
    )


def target_list(territories: list[Territory]) -> TargetList:
    """The territory, year and page of the list asked for in the URL; a choice
    that cannot be read shows every territory or year, and says so."""
    args = request.args
    errors = []
    territory_id = None
    raw_territory = args.get("list_territory", "").strip()
    if raw_territory:
        territory_id = next(
            (t.id for t in territories if str(t.id) == raw_territory), None
        )
        if territory_id is None:
            errors.append("Choose a territory from the list; showing every territory.")
    year = None
    raw_year = args.get("year", "").strip()
    first, last = targets.TARGET_DATES.starts_on.year, targets.TARGET_DATES.ends_on.year
    if raw_year:
        year = int(raw_year) if YEAR.fullmatch(raw_year) else None
        if year is None or not first <= year <= last:
            year = None
            errors.append(f"Choose a year from {first} to {last}; showing every year.")
    page = args.get("page", 1, type=int) or 1
    return TargetList(
        targets.TargetFilter(territory_id, year), page, " ".join(errors) or None
    )


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
    form: TargetForm, region: Region, territories: list[Territory]
) -> tuple[dict[str, str], targets.TargetInput | None]:
    """The form's values as ``save_target`` arguments, or what to fix."""
    errors: dict[str, str] = {}
    territory = next((t for t in territories if str(t.id) == form.territory.data), None)
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
        day = date.fromisoformat((raw or "").strip())
    except ValueError:
        errors[key] = f"Enter the {what} date as YYYY-MM-DD, e.g. 2018-07-01."
        return None
    error = targets.date_error(day, what)
    if error:
        errors[key] = error
        return None
    return day


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
    for what, day in (("start", starts_on), ("end", ends_on)):
        error = targets.date_error(day, what)
        if error:
            return {"months": [], "month_note": error}
    if ends_on < starts_on:
        return {"months": [], "month_note": "The end date comes before the start date."}
    if targets.month_count(starts_on, ends_on) > targets.MAX_MONTHS_SHOWN:
        return {"months": [], "month_note": "Too many months to split by hand."}
    typed = request.form if request.method == "POST" else {}
    return {
        "months": [
            (month, typed.get(f"{MONTH_FIELD}{month:%Y-%m}", ""))
            for month in targets.months_of(starts_on, ends_on)
        ],
        "month_note": None,
    }


def show_errors(form: Any, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        if name in form:
            form[name].errors = [message]


def render_targets(
    region: Region,
    territories: list[Territory],
    form: TargetForm | None = None,
    import_form: TargetImportForm | None = None,
    month_error: str | None = None,
) -> tuple[str, int]:
    """The page with one page of the list, whichever form is shown again."""
    if form is None:
        form = TargetForm()
        form.territory.choices = territory_choices(territories)
        fill_defaults(form)
    listed = target_list(territories)
    pager = targets.region_targets(region, listed.shown, listed.page)
    listed = TargetList(listed.shown, pager.page, listed.error)
    confirming, confirm_error = target_to_confirm(region)
    return render_template(
        "manager/targets.html",
        region=region,
        form=form,
        import_form=import_form or TargetImportForm(),
        territories=territories,
        listed=listed,
        pager=pager,
        years=list_years(region, listed),
        confirming=confirming,
        confirm_error=confirm_error,
        date_bounds=targets.TARGET_DATES,
        month_error=month_error,
        money=targets.money,
        Period=Period,
        **month_fields(form),
    ), (400 if request.method == "POST" else 200)


def list_years(region: Region, listed: TargetList) -> list[int]:
    """The years to choose from: those of the region's targets, and the one shown."""
    years = set(targets.target_years(region))
    if listed.shown.year is not None:
        years.add(listed.shown.year)
    return sorted(years, reverse=True)


def target_to_confirm(region: Region) -> tuple[TerritoryTarget | None, str | None]:
    """The target whose deletion the URL asks to confirm (``delete``)."""
    if "delete" not in request.args:
        return None, None
    target_id = request.args.get("delete", type=int)
    target = targets.region_target(region, target_id) if target_id else None
    if target is None:
        return None, "That target is not in the list any more; nothing was deleted."
    return target, None


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
    except EditRejected as rejected:
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
