"""The Redis connection shared by the denylist and the DPoP replay cache
(``_sources.redis_connection``).

Issue 22 item 8: while Redis was down, every request tried two connections (the pooled one,
then a fresh one) before failing closed, which doubled the p99 of a Redis kill. A Redis that
refused even the fresh connection is now known to be down for ``DOWN_INTERVAL``: calls in that
interval fail closed (503 with Retry-After) without touching the network. Counted here against
real sockets (a port that drops every connection, a real redis-server killed and restarted),
for both stores, both drivers, a URL and a client object, and after a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from jwt_guard import (
    DenylistUnavailable,
    DPoPReplayUnavailable,
    RedisDenylist,
    RedisReplayCache,
    ServiceUnavailable,
)
from jwt_guard._sources.redis_connection import DOWN_INTERVAL, RedisDown
from jwt_guard.testing import LocalIssuer

from .conftest import AppFactory, FakeClock, bearer
from .redis_server import RedisProcess

DRIVERS = ["sync", "async"]
FORMS = ["url", "client"]
STORES = ["denylist", "replay"]


class DroppingPort:
    """A real port that accepts every connection and closes it at once (a Redis that dies on
    each connection), counting the connection attempts it sees."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._count = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._count += 1
            conn.close()

    @property
    def count(self) -> int:
        time.sleep(0.05)  # let the accept thread see what the kernel already queued
        with self._lock:
            return self._count

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._sock.close()
        self._thread.join(5)


@pytest.fixture
def dropping() -> Iterator[DroppingPort]:
    port = DroppingPort()
    yield port
    port.close()


def _target(form: str, driver: str, port: int) -> Any:
    if form == "url":
        return f"redis://127.0.0.1:{port}/0"
    # No retries of the client's own (redis-py's default backs off for seconds, past the
    # store's timeout), so that one call is one or two connections, as with a URL. A sync
    # client handed in needs a socket timeout (RedisConnection refuses one without).
    if driver == "async":
        return aredis.Redis(
            host="127.0.0.1", port=port, socket_timeout=0.5, retry=AsyncRetry(NoBackoff(), 0)
        )
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


class Store:
    """One Redis-backed store, driven by one driver: ``use()`` is one request's Redis call."""

    def __init__(self, kind: str, driver: str, target: Any, clock: FakeClock) -> None:
        self.kind, self.driver, self.target = kind, driver, target
        self.loop = asyncio.new_event_loop() if driver == "async" else None
        if kind == "denylist":
            self.idp = LocalIssuer(algorithm="ES256")
            self.store: RedisDenylist | RedisReplayCache = RedisDenylist(target, timeout=0.5)
            self.verifier = self.idp.verifier(denylist=self.store, cache_size=0)
            self.token = self.idp.mint(ttl=600)
        else:
            self.store = RedisReplayCache(target, timeout=0.5)
        # The known-down interval's clock, injected: the tests move it instead of sleeping.
        self.store._conn._clock = clock
        self.error: type[ServiceUnavailable] = (
            DenylistUnavailable if kind == "denylist" else DPoPReplayUnavailable
        )
        self._n = 0

    def use(self) -> object:
        """The call's outcome: a principal or ``True`` (a new proof), or the 503 raised."""
        self._n += 1
        try:
            if self.kind == "denylist":
                if self.loop is not None:
                    return self.loop.run_until_complete(self.verifier.averify(self.token))
                return self.verifier.verify(self.token)
            key, replay = f"proof-{self._n}-{os.getpid()}", self.store
            assert isinstance(replay, RedisReplayCache)
            if self.loop is not None:
                return self.loop.run_until_complete(replay.afirst_use(key, 60))
            return replay.first_use(key, 60)
        except ServiceUnavailable as exc:
            assert isinstance(exc, self.error)
            return exc

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.store.aclose())
            if isinstance(self.target, aredis.Redis):  # a client handed in is ours to close
                self.loop.run_until_complete(self.target.aclose())
            self.loop.close()
        self.store.close()
        if isinstance(self.target, redis.Redis):
            self.target.close()


@pytest.fixture
def make_store(clock: FakeClock) -> Iterator[Callable[[str, str, Any], Store]]:
    stores: list[Store] = []

    def make(kind: str, driver: str, target: Any) -> Store:
        stores.append(Store(kind, driver, target, clock))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.mark.parametrize("store_kind", STORES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_issue22_redis_known_down_makes_no_connection_within_the_interval(
    dropping: DroppingPort,
    make_store: Callable[[str, str, Any], Store],
    clock: FakeClock,
    store_kind: str,
    form: str,
    driver: str,
) -> None:
    """A Redis whose fresh connection fails too is known to be down: the next requests fail
    closed at once, with no connection attempt, until DOWN_INTERVAL has passed."""
    store = make_store(store_kind, driver, _target(form, driver, dropping.port))
    first = store.use()
    assert isinstance(first, store.error)
    tried = dropping.count
    assert tried >= 1
    for _ in range(20):
        clock.advance(DOWN_INTERVAL / 25)
        outcome = store.use()
        assert isinstance(outcome, store.error)
        assert isinstance(outcome.__cause__, RedisDown)
        assert outcome.status_code == 503 and outcome.retry_after >= 1
    assert dropping.count == tried  # 20 refusals, not one connection attempt
    clock.advance(DOWN_INTERVAL)
    assert isinstance(store.use(), store.error)
    assert dropping.count > tried  # the interval ended: Redis is tried again


@pytest.mark.parametrize("store_kind", STORES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_issue22_redis_killed_then_back_is_used_after_the_interval(
    tmp_path: Path,
    make_store: Callable[[str, str, Any], Store],
    clock: FakeClock,
    store_kind: str,
    form: str,
    driver: str,
) -> None:
    """A real redis-server killed and started again on its port: within the interval the store
    does not connect (the server counts no connection from it), after it the store recovers."""
    server = RedisProcess(tmp_path)
    server.start()
    try:
        store = make_store(store_kind, driver, _target(form, driver, server.port))
        assert not isinstance(store.use(), ServiceUnavailable)
        server.stop()
        assert isinstance(store.use(), store.error)  # both connections refused: known down
        server.start()
        before = _connections_received(server.port)
        for _ in range(5):
            assert isinstance(store.use(), store.error)
        # Only the counting connection itself: the store made none.
        assert _connections_received(server.port) == before + 1
        clock.advance(DOWN_INTERVAL)
        assert not isinstance(store.use(), ServiceUnavailable)  # recovered
        assert not isinstance(store.use(), ServiceUnavailable)
    finally:
        server.stop()


def _connections_received(port: int) -> int:
    """redis-server's own count of the connections it accepted since it started."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_issue22_redis_known_down_is_reset_in_a_forked_child(
    dropping: DroppingPort,
    make_store: Callable[[str, str, Any], Store],
    driver: str,
) -> None:
    """The parent knows Redis is down; a forked child finds out for itself (its first call
    connects), like its clients, which it makes afresh."""
    store = make_store("denylist", driver, _target("url", driver, dropping.port))
    assert isinstance(store.use(), store.error)
    assert isinstance(store.use().__cause__, RedisDown)  # type: ignore[union-attr]
    tried = dropping.count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            if driver == "async":
                store.loop = asyncio.new_event_loop()  # the parent's shares its epoll fd
            outcome = store.use()
            if isinstance(outcome, store.error) and not isinstance(outcome.__cause__, RedisDown):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert dropping.count > tried  # the child connected
    assert isinstance(store.use().__cause__, RedisDown)  # type: ignore[union-attr]


async def test_issue22_redis_known_down_answers_503_with_retry_after(
    dropping: DroppingPort, make_client: AppFactory, issuer: LocalIssuer, clock: FakeClock
) -> None:
    """Through both adapters: the known-down refusal is the same 503 as a failed call."""
    denylist = RedisDenylist(f"redis://127.0.0.1:{dropping.port}/0", timeout=0.5)
    denylist._conn._clock = clock
    client = make_client(issuer.verifier(denylist=denylist, cache_size=0))
    answers = [await client.get("/me", headers=bearer(issuer.mint())) for _ in range(4)]
    tried = dropping.count
    answers += [await client.get("/me", headers=bearer(issuer.mint())) for _ in range(4)]
    assert dropping.count == tried
    for response in answers:
        assert response.status_code == 503
        assert response.json()["code"] == "denylist_unavailable"
        assert int(response.headers["retry-after"]) >= 1
    denylist.close()
    await denylist.aclose()


def test_issue22_redis_restart_is_not_known_down(
    tmp_path: Path, make_store: Callable[[str, str, Any], Store]
) -> None:
    """A restart kills the pooled connection but a fresh one works: retried, not marked down
    (no late 503 after a restart)."""
    server = RedisProcess(tmp_path)
    server.start()
    try:
        store = make_store("denylist", "sync", server.url)
        assert not isinstance(store.use(), ServiceUnavailable)
        server.stop()
        server.start()
        assert not isinstance(store.use(), ServiceUnavailable)
        assert store.store._conn._down_since is None
    finally:
        server.stop()
