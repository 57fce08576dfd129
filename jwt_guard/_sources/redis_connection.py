"""One Redis connection for the stores that share state between instances.

The denylist and the DPoP replay cache (``redis_stores``) talk to Redis the same way:
a ``redis://`` URL or a client object, sync and async clients, every call bounded by a timeout
and tried once more on a fresh connection after a Redis restart, a Redis that refused even the
fresh connection left alone for :data:`DOWN_INTERVAL`, clients renewed in a forked child, and a
failure either refused (503, fail closed) or let through with a warning (``fail_open=True``).
That handling lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from .._core.errors import ConfigurationError, ServiceUnavailable
from .._core.extras import MissingExtra
from .._core.log import RejectionLog
from .deadline import DeadlineExceeded, call_with_deadline

__all__ = ["DOWN_INTERVAL", "RedisConnection", "RedisDown", "down_detail"]

logger = logging.getLogger("jwt_guard")

T = TypeVar("T")

#: Calls through a sync client handed in (not a URL) that may wait on Redis at once; past this
#: a call fails at once (503) rather than start another thread (see ``RedisConnection.call``).
MAX_PENDING_CALLS: Final = 32
#: Seconds a Redis that refused a fresh connection is known to be down: calls in this interval
#: fail at once (503, or let through with ``fail_open``) without touching the network. Without
#: it every request of an outage tried two connections (the pooled one, then a fresh one)
#: before failing closed, which doubled the p99 of a Redis kill. Short, so that a restarted
#: Redis is used again within a second; the first call after it tries the network again.
DOWN_INTERVAL: Final = 1.0


class RedisDown(ConnectionError):
    """Raised without a network call while Redis is known to be down (see DOWN_INTERVAL)."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"Redis is down ({cause}); not tried again for {DOWN_INTERVAL:g} s")
        #: The kind of failure that marked it down (a class name: safe for a ``detail``).
        self.cause = cause


def down_detail(exc: BaseException) -> dict[str, Any]:
    """The ``detail`` of a 503 caused by Redis: which store, and the kind of failure."""
    if isinstance(exc, RedisDown):
        return {
            "store": "redis",
            "reason": f"{exc.cause}; known down, no connection tried for {DOWN_INTERVAL:g} s",
        }
    return {"store": "redis", "reason": type(exc).__name__}


class RedisConnection:
    """Sync and async Redis clients made from a URL or given, with one timeout for every call.

    A URL gives both a sync client (made on first use) and one async client per event loop
    (an ``asyncio`` client is bound to the loop it was made in). A given client serves only its
    own kind of driver. Every call is idempotent for its users, so a connection that died with
    a Redis restart gets one more try on a fresh one, within the same ``timeout``.
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        timeout: float,
        owner: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import redis
            import redis.asyncio as aredis
        except ImportError as exc:  # only without the redis extra
            raise MissingExtra(owner, "redis", "redis") from exc
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ConfigurationError("timeout must be a positive number of seconds")
        self._redis = redis
        self._aredis = aredis
        self._owner = owner
        self.timeout = float(timeout)
        self._url: str | None = None
        self._sync: Any = None
        self._async_given: Any = None
        self._async_by_loop: dict[asyncio.AbstractEventLoop, Any] = {}
        if isinstance(url_or_client, str):
            if not url_or_client.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError("the Redis URL must start with redis://, rediss://")
            self._url = url_or_client
        elif isinstance(url_or_client, aredis.Redis):
            self._async_given = url_or_client
        elif isinstance(url_or_client, redis.Redis):
            kwargs = getattr(url_or_client.connection_pool, "connection_kwargs", {})
            if kwargs.get("socket_timeout") is None:
                raise ConfigurationError(
                    "this redis.Redis client has no socket_timeout, so a Redis that accepts and "
                    "never answers would hold a thread for ever: make it with socket_timeout= "
                    "(and socket_connect_timeout=), or pass the redis:// URL"
                )
            self._sync = url_or_client
        else:
            raise ConfigurationError("url_or_client must be a redis:// URL or a Redis client")
        # Redis errors that mean "this connection is dead" (a restart, a reset): worth one
        # more try on a fresh connection. A timeout is not: the server is slow or gone.
        self._dead_connection = (redis.ConnectionError, ConnectionError)
        # A client made from our URL has our timeouts and no retries: each call is bounded by
        # ``timeout`` already. A sync client handed in has its own (redis-py 8's defaults: 5 s
        # and 10 retries with backoff, about a minute against a silent server), so its calls
        # run under ``deadline.call_with_deadline`` with the same ``timeout``, at most
        # MAX_PENDING_CALLS at a time.
        self._bounded = self._url is None and self._sync is not None
        self._pending = threading.BoundedSemaphore(MAX_PENDING_CALLS)
        self._log = RejectionLog(logging.WARNING)
        #: What a failed call raises (sync or async): use it in ``except``.
        self.errors: tuple[type[BaseException], ...] = (TimeoutError, redis.RedisError, OSError)
        # Known down (DOWN_INTERVAL): when a fresh connection last failed, and how.
        self._clock = clock
        self._down_since: float | None = None
        self._down_cause = ""
        _CONNECTIONS.add(self)

    # -- clients ------------------------------------------------------------------------------

    def _sync_client(self) -> Any:
        if self._sync is None:
            if self._url is None:
                raise ConfigurationError(f"this {self._owner} has only an async client")
            self._sync = self._redis.Redis.from_url(
                self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._sync

    def _async_client(self) -> Any:
        if self._async_given is not None:
            return self._async_given
        if self._url is None:
            raise ConfigurationError(f"this {self._owner} has only a sync client")
        loop = asyncio.get_running_loop()
        client = self._async_by_loop.get(loop)
        if client is None:
            for old in [lp for lp in self._async_by_loop if lp.is_closed()]:
                del self._async_by_loop[old]
            client = self._async_by_loop[loop] = self._aredis.Redis.from_url(
                self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return client

    def close(self) -> None:
        """Close the sync client made from the URL (a given client is the caller's)."""
        if self._sync is not None and self._url is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the async client made for the running loop."""
        client = self._async_by_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _after_fork(self) -> None:
        """In a forked child: the parent's pooled connections are shared with every sibling
        (their replies would interleave). Leave them, and connect afresh on the next call.

        Left, not closed and not dropped: closing would talk on the parent's sockets, and a
        dropped async client's finalizer would unregister the parent's sockets from the
        event-loop descriptor parent and child share, so the parent would stop hearing its
        replies. They are kept referenced for the child's lifetime.
        """
        # The child makes its own connections: it finds out for itself whether Redis is up.
        self._down_since = None
        if self._url is not None and self._sync is not None:
            _INHERITED.append(self._sync)
            self._sync = None
        # Calls that were running in the parent's threads never end here (nor release the
        # log's lock).
        self._pending = threading.BoundedSemaphore(MAX_PENDING_CALLS)
        self._log = RejectionLog(logging.WARNING)
        _INHERITED.extend(self._async_by_loop.values())
        self._async_by_loop = {}
        if self._async_given is not None:
            pool = getattr(self._async_given, "connection_pool", None)
            if pool is not None:
                # Its connections stay referenced (by _INHERITED); the pool starts empty.
                _INHERITED.append(list(getattr(pool, "_available_connections", ())))
                _INHERITED.append(list(getattr(pool, "_in_use_connections", ())))
                if hasattr(pool, "reset"):
                    pool.reset()
        # A given sync client's pool notices the fork itself (redis-py checks the pid, and
        # never shuts down a socket another process made).

    # -- known down ---------------------------------------------------------------------------

    def _check_down(self) -> None:
        """Raise :class:`RedisDown` while a failed fresh connection is less than
        DOWN_INTERVAL old (a clock that went back ends the interval)."""
        since = self._down_since
        if since is not None:
            elapsed = self._clock() - since
            if 0 <= elapsed < DOWN_INTERVAL:
                raise RedisDown(self._down_cause)
            self._down_since = None

    def _mark_down(self, exc: BaseException) -> None:
        self._down_cause = type(exc).__name__
        self._down_since = self._clock()

    # -- calls --------------------------------------------------------------------------------

    def call(self, command: Callable[[Any], T]) -> T:
        """``command(sync client)`` within the timeout; raises one of ``errors``, at once
        (:class:`RedisDown`) while Redis is known to be down."""
        self._check_down()
        client = self._sync_client()

        def attempt() -> T:
            try:
                return command(client)
            except self._dead_connection:
                _drop_idle(client)
            try:
                return command(client)
            except self._dead_connection as exc:
                # Even a fresh connection failed: Redis is down, not restarted.
                self._mark_down(exc)
                raise

        if not self._bounded:
            return attempt()  # our own client: its socket timeouts are the bound
        if not self._pending.acquire(blocking=False):
            # Redis is hung and every thread allowed is already waiting on it: answer now
            # instead of starting one more.
            raise DeadlineExceeded("too many Redis calls pending")

        def bounded() -> T:
            try:
                return attempt()
            except self.errors:
                raise
            except Exception as exc:
                # Another call's deadline shut this connection down under redis-py (it then
                # raises ValueError "I/O operation on closed file"): a failed call like any.
                raise self._redis.ConnectionError("connection shut down by a deadline") from exc
            finally:
                self._pending.release()

        # At the deadline the client's connections are shut down, so the thread ends soon.
        return call_with_deadline(bounded, self.timeout, abort=lambda: _drop_all(client))

    async def acall(self, command: Callable[[Any], Awaitable[T]]) -> T:
        """``await command(async client)`` within the timeout; raises one of ``errors``, at
        once (:class:`RedisDown`) while Redis is known to be down."""
        self._check_down()
        client = self._async_client()

        async def attempt() -> T:
            try:
                return await command(client)
            except self._dead_connection:
                await _adrop_idle(client)
            try:
                return await command(client)
            except self._dead_connection as exc:
                self._mark_down(exc)
                raise

        return await asyncio.wait_for(attempt(), self.timeout)

    def unavailable(
        self, exc: BaseException, *, fail_open: bool, error: type[ServiceUnavailable], what: str
    ) -> None:
        """After a failed call: log it, then return (``fail_open``) or raise ``error`` (503)."""
        # Every request while Redis is down (or full) comes here: lines rate-limited (issue 22).
        if fail_open:
            self._log.line(
                "open",
                "Redis %s unavailable (%s); letting the request through (fail_open)",
                what,
                type(exc).__name__,
            )
            return
        self._log.line("refused", "Redis %s unavailable (%s); refusing", what, type(exc).__name__)
        raise error(detail=down_detail(exc)) from exc


def _drop_idle(client: Any) -> None:
    """Disconnect the idle pooled connections: after one died, its siblings (made before the
    same restart) are dead too. Connections in use by other threads are left alone."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        # Best effort: the retry reconnects anyway.
        with contextlib.suppress(Exception):
            pool.disconnect(inuse_connections=False)


def _drop_all(client: Any) -> None:
    client.connection_pool.disconnect(inuse_connections=True)


async def _adrop_idle(client: Any) -> None:
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            await pool.disconnect(inuse_connections=False)


# -- fork safety ------------------------------------------------------------------------------

_CONNECTIONS: weakref.WeakSet[RedisConnection] = weakref.WeakSet()
#: In a forked child, the parent's clients (see ``RedisConnection._after_fork``).
_INHERITED: list[Any] = []


def _after_fork() -> None:
    for connection in list(_CONNECTIONS):
        connection._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
