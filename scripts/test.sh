#!/usr/bin/env bash
# Run the whole suite on SQLite/SpatiaLite and, where reachable, PostgreSQL/PostGIS,
# Redis with a real worker, and Chromium. With CI set, a missing service fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

.venv/bin/python - <<'PY'
import os
from tests.backends import postgres_reachable, redis_reachable

for name, reason in (("PostgreSQL", postgres_reachable()), ("Redis", redis_reachable())):
    if reason is None:
        print(f"==> {name}: reachable, its tests will run.")
    elif os.environ.get("CI"):
        print(f"==> {reason} CI is set, so its tests will fail.")
    else:
        print(f"==> {reason} Its tests will be skipped; the rest run.")
PY
exec .venv/bin/pytest "$@"
