#!/usr/bin/env bash
# The README's test command: set up (if needed), lint, then the test suite without slow tests.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m slow` for the slow tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${IWUO_VENV:-.venv}
"$VENV/bin/ruff" check .
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
"$VENV/bin/python" -m pytest "$@"
