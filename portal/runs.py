"""Background runs: one table for every kind of run, and the one way to start one.

A run is queued on RQ when ``REDIS_URL`` is set, and executed in-process otherwise;
the task is the same function either way, named by its dotted path so that this
module never imports a domain.
"""

from __future__ import annotations

import enum
import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import JSON, ForeignKey, Index, String, Text, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import Model, db
from portal.models import User, utc_now

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Run(Model):
    __tablename__ = "runs"
    __table_args__ = (
        # At most one queued or running run of each kind: a second request to
        # start one while it is active finds it instead of starting another.
        Index(
            "uq_runs_one_active_per_kind",
            "kind",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)
    task: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.QUEUED.value)
    progress: Mapped[int] = mapped_column(default=0)
    message: Mapped[str | None] = mapped_column(String(300))
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(String(20), default="in-process")
    job_id: Mapped[str | None] = mapped_column(String(100))
    started_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)
    started_at_utc: Mapped[datetime | None]
    finished_at_utc: Mapped[datetime | None]
    heartbeat_at_utc: Mapped[datetime | None]
    # Something the run reads changed while it was active: when it finishes, a
    # new run of the same kind starts, so the change is not lost.
    rerun_requested: Mapped[bool] = mapped_column(default=False)

    started_by: Mapped[User | None] = relationship()

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at_utc is None or self.finished_at_utc is None:
            return None
        return (self.finished_at_utc - self.started_at_utc).total_seconds()


class RunReporter:
    """Handed to a task so it can report progress; each report is committed."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def progress(self, percent: int, message: str | None = None) -> None:
        run = db.session.get(Run, self.run_id)
        if run is None:
            return
        run.progress = max(0, min(100, percent))
        run.message = message
        run.heartbeat_at_utc = utc_now()
        db.session.commit()


TaskFunction = Callable[[RunReporter], dict[str, Any]]


def run_task(func: TaskFunction) -> Callable[[int], dict[str, Any]]:
    """Turn ``func(reporter) -> counts`` into a task taking a run id.

    The wrapper records the run's status, progress, counts and error. A failure
    is recorded on the run and raised again, so RQ sees a failed job too.
    """

    @functools.wraps(func)
    def task(run_id: int) -> dict[str, Any]:
        _mark_running(run_id)
        try:
            with _Heartbeat(run_id):
                counts = func(RunReporter(run_id))
        except Exception as exc:
            db.session.rollback()
            _mark_finished(run_id, RunStatus.FAILED, error=_describe(exc))
            logger.exception("Run %s failed", run_id)
            raise
        _mark_finished(run_id, RunStatus.SUCCEEDED, counts=counts)
        _start_next_runs(run_id)
        return counts

    return task


class _Heartbeat:
    """Stamps a running run every ``RUN_HEARTBEAT_SECONDS`` from a thread of its
    own, on a connection of its own, while the task works.

    A run busy in one long statement so stays visibly alive, and a run whose
    process died falls silent at once: after ``RUN_STALE_SECONDS`` of silence
    it is marked failed (see :func:`expire_stale_runs`).
    """

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.interval = float(current_app.config["RUN_HEARTBEAT_SECONDS"])
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        if self.interval > 0:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            self.thread = threading.Thread(
                target=self._beat, args=(app,), name=f"run-{run_id}-heartbeat"
            )
            self.thread.daemon = True
            self.thread.start()

    def _beat(self, app: Any) -> None:
        beat = update(Run).where(
            Run.id == self.run_id, Run.status == RunStatus.RUNNING.value
        )
        with app.app_context():
            while not self.stopped.wait(self.interval):
                try:
                    with db.engine.begin() as connection:
                        connection.execute(beat.values(heartbeat_at_utc=utc_now()))
                except SQLAlchemyError as exc:
                    # SQLite's one writer may be the run itself; the next beat.
                    logger.debug("Run %s heartbeat skipped: %s", self.run_id, exc)

    def __enter__(self) -> _Heartbeat:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


# kind -> the (kind, task) of runs that read what a successful run of it wrote.
_FOLLOWERS: dict[str, list[tuple[str, str]]] = {}


def follow(kind: str, follower_kind: str, follower_task: str) -> None:
    """After each successful run of ``kind``, request a run of ``follower_kind``.

    Registered by the app factory, so that a lower domain's runs (territory
    assignment) refresh a higher domain's results (program eligibility) without
    importing it.
    """
    followers = _FOLLOWERS.setdefault(kind, [])
    if (follower_kind, follower_task) not in followers:
        followers.append((follower_kind, follower_task))


def request_run(kind: str, task: str, started_by: User | None = None) -> Run:
    """Start a run of ``kind``, or have the active one run again when it ends.

    For changes that a run must see: the active run may already have read the
    data as it was before the change.
    """
    run, created = start_run(kind, task, started_by)
    if created:
        return run
    flagged = db.session.execute(
        update(Run)
        .where(Run.kind == kind, Run.status.in_(ACTIVE_STATUSES))
        .values(rerun_requested=True)
    )
    db.session.commit()
    if getattr(flagged, "rowcount", 0):
        db.session.refresh(run)
        return run
    # The active run finished in between, without seeing the flag: start anew.
    return start_run(kind, task, started_by)[0]


def _start_next_runs(run_id: int) -> None:
    run = db.session.get(Run, run_id)
    if run is None:
        return
    if run.rerun_requested:
        request_run(run.kind, run.task, run.started_by)
    for follower_kind, follower_task in _FOLLOWERS.get(run.kind, []):
        request_run(follower_kind, follower_task, run.started_by)


def start_run(kind: str, task: str, started_by: User | None = None) -> tuple[Run, bool]:
    """Start a run of ``kind`` unless one is already active.

    Returns the run and whether it was created by this call. ``task`` is the
    dotted path of a function decorated with :func:`run_task`.
    """
    expire_stale_runs(kind)
    run = Run(
        kind=kind,
        task=task,
        started_by_id=started_by.id if started_by else None,
        backend="rq" if current_app.config["REDIS_URL"] else "in-process",
    )
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _active_run(kind), False

    logger.info(
        "%s started run %s (%s) on %s",
        started_by.email if started_by else "the command line",
        run.id,
        kind,
        run.backend,
    )
    if run.backend == "rq":
        _enqueue(run)
    else:
        _execute_in_process(run)
    return run, True


def wait_for(run: Run, poll_seconds: float = 0.5) -> Run:
    """Block until ``run`` is no longer queued or running; return it refreshed."""
    while run.status in ACTIVE_STATUSES:
        time.sleep(poll_seconds)
        db.session.expire_all()
        refreshed = db.session.get(Run, run.id)
        if refreshed is None:
            raise LookupError(f"Run {run.id} disappeared while being waited for.")
        run = refreshed
    return run


def expire_stale_runs(kind: str) -> None:
    """Mark failed the active runs of ``kind`` whose worker stopped reporting.

    A worker killed mid-run cannot record its own failure; without this its run
    would stay "running" and block every later run of the same kind.
    """
    stale_after = timedelta(seconds=current_app.config["RUN_STALE_SECONDS"])
    now = utc_now()
    active = db.session.scalars(
        select(Run).where(Run.kind == kind, Run.status.in_(ACTIVE_STATUSES))
    ).all()
    for run in active:
        last_sign = run.heartbeat_at_utc or run.started_at_utc or run.created_at_utc
        reason = _rq_failure(run) or (
            "The worker stopped reporting progress."
            if now - last_sign > stale_after
            else None
        )
        if reason:
            run.status = RunStatus.FAILED.value
            run.error = reason
            run.finished_at_utc = now
            logger.warning("Run %s marked failed: %s", run.id, reason)
    db.session.commit()


def expire_every_stale_run() -> None:
    """:func:`expire_stale_runs` for every kind with an active run."""
    kinds = db.session.scalars(
        select(Run.kind).where(Run.status.in_(ACTIVE_STATUSES)).distinct()
    ).all()
    for kind in kinds:
        expire_stale_runs(kind)


def _active_run(kind: str) -> Run:
    run = db.session.scalars(
        select(Run).where(Run.kind == kind, Run.status.in_(ACTIVE_STATUSES))
    ).first()
    if run is None:
        # The active run finished between our insert and this read; show the latest.
        run = db.session.scalars(
            select(Run).where(Run.kind == kind).order_by(Run.id.desc())
        ).first()
    assert run is not None, "an active run blocked the insert, so a run exists"
    return run


def _queue() -> Any:
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    connection = Redis.from_url(current_app.config["REDIS_URL"])
    return Queue(
        current_app.config["RQ_QUEUE"],
        connection=connection,
        serializer=JSONSerializer,
    )


def _enqueue(run: Run) -> None:
    """Queue the run on RQ; if Redis cannot take it, the run fails at once.

    Left queued, a run that never reached Redis would block every later run of its
    kind until it went stale.
    """
    from redis.exceptions import RedisError

    try:
        job = _queue().enqueue(
            run.task, run.id, job_id=f"run-{run.id}", job_timeout=6 * 3600
        )
    except RedisError as exc:
        db.session.rollback()
        _mark_finished(
            run.id,
            RunStatus.FAILED,
            error=f"The run could not be queued: Redis did not answer ({exc}). "
            "Check REDIS_URL and that Redis is running, then start the run again.",
        )
        db.session.refresh(run)
        return
    run.job_id = job.id
    db.session.commit()


def _rq_failure(run: Run) -> str | None:
    """Why the RQ job behind an active run can no longer finish, if it cannot."""
    if run.backend != "rq" or not run.job_id or not current_app.config["REDIS_URL"]:
        return None

    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    queue = _queue()
    try:
        job = Job.fetch(
            run.job_id, connection=queue.connection, serializer=JSONSerializer
        )
    except NoSuchJobError:
        return "The queued job disappeared from Redis before it finished."
    if job.get_status() in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return f"The worker reported the job as {job.get_status()}."
    return None


def _execute_in_process(run: Run) -> None:
    task = resolve_task(run.task)
    try:
        task(run.id)
    except Exception:
        # Recorded on the run by run_task; the caller reads the run's status.
        db.session.rollback()
    db.session.refresh(run)


def resolve_task(dotted_path: str) -> Callable[[int], dict[str, Any]]:
    module_name, _, attribute = dotted_path.rpartition(".")
    module = importlib.import_module(module_name)
    task: Callable[[int], dict[str, Any]] = getattr(module, attribute)
    return task


def _mark_running(run_id: int) -> None:
    run = db.session.get(Run, run_id)
    if run is None:
        raise LookupError(f"Run {run_id} does not exist.")
    run.status = RunStatus.RUNNING.value
    run.started_at_utc = run.heartbeat_at_utc = utc_now()
    db.session.commit()


def _mark_finished(
    run_id: int,
    status: RunStatus,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    run = db.session.get(Run, run_id)
    if run is None:
        return
    run.status = status.value
    run.progress = 100 if status is RunStatus.SUCCEEDED else run.progress
    run.counts = counts
    run.error = error
    run.finished_at_utc = utc_now()
    db.session.commit()
    logger.info("Run %s (%s) %s", run_id, run.kind, status.value)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
