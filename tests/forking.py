"""Forking in a test as an app forks its workers: with no other thread running.

Python 3.12+ warns (DeprecationWarning, an error under ``filterwarnings = error``) when a process
forks while it runs threads: only the forking thread is copied, so whatever the others held (a
lock, a half-written buffer) stays held for ever in the child. The library starts no thread that
is still running when a pre-fork server forks (``prefetch()`` fetches in the caller's thread),
and the leak check ends every test's threads, so the tests fork as an app does: single-threaded.
A hazard another thread would leave (a lock held at the fork) is made by this thread instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable
from typing import Any

#: How long a child may take (a liveness bound: a hung child fails the test, it does not hang).
CHILD_TIMEOUT = 20.0


def in_child(
    body: Callable[[], bool],
    *,
    holding: contextlib.AbstractContextManager[Any] | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> bool:
    """Run ``body`` in a forked child; True if it returned True (False if it failed or hung).

    ``holding``: entered around the fork (a lock held at that moment stays held in the child,
    unless the library renews it after the fork). ``meanwhile`` runs in the parent while the
    child runs."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    assert not others, f"a test forks with no other thread running, found {others}"
    with holding or contextlib.nullcontext():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                code = 0 if body() else 1
            finally:
                os._exit(code)
    try:
        if meanwhile is not None:
            meanwhile()
    finally:
        exited = _wait_for_exit(pid, CHILD_TIMEOUT)
        if not exited:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    return exited and os.waitstatus_to_exitcode(status) == 0


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait for the child's exit (a pidfd becomes readable), at most ``timeout``."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # pragma: no cover - not Linux 5.3+: wait, unbounded
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)
