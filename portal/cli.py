"""``flask demo ...`` and ``flask worker``."""

import click
from flask.cli import AppGroup

demo_cli = AppGroup("demo", help="The demo data set.")


@click.command("worker")
def worker_command() -> None:
    """Run an RQ worker for background runs."""
