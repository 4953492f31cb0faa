"""Background work of the rewards domain, started through :mod:`portal.runs`.

One kind of run, two tasks: the full recompute prices every sale, claim and
tier again and writes the differences; the incremental one prices only what
arrived since the last successful run (new sales lines, claims reviewed since)
and then does the same bookkeeping (tier bonuses, approvals, expiry). Either
way a rerun writes nothing new.
"""

from typing import Any

from portal.models import User
from portal.runs import Run, RunReporter, request_run, run_task, start_run
from programs.jobs import request_eligibility_run
from rewards import ledger

REWARDS_KIND = "rewards"
FULL_TASK = "rewards.jobs.recompute_rewards_full"
INCREMENTAL_TASK = "rewards.jobs.recompute_rewards_incremental"


@run_task
def recompute_rewards_full(reporter: RunReporter) -> dict[str, Any]:
    return ledger.recompute(reporter.run_id, reporter.progress, full=True)


@run_task
def recompute_rewards_incremental(reporter: RunReporter) -> dict[str, Any]:
    return ledger.recompute(reporter.run_id, reporter.progress, full=False)


def start_rewards_run(
    started_by: User | None = None, full: bool = True
) -> tuple[Run, bool]:
    """Recompute now, on demand; an active run is returned instead of a new one."""
    return start_run(REWARDS_KIND, FULL_TASK if full else INCREMENTAL_TASK, started_by)


def request_rewards_run(started_by: User | None = None, full: bool = False) -> Run:
    """After new sales or a reviewed claim: run now, or again after the active run."""
    task = FULL_TASK if full else INCREMENTAL_TASK
    return request_run(REWARDS_KIND, task, started_by)


def after_new_sales(started_by: User | None = None) -> Run:
    """After sales lines were imported or a claim approved.

    Sales move revenue potentials (which targeting rules test), KPIs and tiers
    (which price points), so the programs run recomputes those first; a full
    rewards run follows it (see ``portal.app``).
    """
    return request_eligibility_run(started_by)
