#!/usr/bin/env bash
# Serve the portal; with REDIS_URL set, also start a worker for background runs.
set -euo pipefail
cd "$(dirname "$0")/.."
host="${1:-127.0.0.1}"
port="${2:-5000}"
flask=(.venv/bin/flask --app wsgi)

if [ -n "${REDIS_URL:-}" ]; then
    "${flask[@]}" worker &
    worker_pid=$!
    trap 'kill "$worker_pid" 2>/dev/null || true' EXIT
    echo "==> Worker started (pid $worker_pid) on $REDIS_URL"
fi
echo "==> Serving the portal on http://$host:$port (Ctrl-C stops it)"
"${flask[@]}" run --host "$host" --port "$port"
