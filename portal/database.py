"""Database engine set-up shared by both back ends (SQLite/SpatiaLite, PostGIS)."""

import logging
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import ColumnElement, event, func, literal
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

logger = logging.getLogger(__name__)


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite")


def normalise_uri(uri: str) -> str:
    """Let plain ``postgresql://`` URLs use psycopg 3, the driver we ship."""
    if uri.startswith("postgres://"):
        uri = "postgresql://" + uri.removeprefix("postgres://")
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri.removeprefix("postgresql://")
    return uri


def engine_options(uri: str) -> dict[str, Any]:
    """Engine options; SQLite goes through pysqlite3, which can load extensions."""
    if not is_sqlite(uri):
        return {"pool_pre_ping": True}

    import pysqlite3.dbapi2 as sqlite_driver

    return {"module": sqlite_driver, "connect_args": {"timeout": 30}}


def attach_spatialite(engine: Engine, library_path: str) -> None:
    """Load SpatiaLite into every new SQLite connection of ``engine``."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.enable_load_extension(True)
        dbapi_conn.load_extension(library_path)
        dbapi_conn.enable_load_extension(False)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()


def configure_engines(app: Flask, engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        attach_spatialite(engine, app.config["SPATIALITE_LIBRARY_PATH"])


class DatabaseCommandGroup(AppGroup):
    """A command group whose commands explain an unreachable database in a sentence.

    Without this, a wrong ``DATABASE_URL`` or a stopped server ends a command with
    a driver traceback instead of saying what to check.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise click.ClickException(
                f"The database could not be used: {reason}. Check DATABASE_URL and "
                "that the database server is running, then try again."
            ) from None


def round_cents(value: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Round an amount half up to the cent, the same on both databases.

    PostgreSQL's NUMERIC is exact. SQLite holds binary floats, where 18.275 is
    a hair below itself: a nudge far below a cent's fraction restores the
    half-up rounding of the exact (positive) value.
    """
    if dialect == "sqlite":
        return func.round(value + literal(1e-9), 2)
    return func.round(value, 2)
