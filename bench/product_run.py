"""One product assignment run in a process of its own, reported as JSON.

The run's memory is measured here rather than in the benchmark's process, which
holds the generated data. On Linux the peak resident size is reset just before
the run (``/proc/self/clear_refs``) and read just after (``VmHWM``), so the
figure is the run's own. Elsewhere the whole process's ``ru_maxrss`` is
reported, which includes starting the app.
Usage: ``python -m bench.product_run DATABASE_URL``.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.database import app_config
from portal.app import create_app
from territory_rules.jobs import start_assignment_run

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", PROC_STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def reset_peak_rss() -> bool:
    """Start the peak over from the current size; False where Linux's /proc is not."""
    try:
        PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_kib(reset_worked: bool) -> int:
    peak = _status_kib("VmHWM") if reset_worked else None
    # ru_maxrss is in KiB on Linux, the only system this fallback meets in practice.
    return peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(url: str) -> dict[str, Any]:
    app = create_app(app_config(url))
    with app.app_context():
        rss_before = _status_kib("VmRSS") or 0
        reset_worked = reset_peak_rss()
        started = time.perf_counter()
        run, created = start_assignment_run()
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "status": run.status,
            "error": run.error,
            "created": created,
            "counts": run.counts,
            "rss_before_kib": rss_before,
            "peak_rss_kib": peak_rss_kib(reset_worked),
        }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
