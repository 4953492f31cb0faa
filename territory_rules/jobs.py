"""Background work of the territory domain, started through :mod:`portal.runs`."""

from typing import Any

from portal.models import User
from portal.runs import Run, RunReporter, run_task, start_run
from territory_rules.engine import assign_accounts

ASSIGNMENT_KIND = "territory_assignment"
ASSIGNMENT_TASK = "territory_rules.jobs.recompute_assignments"


@run_task
def recompute_assignments(reporter: RunReporter) -> dict[str, Any]:
    counts = assign_accounts(reporter.run_id, reporter.progress)
    return counts.as_dict()


def start_assignment_run(started_by: User | None = None) -> tuple[Run, bool]:
    return start_run(ASSIGNMENT_KIND, ASSIGNMENT_TASK, started_by)
