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
# The HSTS preload list controltower grades with (the hstspreload package), in the package's
# own format, so both grade a preloaded host against the same list (the package's install
# script would download today's Chromium list instead).
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
version="$("$python" -c 'import hstspreload; print(hstspreload.__version__)')"
if [ "$(cat "$package/conf/hsts-preload.version" 2>/dev/null)" != "$version" ]; then
  "$python" scripts/hsts_preload_json.py > "$package/conf/hsts-preload.json.tmp"
  mv "$package/conf/hsts-preload.json.tmp" "$package/conf/hsts-preload.json"
  echo "$version" > "$package/conf/hsts-preload.version"
fi
echo "$prefix"
