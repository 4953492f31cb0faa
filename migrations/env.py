"""Alembic environment: runs migrations on the app's own engine."""

import sys
from pathlib import Path

from alembic import context
from flask import current_app

# Revisions import shared helpers (spatial columns) from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

target_metadata = current_app.extensions["migrate"].db.metadata


def run_migrations_online() -> None:
    engine = current_app.extensions["migrate"].db.engine
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline migrations are not supported; run them on a database.")
run_migrations_online()
