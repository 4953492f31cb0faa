"""The databases and services the suite runs against, created and dropped by it.

PostgreSQL and Redis are found through ``TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``). Where one cannot be reached the tests that need it
are skipped with a plain message, unless ``CI`` is set: then its absence fails them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def required_service_missing(message: str) -> None:
    """Fail under CI, skip elsewhere: a missing service is said plainly either way."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} CI is set, so this service is required.")
    pytest.skip(message)


@dataclass
class Backend:
    name: str
    tmp_dir: Path

    def create_database(self, label: str) -> str:
        suffix = f"{label}_{uuid.uuid4().hex[:8]}"
        if self.name == "sqlite":
            return f"sqlite:///{self.tmp_dir / (suffix + '.db')}"
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "portal_test_{suffix}"'))
        admin.dispose()
        return (
            make_url(POSTGRES_URL)
            .set(database=f"portal_test_{suffix}")
            .render_as_string(hide_password=False)
        )

    def drop_database(self, url: str) -> None:
        if self.name == "sqlite":
            return
        database = make_url(url).database
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "not reachable"
        url = make_url(POSTGRES_URL)
        first_line = str(getattr(exc, "orig", exc)).splitlines()[0]
        return f"PostgreSQL at {url.host}:{url.port} cannot be reached: {first_line}."
    return None


def redis_reachable() -> str | None:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except RedisError as exc:
        return f"Redis at {REDIS_URL} cannot be reached ({exc})."
    return None
