"""scripts/python-env.sh: the PEP 668 check that test-deps.sh and demo.sh run before pip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_pip(stdlib: Path, *, python_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JWT_GUARD_STDLIB_DIR": str(stdlib)}
    if python_dir is not None:  # a python3 that is (or is not) a virtualenv's
        env["PATH"] = f"{python_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "source scripts/python-env.sh; ensure_pip; echo ready"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def python3_on(tmp_path: Path) -> Path:
    """A directory whose python3 is this interpreter (not a virtualenv's on this machine)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    return bin_dir


def test_an_unmanaged_python_goes_on(tmp_path: Path) -> None:
    result = ensure_pip(tmp_path, python_dir=python3_on(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ready")


def test_an_externally_managed_python_stops_with_the_venv_line(tmp_path: Path) -> None:
    bin_dir = python3_on(tmp_path)
    assert sys.prefix == sys.base_prefix, "the test needs a python that is not a virtualenv's"
    (tmp_path / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a venv\n")
    result = ensure_pip(tmp_path, python_dir=bin_dir)
    assert result.returncode == 1
    assert "ready" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "externally managed (PEP 668)" in lines[0]
    assert "python3 -m venv .venv && . .venv/bin/activate" in lines[0]


def test_a_virtualenv_on_an_externally_managed_python_goes_on(tmp_path: Path) -> None:
    (tmp_path / "EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    venv = tmp_path / "venv"
    # --without-pip keeps it cheap; pip comes through --system-site-packages' parent pip.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
    )
    result = ensure_pip(tmp_path, python_dir=venv / "bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ready")
