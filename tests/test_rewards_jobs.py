"""The rewards run through its real paths: concurrent starts, and a worker killed
with SIGKILL halfway, then a new run that gives the totals of a clean one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import delete, func, select

from portal.extensions import db
from portal.runs import Run
from programs import eligibility, tiers
from rewards import ledger
from rewards.jobs import REWARDS_KIND, start_rewards_run
from rewards.models import LedgerEntry, RewardPlan
from territory_rules.models import SalesLine
from tests.factories import make_account, make_org, make_region, make_territory
from tests.program_factories import add_program_rule, assign, make_program
from tests.workers import (
    PROJECT_ROOT,
    flask_command,
    start_worker,
    stop_worker,
    wait_for_finish,
)

PROGRAMS = 12
LINES_PER_ACCOUNT = 400


def build_world() -> None:
    """Two partners, a dozen rewarded programs, a few thousand credited sales."""
    region = make_region("West")
    for index, name in enumerate(("Acme", "Bolt")):
        territory = make_territory(region, f"T{index}", partner=make_org(name))
        for number in range(5):
            account = make_account(f"{name} {number}")
            assign(account, territory)
            db.session.add_all(
                SalesLine(
                    external_line_id=f"{name}-{number}-{day}",
                    account_id=account.id,
                    order_date=date(2024, 1, 1) + timedelta(days=day % 300),
                    amount=Decimal(day % 97) + Decimal("0.35"),
                    category="Technology" if day % 3 else "Furniture",
                )
                for day in range(LINES_PER_ACCOUNT)
            )
    for number in range(PROGRAMS):
        program = make_program(
            f"Incentive {number}",
            kind="incentive",
            kpi="sales_sum",
            starts_on=date(2024, 1, 1),
            ends_on=date(2099, 12, 31),
        )
        add_program_rule(program, ("region", "in", [region.id]))
        db.session.add(
            RewardPlan(program=program, points_per_unit=Decimal(number + 1) / 4)
        )
    db.session.commit()
    eligibility.write_eligibility(None, None)
    tiers.refresh_standings(None)


def ledger_by_source() -> dict[str, Decimal]:
    """Source key -> points held, with every source's entries counted."""
    rows = db.session.execute(
        select(LedgerEntry.source_key, func.sum(LedgerEntry.points)).group_by(
            LedgerEntry.source_key
        )
    ).all()
    return {key: Decimal(str(total)).quantize(Decimal("0.01")) for key, total in rows}


def entry_count() -> int:
    return db.session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def clean_totals() -> tuple[dict[str, Decimal], int]:
    """What one uninterrupted run writes on an empty ledger (the ledger is restored)."""
    saved = [
        {c.key: getattr(row, c.key) for c in LedgerEntry.__table__.columns}
        for row in db.session.scalars(select(LedgerEntry))
    ]
    db.session.execute(delete(LedgerEntry))
    ledger.recompute(0, lambda _p, _m: None, full=True)
    result = ledger_by_source(), entry_count()
    db.session.execute(delete(LedgerEntry))
    if saved:
        db.session.execute(LedgerEntry.__table__.insert(), saved)
    db.session.commit()
    return result


def test_four_commands_started_at_once_leave_one_run_and_one_ledger(clean_app):
    build_world()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=clean_app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY="tests-only-secret",
    )
    env.pop("REDIS_URL", None)
    command = flask_command("rewards", "recompute", "--full")

    processes = [
        subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=300)[0].decode() for process in processes]

    db.session.expire_all()
    runs = db.session.scalars(select(Run).where(Run.kind == REWARDS_KIND)).all()
    succeeded = [run for run in runs if run.status == "succeeded"]
    # Starts that found the run active did not start another; any start after it
    # finished ran again and, finding nothing to do, wrote nothing.
    assert len(succeeded) == len(runs) >= 1, outputs
    assert sum(run.counts["entries_written"] > 0 for run in succeeded) == 1
    assert sum("already" in output for output in outputs) == 4 - len(runs)
    expected, expected_count = clean_totals()
    assert ledger_by_source() == expected
    assert entry_count() == expected_count == PROGRAMS * 2 * 5 * LINES_PER_ACCOUNT


def wait_until(condition, timeout: float = 120, step: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if condition():
            return
        time.sleep(step)
    raise AssertionError("the condition was not met in time")


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    rq_app, tmp_path: Path
) -> None:
    build_world()
    expected, expected_count = clean_totals()
    worker = start_worker(rq_app, tmp_path / "worker.log")
    try:
        run, created = start_rewards_run(full=True)
        assert created and run.backend == "rq"

        # Halfway: some programs' entries are committed, the run still going.
        wait_until(lambda: 0 < entry_count() < expected_count)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        stop_worker(worker)

    db.session.expire_all()
    killed = db.session.get(Run, run.id)
    assert killed is not None and killed.status == "running"
    partial = entry_count()
    assert 0 < partial < expected_count

    # The killed run stops reporting; once that is stale, a new run may start.
    rq_app.config["RUN_STALE_SECONDS"] = 1
    time.sleep(1.5)
    second_worker = start_worker(rq_app, tmp_path / "worker-2.log")
    try:
        again, created = start_rewards_run(full=True)
        assert created
        finished = wait_for_finish(again.id, timeout=300)
    finally:
        stop_worker(second_worker)
        rq_app.config["RUN_STALE_SECONDS"] = 120

    db.session.expire_all()
    killed = db.session.get(Run, run.id)
    assert killed.status == "failed"
    assert "stopped reporting progress" in killed.error
    assert finished.status == "succeeded", finished.error
    assert finished.counts["entries_written"] == expected_count - partial
    assert ledger_by_source() == expected
    assert entry_count() == expected_count
