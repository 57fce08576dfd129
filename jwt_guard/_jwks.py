"""A JWKS fetched over HTTP and cached: the policy (pure) and its two drivers.

The policy — *should this request use the cached set, use it and refresh in the background,
wait for a fetch, or give up* — is :func:`plan`, a pure function of :class:`CacheState`, the
token's ``kid`` and the clock. :func:`after_success` and :func:`after_failure` compute the next
state. Only the drivers do I/O:

* async (``akeys``): one ``asyncio`` task per fetch, shared by every waiter (single flight);
  background refreshes are tasks nobody awaits.
* sync (``keys``): a ``threading.Lock`` with double-checked state; background refreshes run in a
  daemon thread.

Both fetch with httpx: status 200 only, no redirects, a total deadline, the body streamed and
abandoned past ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import json
import logging
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import httpx

from ._errors import ConfigurationError, KeySourceUnavailable
from ._keyset import KeySet, KeySource

__all__ = ["JWKSKeys", "JWKSStats", "OIDCDiscovery"]

logger = logging.getLogger("jwt_guard")

#: Refresh in the background once this fraction of the TTL has passed.
REFRESH_AHEAD: Final = 0.8
#: Failure backoff: 1 s doubling to 60 s (with jitter), so a down provider is not hammered.
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 60.0
#: Providers publish a handful of keys; 100 leaves room for rotation and bounds the work.
MAX_KEYS: Final = 100

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


class FetchFailed(Exception):
    """A JWKS (or discovery) fetch did not produce a usable document; the text is the reason."""

    def __init__(self, reason: str, url: str | None = None) -> None:
        super().__init__(reason)
        self.url = url


def display_url(url: str) -> str:
    """A URL for logs and details: without user info or query, which could hold credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class CachePolicy:
    default_ttl: float
    min_ttl: float
    max_ttl: float
    cooldown: float
    max_stale: float


@dataclass(frozen=True)
class CacheState:
    """Everything the policy knows. Replaced whole, never mutated (safe to read unlocked)."""

    key_set: KeySet | None = None
    fetched_at: float | None = None  # last success
    expires_at: float = 0.0
    refresh_at: float = 0.0
    last_attempt: float | None = None
    failures: int = 0  # consecutive
    retry_at: float = 0.0  # no new attempt before this (backoff)


class Action(enum.Enum):
    USE = "use"
    USE_AND_REFRESH = "use_and_refresh"
    FETCH_AND_WAIT = "fetch_and_wait"
    UNAVAILABLE = "unavailable"


def plan(state: CacheState, policy: CachePolicy, kid: str | None, now: float) -> Action:
    """Decide what a request for ``kid`` does with the cache in ``state`` at ``now``."""
    in_backoff = now < state.retry_at
    usable = state.key_set is not None and now <= state.expires_at + policy.max_stale
    if not usable:
        # Cold start, or the last good set is older than max_stale.
        return Action.UNAVAILABLE if in_backoff else Action.FETCH_AND_WAIT
    assert state.key_set is not None
    if kid is not None and not state.key_set.has_kid(kid):
        # A kid we do not know: perhaps the provider rotated. Refetch at most once per
        # cooldown (counted from the last attempt, so a flood of random kids makes at most one
        # request per cooldown), and never during a failure backoff.
        last = state.last_attempt if state.last_attempt is not None else float("-inf")
        if not in_backoff and now - last >= policy.cooldown:
            return Action.FETCH_AND_WAIT
        return Action.USE
    if now >= state.refresh_at and not in_backoff:
        # Past 80% of the TTL (or past it, serving stale): refresh without making anyone wait.
        return Action.USE_AND_REFRESH
    return Action.USE


def ttl_from_headers(headers: Mapping[str, str], policy: CachePolicy) -> float:
    """TTL from ``Cache-Control: max-age`` clamped to [min_ttl, max_ttl], else the default."""
    cache_control = headers.get("cache-control", "")
    if _NO_CACHE.search(cache_control):
        return policy.min_ttl
    match = _MAX_AGE.search(cache_control)
    ttl = float(match.group(1)) if match else policy.default_ttl
    return min(max(ttl, policy.min_ttl), policy.max_ttl)


def after_success(state: CacheState, key_set: KeySet, ttl: float, now: float) -> CacheState:
    # A successful fetch replaces the set whole: keys missing from it stop being trusted now.
    return CacheState(
        key_set=key_set,
        fetched_at=now,
        expires_at=now + ttl,
        refresh_at=now + ttl * REFRESH_AHEAD,
        last_attempt=now,
        failures=0,
        retry_at=0.0,
    )


def after_failure(
    state: CacheState, now: float, rand: Callable[[], float] = random.random
) -> CacheState:
    failures = state.failures + 1
    delay = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (failures - 1))
    delay *= 0.5 + rand() / 2  # jitter: instances that failed together retry apart
    return replace(state, last_attempt=now, failures=failures, retry_at=now + delay)


def parse_document(body: bytes, reuse: KeySet | None) -> KeySet:
    """A remote JWKS document into a key set; raises :class:`FetchFailed`."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise FetchFailed("response is not JSON") from exc
    try:
        # Remote sets never carry symmetric keys: HS* is never verified via a JWKS.
        key_set = KeySet.from_jwks(
            document, allow_symmetric=False, strict=False, reuse=reuse, max_keys=MAX_KEYS
        )
    except ValueError as exc:
        raise FetchFailed(str(exc)) from exc
    if not len(key_set):
        raise FetchFailed("document holds no usable key")
    return key_set


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
    unknown_kid_misses: int
    key_ids: tuple[str, ...]


def _number(value: float, name: str, *, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigurationError(f"{name} must be a number >= {minimum}")
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
        allow_http: bool = False,
        client: httpx.Client | httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._url: str | None = check_url(url, allow_http) if url is not None else None
        self._allow_http = allow_http
        self._timeout = _number(timeout, "timeout", minimum=0.001)
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
        self._max_bytes = max_bytes
        self._clock: Callable[[], float] = clock or time.time
        self._state = CacheState()
        self._sync_client = client if isinstance(client, httpx.Client) else None
        self._async_client = client if isinstance(client, httpx.AsyncClient) else None
        self._own_sync = self._sync_client is None
        self._own_async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._lock = threading.Lock()
        self._inflight: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._fetches = 0
        self._failures = 0
        self._stale_serves = 0
        self._unknown_kid = 0
        self._last_reason: str | None = None
        self._last_url: str | None = None

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
        if action is Action.FETCH_AND_WAIT:
            observed = self._state
            # Double-checked: whoever held the lock may already have fetched for us.
            if self._lock.acquire(timeout=self._timeout * 2 + 1):
                try:
                    if self._state is observed:
                        self._fetch_sync()
                finally:
                    self._lock.release()
        elif action is Action.USE_AND_REFRESH and self._lock.acquire(blocking=False):
            thread = threading.Thread(target=self._refresh_in_thread, daemon=True)
            thread.start()
        return self._current()

    async def akeys(self, kid: str | None) -> KeySet:
        action = self._plan(kid)
        if action is Action.FETCH_AND_WAIT:
            await asyncio.shield(self._start_async_fetch())
        elif action is Action.USE_AND_REFRESH:
            self._start_async_fetch()
        return self._current()

    def prefetch(self, *, required: bool = False) -> None:
        """Warm the cache. A failure is logged, and raised only when ``required``."""
        if self._lock.acquire(timeout=self._timeout * 2 + 1):
            try:
                self._fetch_sync()
            finally:
                self._lock.release()
        if required and self._state.key_set is None:
            raise KeySourceUnavailable(detail=self._unavailable_detail())

    async def aprefetch(self, *, required: bool = False) -> None:
        """Warm the cache without blocking the loop (for an ASGI lifespan)."""
        await asyncio.shield(self._start_async_fetch())
        if required and self._state.key_set is None:
            raise KeySourceUnavailable(detail=self._unavailable_detail())

    def close(self) -> None:
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
        return action

    def _current(self) -> KeySet:
        state = self._state
        now = self._clock()
        if state.key_set is None or now > state.expires_at + self._policy.max_stale:
            retry = max(1, int(state.retry_at - now + 0.999)) if state.retry_at > now else 1
            detail = self._unavailable_detail()
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
        ttl = ttl_from_headers(headers, self._policy)
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
        if isinstance(exc, FetchFailed):
            self._failed(str(exc), url)
        else:  # a bug or an exotic transport error: still only a failed fetch
            logger.exception("unexpected error while fetching %s", display_url(url))
            self._failed(f"unexpected error: {type(exc).__name__}", url)

    def _failed(self, reason: str, url: str) -> None:
        self._failures += 1
        self._last_reason = reason
        self._last_url = url
        self._state = after_failure(self._state, self._clock())
        state = self._state
        shown = display_url(url)
        if state.key_set is not None and state.fetched_at is not None:
            logger.warning(
                "JWKS fetch from %s failed (%s); keeping the key set fetched %.0fs ago",
                shown,
                reason,
                self._clock() - state.fetched_at,
                extra={"url": shown, "reason": reason},
            )
        else:
            logger.warning(
                "JWKS fetch from %s failed (%s); no keys available",
                shown,
                reason,
                extra={"url": shown, "reason": reason},
            )

    # -- sync driver --------------------------------------------------------------------------

    def _refresh_in_thread(self) -> None:
        try:
            self._fetch_sync()
        finally:
            self._lock.release()

    def _fetch_sync(self) -> None:
        """Fetch once and update the state; the caller holds ``self._lock``."""
        self._fetches += 1
        try:
            if self._sync_client is None:
                self._sync_client = httpx.Client(follow_redirects=False)
            key_set, headers = self._fetch_document_sync(self._sync_client)
        except Exception as exc:
            self._fetch_error(exc)
        else:
            self._succeeded(key_set, headers)

    def _fetch_document_sync(self, client: httpx.Client) -> tuple[KeySet, Mapping[str, str]]:
        url = self._jwks_url_sync(client)
        body, headers = _get_sync(client, url, self._timeout, self._max_bytes)
        return parse_document(body, self._state.key_set), headers

    def _jwks_url_sync(self, client: httpx.Client) -> str:
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
            key_set, headers = await self._fetch_document_async(self._client_for_loop())
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
            client = self._own_async[loop] = httpx.AsyncClient(follow_redirects=False)
        return client

    async def _fetch_document_async(
        self, client: httpx.AsyncClient
    ) -> tuple[KeySet, Mapping[str, str]]:
        url = await self._jwks_url_async(client)
        body, headers = await _get_async(client, url, self._timeout, self._max_bytes)
        return parse_document(body, self._state.key_set), headers

    async def _jwks_url_async(self, client: httpx.AsyncClient) -> str:
        assert self._url is not None
        return self._url


class _Body:
    """What both drivers do with a streamed response: status, size cap, deadline."""

    def __init__(self, response: httpx.Response, max_bytes: int, deadline: float) -> None:
        if response.status_code != 200:
            # Redirects included: a JWKS URL that moves is configuration to fix, and following
            # it would let whoever controls the redirect choose our keys.
            raise FetchFailed(f"HTTP status {response.status_code}")
        length = response.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            raise FetchFailed("response too large" if length.isdigit() else "bad Content-Length")
        self.headers: Mapping[str, str] = dict(response.headers)
        self._chunks: list[bytes] = []
        self._size = 0
        self._max = max_bytes
        self._deadline = deadline

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max:
            raise FetchFailed("response too large")  # abandoned: never buffered whole
        if time.monotonic() > self._deadline:
            raise FetchFailed("timed out")  # a slow drip must not outlast the total timeout
        self._chunks.append(chunk)

    def result(self) -> tuple[bytes, Mapping[str, str]]:
        return b"".join(self._chunks), self.headers


_REQUEST: Final = {"follow_redirects": False, "headers": {"Accept": "application/json"}}


def _get_sync(
    client: httpx.Client, url: str, timeout: float, max_bytes: int
) -> tuple[bytes, Mapping[str, str]]:
    deadline = time.monotonic() + timeout
    try:
        with client.stream("GET", url, timeout=timeout, **_REQUEST) as response:  # type: ignore[arg-type]
            body = _Body(response, max_bytes, deadline)
            for chunk in response.iter_bytes():
                body.add(chunk)
            return body.result()
    except FetchFailed as exc:
        exc.url = url
        raise
    except httpx.TimeoutException as exc:
        raise FetchFailed("timed out", url) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"transport error: {type(exc).__name__}", url) from exc


async def _get_async(
    client: httpx.AsyncClient, url: str, timeout: float, max_bytes: int
) -> tuple[bytes, Mapping[str, str]]:
    deadline = time.monotonic() + timeout

    async def fetch() -> tuple[bytes, Mapping[str, str]]:
        async with client.stream("GET", url, timeout=timeout, **_REQUEST) as response:  # type: ignore[arg-type]
            body = _Body(response, max_bytes, deadline)
            async for chunk in response.aiter_bytes():
                body.add(chunk)
            return body.result()

    try:
        return await asyncio.wait_for(fetch(), timeout)
    except FetchFailed as exc:
        exc.url = url
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise FetchFailed("timed out", url) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"transport error: {type(exc).__name__}", url) from exc


class OIDCDiscovery(JWKSKeys):
    """Keys of an OpenID Provider found through ``{issuer}/.well-known/openid-configuration``.

    The discovery document's ``issuer`` must equal the configured issuer exactly (OpenID
    Connect Discovery 1.0 §4.3); its ``jwks_uri`` is then fetched and cached like
    :class:`JWKSKeys`. A failed JWKS fetch makes the next attempt re-read the discovery document.
    """

    def __init__(self, issuer: str, **options: Any) -> None:
        allow_http = bool(options.get("allow_http", False))
        check_url(issuer, allow_http, "issuer")
        self.issuer = issuer
        self._discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        super().__init__(self._discovery_url, **options)
        self._url = None

    def _jwks_uri(self, body: bytes) -> str:
        try:
            document = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise FetchFailed("discovery document is not JSON") from exc
        if not isinstance(document, dict):
            raise FetchFailed("discovery document is not a JSON object")
        if document.get("issuer") != self.issuer:
            # OpenID Connect Discovery 1.0 §4.3. Both values are public; showing them makes a
            # trailing-slash mismatch obvious.
            found = document.get("issuer")
            raise FetchFailed(
                f"discovery document issuer {found!r} is not the configured {self.issuer!r}"[:400]
            )
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise FetchFailed("discovery document has no jwks_uri")
        try:
            return check_url(uri, self._allow_http, "jwks_uri")
        except ConfigurationError as exc:
            raise FetchFailed("discovery document has no usable jwks_uri") from exc

    def _jwks_url_sync(self, client: httpx.Client) -> str:
        if self._url is None:
            body, _ = _get_sync(client, self._discovery_url, self._timeout, self._max_bytes)
            self._url = self._jwks_uri(body)
        return self._url

    async def _jwks_url_async(self, client: httpx.AsyncClient) -> str:
        if self._url is None:
            body, _ = await _get_async(client, self._discovery_url, self._timeout, self._max_bytes)
            self._url = self._jwks_uri(body)
        return self._url

    def _source_url(self) -> str:
        return self._url or self._discovery_url

    def _failed(self, reason: str, url: str) -> None:
        self._url = None
        super()._failed(reason, url)
