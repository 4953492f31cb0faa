"""``flask territories ...`` commands."""

import click
from flask.cli import AppGroup

territories_cli = AppGroup("territories", help="Territories, rules and assignment.")


@territories_cli.command("recompute")
def recompute_command() -> None:
    """Recompute every account's territory."""
    from territory_rules.jobs import start_assignment_run

    run, created = start_assignment_run()
    click.echo(f"run {run.id} {run.status} {run.counts}")
