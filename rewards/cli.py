"""``flask rewards ...``: sales imports and the rewards recompute."""

from __future__ import annotations

import sys

import click

from portal.database import DatabaseCommandGroup
from portal.runs import Run, wait_for
from rewards.import_cli import import_sales_command
from rewards.jobs import start_rewards_run

rewards_cli = DatabaseCommandGroup(
    "rewards", help="Rewards: sales imports, credit, points and tiers."
)
rewards_cli.add_command(import_sales_command)


@rewards_cli.command("recompute")
@click.option(
    "--full/--incremental",
    default=False,
    help="Price everything again, or only what arrived since the last run.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    help="With REDIS_URL set, wait for the worker to finish the run.",
)
def recompute_command(full: bool, wait: bool) -> None:
    """Recompute credit, points and reward status (on RQ when REDIS_URL is set)."""
    run, created = start_rewards_run(full=full)
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
    if run.status != "succeeded":
        click.echo(f"Run {run.id} is {run.status}.")
        return
    counts = run.counts or {}
    click.echo(
        f"Run {run.id} succeeded: {counts.get('entries_written', 0)} ledger entries "
        f"written, {counts.get('approved', 0)} approved, "
        f"{counts.get('expired', 0)} expired."
    )
