"""The rejection log (``_core.log``): reasons nobody would see get one warning per process.

Python's logging writes nothing below WARNING until an app configures it, and ``uvicorn
app:app`` or ``flask run`` configure only their own loggers: the INFO line that says why a
request was refused went nowhere (issue 25, "Reasons nobody sees"). Each case runs in a process
of its own, as a server runs an app: pytest's own log capture is not an app's logging.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from jwt_guard._core.log import reaches_a_handler

from .manual import manual
from .redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
README = manual()
#: The warning's words (once per process) and the reason it carries.
UNSEEN = "no handler writes them here"
REASON = "refused token_malformed (401): "
NOT_A_JWT = {"Authorization": "Bearer opaque-token"}


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@contextmanager
def serving(argv: list[str], port: int, **extra: str) -> Iterator[tuple[str, list[str]]]:
    """Run a server command (from the repository's root); yields its base URL and, after the
    block, its stderr lines in the list."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30  # a liveness bound
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield base, lines
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        lines.extend(err.splitlines())


SERVERS = {
    "asgi-uvicorn": ["uvicorn", "tests.unseen_app:asgi", "--port"],
    "flask-run": ["flask", "--app", "tests.unseen_app:flask_app", "run", "--port"],
    "wsgi-gunicorn": ["gunicorn", "tests.unseen_app:wsgi", "--workers", "1", "--bind"],
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_issue25_refusal_reasons_nobody_sees_get_one_warning_under_a_plain_server(
    server: str,
) -> None:
    port = free_port()
    argv = [*SERVERS[server], f"127.0.0.1:{port}" if server == "wsgi-gunicorn" else str(port)]
    with serving(argv, port) as (base, lines):
        assert httpx.get(f"{base}/api/me").status_code == 401
        for _ in range(2):
            assert httpx.get(f"{base}/api/me", headers=NOT_A_JWT).status_code == 401
    warnings = [line for line in lines if UNSEEN in line]
    assert len(warnings) == 1, lines
    # The warning carries the first refusal's reason, and says how to see the next ones: the
    # line the manual shows ("Why was I refused?").
    assert warnings[0].startswith("refused token_missing (401): looked_in=")
    assert "logging.basicConfig(level=logging.INFO)" in warnings[0]
    assert "getLogger('jwt_guard')" in warnings[0] and "on_error" in warnings[0]
    assert f"\n  {warnings[0]}\n" in README
    assert "opaque-token" not in "\n".join(lines)


@pytest.mark.parametrize("server", list(SERVERS))
def test_issue25_lines_turned_down_on_purpose_get_no_warning(server: str) -> None:
    port = free_port()
    argv = [*SERVERS[server], f"127.0.0.1:{port}" if server == "wsgi-gunicorn" else str(port)]
    with serving(argv, port, UNSEEN_APP_LOG_REJECTIONS="DEBUG") as (base, lines):
        assert httpx.get(f"{base}/api/me", headers=NOT_A_JWT).status_code == 401
    assert not [line for line in lines if "refused" in line], lines


def run_script(adapter: str, setting: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.unseen_app", adapter, setting],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


@pytest.mark.parametrize("adapter", ["asgi", "wsgi", "flask"])
@pytest.mark.parametrize("setting", ["nothing", "level-without-handler"])
def test_issue25_once_per_process_and_again_in_a_forked_child(adapter: str, setting: str) -> None:
    # Two refusals, a fork (two in the child), one more here: one warning here, one in the child.
    lines = run_script(adapter, setting)
    fork, child, done = (
        lines.index("-- fork --"),
        next(i for i, line in enumerate(lines) if line.startswith("-- child ")),
        lines.index("-- child done --"),
    )
    said = [i for i, line in enumerate(lines) if UNSEEN in line]
    assert len(said) == 2, lines
    assert said[0] < fork and child < said[1] < done
    assert not [line for line in lines if line.startswith("INFO")]


@pytest.mark.parametrize("adapter", ["asgi", "wsgi", "flask"])
def test_issue25_configured_logging_shows_the_lines_and_no_warning(adapter: str) -> None:
    lines = run_script(adapter, "basic-config")
    refused = [line for line in lines if line.startswith("INFO jwt_guard: " + REASON)]
    assert len(refused) == 5  # 2 + 2 in the child + 1
    assert not [line for line in lines if UNSEEN in line]


def test_issue25_a_logger_silenced_on_purpose_gets_no_warning() -> None:
    lines = run_script("wsgi", "silenced")
    assert [line for line in lines if not line.startswith("-- ")] == []


def test_reaches_a_handler_follows_pythons_rules() -> None:
    # A tree of its own (pytest's handlers sit on the root): ``top`` does not propagate.
    top = logging.getLogger("unseen_test")
    top.propagate = False
    top.setLevel(logging.WARNING)
    log = logging.getLogger("unseen_test.jwt_guard")
    handler, null = logging.StreamHandler(), logging.NullHandler()
    try:
        # No handler anywhere: the last-resort handler writes WARNING and up only.
        assert not reaches_a_handler(log, logging.INFO)
        assert reaches_a_handler(log, logging.WARNING)
        log.setLevel(logging.INFO)
        assert not reaches_a_handler(log, logging.INFO)
        # A handler up the chain that takes INFO; one that does not (no last resort then).
        top.addHandler(handler)
        assert reaches_a_handler(log, logging.INFO)
        handler.setLevel(logging.ERROR)
        assert not reaches_a_handler(log, logging.INFO)
        assert not reaches_a_handler(log, logging.WARNING)
        # Past propagate=False nothing counts; a NullHandler does (silence chosen).
        handler.setLevel(logging.NOTSET)
        log.propagate = False
        assert not reaches_a_handler(log, logging.INFO)
        log.addHandler(null)
        assert reaches_a_handler(log, logging.INFO)
        log.setLevel(logging.ERROR)
        assert not reaches_a_handler(log, logging.INFO)
    finally:
        top.removeHandler(handler)
        log.removeHandler(null)
