"""Managers' pages: how each region performs, down to the sales behind a number.

Managers see the regions they manage, admins every region; a region, territory or
partner outside what the user may see is a 404. Each page reads its figures with
a fixed number of queries (see :mod:`portal.performance.figures`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from portal.auth import roles_required
from portal.models import Role
from portal.performance import charts, exports, figures
from portal.performance.flags import Attention, flag_rows, quartile_note
from portal.performance.leaderboard import ranked
from portal.performance.periods import (
    Period,
    PeriodRejected,
    period_from_args,
    quarter_of,
    read_period,
)
from territory_rules import queries
from territory_rules.models import Region, Territory
from territory_rules.views import (
    accounts_per_page,
    geojson_response,
    page_number,
    wants_fragment,
)

logger = logging.getLogger(__name__)

bp = Blueprint("manager", __name__, url_prefix="/regions")

LINES_PER_PAGE = 25

# Shown for a figure that has no value, such as attainment without a target.
NOT_KNOWN = "\u2013"


# Period, scope and formatting ----------------------------------------------------


def _period() -> tuple[Period, str | None]:
    """The period asked for; a bad one gives this quarter and what to fix.

    An htmx request for part of a page with a bad period is refused instead, with
    the message shown in the page's messages: the part would otherwise show
    another period than the rest of the page.
    """
    if wants_fragment():
        return _period_or_refusal(), None
    return period_from_args(request.args, figures.today_utc())


def _period_or_refusal() -> Period:
    try:
        return read_period(request.args, figures.today_utc())
    except PeriodRejected as rejected:
        abort(_refused_fragment(f"{rejected}; nothing on the page was changed."))


def _refused_fragment(message: str) -> Response:
    """An htmx answer that swaps nothing and shows ``message`` as an error."""
    body = Markup(
        '<div id="messages" class="messages" aria-live="polite" hx-swap-oob="true">'
        '<p class="message message-error" role="alert">{}</p></div>'
    ).format(message)
    return Response(body, headers={"HX-Reswap": "none"})


def _export_period(refused: str = "nothing was exported") -> Period:
    """The period of an export; a bad one is a 400 saying what to fix, never
    an export of another period."""
    try:
        return read_period(request.args, figures.today_utc())
    except PeriodRejected as rejected:
        abort(400, f"{rejected}; {refused}.")


def _region_or_404(region_id: int) -> Region:
    region = queries.visible_region(current_user, region_id)
    if region is None:
        abort(404)
    return region


def _territory_or_404(region_id: int, territory_id: int) -> tuple[Region, Territory]:
    region = _region_or_404(region_id)
    territory = queries.region_territory(region, territory_id)
    if territory is None:
        abort(404)
    return region, territory


@dataclass
class Scope:
    """A region's figures for a period, with flags attached to its rows."""

    region: Region
    period: Period
    overview: figures.Overview
    territories: list[figures.TerritoryRow]
    partners: list[figures.PartnerRow]
    attention: list[Attention]
    quartile_note: str | None = None


def _currency() -> str:
    return str(current_app.config["CURRENCY_SYMBOL"])


def _scope(region: Region, period: Period) -> Scope:
    overview, territories, partners = figures.scope_figures([region], period)
    today = figures.today_utc()
    attention = flag_rows([region], period, territories, partners, today, _currency())
    overview.flags = attention
    note = quartile_note(region.name, period, territories, partners)
    return Scope(region, period, overview, territories, partners, attention, note)


@bp.app_template_filter("money")
def money(amount: Decimal | None) -> str:
    """An amount in whole currency units, ``$12,345``; a dash when unknown."""
    if amount is None:
        return NOT_KNOWN
    whole = amount.quantize(Decimal(1), ROUND_HALF_UP)
    sign = "-" if whole < 0 else ""
    return f"{sign}{_currency()}{abs(whole):,}"


@bp.app_template_filter("signed_money")
def signed_money(amount: Decimal | None) -> str:
    """An amount with its sign, ``+$120`` or ``-$45``; one that rounds to
    nothing is ``$0``, with no sign."""
    if amount is None:
        return NOT_KNOWN
    whole = amount.quantize(Decimal(1), ROUND_HALF_UP)
    return ("+" if whole > 0 else "") + money(amount)


@bp.app_template_filter("share")
def share(ratio: Decimal | None, signed: bool = False) -> str:
    """A ratio as a whole percentage, ``83%`` (``+12%`` when signed)."""
    if ratio is None:
        return NOT_KNOWN
    value = (ratio * 100).quantize(Decimal(1), ROUND_HALF_UP)
    if value == 0:
        return "0%"
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{value}%"


@bp.app_template_filter("without_target_note")
def without_target_note(overview: figures.Overview) -> str | None:
    """``1 of 3 territories has no target for this period; its revenue of
    $12,228 is not in attainment.`` (``... has no target and no revenue in this
    period.`` when that revenue shows as $0); nothing when every territory has
    one."""
    missing = overview.territories_without_target
    if not missing:
        return None
    one = missing == 1
    territories = "territory" if overview.territories == 1 else "territories"
    lead = (
        f"{missing} of {overview.territories} {territories} {'has' if one else 'have'}"
    )
    revenue = money(overview.totals.revenue_without_target)
    if revenue == money(Decimal(0)):
        return f"{lead} no target and no revenue in this period."
    return (
        f"{lead} no target for this period; {'its' if one else 'their'} revenue "
        f"of {revenue} is not in attainment."
    )


# Sorting and filtering the tables --------------------------------------------------


def _none_last(key: Callable[[Any], Any]) -> Callable[[Any], tuple[bool, Any]]:
    def wrapped(row: Any) -> tuple[bool, Any]:
        value = key(row)
        return (value is None, value if value is not None else 0)

    return wrapped


TERRITORY_SORTS: dict[str, Callable[[figures.TerritoryRow], Any]] = {
    "name": lambda row: row.name.casefold(),
    "partner": lambda row: (row.partner_name or "").casefold(),
    "revenue": lambda row: row.figures.revenue,
    "growth": lambda row: row.figures.growth,
    "target": lambda row: row.figures.target,
    "attainment": lambda row: row.figures.attainment,
    "variance": lambda row: row.figures.variance,
    "accounts": lambda row: row.accounts,
    "potential": lambda row: row.potential,
    "flags": lambda row: len(row.flags),
}

PARTNER_SORTS: dict[str, Callable[[figures.PartnerRow], Any]] = {
    "name": lambda row: row.name.casefold(),
    "revenue": lambda row: row.figures.revenue,
    "growth": lambda row: row.figures.growth,
    "target": lambda row: row.figures.target,
    "attainment": lambda row: row.figures.attainment,
    "variance": lambda row: row.figures.variance,
    "accounts": lambda row: row.accounts,
    "potential": lambda row: row.potential,
    "training": lambda row: row.training_completion,
    "tier": lambda row: row.tier_rank,
    "activity": lambda row: row.last_activity,
    "flags": lambda row: len(row.flags),
}


@dataclass
class TableQuery:
    """What a table shows: sorted by a column, filtered by text, flags and a link."""

    sort: str
    descending: bool
    text: str
    flagged: bool
    link_id: int | None

    @classmethod
    def read(cls, args: MultiDict[str, str], sorts: dict[str, Any]) -> TableQuery:
        sort = args.get("sort", "name")
        return cls(
            sort=sort if sort in sorts else "name",
            descending=args.get("dir") == "desc",
            text=args.get("q", "").strip()[:100],
            flagged=args.get("flagged") == "1",
            link_id=args.get("link", type=int),
        )

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query's URL arguments, with ``changes`` applied."""
        values: dict[str, Any] = {
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
            "q": self.text or None,
            "flagged": "1" if self.flagged else None,
            "link": self.link_id,
        }
        values.update(changes)
        return {key: value for key, value in values.items() if value is not None}

    def sort_args(self, column: str, **extra: Any) -> dict[str, Any]:
        """Arguments sorting by ``column`` (again on the same column turns the
        order round), with ``extra`` arguments added."""
        if column == self.sort:
            return self.args(dir="asc" if self.descending else "desc", **extra)
        numbers = column not in ("name", "partner", "tier")
        return self.args(sort=column, dir="desc" if numbers else "asc", **extra)


def _sorted(rows: list[Any], query: TableQuery, sorts: dict[str, Any]) -> list[Any]:
    by_name = sorted(rows, key=lambda row: row.name.casefold())
    key = _none_last(sorts[query.sort])
    if not query.descending:
        return sorted(by_name, key=key)
    present = [row for row in by_name if sorts[query.sort](row) is not None]
    absent = [row for row in by_name if sorts[query.sort](row) is None]
    return sorted(present, key=key, reverse=True) + absent


def filter_territories(
    rows: Sequence[figures.TerritoryRow], query: TableQuery
) -> list[figures.TerritoryRow]:
    """Territories matching the text (name or owner), flags and partner asked for."""
    text = query.text.casefold()
    kept = [
        row
        for row in rows
        if (not text or text in f"{row.name} {row.partner_name or ''}".casefold())
        and (not query.flagged or row.flags)
        and (query.link_id is None or row.partner_id == query.link_id)
    ]
    return _sorted(kept, query, TERRITORY_SORTS)


def filter_partners(
    rows: Sequence[figures.PartnerRow],
    query: TableQuery,
    territory_names: dict[int, str],
) -> list[figures.PartnerRow]:
    """Partners matching the text (name or territories), flags and territory."""
    text = query.text.casefold()
    linked = territory_names.get(query.link_id) if query.link_id else None
    kept = [
        row
        for row in rows
        if (not text or text in " ".join([row.name, *row.territories]).casefold())
        and (not query.flagged or row.flags)
        and (query.link_id is None or linked in row.territories)
    ]
    return _sorted(kept, query, PARTNER_SORTS)


def _territory_table(scope: Scope, args: MultiDict[str, str]) -> dict[str, Any]:
    query = TableQuery.read(args, TERRITORY_SORTS)
    return {
        "territory_query": query,
        "territory_rows": filter_territories(scope.territories, query),
        "partner_choices": sorted(
            {(row.id, row.name) for row in scope.partners if row.owns_territory},
            key=lambda pair: pair[1].casefold(),
        ),
    }


def _partner_table(scope: Scope, args: MultiDict[str, str]) -> dict[str, Any]:
    query = TableQuery.read(args, PARTNER_SORTS)
    names = {row.id: row.name for row in scope.territories}
    return {
        "partner_query": query,
        "partner_rows": filter_partners(scope.partners, query, names),
        "territory_choices": [(row.id, row.name) for row in scope.territories],
    }


@dataclass(frozen=True)
class Table:
    """One of the region's tables: its page ``manager/<plural>.html``, its htmx
    fragment ``manager/_<noun>_table.html`` and its CSV export."""

    noun: str
    plural: str
    read: Callable[[Scope, MultiDict[str, str]], dict[str, Any]]
    write: Callable[[Any], Iterator[str]]


TERRITORY_TABLE = Table(
    "territory", "territories", _territory_table, exports.territory_csv
)
PARTNER_TABLE = Table("partner", "partners", _partner_table, exports.partner_csv)


def _empty_notice(region: Region, overview: figures.Overview) -> Period | None:
    """The latest quarter with sales, when the period has none."""
    if overview.totals.revenue:
        return None
    latest = figures.latest_revenue_day([region])
    if latest is None or overview.period.contains(latest):
        return None
    return quarter_of(latest)


def _latest_quarter_of_all(
    regions: Sequence[Region],
    period: Period,
    summaries: Sequence[tuple[Region, figures.Overview]],
) -> Period | None:
    """The latest quarter with sales in any of the regions, when none of them
    has sales in the period."""
    if not regions or any(summary.totals.revenue for _, summary in summaries):
        return None
    latest = figures.latest_revenue_day(regions)
    if latest is None or period.contains(latest):
        return None
    return quarter_of(latest)


def _charts(scope: Scope, months: list[figures.MonthPoint]) -> list[charts.Chart]:
    return [
        charts.revenue_chart(months, _currency()),
        charts.tier_chart(scope.overview.tier_distribution),
        charts.partners_chart(
            [(row.name, row.figures.revenue) for row in scope.partners],
            currency=_currency(),
        ),
    ]


def _common(scope: Scope, error: str | None) -> dict[str, Any]:
    return {
        "region": scope.region,
        "period": scope.period,
        "period_args": scope.period.query_args(),
        "period_error": error,
        "scope": scope,
    }


# Pages ------------------------------------------------------------------------


@bp.route("/")
@roles_required(Role.MANAGER, Role.ADMIN)
def index() -> str:
    """The user's regions with their figures for the period."""
    regions = list(queries.visible_regions(current_user))
    period, error = _period()

    rows = figures.territory_rows(regions, period) if regions else []
    by_region: dict[int, list[figures.TerritoryRow]] = defaultdict(list)
    for row in rows:
        by_region[row.region_id].append(row)
    summaries = [
        (region, figures.build_overview(period, by_region.get(region.id, []), []))
        for region in regions
    ]
    return render_template(
        "manager/index.html",
        summaries=summaries,
        latest_quarter=_latest_quarter_of_all(regions, period, summaries),
        names={r.id: [row.name for row in by_region.get(r.id, [])] for r in regions},
        period=period,
        period_args=period.query_args(),
        period_error=error,
    )


@bp.route("/<int:region_id>")
@roles_required(Role.MANAGER, Role.ADMIN)
def region(region_id: int) -> str:
    """A region's overview: figures, needs attention, map, charts and both tables."""
    region = _region_or_404(region_id)
    period, error = _period()

    scope = _scope(region, period)
    months = figures.monthly([region], period)
    return render_template(
        "manager/region.html",
        **_common(scope, error),
        **_territory_table(scope, MultiDict()),
        **_partner_table(scope, MultiDict()),
        months=months,
        charts=_charts(scope, months),
        places=ranked(scope.partners),
        latest_quarter=_empty_notice(region, scope.overview),
        shape_url=url_for(
            "manager.region_shapes", region_id=region.id, **period.query_args()
        ),
    )


@bp.route("/<int:region_id>/territories")
@roles_required(Role.MANAGER, Role.ADMIN)
def territories(region_id: int) -> str:
    """The region's territories, sorted and filtered; htmx gets the table only."""
    return _table_page(region_id, TERRITORY_TABLE)


@bp.route("/<int:region_id>/partners")
@roles_required(Role.MANAGER, Role.ADMIN)
def partners(region_id: int) -> str:
    """The region's partners, sorted and filtered; htmx gets the table only."""
    return _table_page(region_id, PARTNER_TABLE)


@bp.route("/<int:region_id>/territories.csv")
@roles_required(Role.MANAGER, Role.ADMIN)
def export_territories(region_id: int) -> Response:
    """The territory table as CSV, with the filters and order of the page."""
    return _table_export(region_id, TERRITORY_TABLE)


@bp.route("/<int:region_id>/partners.csv")
@roles_required(Role.MANAGER, Role.ADMIN)
def export_partners(region_id: int) -> Response:
    """The partner table as CSV, with the filters and order of the page."""
    return _table_export(region_id, PARTNER_TABLE)


def _table_page(region_id: int, table: Table) -> str:
    region = _region_or_404(region_id)
    period, error = _period()

    scope = _scope(region, period)
    context = {**_common(scope, error), **table.read(scope, request.args)}
    if wants_fragment():
        return render_template(f"manager/_{table.noun}_table.html", **context)
    return render_template(f"manager/{table.plural}.html", **context)


def _table_export(region_id: int, table: Table) -> Response:
    region = _region_or_404(region_id)
    period = _export_period()

    scope = _scope(region, period)
    rows = table.read(scope, request.args)[f"{table.noun}_rows"]
    logger.info(
        "%s exported the %s of region %s", current_user.email, table.plural, region.id
    )
    return exports.csv_response(
        table.write(rows), exports.file_name(region.name, table.plural, period)
    )


@bp.route("/<int:region_id>/shapes.geojson")
@roles_required(Role.MANAGER, Role.ADMIN)
def region_shapes(region_id: int) -> Response:
    """The region's territory shapes as GeoJSON, each with its attainment, colour
    and the address of its detail page."""
    region = _region_or_404(region_id)
    period = _export_period("the map was not drawn")

    rows = {row.id: row for row in figures.territory_rows([region], period)}
    collection = queries.territories_geojson(queries.region_shapes(region))
    for feature in collection["features"]:
        row = rows.get(feature["id"])
        attainment = row.figures.attainment if row else None
        feature["properties"].update(
            attainment=None if attainment is None else float(attainment),
            attainment_text=share(attainment),
            colour=attainment_band(attainment).colour,
            url=url_for(
                "manager.territory",
                region_id=region.id,
                territory_id=feature["id"],
                **period.query_args(),
            ),
        )
    return geojson_response(collection)


@dataclass(frozen=True)
class Band:
    label: str
    colour: str
    below: Decimal | None


# Attainment bands of the map, worst first; the last one has no upper bound.
BANDS = [
    Band("Below 80%", "#b42318", Decimal("0.8")),
    Band("80% to 95%", "#f59e0b", Decimal("0.95")),
    Band("95% to 105%", "#84cc16", Decimal("1.05")),
    Band("105% or more", "#15803d", None),
]
NO_TARGET = Band("No target", "#9aa5b1", None)


def attainment_band(attainment: Decimal | None) -> Band:
    if attainment is None:
        return NO_TARGET
    for band in BANDS:
        if band.below is None or attainment < band.below:
            return band
    return BANDS[-1]


@bp.app_context_processor
def map_legend() -> dict[str, Any]:
    return {"attainment_bands": [*BANDS, NO_TARGET]}


# Details ------------------------------------------------------------------------


def _lines(
    region: Region, period: Period, **which: int
) -> tuple[figures.Page, figures.Page]:
    """The pages of sales lines and claims asked for; a page past the last is
    not found, as in the portal's other lists."""
    sales = figures.sales_behind(
        [region],
        period,
        page=page_number("sales_page"),
        per_page=LINES_PER_PAGE,
        **which,
    )
    claims = figures.claims_behind(
        [region],
        period,
        page=page_number("claims_page"),
        per_page=LINES_PER_PAGE,
        **which,
    )
    if sales.page > sales.pages or claims.page > claims.pages:
        abort(404)
    return sales, claims


def _pager_args(period: Period, **pages: int) -> dict[str, Any]:
    """The period and the pages shown (beyond the first), which every pager
    link keeps while it changes its own page."""
    shown = {name: number for name, number in pages.items() if number > 1}
    return {**period.query_args(), **shown}


LINE_FRAGMENTS = {
    "sales-lines": "manager/_sales.html",
    "claim-lines": "manager/_claims.html",
}


def _line_fragment() -> str | None:
    """The table of lines an htmx request asks for, if any."""
    if not wants_fragment():
        return None
    return LINE_FRAGMENTS.get(request.headers.get("HX-Target", ""))


@bp.route("/<int:region_id>/territories/<int:territory_id>")
@roles_required(Role.MANAGER, Role.ADMIN)
def territory(region_id: int, territory_id: int) -> str:
    """A territory's figures, months, and the sales lines and claims behind them."""
    region, territory = _territory_or_404(region_id, territory_id)
    period, error = _period()

    sales, claims = _lines(region, period, territory_id=territory.id)
    accounts = queries.territory_accounts(territory, page_number(), accounts_per_page())
    link = {"region_id": region.id, "territory_id": territory.id}
    lines = _pager_args(
        period, sales_page=sales.page, claims_page=claims.page, page=accounts.page
    )
    context = {
        "sales": sales,
        "claims": claims,
        "line_link": link,
        "line_args": lines,
        "detail": "manager.territory",
        "export_args": {
            "region_id": region.id,
            "territory": territory.id,
            **period.query_args(),
        },
        "pager": accounts,
        # The accounts pager sets ``page`` itself.
        "page_link": {
            "endpoint": "manager.territory",
            **link,
            **{name: value for name, value in lines.items() if name != "page"},
        },
    }
    fragment = _line_fragment()
    if fragment:
        return render_template(
            fragment, period=period, period_args=period.query_args(), **context
        )
    if wants_fragment():
        return render_template("territories/_accounts.html", **context)

    scope = _scope(region, period)
    row = next(row for row in scope.territories if row.id == territory.id)
    months = figures.monthly([region], period, territory_id=territory.id)
    return render_template(
        "manager/territory.html",
        **_common(scope, error),
        **context,
        territory=territory,
        row=row,
        months=months,
        charts=[charts.revenue_chart(months, _currency())],
        shape_url=url_for(
            "manager.territory_shape", region_id=region.id, territory_id=territory.id
        ),
    )


@bp.route("/<int:region_id>/territories/<int:territory_id>/shape.geojson")
@roles_required(Role.MANAGER, Role.ADMIN)
def territory_shape(region_id: int, territory_id: int) -> Response:
    """The territory's shape as GeoJSON, simplified for the map."""
    _, territory = _territory_or_404(region_id, territory_id)

    return geojson_response(queries.territory_map(territory))


@bp.route("/<int:region_id>/partners/<int:partner_id>")
@roles_required(Role.MANAGER, Role.ADMIN)
def partner(region_id: int, partner_id: int) -> str:
    """A partner's figures in the region, and the sales lines and claims behind them.

    Partners neither owning a territory of the region now nor credited revenue in
    it during the period or its comparison are not found.
    """
    region = _region_or_404(region_id)
    period, error = _period()

    scope = _scope(region, period)
    row = next((row for row in scope.partners if row.id == partner_id), None)
    if row is None:
        abort(404)
    sales, claims = _lines(region, period, partner_id=partner_id)
    link = {"region_id": region.id, "partner_id": partner_id}
    context = {
        "sales": sales,
        "claims": claims,
        "line_link": link,
        "line_args": _pager_args(
            period, sales_page=sales.page, claims_page=claims.page
        ),
        "detail": "manager.partner",
        "export_args": {
            "region_id": region.id,
            "partner": partner_id,
            **period.query_args(),
        },
    }
    fragment = _line_fragment()
    if fragment:
        return render_template(
            fragment, period=period, period_args=period.query_args(), **context
        )

    months = figures.monthly([region], period, partner_id=partner_id)
    owned = [t for t in scope.territories if t.partner_id == partner_id]
    return render_template(
        "manager/partner.html",
        **_common(scope, error),
        **context,
        row=row,
        owned=owned,
        months=months,
        charts=[charts.revenue_chart(months, _currency())],
    )


@bp.route("/<int:region_id>/sales.csv")
@roles_required(Role.MANAGER, Role.ADMIN)
def export_sales(region_id: int) -> Response:
    """The sales lines behind a territory's, a partner's or the region's revenue."""
    region = _region_or_404(region_id)
    period = _export_period()
    which = _detail_filter(region)

    lines = figures.sales_behind([region], period, per_page=exports.MAX_LINES, **which)
    return exports.csv_response(
        exports.sales_csv(lines.items), exports.file_name(region.name, "sales", period)
    )


@bp.route("/<int:region_id>/claims.csv")
@roles_required(Role.MANAGER, Role.ADMIN)
def export_claims(region_id: int) -> Response:
    """The approved claims behind a territory's, a partner's or the region's revenue."""
    region = _region_or_404(region_id)
    period = _export_period()
    which = _detail_filter(region)

    lines = figures.claims_behind([region], period, per_page=exports.MAX_LINES, **which)
    return exports.csv_response(
        exports.claims_csv(lines.items),
        exports.file_name(region.name, "claims", period),
    )


def _detail_filter(region: Region) -> dict[str, int]:
    """The ``territory`` or ``partner`` argument; a territory of another region, or
    a partner that never worked in this one, is not found."""
    which: dict[str, int] = {}
    territory_id = request.args.get("territory", type=int)
    if territory_id is not None:
        _territory_or_404(region.id, territory_id)
        which["territory_id"] = territory_id
    partner_id = request.args.get("partner", type=int)
    if partner_id is not None:
        if not figures.partner_in_scope([region], partner_id):
            abort(404)
        which["partner_id"] = partner_id
    return which
