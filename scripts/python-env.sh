# Sourced by scripts/test-env.sh and scripts/demo.sh (run from the clone's root): the clone's own
# virtual environment, .venv, holding exactly requirements/test.lock and jwt_guard (editable).
# Nothing is ever installed into the python3 found on PATH.
#   ensure_venv       makes .venv with the first python3 >= 3.11 (JWT_GUARD_PYTHON names another
#                     interpreter), or reuses it; as root on Debian/Ubuntu, installs python3-venv
#                     with apt-get when the interpreter cannot make one
#   sync_venv         installs requirements/test.lock into .venv, exactly (hashes checked; what is
#                     not in the lock is removed), and jwt_guard from the clone, editable

VENV=.venv
LOCK=requirements/test.lock
MIN_PYTHON=3.11

# Is "$1" a python >= MIN_PYTHON?
python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" >/dev/null 2>&1
}

ensure_venv() {
    if [[ -x $VENV/bin/python ]] && python_ok "$VENV/bin/python" \
        && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    local python=${JWT_GUARD_PYTHON:-python3}
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "no $python on PATH: jwt_guard needs Python >= $MIN_PYTHON (Debian/Ubuntu:" \
            "apt-get install python3 python3-venv), or set JWT_GUARD_PYTHON to one" >&2
        return 1
    fi
    if ! python_ok "$python"; then
        echo "$python is Python $("$python" -c 'import platform; print(platform.python_version())'):" \
            "jwt_guard needs Python >= $MIN_PYTHON; set JWT_GUARD_PYTHON to a python$MIN_PYTHON" \
            "or newer (e.g. JWT_GUARD_PYTHON=python3.12 bash $0)" >&2
        return 1
    fi
    rm -rf "$VENV" # a broken or half-made one (a python that went away, no pip)
    echo "making $VENV with $(command -v "$python") ($("$python" --version 2>&1))"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        # Debian's python3 leaves venv's ensurepip to the package python3-venv.
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            local version
            version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
            echo "installing system packages: python$version-venv"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version-venv" >/dev/null
            "$python" -m venv "$VENV"
        else
            echo "$python cannot make a virtual environment: install python3-venv" \
                "(apt-get install python3-venv), then rerun" >&2
            return 1
        fi
    fi
}

sync_venv() {
    local python=$VENV/bin/python
    if [[ ! -x $VENV/bin/uv ]]; then
        # First run: pip (in every venv) installs the lock, uv included; uv does the rest.
        echo "installing $LOCK into $VENV"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$python" -m pip install -q --require-hashes --no-deps \
            -r "$LOCK"
    fi
    # Exactly the lock (uv checks the hashes it gives; --require-hashes would refuse the clone,
    # which has none) and this clone, editable, built by the lock's setuptools.
    "$VENV/bin/uv" pip sync -q --python "$python" --no-build-isolation \
        "$LOCK" requirements/self.txt
}
