"""Background work of the programs domain, started through :mod:`portal.runs`.

One run brings everything a program decides up to date, in an order where each
step reads what the one before wrote: eligibility from the targeting rules, then
onboarding statuses and tier standings of the eligible partners. Rules can test
those two, so when either changed and a rule tests it, eligibility is written
once more. A chain deeper than that (a tier reached only through a program that
itself targets by tier) settles over the following runs.
"""

from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import User
from portal.runs import Run, RunReporter, request_run, run_task, start_run
from programs import eligibility, tiers, training
from programs.models import Kpi, Standing
from programs.targeting import TargetField

ELIGIBILITY_KIND = "program_eligibility"
ELIGIBILITY_TASK = "programs.jobs.recompute_programs"


@run_task
def recompute_programs(reporter: RunReporter) -> dict[str, Any]:
    progress = reporter.progress
    rows = eligibility.write_eligibility(reporter.run_id, progress)

    progress(65, "Onboarding statuses")
    onboarding_changed = training.refresh_all_onboarding_statuses()
    progress(75, "Tier standings")
    tiers_before = _tiers_reached()
    standings = tiers.refresh_standings(reporter.run_id)
    tiers_moved = _tiers_reached() != tiers_before

    retest = (
        onboarding_changed and eligibility.rules_test(TargetField.ONBOARDING_STATUS)
    ) or (tiers_moved and eligibility.rules_test(TargetField.TIER))
    if retest:
        progress(85, "Eligibility again, with the new statuses and tiers")
        rows = eligibility.write_eligibility(reporter.run_id, None)
        standings = tiers.refresh_standings(reporter.run_id)

    return {
        "eligibility_rows": rows,
        "onboarding_changed": onboarding_changed,
        "standings": standings,
        "second_pass": bool(retest),
    }


def _tiers_reached() -> set[tuple[int, int, int | None]]:
    """(program, organisation, tier) of every standing: what tier rules test."""
    rows = db.session.execute(
        select(Standing.program_id, Standing.organisation_id, Standing.tier_id)
    ).all()
    return {(program, organisation, tier) for program, organisation, tier in rows}


def start_eligibility_run(started_by: User | None = None) -> tuple[Run, bool]:
    """Recompute now, on demand; an active run is returned instead of a new one."""
    return start_run(ELIGIBILITY_KIND, ELIGIBILITY_TASK, started_by)


def request_eligibility_run(started_by: User | None = None) -> Run:
    """After a change targeting can see: run now, or again once the active run ends."""
    return request_run(ELIGIBILITY_KIND, ELIGIBILITY_TASK, started_by)


def on_territories_changed(_territory: object, **_extra: object) -> None:
    """A territory's owner, region or shape changed: who is in which program may too."""
    request_eligibility_run()


def after_partner_progress(started_by: User, onboarding_changed: bool) -> Run | None:
    """After a partner completed a module or a step: recompute if it can matter.

    Targeting can test onboarding status, and tiers counting completed modules
    can move; anything else a partner does changes no one's programs.
    """
    if onboarding_changed or tiers.programs_measuring(Kpi.MODULES_COMPLETED):
        return request_eligibility_run(started_by)
    return None
