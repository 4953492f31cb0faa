"""``flask demo ...`` and ``flask worker``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from portal.config import PROJECT_ROOT
from portal.database import DatabaseCommandGroup
from portal.extensions import db

logger = logging.getLogger(__name__)

demo_cli = DatabaseCommandGroup("demo", help="The demo data set.")

DEMO_DATA_DIR = PROJECT_ROOT / "demo_data"


@demo_cli.command("load")
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEMO_DATA_DIR,
    show_default=True,
)
@click.option(
    "--if-empty",
    is_flag=True,
    help="Do nothing, successfully, when the database already holds data.",
)
def load_command(data_dir: Path, if_empty: bool) -> None:
    """Load the demo regions, territories, partners, users and accounts."""
    from portal.demo import DemoLoadError, database_is_empty, load_demo

    if if_empty and not database_is_empty():
        click.echo("The database already holds data; the demo was not loaded again.")
        _print_sign_ins()
        return
    try:
        load_demo(data_dir, current_app.config["DEMO_PASSWORD"])
    except DemoLoadError as error:
        db.session.rollback()
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    click.echo("Demo data loaded.")
    _print_sign_ins()


@demo_cli.command("sign-ins")
def sign_ins_command() -> None:
    """List the demo sign-ins."""
    _print_sign_ins()


def _print_sign_ins() -> None:
    from sqlalchemy import select

    from portal.models import User

    users = db.session.scalars(
        select(User)
        .where(User.email.like("%@demo.test"))
        .order_by(User.role, User.email)
    ).all()
    if not users:
        click.echo("No demo users in this database.")
        return
    password = current_app.config["DEMO_PASSWORD"]
    click.echo(f"\nDemo sign-ins (password for all: {password}):")
    for user in users:
        who = user.organisation.name if user.organisation else user.display_name
        click.echo(f"  {user.role:<8} {user.email:<42} {who}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker that executes background runs (needs REDIS_URL)."""
    from redis import Redis
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    redis_url = current_app.config["REDIS_URL"]
    if not redis_url:
        click.echo(
            "Error: set REDIS_URL to the Redis server the portal uses.", err=True
        )
        sys.exit(2)

    class PortalWorker(SimpleWorker):
        """Runs jobs in this process, inside the app context, one session each."""

        def execute_job(self, job: Any, queue: Any) -> Any:
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()

    connection = Redis.from_url(redis_url)
    queue = Queue(
        current_app.config["RQ_QUEUE"], connection=connection, serializer=JSONSerializer
    )
    worker = PortalWorker([queue], connection=connection, serializer=JSONSerializer)
    logger.info("Worker listening on queue %s", queue.name)
    worker.work(burst=burst)
