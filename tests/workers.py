"""Real RQ workers for tests: the app on a queue of its own, and worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from flask import Flask

from portal.extensions import db
from portal.runs import Run

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def worker_env(app: Flask) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        RQ_QUEUE=app.config["RQ_QUEUE"],
        SECRET_KEY="tests-only-secret",
    )
    return env


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


def start_worker(app: Flask, log_path: Path) -> subprocess.Popen[bytes]:
    """A real ``flask worker`` process writing to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            flask_command("worker"),
            cwd=PROJECT_ROOT,
            env=worker_env(app),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_finish(run_id: int, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        run = db.session.get(Run, run_id)
        assert run is not None
        if run.status in ("succeeded", "failed"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout} s")
