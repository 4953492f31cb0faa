"""Partner pages: My territory, the territories of the user's organisation."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, Response, abort, render_template, url_for
from flask_login import current_user

from portal.auth import roles_required
from portal.models import Role
from territory_rules import queries
from territory_rules.models import Territory
from territory_rules.views import (
    accounts_per_page,
    geojson_response,
    page_number,
    wants_fragment,
)

bp = Blueprint("partner", __name__, url_prefix="/my")


@bp.route("/territory")
@roles_required(Role.PARTNER)
def my_territory() -> str:
    """The organisation's first territory, or a sentence saying there is none."""
    territories = queries.partner_territories(current_user)
    if not territories:
        return render_template("partner/no_territory.html")

    return _territory_page(territories[0], territories)


@bp.route("/territory/<int:territory_id>")
@roles_required(Role.PARTNER)
def territory(territory_id: int) -> str:
    """One of the organisation's territories; htmx gets the accounts only."""
    territory = _own_territory_or_404(territory_id)

    return _territory_page(territory, queries.partner_territories(current_user))


@bp.route("/territory/<int:territory_id>/shape.geojson")
@roles_required(Role.PARTNER)
def territory_shape(territory_id: int) -> Response:
    """The territory's shape as GeoJSON, simplified for the map."""
    territory = _own_territory_or_404(territory_id)
    return geojson_response(queries.territory_map(territory))


def _own_territory_or_404(territory_id: int) -> Territory:
    territory = queries.partner_territory(current_user, territory_id)
    if territory is None:
        abort(404)
    return territory


def _territory_page(territory: Territory, territories: Sequence[Territory]) -> str:
    pager = queries.territory_accounts(territory, page_number(), accounts_per_page())
    page_link = {"endpoint": "partner.territory", "territory_id": territory.id}

    if wants_fragment():
        return render_template(
            "territories/_accounts.html", pager=pager, page_link=page_link
        )
    return render_template(
        "partner/my_territory.html",
        territory=territory,
        territories=territories,
        pager=pager,
        page_link=page_link,
        shape_url=url_for("partner.territory_shape", territory_id=territory.id),
    )
