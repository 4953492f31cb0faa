"""Manager pages: the regions a manager looks after (admins see every region)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, url_for
from flask_login import current_user

from portal.auth import roles_required
from portal.models import Role
from territory_rules import queries
from territory_rules.models import Region, Territory
from territory_rules.views import (
    accounts_per_page,
    geojson_response,
    page_number,
    wants_fragment,
)

bp = Blueprint("manager", __name__, url_prefix="/regions")


@bp.route("/")
@roles_required(Role.MANAGER, Role.ADMIN)
def index() -> str:
    """The user's regions with their territories, owners and account counts."""
    regions = queries.visible_regions(current_user)

    return render_template(
        "manager/index.html", regions=queries.regions_with_trees(regions)
    )


@bp.route("/<int:region_id>")
@roles_required(Role.MANAGER, Role.ADMIN)
def region(region_id: int) -> str:
    """One region: a map of its territories and their table."""
    region = _region_or_404(region_id)

    [(_, rows)] = queries.regions_with_trees([region])
    return render_template(
        "manager/region.html",
        region=region,
        rows=rows,
        shape_url=url_for("manager.region_shapes", region_id=region.id),
    )


@bp.route("/<int:region_id>/shapes.geojson")
@roles_required(Role.MANAGER, Role.ADMIN)
def region_shapes(region_id: int) -> Response:
    """The shapes of the region's territories as GeoJSON, simplified for the map."""
    region = _region_or_404(region_id)

    return geojson_response(queries.territories_geojson(queries.region_shapes(region)))


@bp.route("/<int:region_id>/territories/<int:territory_id>")
@roles_required(Role.MANAGER, Role.ADMIN)
def territory(region_id: int, territory_id: int) -> str:
    """A territory of the region with its accounts; htmx gets the accounts only."""
    region, territory = _territory_or_404(region_id, territory_id)
    pager = queries.territory_accounts(territory, page_number(), accounts_per_page())
    page_link = {
        "endpoint": "manager.territory",
        "region_id": region.id,
        "territory_id": territory.id,
    }

    if wants_fragment():
        return render_template(
            "territories/_accounts.html", pager=pager, page_link=page_link
        )
    return render_template(
        "manager/territory.html",
        region=region,
        territory=territory,
        rules=queries.territory_rules(territory),
        pager=pager,
        page_link=page_link,
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
