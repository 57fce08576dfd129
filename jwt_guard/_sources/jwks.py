"""A JWKS fetched over HTTP and cached: the policy (pure) and its two drivers.

The policy — *should this request use the cached set, use it and refresh in the background,
wait for a fetch, or give up* — is :func:`plan`, a pure function of :class:`CacheState`, the
token's ``kid`` and the clock. :func:`after_success` and :func:`after_failure` compute the next
state. Only the drivers do I/O, and both run a fetch the same way: one fetch in flight at a time,
shared by every request that waits for it (single flight), which nobody waits on for longer than
a bound:

* async (``akeys``): one ``asyncio`` task per fetch.
* sync (``keys``): one daemon thread per fetch and a :class:`threading.Event` that waiters wait
  on; a lock is held only to start a fetch, never across I/O. ``prefetch`` fetches in the
  caller's thread and ``close`` ends a fetch in flight, so no thread of ours is running when an
  app forks its workers after either (gunicorn ``--preload``): a thread starts only when a
  request needs a fetch, in the process that serves it.

A request with a *known* kid never waits for a fetch. A request with an unknown kid waits for
the fetch it triggered (or found in flight) at most ``unknown_kid_wait``; only a cold cache
(nothing usable at all) waits for the whole ``timeout``.

Both fetch with httpx: status 200 only, no redirects, one total deadline per fetch (discovery
and JWKS together; :mod:`._deadline`), the body streamed with its compressed *and* decoded size
capped at ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import socket
import threading
import time
import urllib.parse
import weakref
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from .._core.algorithms import ALGORITHMS
from .._core.errors import ConfigurationError, KeySourceUnavailable
from .._core.jwks_policy import (
    Action,
    CachePolicy,
    CacheState,
    DiscoveryMismatch,
    FetchFailed,
    after_failure,
    after_success,
    parse_document,
    plan,
    ttl_from_headers,
)
from .._core.keyset import KeySet, KeySource
from .._core.metrics import Metrics
from .deadline import DeadlineExceeded, acall_with_deadline, call_with_deadline

__all__ = ["JWKSKeys", "JWKSStats"]

logger = logging.getLogger("jwt_guard")

#: How long a request with an unknown kid waits for a fetch at most (then 503 + Retry-After):
#: long enough for a healthy provider, short enough that a slow one cannot hold worker threads.
UNKNOWN_KID_WAIT: Final = 1.0
#: What a waiter adds to the fetch deadline before it stops waiting: the fetch records its own
#: failure at the deadline, so this only covers thread scheduling.
_WAIT_GRACE: Final = 1.0


def display_url(url: str) -> str:
    """A URL for logs and details: without user info or query, which could hold credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_url(url: str, allow_http: bool, what: str = "url") -> str:
    """HTTPS only, unless ``allow_http`` or the host is loopback (development and tests)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"{what} must be a string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an absolute http(s) URL")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(f"{what} must use https (allow_http=True to override)")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class JWKSStats:
    """A snapshot of a remote key source's counters."""

    fetches: int
    failures: int
    last_success: float | None
    last_failure_reason: str | None
    stale_serves: int
    #: Unknown kids refused without a refetch (inside the cooldown); one that triggers a
    #: refetch shows in ``fetches`` instead.
    unknown_kid_misses: int
    key_ids: tuple[str, ...]


def _number(value: float, name: str, *, minimum: float = 0) -> float:
    # NaN compares false with everything, so `value < minimum` lets it through: refuse it and
    # the infinities by name (a TTL of NaN or a timeout of inf silently disables a bound).
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigurationError(f"{name} must be a finite number >= {minimum}")
    return float(value)


class JWKSKeys(KeySource):
    """Keys from a JWKS URL, cached and refreshed (see the module docstring for the policy).

    ``keys``/``akeys`` never raise for a provider that is down while a good set is cached
    (up to ``max_stale`` past its TTL); with nothing usable they raise
    :class:`KeySourceUnavailable` (HTTP 503).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        default_ttl: float = 600,
        min_ttl: float = 60,
        max_ttl: float = 86400,
        cooldown: float = 30,
        max_stale: float = 86400,
        max_bytes: int = 512 * 1024,
        unknown_kid_wait: float = UNKNOWN_KID_WAIT,
        allow_http: bool = False,
        client: httpx.Client | httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._url: str | None = check_url(url, allow_http) if url is not None else None
        self._allow_http = allow_http
        self._timeout = _number(timeout, "timeout", minimum=0.001)
        self._unknown_kid_wait = min(
            _number(unknown_kid_wait, "unknown_kid_wait"), self._timeout + _WAIT_GRACE
        )
        min_ttl = _number(min_ttl, "min_ttl")
        max_ttl = _number(max_ttl, "max_ttl")
        if min_ttl > max_ttl:
            raise ConfigurationError("min_ttl must not exceed max_ttl")
        self._policy = CachePolicy(
            default_ttl=_number(default_ttl, "default_ttl"),
            min_ttl=min_ttl,
            max_ttl=max_ttl,
            cooldown=_number(cooldown, "cooldown"),
            max_stale=_number(max_stale, "max_stale"),
        )
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigurationError("max_bytes must be an integer >= 1024")
        if client is not None and not isinstance(client, (httpx.Client, httpx.AsyncClient)):
            raise ConfigurationError("client must be an httpx.Client or httpx.AsyncClient")
        self._max_bytes = max_bytes
        self._clock: Callable[[], float] = clock or time.time
        self._state = CacheState()
        self._sync_client = client if isinstance(client, httpx.Client) else None
        self._async_client = client if isinstance(client, httpx.AsyncClient) else None
        self._own_sync = self._sync_client is None
        self._fetches = 0
        self._failures = 0
        self._stale_serves = 0
        self._unknown_kid = 0
        self._last_reason: str | None = None
        self._last_url: str | None = None
        self._mismatch: DiscoveryMismatch | None = None
        self._reset_drivers()
        _INSTANCES.add(self)

    def _reset_drivers(self) -> None:
        """Fresh driver state: at construction, and in a forked child (see ``_after_fork``)."""
        self._own_async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._start_lock = threading.Lock()  # held only to start a fetch, never across I/O
        self._flight: _Flight | None = None  # the sync fetch in flight, or the last one

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={len(self._state.key_set or ())})"

    # -- public ---------------------------------------------------------------------------

    @property
    def stats(self) -> JWKSStats:
        state = self._state
        return JWKSStats(
            fetches=self._fetches,
            failures=self._failures,
            last_success=state.fetched_at,
            last_failure_reason=self._last_reason,
            stale_serves=self._stale_serves,
            unknown_kid_misses=self._unknown_kid,
            key_ids=state.key_set.key_ids if state.key_set is not None else (),
        )

    def ready(self, kid: str | None) -> KeySet | None:
        # Only the plain "fresh set, known kid" case: everything else (refresh ahead, a fetch,
        # stale serving, counters) goes through keys()/akeys().
        state = self._state
        key_set = state.key_set
        if (
            key_set is not None
            and self._clock() < state.refresh_at
            and (kid is None or key_set.has_kid(kid))
        ):
            return key_set
        return None

    def keys(self, kid: str | None) -> KeySet:
        action = self._plan(kid)
        pending = False
        if action is Action.FETCH_AND_WAIT:
            self._start_sync_fetch().wait(self._timeout + _WAIT_GRACE)
        elif action is Action.FETCH_FOR_KID:
            pending = not self._start_sync_fetch().wait(self._unknown_kid_wait)
        elif action is Action.USE_AND_REFRESH:
            self._start_sync_fetch()
        return self._current(kid, pending)

    async def akeys(self, kid: str | None) -> KeySet:
        action = self._plan(kid)
        pending = False
        if action is Action.FETCH_AND_WAIT:
            await asyncio.shield(self._start_async_fetch())
        elif action is Action.FETCH_FOR_KID:
            # asyncio.wait never cancels the shared task: other waiters still get it.
            done, _ = await asyncio.wait(
                {self._start_async_fetch()}, timeout=self._unknown_kid_wait
            )
            pending = not done
        elif action is Action.USE_AND_REFRESH:
            self._start_async_fetch()
        return self._current(kid, pending)

    def prefetch(self, *, required: bool = False) -> None:
        """Warm the cache. A failure is logged, and raised only when ``required``.

        The fetch runs in this thread (or joins one in flight), and no thread of ours is left
        running: an app that forks after it (gunicorn ``--preload``) forks a single-threaded
        process (Python 3.12+ warns about forking with threads running)."""
        self._start_sync_fetch(here=True).wait(self._timeout + _WAIT_GRACE)
        self._check_prefetched(required)

    async def aprefetch(self, *, required: bool = False) -> None:
        """Warm the cache without blocking the loop (for an ASGI lifespan)."""
        await asyncio.shield(self._start_async_fetch())
        self._check_prefetched(required)

    def _check_prefetched(self, required: bool) -> None:
        if required and self._state.key_set is None:
            if self._mismatch is not None:
                # Configuration to fix, not an outage: say so at start-up.
                raise ConfigurationError(self._mismatch.explain())
            raise KeySourceUnavailable(detail=self._unavailable_detail())

    def close(self) -> None:
        """End a sync fetch in flight (its sockets shut down, its thread joined) and close the
        sync client made here (a client handed in is the caller's)."""
        flight = self._flight
        if flight is not None and flight.thread is not None:
            if not flight.done.is_set():
                flight.sockets.abort()
            # Bounded: the fetch's own deadline, after which it is aborted and ends.
            flight.thread.join(2 * self._timeout + _WAIT_GRACE)
        if self._own_sync and self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        """Cancel this loop's background fetches and close its client (lifespan shutdown):
        a task left pending when the loop closes is destroyed with a warning."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in self._background if t.get_loop() is loop and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client = self._own_async.pop(loop, None)
        if client is not None:
            await client.aclose()
        self.close()

    def check_policy(self, algorithms: frozenset[str], issuers: frozenset[str] | None) -> None:
        hmac = sorted(a for a in algorithms if ALGORITHMS[a].family == "HMAC")
        if hmac and len(hmac) == len(algorithms):
            # A remote key set never carries secrets (they would be published), so HS* tokens
            # could never verify; RFC 8725 §3.1.
            raise ConfigurationError(
                f"{hmac} cannot be verified with keys from a JWKS URL (a JWKS never holds "
                "secrets): use StaticKeys.from_secret(...) for HS*, or an asymmetric algorithm "
                "such as RS256 or ES256"
            )
        if hmac:
            raise ConfigurationError(
                f"remove {hmac} from algorithms: a JWKS never holds HMAC secrets, so they can "
                "only ever fail here"
            )

    # -- policy glue ------------------------------------------------------------------------

    def _plan(self, kid: str | None) -> Action:
        state = self._state
        now = self._clock()
        action = plan(state, self._policy, kid, now)
        if (
            action is Action.USE
            and kid is not None
            and state.key_set is not None
            and not state.key_set.has_kid(kid)
        ):
            self._unknown_kid += 1
        if action is not Action.FETCH_AND_WAIT and now > state.expires_at:
            self._stale_serves += 1
            if self._metrics is not None:
                self._metrics.jwks_stale_serve(self._metric_name)
        return action

    def _current(self, kid: str | None, pending: bool = False) -> KeySet:
        """The key set to answer with, or 503 when there is none we can stand behind."""
        state = self._state
        now = self._clock()
        retry = max(1, math.ceil(state.retry_at - now)) if state.retry_at > now else 1
        if state.key_set is None or now > state.expires_at + self._policy.max_stale:
            detail = self._unavailable_detail()
            detail["retry_after"] = retry
            raise KeySourceUnavailable(retry_after=retry, detail=detail)
        if (
            kid is not None
            and (pending or state.failures)
            and not state.key_set.has_kid(kid)
            and not any(k.kid is None for k in state.key_set.keys)
        ):
            # The kid is not in the set we have, but the set may be out of date: the last fetch
            # failed, or the one in flight is slow. Saying "no such key" (401 invalid_token)
            # would make the client throw away a token that may well be good (issue #13,
            # item 27), so: 503 and come back later.
            retry = 1 if pending else retry
            detail = self._unavailable_detail()
            detail["reason"] = "fetch in flight" if pending else detail["reason"]
            detail["retry_after"] = retry
            raise KeySourceUnavailable(retry_after=retry, detail=detail)
        return state.key_set

    def _source_url(self) -> str:
        """The URL this source fetches (the JWKS URL, or the discovery document's)."""
        assert self._url is not None
        return self._url

    def _unavailable_detail(self) -> dict[str, Any]:
        state = self._state
        detail: dict[str, Any] = {
            "url": display_url(self._last_url or self._source_url()),
            "reason": self._last_reason or "not fetched yet",
        }
        if state.fetched_at is not None:
            detail["last_success_seconds_ago"] = round(self._clock() - state.fetched_at, 1)
        return detail

    def _succeeded(self, key_set: KeySet, headers: Mapping[str, str]) -> None:
        if self._metrics is not None:
            self._metrics.jwks_fetch(self._metric_name, True)
        ttl = ttl_from_headers(headers, self._policy)
        self._mismatch = None
        self._state = after_success(self._state, key_set, ttl, self._clock())
        logger.debug(
            "JWKS refreshed from %s: %d keys, ttl %.0fs",
            display_url(self._source_url()),
            len(key_set),
            ttl,
        )

    def _fetch_error(self, exc: Exception) -> None:
        """Record a fetch that raised (called inside the ``except``, for the traceback)."""
        url = getattr(exc, "url", None) or self._source_url()
        if isinstance(exc, DiscoveryMismatch):
            self._mismatch = exc
            logger.error("%s", exc.explain(), extra={"url": display_url(url)})
            self._failed(str(exc), url, log=False)
        elif isinstance(exc, FetchFailed):
            self._failed(str(exc), url)
        elif isinstance(exc, DeadlineExceeded):
            self._failed("timed out", url)
        else:  # a bug or an exotic transport error: still only a failed fetch
            logger.exception("unexpected error while fetching %s", display_url(url))
            self._failed(f"unexpected error: {type(exc).__name__}", url)

    _metric_name: str = ""

    def use_metrics(self, metrics: Metrics) -> None:
        super().use_metrics(metrics)
        # The configured URL names the source (a discovery source's jwks_uri may change).
        self._metric_name = display_url(self._source_url())

    def _fetch_kind(self, url: str) -> str:
        """What a fetch of ``url`` was for, in the log (a discovery source says which)."""
        return "JWKS"

    def _failed(self, reason: str, url: str, *, log: bool = True) -> None:
        if self._metrics is not None:
            self._metrics.jwks_fetch(self._metric_name, False)
        self._failures += 1
        self._last_reason = reason
        self._last_url = url
        self._state = after_failure(self._state, self._clock())
        state = self._state
        if not log:
            return
        shown = display_url(url)
        if state.key_set is not None and state.fetched_at is not None:
            logger.warning(
                "%s fetch from %s failed (%s); keeping the key set fetched %.0fs ago",
                self._fetch_kind(url),
                shown,
                reason,
                self._clock() - state.fetched_at,
                extra={"url": shown, "reason": reason},
            )
        else:
            logger.warning(
                "%s fetch from %s failed (%s); no keys available",
                self._fetch_kind(url),
                shown,
                reason,
                extra={"url": shown, "reason": reason},
            )

    # -- sync driver --------------------------------------------------------------------------

    def _start_sync_fetch(self, *, here: bool = False) -> threading.Event:
        """The event of the sync fetch in flight, started if there is none (single flight):
        in a thread of its own, or ``here`` in the caller's (then over when this returns)."""
        with self._start_lock:
            flight = self._flight
            if flight is not None and not flight.done.is_set():
                return flight.done
            flight = self._flight = _Flight()
            if not here:
                flight.thread = threading.Thread(
                    target=self._run_flight, args=(flight,), name="jwt_guard-jwks", daemon=True
                )
        if flight.thread is None:
            self._run_flight(flight)
            return flight.done
        try:
            flight.thread.start()
        except RuntimeError as exc:
            # "can't start new thread": a failed fetch like any other, and nothing stays held
            # (a flight that never ends would stop every later fetch).
            flight.thread = None
            self._fetches += 1
            self._failed(f"cannot start a fetch thread: {exc}", self._source_url())
            flight.done.set()
        return flight.done

    def _run_flight(self, flight: _Flight) -> None:
        abandoned = None
        try:
            abandoned = self._fetch_sync(flight.sockets)
        finally:
            flight.done.set()
        if abandoned is not None:
            # The call the deadline gave up on: its sockets are shut down, so it ends soon.
            # Waiters have their answer already; this thread ends after it, not before.
            abandoned.join(self._timeout)

    def _fetch_sync(self, sockets: _Sockets) -> threading.Thread | None:
        """Fetch once, within one total deadline, and update the state. Returns the thread
        the deadline abandoned, if it passed."""
        self._fetches += 1
        try:
            client = self._sync_client
            if client is None:
                client = self._sync_client = _new_client(httpx.Client)
            key_set, headers = call_with_deadline(
                lambda: self._fetch_document_sync(_SyncGet(client, self, sockets)),
                self._timeout,
                abort=sockets.abort,
            )
        except Exception as exc:
            self._fetch_error(exc)
            return exc.worker if isinstance(exc, DeadlineExceeded) else None
        self._succeeded(key_set, headers)
        return None

    def _fetch_document_sync(self, get: _SyncGet) -> tuple[KeySet, Mapping[str, str]]:
        body, headers = get(self._jwks_url_sync(get))
        return parse_document(body, self._state.key_set), headers

    def _jwks_url_sync(self, get: _SyncGet) -> str:
        assert self._url is not None
        return self._url

    # -- async driver ---------------------------------------------------------------------------

    def _start_async_fetch(self) -> asyncio.Task[None]:
        """The in-flight fetch task of this loop, started if there is none (single flight)."""
        task = self._inflight
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch_async())
            self._inflight = task
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return task

    async def _fetch_async(self) -> None:
        self._fetches += 1
        try:
            get = _AsyncGet(self._client_for_loop(), self)
            key_set, headers = await acall_with_deadline(
                self._fetch_document_async(get), self._timeout
            )
        except Exception as exc:
            self._fetch_error(exc)
        else:
            self._succeeded(key_set, headers)

    def _client_for_loop(self) -> httpx.AsyncClient:
        if self._async_client is not None:
            return self._async_client
        loop = asyncio.get_running_loop()
        client = self._own_async.get(loop)
        if client is None:
            for old in [lp for lp in self._own_async if lp.is_closed()]:
                del self._own_async[old]
            client = self._own_async[loop] = _new_client(httpx.AsyncClient)
        return client

    async def _fetch_document_async(self, get: _AsyncGet) -> tuple[KeySet, Mapping[str, str]]:
        body, headers = await get(await self._jwks_url_async(get))
        return parse_document(body, self._state.key_set), headers

    async def _jwks_url_async(self, get: _AsyncGet) -> str:
        assert self._url is not None
        return self._url


# -- fork safety ------------------------------------------------------------------------------

_INSTANCES: weakref.WeakSet[JWKSKeys] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child (gunicorn ``--preload``, uWSGI without lazy-apps, multiprocessing):
    nothing the parent had in flight exists here, a lock it held stays held for ever, and a
    connection it pooled is shared with every sibling (their bytes would interleave). Start
    afresh; the cached key set itself is plain data and stays valid."""
    for source in list(_INSTANCES):
        # Set aside, neither closed nor garbage-collected: closing would talk on the parent's
        # connections, and an async client's finalizer would unregister the parent's sockets
        # from the event-loop selector the two processes share.
        if source._own_sync and source._sync_client is not None:
            _ORPHANS.append(source._sync_client)
            source._sync_client = None
        _ORPHANS.extend(source._own_async.values())
        source._reset_drivers()


#: The parent's clients, kept referenced in a forked child (see ``_after_fork``).
_ORPHANS: list[Any] = []


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)


# -- one HTTP GET, both drivers ---------------------------------------------------------------

#: Only what we can decode with a bounded output (see _Decoder): no br, no zstd.
_ACCEPT_ENCODING: Final = "gzip, deflate"


def _new_client(cls: type[Any]) -> Any:
    # No kept-alive connections: fetches are minutes apart, and a pooled connection is what a
    # fork would share between processes and what a deadline could not reach.
    return cls(follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))


class _Sockets:
    """Remembers the sockets a sync fetch opens (httpx ``trace`` extension), so the deadline
    can shut them down and the abandoned thread ends instead of waiting on the server."""

    def __init__(self) -> None:
        self._streams: list[Any] = []

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self._streams.append(info.get("return_value"))

    def abort(self) -> None:
        for stream in self._streams:
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)


class _Flight:
    """One sync fetch: waiters wait on ``done``; ``close`` aborts its sockets and joins its
    thread (``None`` when it runs in the caller's thread: ``prefetch``)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.sockets = _Sockets()
        self.thread: threading.Thread | None = None


class _Decoder:
    """Content-Encoding decoding whose output is capped *while* decoding: a 200 KiB gzip body
    can inflate to hundreds of MiB, so the cap must apply to each step, not to the result."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self._zlib: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            # RFC 9110 §8.4.1: gzip, or deflate = the zlib format; 32 + 15 reads either header.
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            raise FetchFailed("unsupported Content-Encoding")

    def decode(self, data: bytes, room: int) -> bytes:
        """At most ``room + 1`` bytes of output (one more than fits means too large)."""
        if self._zlib is None:
            return data
        try:
            return bytes(self._zlib.decompress(data, room + 1))
        except zlib.error as exc:
            raise FetchFailed("bad compressed body") from exc

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise FetchFailed("truncated compressed body")


class _Body:
    """What both drivers do with a streamed response: status, size caps, deadline."""

    def __init__(self, response: httpx.Response, max_bytes: int, deadline: float) -> None:
        if response.status_code != 200:
            # Redirects included: a JWKS URL that moves is configuration to fix, and following
            # it would let whoever controls the redirect choose our keys.
            raise FetchFailed(f"HTTP status {response.status_code}")
        length = response.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            raise FetchFailed("response too large" if length.isdigit() else "bad Content-Length")
        self.headers: Mapping[str, str] = dict(response.headers)
        self._decoder = _Decoder(response.headers.get("content-encoding", ""))
        self._chunks: list[bytes] = []
        self._raw = 0
        self._size = 0
        self._max = max_bytes
        self._deadline = deadline

    def add(self, raw: bytes) -> None:
        # Both sizes are capped: the bytes on the wire and the bytes they decode to.
        self._raw += len(raw)
        if self._raw > self._max:
            raise FetchFailed("response too large")  # abandoned: never buffered whole
        chunk = self._decoder.decode(raw, self._max - self._size)
        self._size += len(chunk)
        if self._size > self._max:
            raise FetchFailed("response too large (decoded)")
        if time.monotonic() > self._deadline:
            raise FetchFailed("timed out")  # a slow drip must not outlast the total timeout
        self._chunks.append(chunk)

    def result(self) -> tuple[bytes, Mapping[str, str]]:
        self._decoder.finish()
        return b"".join(self._chunks), self.headers


def _translate(exc: httpx.HTTPError, url: str) -> FetchFailed:
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed("timed out", url)
    return FetchFailed(f"transport error: {type(exc).__name__}", url)


class _SyncGet:
    """One GET of a fetch (sync): the caller runs the whole fetch under one deadline."""

    def __init__(self, client: httpx.Client, source: JWKSKeys, sockets: _Sockets) -> None:
        self._client = client
        self._timeout = source._timeout
        self._max_bytes = source._max_bytes
        self._deadline = time.monotonic() + source._timeout
        self._sockets = sockets

    def __call__(self, url: str) -> tuple[bytes, Mapping[str, str]]:
        try:
            with self._client.stream(
                "GET",
                url,
                timeout=self._timeout,
                follow_redirects=False,
                headers={"Accept": "application/json", "Accept-Encoding": _ACCEPT_ENCODING},
                extensions={"trace": self._sockets.trace},
            ) as response:
                body = _Body(response, self._max_bytes, self._deadline)
                for chunk in response.iter_raw():
                    body.add(chunk)
                return body.result()
        except FetchFailed as exc:
            exc.url = exc.url or url
            raise
        except httpx.HTTPError as exc:
            raise _translate(exc, url) from exc


class _AsyncGet:
    """One GET of a fetch (async): the caller runs the whole fetch under one deadline."""

    def __init__(self, client: httpx.AsyncClient, source: JWKSKeys) -> None:
        self._client = client
        self._timeout = source._timeout
        self._max_bytes = source._max_bytes
        self._deadline = time.monotonic() + source._timeout

    async def __call__(self, url: str) -> tuple[bytes, Mapping[str, str]]:
        try:
            async with self._client.stream(
                "GET",
                url,
                timeout=self._timeout,
                follow_redirects=False,
                headers={"Accept": "application/json", "Accept-Encoding": _ACCEPT_ENCODING},
            ) as response:
                body = _Body(response, self._max_bytes, self._deadline)
                async for chunk in response.aiter_raw():
                    body.add(chunk)
                return body.result()
        except FetchFailed as exc:
            exc.url = exc.url or url
            raise
        except httpx.HTTPError as exc:
            raise _translate(exc, url) from exc
