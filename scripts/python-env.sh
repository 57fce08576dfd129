# Sourced by scripts/test-deps.sh and scripts/demo.sh: make sure `python3 -m pip` can install
# jwt_guard here, or stop with the one line that says how.
#   ensure_pip   installs python3-pip/python3-venv with apt-get when pip is missing (as root),
#                then runs check_not_externally_managed
#   check_not_externally_managed   refuses an externally managed python outside a virtualenv
#                (PEP 668) with the one line that says how
# JWT_GUARD_STDLIB_DIR replaces sysconfig's stdlib path (tests/test_scripts.py points it at a
# fake directory to check the PEP 668 detection without apt or a Debian python).

ensure_pip() {
    if ! python3 -m pip --version >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "installing system packages: python3-pip python3-venv"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip python3-venv >/dev/null
        else
            echo "python3 has no pip: install python3-pip and python3-venv (apt-get), then rerun" >&2
            return 1
        fi
    fi
    check_not_externally_managed
}

check_not_externally_managed() {
    # PEP 668: a distribution's python marks itself with EXTERNALLY-MANAGED in its stdlib
    # directory; pip would refuse (or, forced, break system packages). A virtualenv is not
    # managed (sys.prefix differs from sys.base_prefix there).
    if python3 - <<'PY'
import os, sys, sysconfig
stdlib = os.environ.get("JWT_GUARD_STDLIB_DIR") or sysconfig.get_path("stdlib")
in_venv = sys.prefix != sys.base_prefix
sys.exit(0 if not in_venv and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")) else 1)
PY
    then
        echo "python3 is externally managed (PEP 668): run \`python3 -m venv .venv && . .venv/bin/activate\`, then rerun this script" >&2
        return 1
    fi
}
