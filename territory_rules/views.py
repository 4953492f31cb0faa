"""Admin pages for regions, territories, rules and assignment runs.

Also the helpers every territory page shares: one URL answers with the full page
or, for htmx, with the fragment it swaps in.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from portal.auth import roles_required
from portal.extensions import db
from portal.models import Role
from portal.runs import Run, expire_every_stale_run, expire_stale_runs
from territory_rules import queries
from territory_rules.export import iter_assignments_csv
from territory_rules.jobs import ASSIGNMENT_KIND, start_assignment_run
from territory_rules.models import Territory

logger = logging.getLogger(__name__)

bp = Blueprint("territories", __name__, url_prefix="/territories")

RUNS_PER_PAGE = 25
IMPORTS_ENDPOINT = "imports.index"
ASSIGNMENTS_CHANGED = "assignments-changed"


# Shared by every territory page ----------------------------------------------


def wants_fragment() -> bool:
    """True for an htmx request that swaps part of the page.

    htmx restoring its history asks for the whole page, so that one gets the
    full page too.
    """
    return bool(request.headers.get("HX-Request")) and not request.headers.get(
        "HX-History-Restore-Request"
    )


def render_page(page: str, fragment: str, **context: Any) -> str:
    """Render the fragment for htmx, the full page otherwise."""
    return render_template(fragment if wants_fragment() else page, **context)


MAX_PAGE = 1_000_000


def page_number(name: str = "page") -> int:
    """The ``page`` (or ``name``) query argument; anything that is not a number
    means page 1.

    Kept within what every database's integers hold: a page past the last one is a
    404 from the pager, never an overflow in the query.
    """
    page = request.args.get(name, 1, type=int)
    return max(1, min(page, MAX_PAGE))


def accounts_per_page() -> int:
    return int(current_app.config["ACCOUNTS_PER_PAGE"])


@bp.app_template_filter("rule_in_words")
def rule_in_words(rule: Any) -> str:
    return queries.rules_in_words(rule)


@bp.app_context_processor
def admin_pages() -> dict[str, Any]:
    # The import pages are built separately; the layout links them once they exist.
    return {"imports_available": IMPORTS_ENDPOINT in current_app.view_functions}


def geojson_response(collection: dict[str, Any]) -> Response:
    response = jsonify(collection)
    response.mimetype = "application/geo+json"
    return response


# Regions and territories -----------------------------------------------------


@bp.route("/")
@roles_required(Role.ADMIN)
def index() -> str:
    """Regions with their territory trees, the status totals and the latest run."""
    regions = queries.visible_regions(current_user)

    return render_template(
        "territories/index.html",
        regions=queries.regions_with_trees(regions),
        totals=queries.status_totals(),
        run=queries.latest_run(ASSIGNMENT_KIND),
    )


def _territory_or_404(territory_id: int) -> Territory:
    territory = db.session.get(Territory, territory_id)
    if territory is None:
        abort(404)
    return territory


@bp.route("/<int:territory_id>")
@roles_required(Role.ADMIN)
def territory(territory_id: int) -> str:
    """A territory's rules, map and accounts; htmx gets the accounts only."""
    territory = _territory_or_404(territory_id)
    pager = queries.territory_accounts(territory, page_number(), accounts_per_page())
    page_link = {"endpoint": "territories.territory", "territory_id": territory.id}

    if wants_fragment():
        return render_template(
            "territories/_accounts.html", pager=pager, page_link=page_link
        )
    return render_template(
        "territories/territory.html",
        territory=territory,
        rules=queries.territory_rules(territory),
        children=queries.territory_tree(territory.children),
        pager=pager,
        page_link=page_link,
        shape_url=url_for("territories.territory_shape", territory_id=territory.id),
    )


@bp.route("/<int:territory_id>/shape.geojson")
@roles_required(Role.ADMIN)
def territory_shape(territory_id: int) -> Response:
    """The territory's shape as GeoJSON, simplified for the map."""
    return geojson_response(queries.territory_map(_territory_or_404(territory_id)))


# Assignment runs -------------------------------------------------------------


@bp.post("/recompute")
@roles_required(Role.ADMIN)
def recompute() -> Any:
    """Start an assignment run, or show the one already active."""
    run, created = start_assignment_run(current_user)

    if not created:
        logger.info(
            "%s asked for a recompute while run %s was active",
            current_user.email,
            run.id,
        )
    if wants_fragment():
        return run_fragment(run, created)
    if created:
        flash(f"Assignment run {run.id} started.", "info")
    else:
        flash(f"Run {run.id} was already active, so no other run was started.", "info")
    return redirect(url_for("territories.index"))


@bp.route("/runs/<int:run_id>")
@roles_required(Role.ADMIN)
def run_status(run_id: int) -> Response | str:
    """One run: htmx polls its fragment while it is active."""
    run = db.session.get(Run, run_id)
    if run is None:
        abort(404)
    if run.is_active:
        # A run whose worker died says so here, without waiting for a new start.
        expire_stale_runs(run.kind)
        db.session.refresh(run)

    if wants_fragment():
        return run_fragment(run, created=None)
    return render_template("territories/run.html", run=run, created=None)


def run_fragment(run: Run, created: bool | None) -> Response:
    """The run's status box; a finished assignment run also tells the page.

    The ``assignments-changed`` event makes the index reload its totals and
    territory counts, which the run has just changed.
    """
    response = Response(
        render_template("territories/_run.html", run=run, created=created)
    )
    if run.kind == ASSIGNMENT_KIND and not run.is_active:
        response.headers["HX-Trigger"] = ASSIGNMENTS_CHANGED
    return response


@bp.route("/runs")
@roles_required(Role.ADMIN)
def runs() -> str:
    """Every run, newest first."""
    expire_every_stale_run()
    pager = queries.runs_page(page_number(), RUNS_PER_PAGE)
    page_link = {"endpoint": "territories.runs"}

    return render_page(
        "territories/runs.html",
        "territories/_runs.html",
        pager=pager,
        page_link=page_link,
    )


# Reports ---------------------------------------------------------------------


@bp.route("/gaps")
@roles_required(Role.ADMIN)
def gaps() -> str:
    """Accounts that no rule matched."""
    pager = queries.gap_accounts(page_number(), accounts_per_page())
    page_link = {"endpoint": "territories.gaps"}

    return render_page(
        "territories/gaps.html",
        "territories/_gaps.html",
        pager=pager,
        page_link=page_link,
        run=queries.latest_run(ASSIGNMENT_KIND),
    )


@bp.route("/conflicts")
@roles_required(Role.ADMIN)
def conflicts() -> str:
    """Accounts that two territories claim at the same top precedence."""
    pager, rows = queries.conflict_accounts(page_number(), accounts_per_page())
    page_link = {"endpoint": "territories.conflicts"}

    return render_page(
        "territories/conflicts.html",
        "territories/_conflicts.html",
        pager=pager,
        rows=rows,
        page_link=page_link,
        run=queries.latest_run(ASSIGNMENT_KIND),
    )


@bp.route("/export.csv")
@roles_required(Role.ADMIN)
def export_csv() -> Response:
    """Every account's assignment as CSV, streamed."""
    logger.info("%s exported the assignments", current_user.email)

    return Response(
        stream_with_context(iter_assignments_csv()),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=assignments.csv"},
    )
