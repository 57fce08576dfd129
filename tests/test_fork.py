"""Keys fetched before a fork, under a real gunicorn ``--preload`` with two workers of each kind.

The master fetches the JWKS at import (a pooled, kept-alive connection to the provider), then
forks. Every worker must then fetch on a connection of its own: a connection shared between
processes interleaves their bytes, and a lock or an in-flight fetch copied from the master
never finishes in the child (issue 13, item 4).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwt_guard import JWKSKeys
from jwt_guard._sources.fetch import Flight
from jwt_guard.testing import JWKSServer, LocalIssuer

from .conftest import FakeClock
from .forking import in_child
from .test_jwks import free_port

ROOT = Path(__file__).resolve().parent.parent

WORKERS = {
    "flask-sync": ("flask", "tests.fork_app:flask_app", "sync"),
    "fastapi-uvicorn": ("fastapi", "tests.fork_app:fastapi_app", "uvicorn_worker.UvicornWorker"),
}


def _wait_until_serving(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/me", timeout=2).status_code == 401:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not start:\n{log.read_text()}")


@pytest.mark.parametrize("kind", sorted(WORKERS))
def test_keys_prefetched_before_a_fork_work_in_every_worker(kind: str, tmp_path: Path) -> None:
    app_kind, app, worker = WORKERS[kind]
    idp = LocalIssuer(algorithm="ES256", kid="k1")
    with JWKSServer(lambda: idp.jwks, issuer=idp.issuer) as server:
        server.keep_alive = True  # what real providers do: the master's connection stays pooled
        server.delay = 0.1  # fetches from both workers overlap
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FORK_APP": app_kind,
            "FORK_JWKS_URL": server.url,
            "FORK_ISSUER": idp.issuer,
            "FORK_AUDIENCE": idp.audience,
        }
        log = tmp_path / "gunicorn.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    # Python 3.12+ warns when a process forks with threads running: shown
                    # in the log, which must not have it (prefetch leaves no thread of ours).
                    "-W",
                    "always:This process:DeprecationWarning",
                    "-m",
                    "gunicorn",
                    "--preload",
                    "--workers",
                    "2",
                    "--worker-class",
                    worker,
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                    app,
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_serving(base, proc, log)
            assert server.count >= 1  # the master's prefetch
            answers: list[tuple[int, object]] = []
            lock = threading.Lock()

            def call(token: str) -> None:
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(timeout=30) as client:
                    response = client.get(base + "/me", headers=headers)
                with lock:
                    answers.append((response.status_code, response.json().get("pid")))

            for round_ in range(4):
                # A rotation: every worker meets an unknown kid and fetches, after the fork.
                kid = idp.rotate(f"k{round_ + 2}")
                threads = [
                    threading.Thread(target=call, args=(idp.mint(kid=kid),)) for _ in range(8)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        finally:
            proc.terminate()
            proc.wait(20)
        assert "multi-threaded" not in log.read_text()
        statuses = [status for status, _ in answers]
        assert statuses == [200] * 32, (statuses, log.read_text())
        assert len({pid for _, pid in answers}) == 2  # both workers answered


def test_prefetch_and_close_leave_no_thread_of_ours(clock: FakeClock) -> None:
    """What gunicorn --preload forks is what prefetch() leaves: no thread of ours (Python
    3.12+ warns about forking with threads running, and a thread is not copied into the child
    anyway). A refresh still in flight at shutdown is ended by close(), not left running."""

    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("jwt_guard")]

    idp = LocalIssuer(algorithm="ES256", kid="k1", clock=clock)
    with JWKSServer(lambda: idp.jwks) as server:
        source = JWKSKeys(server.url, clock=clock, timeout=5)
        for _ in range(20):
            source.prefetch(required=True)
            assert ours() == []
        clock.advance(500)  # refresh-ahead: the next request starts a background fetch
        with server.held():  # ...which is still in flight at close()
            assert source.keys("k1")
            assert ours()
            source.close()
            assert ours() == []


@contextlib.contextmanager
def served_by_another_process(jwks: Mapping[str, Any], tmp_path: Path) -> Iterator[str]:
    """The JWKS on 127.0.0.1, served by ``python -m http.server``: no server thread in this
    process, so it can fork as a pre-fork server does. Yields the JWKS URL."""
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        found = re.search(r" port (\d+) ", proc.stdout.readline())  # "Serving HTTP on ..."
        assert found, "http.server did not start"
        yield f"http://127.0.0.1:{found[1]}/jwks.json"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_a_fetch_in_flight_at_fork_time_does_not_block_the_child(
    clock: FakeClock, tmp_path: Path
) -> None:
    """A request thread had a key fetch in flight, and another was starting one (holding the
    start lock), at the moment of the fork: in the child that fetch never ends and that lock is
    never released, unless both are renewed after the fork. The child must fetch on its own.

    Forked with no other thread running (tests/forking.py), so the in-flight fetch is the state
    its thread leaves while it runs, and the lock is held by the forking thread."""
    idp = LocalIssuer(algorithm="ES256", kid="k1", clock=clock)
    with served_by_another_process(idp.jwks, tmp_path) as url:
        source = JWKSKeys(url, clock=clock, timeout=5)
        source.prefetch(required=True)
        fetches = source.stats.fetches
        source._flight = Flight()  # a fetch thread's, unfinished at the fork

        def child() -> bool:
            source.prefetch(required=True)  # its own fetch, not a wait on the parent's
            return source.stats.fetches == fetches + 1

        assert in_child(child, holding=source._start_lock)
        source._flight.done.set()  # the parent's own flight, for close()
        source.close()
