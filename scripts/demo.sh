#!/usr/bin/env bash
# The README's main-job command: set up (if needed), then `iwuo demo` on its built-in default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${IWUO_VENV:-.venv}
exec "$VENV/bin/iwuo" demo "$@"
