"""The landing page sends each role to its own portal."""

from typing import Any

from flask import Blueprint, redirect, url_for
from flask_login import current_user, login_required

from portal.models import Role

bp = Blueprint("home", __name__)

LANDING_PAGES = {
    Role.ADMIN: "territories.index",
    Role.MANAGER: "manager.index",
    Role.PARTNER: "partner.my_territory",
}


@bp.route("/")
@login_required
def index() -> Any:
    """Send the signed-in user to their role's first page."""
    return redirect(url_for(LANDING_PAGES[Role(current_user.role)]))
