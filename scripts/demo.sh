#!/usr/bin/env bash
# Start the demo on http://127.0.0.1:8000 from the clone's .venv (made and filled from
# requirements/test.lock by scripts/python-env.sh, as for the tests; nothing is installed into
# the python3 found on PATH).
#   bash scripts/demo.sh [--port N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
ensure_venv
sync_venv
exec "$VENV/bin/python" -m jwt_guard demo "$@"
