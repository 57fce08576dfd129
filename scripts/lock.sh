#!/usr/bin/env bash
# Regenerate requirements/test.lock: every dependency of jwt_guard, of each extra (the test
# extra included) and of the tools in requirements/tools.in, at the newest versions on the
# package index, for Python >= 3.11 on any platform, with hashes.
#   bash scripts/lock.sh [uv pip compile arguments, e.g. --upgrade-package mcp]
# Then run `bash scripts/test-env.sh && .venv/bin/python -m pytest` and `nox` before committing the new lock.
# uv reads no pip configuration (pip.conf, PIP_*): the lock comes from uv's default index.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
ensure_venv
[[ -x $VENV/bin/uv ]] || sync_venv
exec "$VENV/bin/uv" pip compile -q --universal --python-version "$MIN_PYTHON" --generate-hashes \
    --all-extras --custom-compile-command "bash scripts/lock.sh" \
    -o "$LOCK" pyproject.toml requirements/tools.in "$@"
