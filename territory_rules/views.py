"""Admin pages for regions, territories, rules and assignment runs."""

from flask import Blueprint

bp = Blueprint("territories", __name__, url_prefix="/territories")


@bp.route("/")
def index() -> str:
    """Regions and territories."""
    return "todo"
