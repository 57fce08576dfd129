"""The compatibility matrix: the test suite against each supported Python and against the lowest
and the newest versions of what jwt_guard depends on. Sessions (docs/contributing.md):

    nox -s tests-3.11 tests-3.12 tests-3.13   # requirements/test.lock on each Python
    nox -s lowest   # every dependency and extra at the lowest version pyproject.toml allows
    nox -s latest   # every dependency and extra at the newest release on the package index

`nox` alone runs them all. Each session makes a fresh virtual environment with uv; arguments
after `--` go to pytest (`nox -s lowest -- -x tests/test_mcp.py`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12", "3.13"]  # requires-python = ">=3.11", up to the newest we test
LOCK = "requirements/test.lock"
PYPROJECT = tomllib.loads(Path("pyproject.toml").read_text())
EXTRAS = ",".join(sorted(PYPROJECT["project"]["optional-dependencies"]))
# uv beside this nox (both come from the lock into .venv), else the one on PATH.
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv") or "uv"

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True  # a missing Python fails, never skips


def _pyenv_pythons() -> None:
    """Put pyenv's installed 3.11, 3.12 and 3.13 on PATH (their pyenv shims answer only for the
    active version), in that order, so that `python3` stays the oldest."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for minor in PYTHONS:
        versions = sorted(
            root.glob(f"{minor}.*"), key=lambda p: [int(x) for x in p.name.split(".")[2:3]]
        )
        if versions and (versions[-1] / "bin" / f"python{minor}").exists():
            found.append(str(versions[-1] / "bin"))
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ["PATH"]])


_pyenv_pythons()


def _pytest(session: nox.Session) -> None:
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The pinned environment (requirements/test.lock) on each supported Python."""
    session.install("-r", LOCK, "-r", "requirements/self.txt")
    _pytest(session)


@nox.session(python=PYTHONS[0])
def lowest(session: nox.Session) -> None:
    """Each direct dependency of jwt_guard and of every extra (test included) at the lowest
    version pyproject.toml allows (uv's lowest-direct resolution), on the lowest Python."""
    requirements = Path(session.create_tmp()) / "lowest.txt"
    session.run(
        UV,
        "pip",
        "compile",
        "-q",
        "--resolution",
        "lowest-direct",
        "--all-extras",
        "--python-version",
        PYTHONS[0],
        "-o",
        str(requirements),
        "pyproject.toml",
        external=True,
    )
    session.install("-r", str(requirements), "-r", "requirements/self.txt")
    _pytest(session)


@nox.session(python=PYTHONS[-1])
def latest(session: nox.Session) -> None:
    """Every dependency of jwt_guard and of every extra at its newest release (pre-releases only
    where pyproject.toml's bound names one), on the newest Python."""
    session.install("--upgrade", "--refresh", "-e", f".[{EXTRAS}]")
    _pytest(session)
