#!/usr/bin/env bash
# Install the released HTTP Observatory from the npm registry (once per machine) for the
# header-grade cross-check in tests/test_checks_observatory.py. Prints the folder to use
# as TOWER_OBSERVATORY_PACKAGE.
set -euo pipefail
prefix="${XDG_CACHE_HOME:-$HOME/.cache}/controltower-tests/observatory-1.4.8"
package="$prefix/node_modules/@mdn/mdn-http-observatory"
if [ ! -f "$package/package.json" ]; then
  npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$prefix" \
    @mdn/mdn-http-observatory@1.4.8 >/dev/null
fi
# "No host is preloaded", as in controltower (the install script would download Chromium's list).
[ -f "$package/conf/hsts-preload.json" ] || echo '{}' > "$package/conf/hsts-preload.json"
echo "$prefix"
