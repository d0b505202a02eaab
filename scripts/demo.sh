#!/usr/bin/env bash
# Set up and run the demo: the example app checked, shipped and watched on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tower demo "$@"
