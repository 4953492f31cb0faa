"""``flask programs ...``: eligibility, onboarding and tier runs."""

from __future__ import annotations

import sys

import click

from portal.database import DatabaseCommandGroup
from portal.runs import Run, wait_for
from programs.jobs import start_eligibility_run

programs_cli = DatabaseCommandGroup(
    "programs", help="Programs: eligibility, onboarding statuses and tiers."
)


@programs_cli.command("recompute")
@click.option(
    "--wait/--no-wait",
    default=True,
    help="With REDIS_URL set, wait for the worker to finish the run.",
)
def recompute_command(wait: bool) -> None:
    """Recompute eligibility, onboarding statuses and tiers of every program."""
    run, created = start_eligibility_run()
    if created:
        click.echo(f"Run {run.id} started ({run.backend}).")
    else:
        click.echo(f"Run {run.id} is already {run.status}; not starting another.")
    if wait:
        run = wait_for(run)
    _report(run)


def _report(run: Run) -> None:
    if run.status == "failed":
        click.echo(f"Run {run.id} failed: {run.error}", err=True)
        sys.exit(1)
    counts = run.counts or {}
    if run.status == "succeeded":
        click.echo(
            f"Run {run.id} succeeded: {counts.get('eligibility_rows', 0)} "
            f"eligibility rows, {counts.get('standings', 0)} tier standings, "
            f"{counts.get('onboarding_changed', 0)} onboarding statuses changed."
        )
    else:
        click.echo(f"Run {run.id} is {run.status}.")
