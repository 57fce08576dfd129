#!/usr/bin/env bash
# Install everything the test suite needs (pip packages; redis-server and chromium through
# apt-get when run as root), so that `python3 -m pytest` runs all of it with nothing skipped.
# The README's test command:  bash scripts/test-deps.sh && python3 -m pytest
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
source scripts/python-env.sh
ensure_pip

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if ((${#need_apt[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing system packages: ${need_apt[*]}"
        apt-get update -qq
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; then
            # Ubuntu's apt has no real chromium package (chromium-browser only points at the snap).
            echo "apt-get install ${need_apt[*]} failed; on Ubuntu install chromium with" \
                "\`snap install chromium\` and redis with \`apt-get install redis-server\`, then rerun" >&2
            exit 1
        fi
    else
        echo "missing system packages: ${need_apt[*]} (Debian: apt-get install ${need_apt[*]};" \
            "Ubuntu: chromium comes from \`snap install chromium\`)" >&2
        exit 1
    fi
fi

python3 -m pip install -q -e ".[test]"
