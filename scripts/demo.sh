#!/usr/bin/env bash
# Install jwt_guard with the demo extra and start the demo on http://127.0.0.1:8000
#   bash scripts/demo.sh [--port N]
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
source scripts/python-env.sh
ensure_pip
python3 -m pip install -q -e ".[demo]"
exec python3 -m jwt_guard demo "$@"
