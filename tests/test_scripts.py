"""scripts/: the README's two Quick start commands make and fill the clone's own .venv and
install nothing into the python3 found on PATH; requirements/test.lock pins what pyproject.toml
asks for. (ensure_venv's apt-get branch needs root and a Debian python without python3-venv:
not run here; sync_venv runs with every `bash scripts/test-env.sh`, whose tests these are.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "test.lock"


def ensure_venv(
    cwd: Path, *, python_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the scripts' ensure_venv in ``cwd`` with ``python_dir`` first on PATH."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{python_dir}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    script = f"source {ROOT / 'scripts' / 'python-env.sh'}; ensure_venv; echo ready"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def base_python_on(tmp_path: Path) -> Path:
    """A directory whose python3 is this interpreter outside any virtualenv (a venv's python is
    a link to it; without the venv's pyvenv.cfg next to it, it is the base python)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(Path(sys.executable).resolve())
    return bin_dir


def site_packages(python: Path) -> str:
    return subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_clones_venv_is_made_with_python3_and_then_reused(tmp_path: Path) -> None:
    bin_dir = base_python_on(tmp_path)
    clone = tmp_path / "clone"
    clone.mkdir()
    base_before = sorted(os.listdir(site_packages(bin_dir / "python3")))

    made = ensure_venv(clone, python_dir=bin_dir)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("making .venv with "), made.stdout
    venv_python = clone / ".venv" / "bin" / "python"
    prefixes = subprocess.run(
        [venv_python, "-c", "import sys; print(sys.prefix, sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert prefixes == [str(clone / ".venv"), sys.base_prefix]

    again = ensure_venv(clone, python_dir=bin_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "ready"  # reused: not made again
    # Nothing landed in the python3 on PATH.
    assert sorted(os.listdir(site_packages(bin_dir / "python3"))) == base_before


def test_a_broken_venv_is_made_anew(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "python").symlink_to(tmp_path / "gone" / "python3")
    result = ensure_venv(clone, python_dir=base_python_on(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("making .venv with ")
    assert (clone / ".venv" / "bin" / "pip").exists()


def test_an_old_python3_is_named_with_the_fix(tmp_path: Path) -> None:
    # A python3 that says it is 3.10 (this machine's may not have one): the version check and
    # the message are what is under test, not the interpreter.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = bin_dir / "python3"
    old.write_text('#!/bin/sh\ncase "$*" in *platform*) echo 3.10.13 ;; esac\nexit 1\n')
    old.chmod(0o755)
    clone = tmp_path / "clone"
    clone.mkdir()
    result = ensure_venv(clone, python_dir=bin_dir)
    assert result.returncode == 1
    assert "ready" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "python3 is Python 3.10.13: jwt_guard needs Python >= 3.11" in lines[0]
    assert "JWT_GUARD_PYTHON" in lines[0]
    assert not (clone / ".venv").exists()


def test_a_missing_python_is_named_with_the_fix(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    result = ensure_venv(
        clone, python_dir=base_python_on(tmp_path), env={"JWT_GUARD_PYTHON": "python3.99"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("no python3.99 on PATH: jwt_guard needs Python >= 3.11")
    assert not (clone / ".venv").exists()


def locked() -> dict[str, str]:
    """requirements/test.lock as {normalized name: version}."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^ ;\\\n]+)", LOCK.read_text(), re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_lock_pins_every_requirement_of_pyproject_within_its_bounds() -> None:
    # A bound raised in pyproject.toml without `bash scripts/lock.sh` fails here.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += extra
    tools = (ROOT / "requirements" / "tools.in").read_text()
    wanted += [line.split("#")[0].strip() for line in tools.splitlines()]
    pins = locked()
    for text in filter(None, wanted):
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{text} is not in requirements/test.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements/test.lock has {name}=={pins[name]}, pyproject.toml wants {text}"
        )


def test_every_pin_has_a_hash() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    # One entry per pin line: a package pinned per Python version (an environment marker) has
    # one for each (pymdown-extensions, for Python below and from 3.11.5).
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9._-]+==", LOCK.read_text(), re.MULTILINE))
    for entry in entries:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(bash scripts/.*?)(?:   #.*)?$", quick_start, re.MULTILINE)
    test_command = "bash scripts/test-env.sh && .venv/bin/python -m pytest"
    assert commands == ["bash scripts/demo.sh", test_command]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(test_command)} \|\| exit \$\?", ci, re.MULTILINE), ci
