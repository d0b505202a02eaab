#!/usr/bin/env bash
# Install the npm tools pinned in tests/fixtures/webtools/package-lock.json (Lighthouse 12.2.3,
# a web-vitals build) with npm ci, once per lockfile, into a cache folder. Prints that folder:
# use it as TOWER_WEBTOOLS (node_modules/.bin/lighthouse, node_modules/web-vitals/dist).
set -euo pipefail
cd "$(dirname "$0")/.."
source=tests/fixtures/webtools
digest="$(cat "$source/package.json" "$source/package-lock.json" | sha256sum | cut -c1-16)"
prefix="${XDG_CACHE_HOME:-$HOME/.cache}/controltower-tests/webtools-$digest"
if [ ! -f "$prefix/.installed" ]; then
  mkdir -p "$prefix"
  cp "$source/package.json" "$source/package-lock.json" "$prefix/"
  (cd "$prefix" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
  touch "$prefix/.installed"
fi
echo "$prefix"
