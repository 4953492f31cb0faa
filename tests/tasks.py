"""Tasks used by the run tests."""

import time
from typing import Any

from portal.runs import RunReporter, run_task


@run_task
def always_fails(reporter: RunReporter) -> dict[str, Any]:
    reporter.progress(40, "Reading the source file")
    raise RuntimeError("the source file vanished")


@run_task
def works_quietly(reporter: RunReporter) -> dict[str, Any]:
    """One long step that reports nothing, like a single large statement."""
    time.sleep(1.2)
    return {"slept": 1.2}
