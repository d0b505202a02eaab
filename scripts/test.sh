#!/usr/bin/env bash
# Set up and run the whole test suite: dependencies, PostgreSQL, Chromium, Redis, the released
# HTTP Observatory (npm) for the header-grade cross-check, Lighthouse and web-vitals (npm ci of
# tests/fixtures/webtools), the Next.js fixture app (npm ci and
# next build, in the background while lint and types run), lint, types, tests.
# PostgreSQL, browser and Next.js tests are required here: they fail, not skip, if they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== setup"
bash scripts/setup.sh
TOWER_TEST_POSTGRES_URL="$(bash scripts/postgres.sh | tail -1)"
export TOWER_TEST_POSTGRES_URL TOWER_REQUIRE_POSTGRES=1
TOWER_CHROMIUM="$(bash scripts/chromium.sh | tail -1)"
export TOWER_CHROMIUM TOWER_REQUIRE_BROWSER=1
bash scripts/redis.sh >/dev/null
export TOWER_REQUIRE_REDIS=1
TOWER_OBSERVATORY_PACKAGE="$(bash scripts/observatory.sh | tail -1)"
export TOWER_OBSERVATORY_PACKAGE
TOWER_WEBTOOLS="$(bash scripts/webtools.sh | tail -1)"
export TOWER_WEBTOOLS
nextjs_log="$(mktemp)"
bash scripts/nextjs.sh >"$nextjs_log" 2>&1 &
nextjs_pid=$!
export TOWER_REQUIRE_NEXTJS=1
echo "== lint"
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/ruff format --check src tests examples benchmarks
echo "== types"
.venv/bin/mypy
echo "== Next.js fixture app"
if ! wait "$nextjs_pid"; then
  cat "$nextjs_log" >&2
  echo "the Next.js fixture app could not be built" >&2
  exit 1
fi
tail -1 "$nextjs_log"
echo "== tests"
.venv/bin/python -m pytest -p no:cacheprovider -n 2 --dist loadgroup "$@"
