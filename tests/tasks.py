"""Tasks used by the run tests."""

from typing import Any

from portal.runs import RunReporter, run_task


@run_task
def always_fails(reporter: RunReporter) -> dict[str, Any]:
    reporter.progress(40, "Reading the source file")
    raise RuntimeError("the source file vanished")
