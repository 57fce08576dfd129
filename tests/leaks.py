"""What a test leaves behind: open descriptors (sockets, files, pipes), threads, child processes
and temporary files, recorded before and after each test (issue 23, item 4).

``filterwarnings = error`` turns a socket closed by the garbage collector into an error, but in
whichever test the collector happens to run: the leak shows up elsewhere, or not at all. This
check fails the test that leaked, at its teardown, and names what it left.

It costs about 0.1 ms a test: one listing of ``/proc/self/fd`` (``/dev/fd`` elsewhere) with a
``readlink`` (``fstat``) each, ``threading.enumerate()``, one ``waitid`` that says whether there
are children at all (``/proc`` is scanned only when there are), and one listing of the session's
private temporary directory.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: How long a thread the test started may take to finish after it (it may be returning right
#: now: a fetch thread that has just set its event). A liveness bound, not a timing assertion.
THREAD_GRACE = 5.0

_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def _fds() -> dict[int, str]:
    """Open descriptors, each with what it is (its ``/proc`` link, or its inode elsewhere)."""
    found: dict[int, str] = {}
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        try:
            if _FD_DIR == "/proc/self/fd":
                found[fd] = os.readlink(f"{_FD_DIR}/{name}")
            else:
                st = os.fstat(fd)
                found[fd] = f"inode {st.st_dev}:{st.st_ino}"
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return found


def _children() -> set[int]:
    """Process ids of this process's children, zombies included."""
    try:
        # Does not reap: WNOWAIT. ECHILD means there are none, the common case: no scan.
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return set()
    if not os.path.isdir("/proc"):  # pragma: no cover - not Linux: count only
        return {-1}
    me, found = os.getpid(), set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(b")", 1)[1].split()[1]) == me:  # field 4, ppid
                found.add(int(name))
    return found


@dataclass
class Snapshot:
    fds: dict[int, str]
    threads: set[threading.Thread]
    children: set[int]
    temp: set[str]

    @classmethod
    def take(cls, temp_dir: Path) -> Snapshot:
        return cls(_fds(), set(threading.enumerate()), _children(), set(os.listdir(temp_dir)))


def _describe_fd(fd: int, what: str) -> str:
    if what.startswith("socket:"):
        # The socket object, if one is still referenced, names its addresses.
        for obj in gc.get_objects():
            if isinstance(obj, socket.socket) and obj.fileno() == fd:
                return f"fd {fd}: {obj!r}"
    return f"fd {fd}: {what}"


def leaked(before: Snapshot, temp_dir: Path) -> list[str]:
    """What is open now that was not in ``before`` (empty: nothing leaked)."""
    problems: list[str] = []
    deadline = time.monotonic() + THREAD_GRACE
    for thread in threading.enumerate():
        if thread not in before.threads and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                problems.append(f"thread {thread.name!r} (target {_target(thread)})")
    after = _fds()
    problems += [
        _describe_fd(fd, what) for fd, what in sorted(after.items()) if before.fds.get(fd) != what
    ]
    problems += [
        f"child process {pid}: {_cmdline(pid)}" for pid in sorted(_children() - before.children)
    ]
    problems += [
        f"temporary file {temp_dir / name}"
        for name in sorted(set(os.listdir(temp_dir)) - before.temp)
    ]
    return problems


def _target(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    return getattr(target, "__qualname__", repr(target))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or "(zombie)"
    except OSError:
        return "?"


@pytest.fixture(scope="session", autouse=True)
def _private_tempdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary directory of this session's own (also for the processes it starts), so
    the leak check sees only this session's files: other programs write to /tmp too."""
    tmp_path_factory.getbasetemp()  # pytest's tmp_path stays where it was
    private = Path(tempfile.mkdtemp(prefix="jwt_guard-tests-"))
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(private), str(private)
    try:
        yield private
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(autouse=True)
def _nothing_leaks(_private_tempdir: Path) -> Iterator[None]:
    """Fail the test that leaves a descriptor (socket, file, pipe), thread, child process or
    temporary file behind (this module)."""
    before = Snapshot.take(_private_tempdir)
    yield
    problems = leaked(before, _private_tempdir)
    if problems:
        pytest.fail("the test left open:\n  " + "\n  ".join(problems), pytrace=False)
