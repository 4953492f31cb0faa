"""Fixtures: an app on each database, a clean database per test, a signed-in client."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from portal.app import create_app
from portal.demo import load_demo
from portal.extensions import db
from tests.backends import (
    REDIS_URL,
    Backend,
    postgres_reachable,
    redis_reachable,
    required_service_missing,
)
from tests.workers import start_worker, stop_worker

BACKENDS = ["sqlite", "postgres"]

# Tables emptied between tests; spatial metadata and alembic's version stay.
DATA_TABLES = [
    "target_months",
    "territory_targets",
    "performance_settings",
    "ledger_entries",
    "payouts",
    "reward_rules",
    "reward_plans",
    "claims",
    "sales_imports",
    "sales_sources",
    "account_placements",
    "territory_ownerships",
    "program_eligibility",
    "program_standings",
    "step_completions",
    "quiz_attempts",
    "module_completions",
    "program_steps",
    "tiers",
    "program_conditions",
    "program_rules",
    "programs",
    "training_modules",
    "rule_matches",
    "assignments",
    "sales_lines",
    "accounts",
    "postal_codes",
    "conditions",
    "rules",
    "territory_boundaries",
    "territories",
    "boundaries",
    "region_managers",
    "regions",
    "runs",
    "users",
    "partner_organisations",
]


def config_for_tests(database_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        "SECRET_KEY": "tests-only-secret",
        "REDIS_URL": None,
        "DEMO_PASSWORD": "demo-pass",
    }
    config.update(overrides)
    return config


def build_app(database_url: str, **overrides: Any) -> Flask:
    app = create_app(config_for_tests(database_url, **overrides))
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(scope="session", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Backend:
    if request.param == "postgres":
        reason = postgres_reachable()
        if reason:
            required_service_missing(reason)
    return Backend(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def app(backend: Backend) -> Iterator[Flask]:
    """An app on an empty, migrated database of the backend under test."""
    url = backend.create_database("clean")
    application = build_app(url)
    yield application
    with application.app_context():
        db.engine.dispose()
    backend.drop_database(url)


def empty_tables() -> None:
    if db.engine.dialect.name == "postgresql":
        db.session.execute(
            text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        )
    else:
        for table in DATA_TABLES:
            db.session.execute(text(f"DELETE FROM {table}"))
        db.session.execute(text("DELETE FROM sqlite_sequence"))
    db.session.commit()


@pytest.fixture
def clean_app(app: Flask) -> Iterator[Flask]:
    """The app inside an app context, its database emptied after the test."""
    with app.app_context():
        yield app
        db.session.rollback()
        empty_tables()


@pytest.fixture
def client(clean_app: Flask) -> FlaskClient:
    return clean_app.test_client()


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def sign_in(self, email: str, password: str = "pass-1234") -> Any:
        return self.client.post(
            "/auth/sign-in", data={"email": email, "password": password}
        )

    def sign_out(self) -> Any:
        return self.client.post("/auth/sign-out")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


DEMO_DATA_DIR = Path(__file__).resolve().parent.parent / "demo_data"
DEMO_PASSWORD = "demo-pass"


@pytest.fixture(scope="session")
def demo_app(backend: Backend) -> Iterator[Flask]:
    """A database with the whole demo loaded and assigned, shared by read-only tests."""
    url = backend.create_database("demo")
    app = build_app(url)
    with app.app_context():
        load_demo(DEMO_DATA_DIR, DEMO_PASSWORD)
    yield app
    with app.app_context():
        db.engine.dispose()
    backend.drop_database(url)


@pytest.fixture
def rq_app(clean_app: Flask) -> Iterator[Flask]:
    """The app configured to queue runs on a queue of its own in a real Redis."""
    reason = redis_reachable()
    if reason:
        required_service_missing(reason)
    queue = f"test-{uuid.uuid4().hex[:10]}"
    clean_app.config.update(REDIS_URL=REDIS_URL, RQ_QUEUE=queue)
    yield clean_app
    clean_app.config.update(REDIS_URL=None, RQ_QUEUE="portal")


@pytest.fixture
def worker(rq_app: Flask, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``flask worker`` process; its log is printed if the test fails."""
    log_path = tmp_path / "worker.log"
    process = start_worker(rq_app, log_path)
    yield process
    stop_worker(process)
    print(log_path.read_text(errors="replace")[-4000:])
