"""Sign-in, sign-out and role checks."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from portal.extensions import db, login_manager
from portal.models import Role, User

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")

F = TypeVar("F", bound=Callable[..., Any])


class SignInForm(FlaskForm):
    # No format check: WTForms' Email() needs the email_validator package, and an
    # address that is not well formed simply matches no user.
    email = EmailField(
        "Email",
        validators=[DataRequired("Enter your email address."), Length(max=254)],
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=200)]
    )


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The user of a session id ``"<user id>.<session version>"``, if still valid."""
    user_id, _, version = session_id.partition(".")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


@login_manager.unauthorized_handler
def send_to_sign_in() -> Response:
    target = url_for("auth.sign_in", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)  # type: ignore[return-value]


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Let signed-in users with one of ``roles`` through; others get a 403."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403, "This page is not part of your role's portal.")
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def _next_page(user: User, target: str | None) -> str | None:
    """The page asked for before sign-in, if it is on this site and for this role.

    A page of another role would only answer 403 right after signing in, so the
    user is sent to their own landing page instead.
    """
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return None
    try:
        endpoint, _args = current_app.url_map.bind("").match(parts.path)
    except HTTPException:
        return None
    allowed = getattr(current_app.view_functions[endpoint], "allowed_roles", None)
    if allowed is not None and user.role not in allowed:
        return None
    return target


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """Sign in with email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = SignInForm()

    if form.validate_on_submit():
        email = (form.email.data or "").strip().lower()
        user = db.session.scalar(select(User).where(func.lower(User.email) == email))
        if user is not None and user.check_password(form.password.data or ""):
            login_user(user)
            logger.info("%s signed in", user.email)
            target = _next_page(user, request.args.get("next"))
            return redirect(target or url_for("home.index"))
        logger.info("Failed sign-in for %s", email)
        flash("That email and password do not match an account.", "error")

    return render_template("auth/sign_in.html", form=form)


@bp.post("/sign-out")
@login_required
def sign_out() -> Any:
    """Sign out and return to the sign-in page."""
    logger.info("%s signed out", current_user.email)
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.sign_in"))
