#!/usr/bin/env bash
# Everything the tests need, in the clone's .venv; the README's test command is
#   bash scripts/test-env.sh && .venv/bin/python -m pytest [pytest arguments]
# System packages redis-server, chromium, nginx and node (nodejs, npm) come from apt-get when
# run as root; the python packages are requirements/test.lock, exactly, in the clone's .venv
# (scripts/python-env.sh), never in the python3 found on PATH; the authorization server the tests
# start, panva's oidc-provider, is tests/oidc_provider/package-lock.json, exactly (npm ci), in
# tests/oidc_provider/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# nginx lives in /usr/sbin, which a non-root PATH may not list.
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
if ((${#need_apt[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing system packages: ${need_apt[*]}"
        apt-get update -qq
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; then
            # Ubuntu's apt has no real chromium package (chromium-browser only points at the snap).
            echo "apt-get install ${need_apt[*]} failed; on Ubuntu install chromium with" \
                "\`snap install chromium\`, redis, nginx and node with" \
                "\`apt-get install redis-server nginx nodejs npm\`, then rerun" >&2
            exit 1
        fi
    else
        echo "missing system packages: ${need_apt[*]} (Debian: apt-get install ${need_apt[*]};" \
            "Ubuntu: chromium comes from \`snap install chromium\`)" >&2
        exit 1
    fi
fi

ensure_venv
sync_venv

# oidc-provider for the tests (tests/oidc_provider.py): npm ci when node_modules is not the lock's
# (the lock copied into node_modules after an install says which it is), quiet otherwise.
oidc=tests/oidc_provider
if ! cmp -s "$oidc/package-lock.json" "$oidc/node_modules/.jwt-guard-lock" 2>/dev/null; then
    echo "installing $oidc/package-lock.json into $oidc/node_modules (npm ci)"
    (cd "$oidc" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$oidc/package-lock.json" "$oidc/node_modules/.jwt-guard-lock"
fi
