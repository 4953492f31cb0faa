"""Manager pages: the regions a manager looks after."""

from flask import Blueprint

bp = Blueprint("manager", __name__, url_prefix="/regions")


@bp.route("/")
def index() -> str:
    """The manager's regions."""
    return "todo"
