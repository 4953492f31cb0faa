"""Fresh benchmark databases, their schema, and fast bulk loading.

Each benchmark case gets a database of its own, created here and dropped at the
end, with the schema built by the project's Alembic migrations so that the
product runs against exactly the tables it ships.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import upgrade
from geoalchemy2.shape import from_shape
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.data import SEGMENTS, AccountRows, Piece, ZipCentroids
from portal.app import create_app
from portal.database import normalise_uri
from portal.extensions import db
from territory_rules.models import Condition, Region, Rule, Territory

logger = logging.getLogger(__name__)

SHAPE_PRECEDENCE = 100
STATE_PRECEDENCE = 50
CREATED_AT_UTC = "2026-01-01 00:00:00.000000"
SQLITE_CHUNK = 10_000

ACCOUNT_COLUMNS = (
    "key, external_id, name, postal_code, city, state, country, segment, "
    "location_source, created_at_utc, location"
)


def app_config(url: str) -> dict[str, Any]:
    """The product's configuration for a benchmark database: in-process runs."""
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": None,
        "SECRET_KEY": "benchmark-only",
        "LOG_LEVEL": "WARNING",
    }


@contextmanager
def postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """A new PostgreSQL database for one case, dropped afterwards whatever happens."""
    admin_url = normalise_uri(admin_url)
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(label: str) -> Iterator[str]:
    """A SQLite file in a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        yield f"sqlite:///{Path(folder) / (label + '.db')}"


def migrated_app(url: str) -> Flask:
    app = create_app(app_config(url))
    with app.app_context():
        upgrade()
    return app


def load_territories(pieces: list[Piece]) -> None:
    """One territory per piece with a shape rule; one state-list rule per state.

    The state rule sits on the state's largest piece at a lower precedence, so
    it decides only for accounts outside every shape, as the demo's rules do.
    """
    region = Region(name="Benchmark")
    largest: dict[str, tuple[float, Territory]] = {}
    for piece in pieces:
        territory = Territory(
            name=piece.name, region=region, shape=from_shape(piece.shape, srid=4326)
        )
        territory.rules.append(
            _rule(f"inside {piece.name}", SHAPE_PRECEDENCE, "shape", "inside", None)
        )
        db.session.add(territory)
        area = piece.shape.area
        if piece.state_code and area > largest.get(piece.state_code, (0.0, None))[0]:
            largest[piece.state_code] = (area, territory)

    for code, (_, territory) in sorted(largest.items()):
        territory.rules.append(
            _rule(f"state {code}", STATE_PRECEDENCE, "state", "in", [code])
        )
    db.session.commit()


def rule_count(pieces: list[Piece]) -> int:
    """Rules :func:`load_territories` writes: one per piece, one per state."""
    return len(pieces) + len({piece.state_code for piece in pieces if piece.state_code})


def _rule(name: str, precedence: int, field: str, operator: str, value: Any) -> Rule:
    condition = Condition(field=field, operator=operator, value=value)
    return Rule(name=name, precedence=precedence, conditions=[condition])


def _account_values(accounts: AccountRows, zips: ZipCentroids) -> Iterator[tuple]:
    """Each account's column values, the point last as (longitude, latitude)."""
    zip_index = accounts.zip_index.tolist()
    segments = accounts.segment_index.tolist()
    points = zip(accounts.lon.tolist(), accounts.lat.tolist(), strict=True)
    for i, (lon, lat) in enumerate(points):
        z = zip_index[i]
        yield (
            f"bench-{i}",
            f"B{i}",
            f"Bench account {i}",
            zips.codes[z],
            zips.cities[z] or None,
            zips.states[z] or None,
            zips.countries[z] or None,
            SEGMENTS[segments[i]],
            "postal_code",
            CREATED_AT_UTC,
            lon,
            lat,
        )


def load_accounts_postgres(accounts: AccountRows, zips: ZipCentroids) -> None:
    """COPY every account in one stream; PostGIS reads the point as EWKT."""
    raw = db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None, (
            "an open pooled connection has a driver connection"
        )
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY accounts ({ACCOUNT_COLUMNS}) FROM STDIN") as copy,
        ):
            for *values, lon, lat in _account_values(accounts, zips):
                copy.write_row((*values, f"SRID=4326;POINT({lon} {lat})"))
        connection.commit()
    finally:
        raw.close()


def load_accounts_sqlite(accounts: AccountRows, zips: ZipCentroids) -> None:
    """Insert in chunks; SpatiaLite builds each point with MakePoint."""
    statement = (
        f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, MakePoint(?, ?, 4326))"
    )
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        chunk: list[tuple] = []
        for values in _account_values(accounts, zips):
            chunk.append(values)
            if len(chunk) == SQLITE_CHUNK:
                cursor.executemany(statement, chunk)
                chunk = []
        cursor.executemany(statement, chunk)
        raw.commit()
    finally:
        raw.close()


def analyze() -> None:
    """Fresh statistics, so the product and the hand-written join plan alike."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        ) as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    settle()


def settle() -> None:
    """Write out what earlier steps left pending, so no timing pays for it."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        ) as conn:
            conn.execute(text("CHECKPOINT"))
    else:
        with db.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
