#!/usr/bin/env bash
# Node.js and npm for the Next.js fixture app (tests/fixtures/nextjs_app, built by
# tests/nextjs_support.py): installed from Debian's packages when absent. Then installs and
# builds the fixture once (cached under ~/.cache/controltower-tests/nextjs), twice in fact:
# build A and build B (FIXTURE_BUILD=B baked in, for the rollback test), and prints A's folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq nodejs npm >/dev/null
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 18 ]; then
  echo "Node.js $(node --version) is too old for Next.js 15 (18.18 or newer)" >&2
  exit 1
fi
.venv/bin/python -m tests.nextjs_support
