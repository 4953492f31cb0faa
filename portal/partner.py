"""Partner pages: My territory."""

from flask import Blueprint

bp = Blueprint("partner", __name__, url_prefix="/my")


@bp.route("/territory")
def my_territory() -> str:
    """The signed-in partner's territory."""
    return "todo"
