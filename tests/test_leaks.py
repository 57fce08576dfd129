"""The leak check itself (the autouse fixtures of tests/leaks.py, which tests/conftest.py
uses): it fails the test that leaked, and names what it left (issue 23, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]

LEAKY = """
import socket, subprocess, tempfile, threading

def test_socket():
    global kept
    kept = socket.socket()
    kept.bind(("127.0.0.1", 0))

def test_thread():
    global stop
    stop = threading.Event()
    threading.Thread(target=stop.wait, name="left-running").start()

def test_child():
    global child
    child = subprocess.Popen(["true"])

def test_temp_file():
    tempfile.mkstemp(prefix="left-behind-")

def test_clean():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
    threading.Thread(target=lambda: None).start()
    subprocess.run(["true"], check=True)
    with tempfile.TemporaryDirectory():
        pass

def test_z_end():  # let the process end: the thread above waits on this
    stop.set()
"""


def test_the_test_that_leaks_fails_and_says_what(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # a quicker start: none needed
    pytester.makeconftest(
        "from tests import leaks\n"
        "from tests.leaks import _nothing_leaks, _private_tempdir\n"
        "leaks.THREAD_GRACE = 0.1  # the leaked thread never ends: no need to wait long\n"
    )
    pytester.makepyfile(test_leaky=LEAKY)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    result.assert_outcomes(passed=6, errors=4)
    text = result.stdout.str()
    for test, what in [
        ("test_socket", "<socket.socket fd="),
        ("test_thread", "thread 'left-running'"),
        ("test_child", "child process"),
        ("test_temp_file", "temporary file "),
    ]:
        assert f"ERROR test_leaky.py::{test}" in text
        assert what in text, what
    assert "test_clean" not in text.split("short test summary")[1]
