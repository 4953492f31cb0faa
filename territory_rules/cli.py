"""``flask territories ...``: assignment runs, exports and imports."""

from __future__ import annotations

import sys

import click
from flask import current_app

from portal.database import DatabaseCommandGroup
from portal.runs import Run, wait_for
from territory_rules.export import write_assignments_csv
from territory_rules.import_cli import IMPORT_COMMANDS
from territory_rules.jobs import start_assignment_run

territories_cli = DatabaseCommandGroup(
    "territories", help="Territories, rules and assignment."
)
for command in IMPORT_COMMANDS:
    territories_cli.add_command(command)


@territories_cli.command("recompute")
@click.option(
    "--wait/--no-wait",
    default=True,
    help="With REDIS_URL set, wait for the worker to finish the run.",
)
def recompute_command(wait: bool) -> None:
    """Recompute every account's territory (on RQ when REDIS_URL is set)."""
    run, created = start_assignment_run()
    if not created:
        click.echo(f"Run {run.id} is already {run.status}; not starting another.")
        if run.backend == "rq" and not current_app.config["REDIS_URL"]:
            click.echo(
                "That run waits for an RQ worker; set REDIS_URL and start "
                "`flask --app wsgi worker` to let it finish.",
                err=True,
            )
            sys.exit(1)
    elif run.status != "failed":
        click.echo(f"Run {run.id} started ({run.backend}).")
    if wait:
        run = wait_for(run)
    _report(run)


def _report(run: Run) -> None:
    if run.status == "failed":
        click.echo(f"Run {run.id} failed: {run.error}", err=True)
        sys.exit(1)
    if run.status == "succeeded" and run.counts:
        counts = run.counts
        click.echo(
            f"Run {run.id} succeeded: {counts['accounts']} accounts, "
            f"{counts['assigned']} assigned, {counts['conflict']} in conflict, "
            f"{counts['gap']} in the gap report."
        )
    else:
        click.echo(f"Run {run.id} is {run.status}.")


@territories_cli.command("export")
def export_command() -> None:
    """Write every account's assignment as CSV to standard output."""
    write_assignments_csv(sys.stdout)
