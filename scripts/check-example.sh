#!/usr/bin/env bash
# Set up, start the example app on a free port, and run every readiness check against it.
# Exit code: tower check's (0 when gates 1..3 pass). Extra arguments go to `tower check`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
data="$(mktemp -d)"
(
  cd examples/app
  APP_VERSION=1.0.0 APP_DATABASE="$data/example.db" exec ../../.venv/bin/python -m uvicorn app:app \
    --host 127.0.0.1 --port "$port" --no-server-header --no-access-log --log-level warning
) &
app=$!
trap 'kill "$app" 2>/dev/null || true; wait "$app" 2>/dev/null || true; rm -rf "$data"' EXIT
.venv/bin/python - "$port" <<'PY'
import socket, sys, time
port, deadline, delay = int(sys.argv[1]), time.monotonic() + 30, 0.05
while True:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"the example app did not listen on port {port} within 30 s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
PY
.venv/bin/tower check --spec examples/app/tower.toml --url "http://127.0.0.1:$port" --gate 3 "$@"
