"""Runs: recorded in our table, in-process and through RQ with a real worker process."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Role, utc_now
from portal.runs import Run, start_run
from territory_rules.jobs import ASSIGNMENT_KIND, start_assignment_run
from territory_rules.models import Assignment
from tests.factories import (
    add_rule,
    make_account,
    make_region,
    make_territory,
    make_user,
    square,
)
from tests.workers import flask_command, wait_for_finish, worker_env

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_small_world() -> None:
    region = make_region("Coast")
    north = make_territory(region, "North", shape=square(0, 0, 10))
    south = make_territory(region, "South", shape=square(0, -10, 10))
    add_rule(north, 100, ("shape", "inside", None))
    add_rule(south, 100, ("shape", "inside", None))
    add_rule(south, 5, ("state", "in", ["XX"]))
    for index in range(20):
        make_account(f"n{index}", at=(index % 10 + 0.5, 5))
        make_account(f"s{index}", at=(index % 10 + 0.5, -5))
    make_account("state only", at=(50, 50), state="XX")
    make_account("lost")
    db.session.commit()


def assignment_snapshot() -> list[tuple[int, str, int | None, int | None]]:
    rows = db.session.execute(
        select(
            Assignment.account_id,
            Assignment.status,
            Assignment.territory_id,
            Assignment.rule_id,
        ).order_by(Assignment.account_id)
    ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_in_process_run_is_recorded_with_its_counts_and_who_started_it(clean_app):
    admin = make_user(Role.ADMIN)
    build_small_world()

    run, created = start_assignment_run(admin)

    assert created
    assert (run.kind, run.status, run.progress, run.backend) == (
        ASSIGNMENT_KIND,
        "succeeded",
        100,
        "in-process",
    )
    assert run.counts == {
        "accounts": 42,
        "assigned": 41,
        "conflict": 0,
        "gap": 1,
        "rules": 3,
        "matches": 41,
    }
    assert run.started_by_id == admin.id
    assert run.started_at_utc <= run.finished_at_utc
    assert run.error is None


def test_a_failing_task_leaves_a_failed_run_with_its_reason(clean_app):
    run, created = start_run("broken", "tests.tasks.always_fails")

    assert created
    assert run.status == "failed"
    assert "RuntimeError: the source file vanished" in run.error
    assert run.finished_at_utc is not None


def test_a_run_busy_without_reporting_keeps_its_heartbeat(clean_app):
    clean_app.config["RUN_HEARTBEAT_SECONDS"] = 0.2
    try:
        run, _created = start_run("quiet", "tests.tasks.works_quietly")
    finally:
        clean_app.config["RUN_HEARTBEAT_SECONDS"] = 10

    assert run.status == "succeeded", run.error
    # Stamped by the heartbeat while the task slept, not only when it started.
    assert (run.heartbeat_at_utc - run.started_at_utc).total_seconds() >= 0.6


def test_the_runs_pages_mark_a_silent_run_failed(clean_app, client, auth):
    make_user(Role.ADMIN, email="admin@x.test")
    quiet = utc_now() - timedelta(seconds=30)
    silent = Run(
        kind=ASSIGNMENT_KIND,
        task="x.y",
        status="running",
        started_at_utc=quiet,
        heartbeat_at_utc=quiet,
    )
    alive = Run(
        kind="other",
        task="x.y",
        status="running",
        started_at_utc=quiet,
        heartbeat_at_utc=utc_now(),
    )
    db.session.add_all([silent, alive])
    db.session.commit()
    auth.sign_in("admin@x.test")
    clean_app.config["RUN_STALE_SECONDS"] = 20
    try:
        page = client.get(f"/territories/runs/{silent.id}")
        listing = client.get("/territories/runs")
    finally:
        clean_app.config["RUN_STALE_SECONDS"] = 120

    db.session.expire_all()
    assert page.status_code == 200 and "stopped reporting progress" in page.text
    assert listing.status_code == 200
    assert db.session.get(Run, silent.id).status == "failed"
    assert db.session.get(Run, alive.id).status == "running"


def test_a_start_while_a_run_is_active_returns_the_active_run(clean_app):
    active = Run(
        kind=ASSIGNMENT_KIND, task="x.y", status="running", heartbeat_at_utc=utc_now()
    )
    db.session.add(active)
    db.session.commit()

    run, created = start_assignment_run()

    assert not created
    assert run.id == active.id
    assert db.session.scalar(select(func.count()).select_from(Run)) == 1


def test_a_run_whose_worker_went_silent_is_failed_and_a_new_one_starts(clean_app):
    clean_app.config["RUN_STALE_SECONDS"] = 0
    stuck = Run(kind=ASSIGNMENT_KIND, task="x.y", status="running")
    db.session.add(stuck)
    db.session.commit()
    build_small_world()
    time.sleep(0.01)

    try:
        run, created = start_assignment_run()
    finally:
        clean_app.config["RUN_STALE_SECONDS"] = 120

    db.session.refresh(stuck)
    assert created and run.status == "succeeded"
    assert stuck.status == "failed"
    assert "stopped reporting" in stuck.error


# --- through RQ, with a real worker process -----------------------------------------


def test_a_real_worker_runs_the_assignment_and_a_rerun_changes_nothing(rq_app, worker):
    build_small_world()

    first, created = start_assignment_run()
    assert created and first.backend == "rq" and first.status == "queued"
    assert first.job_id == f"run-{first.id}"
    finished = wait_for_finish(first.id)
    assert finished.status == "succeeded", finished.error
    after_first = assignment_snapshot()

    second, _ = start_assignment_run()
    assert wait_for_finish(second.id).status == "succeeded"

    assert assignment_snapshot() == after_first
    assert finished.counts["assigned"] == 41
    assert finished.counts["gap"] == 1


def test_two_commands_started_at_once_leave_one_run(rq_app):
    build_small_world()
    env = worker_env(rq_app)
    command = flask_command("territories", "recompute", "--no-wait")

    processes = [
        subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0].decode() for process in processes]

    db.session.expire_all()
    runs = db.session.scalars(select(Run)).all()
    assert len(runs) == 1
    assert runs[0].status == "queued"
    assert sum("already queued" in output for output in outputs) == 1


def test_a_run_that_cannot_reach_redis_fails_at_once_and_blocks_nothing(clean_app):
    build_small_world()
    clean_app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    try:
        run, created = start_assignment_run()
    finally:
        clean_app.config["REDIS_URL"] = None

    assert created
    assert run.status == "failed"
    assert "could not be queued" in run.error
    again, created_again = start_assignment_run()
    assert created_again and again.status == "succeeded"
