"""scripts/python-env.sh: the PEP 668 check that test-deps.sh and demo.sh run before pip
(its apt-get branch needs root and a Debian: not run here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check(stdlib: Path, *, python_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the script's PEP 668 check with ``python_dir``'s python3 and a stdlib dir of ours."""
    env = {**os.environ, "JWT_GUARD_STDLIB_DIR": str(stdlib)}
    env["PATH"] = f"{python_dir}{os.pathsep}{env['PATH']}"  # a virtualenv's python3 or not
    script = "source scripts/python-env.sh; check_not_externally_managed; echo ready"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def python3_on(tmp_path: Path) -> Path:
    """A directory whose python3 is this interpreter, outside any virtualenv (a venv's python
    is a link to it; without the venv's pyvenv.cfg next to it, it is the base python)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(Path(sys.executable).resolve())
    return bin_dir


def test_an_unmanaged_python_goes_on(tmp_path: Path) -> None:
    result = check(tmp_path, python_dir=python3_on(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ready")


def test_an_externally_managed_python_stops_with_the_venv_line(tmp_path: Path) -> None:
    bin_dir = python3_on(tmp_path)
    (tmp_path / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a venv\n")
    result = check(tmp_path, python_dir=bin_dir)
    assert result.returncode == 1
    assert "ready" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "externally managed (PEP 668)" in lines[0]
    assert "python3 -m venv .venv && . .venv/bin/activate" in lines[0]


def test_a_virtualenv_on_an_externally_managed_python_goes_on(tmp_path: Path) -> None:
    (tmp_path / "EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    venv = tmp_path / "venv"
    subprocess.run(  # --without-pip: cheap, and the check does not need pip
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
    )
    result = check(tmp_path, python_dir=venv / "bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ready")
