"""The application factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map

from portal import config as portal_config
from portal.config import PROJECT_ROOT
from portal.database import configure_engines, engine_options, normalise_uri
from portal.extensions import csrf, db, login_manager, migrate


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    app.config.from_mapping(portal_config.from_environment(Path(app.instance_path)))
    if config:
        app.config.update(config)
    uri = normalise_uri(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(uri))

    # Ids in URLs beyond what the databases' integers hold are simply not found.
    app.url_map.converters["int"] = BoundedIntConverter

    _configure_logging(app)
    _init_extensions(app)
    _register_blueprints(app)
    _register_error_pages(app)
    _register_security_headers(app)
    _register_commands(app)
    _register_run_followers()
    return app


def _register_run_followers() -> None:
    """What one domain's changes start in another: new territories, new programs;
    and what one domain counts of another's."""
    from portal.runs import follow
    from portal.signals import territories_changed
    from programs.jobs import (
        ELIGIBILITY_KIND,
        ELIGIBILITY_TASK,
        on_territories_changed,
    )
    from programs.tiers import count_other_sales
    from rewards.claims import approved_claim_sales
    from rewards.jobs import FULL_TASK, REWARDS_KIND
    from territory_rules.jobs import ASSIGNMENT_KIND

    follow(ASSIGNMENT_KIND, ELIGIBILITY_KIND, ELIGIBILITY_TASK)
    # Eligibility and tiers decide who earns what: price the ledger again after.
    follow(ELIGIBILITY_KIND, REWARDS_KIND, FULL_TASK)
    territories_changed.connect(on_territories_changed)
    # Approved claims are sales too: tiers on sales count them.
    count_other_sales(approved_claim_sales)


class BoundedIntConverter(IntegerConverter):
    """Flask's ``int`` converter, refusing numbers a BIGINT cannot hold."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def _register_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Scripts come only from our own files: an injected inline script, handler
        # attribute or javascript: address never runs. Styles are not restricted, as
        # htmx and Leaflet set inline styles.
        response.headers.setdefault(
            "Content-Security-Policy",
            "script-src 'self'; frame-ancestors 'none'; object-src 'none'; "
            "base-uri 'self'; form-action 'self'",
        )
        return response


def _configure_logging(app: Flask) -> None:
    level = app.config["LOG_LEVEL"]
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    for package in ("portal", "territory_rules", "programs", "rewards"):
        logging.getLogger(package).setLevel(level)


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    with app.app_context():
        configure_engines(app, db.engine)


def _register_blueprints(app: Flask) -> None:
    from portal.auth import bp as auth_bp
    from portal.home import bp as home_bp
    from portal.partner import bp as partner_bp
    from portal.performance.admin_views import bp as performance_admin_bp
    from portal.performance.admin_views import my_bp as my_performance_bp
    from portal.performance.views import bp as manager_bp
    from programs.admin_views import bp as programs_admin_bp
    from programs.partner_views import bp as my_programs_bp
    from rewards.admin_views import bp as rewards_admin_bp
    from rewards.claim_views import claims_admin_bp, my_claims_bp
    from rewards.import_views import bp as rewards_imports_bp
    from rewards.partner_views import bp as my_rewards_bp
    from territory_rules.import_views import bp as imports_bp
    from territory_rules.rule_views import bp as rules_bp
    from territory_rules.views import bp as territories_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(home_bp)
    app.register_blueprint(partner_bp)
    app.register_blueprint(manager_bp)
    app.register_blueprint(performance_admin_bp)
    app.register_blueprint(my_performance_bp)
    app.register_blueprint(territories_bp)
    app.register_blueprint(imports_bp)
    app.register_blueprint(rules_bp)
    app.register_blueprint(my_programs_bp)
    app.register_blueprint(programs_admin_bp)
    app.register_blueprint(my_rewards_bp)
    app.register_blueprint(my_claims_bp)
    app.register_blueprint(claims_admin_bp)
    app.register_blueprint(rewards_admin_bp)
    app.register_blueprint(rewards_imports_bp)


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[str, int]:
        return render_template("error.html", error=error), error.code or 500

    @app.errorhandler(Exception)
    def _server_error(error: Exception) -> tuple[str, int]:
        db.session.rollback()
        app.logger.error("Unhandled error", exc_info=error)
        return render_template("error.html", error=None), 500


def _register_commands(app: Flask) -> None:
    from portal.cli import demo_cli, worker_command
    from programs.cli import programs_cli
    from rewards.cli import rewards_cli
    from territory_rules.cli import territories_cli

    app.cli.add_command(demo_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(territories_cli)
    app.cli.add_command(programs_cli)
    app.cli.add_command(rewards_cli)
