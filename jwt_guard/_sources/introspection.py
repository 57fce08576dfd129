"""Token introspection (RFC 7662) over HTTP: :class:`Introspection`, two drivers over one cache.

What is asked and how the answer is judged and cached is the core's
(``_core.introspection``, ``Steps._admit``); here is only the I/O, the way the JWKS drivers do
it (:mod:`.fetch`, :mod:`.deadline`):

* **one call per token in flight** (single flight): the first request for a token not in the
  cache makes the call, every other request for the same token waits for its answer. Sync:
  a ``threading.Event`` per call; async: one ``asyncio`` task per call, shielded, per loop.
* **bounded**: a form POST, status 200 only, no redirects, the body streamed with its
  compressed and decoded size capped, one total deadline per call (a slow drip cannot outlast
  it). Anything else, a transport error, a body that is not the JSON object of RFC 7662 §2.2
  or a wrong content type is :class:`IntrospectionUnavailable` (503 with ``Retry-After``),
  never a verdict on the token.
* **after a fork**, nothing in flight or pooled is inherited (``_after_fork``).
* **failure backoff**: an endpoint-level fault (transport, timeout, 5xx, 429, an unreadable
  answer) is remembered, and new calls are refused at once (503) for a cooldown that doubles
  while it lasts (``jwks_policy.backoff``, the key sets' formula, capped at
  :data:`BACKOFF_MAX`; a server's ``Retry-After`` up to :data:`MAX_RETRY_AFTER`). What one
  token's answer says (``active: false``, a 4xx) never counts: no client can trip it.
* **calls in flight capped** (``max_concurrent_calls``): beyond it a new call is refused at
  once (503); waiters on a call in flight are not calls.
* an optional **shared store** (``shared_cache=``: ``get``/``aget``/``set``/``aset`` of bytes
  with a TTL, e.g. Redis) is asked before the endpoint and told every answer, so the workers
  of a deployment introspect a token once between them. Both run inside the call's deadline:
  a read gets its first half (no answer by then: a miss), a write what is left of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final, Protocol

import httpx

from .._core.errors import (
    ConfigurationError,
    IntrospectionUnavailable,
    JWTGuardError,
    MalformedToken,
    TokenInactive,
)
from .._core.introspection import (
    AUTH_METHODS,
    DEFAULT_CACHE_SIZE,
    DEFAULT_NEGATIVE_TTL,
    DEFAULT_POSITIVE_TTL,
    MAX_POSITIVE_TTL,
    TOKEN_KEY_SIZE,
    ClientAuth,
    Introspected,
    IntrospectionCache,
    IntrospectionSource,
    read_response,
)
from .._core.introspection_jwt import (
    INTROSPECTION_JWT,
    JWTResponse,
    parse_jwt_response,
    read_jwt_response,
)
from .._core.jwks_policy import FetchFailed, backoff
from .._core.keyset import KeySource
from .._core.log import RejectionLog
from .._core.parse import CompactJWS, b64url_encode, parse_json
from .deadline import (
    OPTIONAL_PAUSE,
    OPTIONAL_SHARE,
    DeadlineExceeded,
    OptionalCalls,
    acall_with_deadline,
    call_with_deadline,
)
from .discovery import metadata_documents, read_metadata_async, read_metadata_sync
from .fetch import AsyncGet, Sockets, SyncGet, check_url, display_url, loop_client, new_client
from .jwks_state import WAIT_GRACE

__all__ = ["DEFAULT_TIMEOUT", "Introspection", "SharedCache"]

logger = logging.getLogger("jwt_guard")

#: The total deadline of one call, in seconds: a request waits at most this (plus scheduling)
#: for an answer it has no other way to get.
DEFAULT_TIMEOUT: Final = 3.0
#: An introspection response is a small JSON object; a larger body is a fault, not an answer.
DEFAULT_MAX_BYTES: Final = 64 * 1024
#: Retry-After of a 503 outside a cooldown (a call in flight failed, too many calls): a new
#: call may be made a second later.
RETRY_AFTER: Final = 1
#: The longest failure cooldown of our own: 1 s doubling to this while the endpoint keeps
#: failing. Short, unlike a key set's 60 s: a token not in the cache has no stale answer to
#: fall back on, so every new token is refused until the next call; 10 s bounds that after
#: the endpoint recovers, and still spares a struggling server all but one call in 10 s.
BACKOFF_MAX: Final = 10.0
#: A server's own Retry-After (on a 429 or 503) is honoured up to this: beyond it, a server's
#: mistake (or a date from a wrong clock) would refuse every new token for as long.
MAX_RETRY_AFTER: Final = 60.0
#: Calls in flight at once, by default. Each holds a connection (and, on the sync driver, a
#: thread) for up to ``timeout``; at a loopback-to-LAN round trip of 5-50 ms, 64 is 1 000+ new
#: tokens a second, far beyond the rate at which real clients present tokens not yet cached,
#: while a flood of made-up tokens (each one a call) is held to 64 connections.
DEFAULT_MAX_CONCURRENT_CALLS: Final = 64
#: At most one WARNING per this many seconds for a failing endpoint (then DEBUG): every
#: request for a new token fails while it is down.
_LOG_EVERY: Final = 10.0


class SharedCache(Protocol):
    """A second-level store shared by workers (``Introspection(shared_cache=...)``): bytes by
    key, each with a TTL in seconds. A failing store is a cache miss."""

    def get(self, key: str) -> bytes | None: ...
    async def aget(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float) -> None: ...
    async def aset(self, key: str, value: bytes, ttl: float) -> None: ...


class _Call:
    """One sync call in flight: waiters wait on ``done``, then read ``entry`` (None: failed,
    ``reason`` and ``status`` say why)."""

    __slots__ = ("done", "entry", "reason", "status")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.entry: Introspected | None = None
        self.reason = "the call failed"
        self.status: int | None = None


#: A call's answer: the RFC 7662 response, and the signed JWT it came in (RFC 9701), if any.
_Answer = tuple[dict[str, Any], CompactJWS | None]


class _Failure:
    """An async call's failure, handed to each waiter (each raises its own error)."""

    __slots__ = ("reason", "status")

    def __init__(self, reason: str, status: int | None) -> None:
        self.reason = reason
        self.status = status


def _seconds(value: object, name: str, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low < value <= high  # NaN fails this too
    ):
        raise ConfigurationError(f"{name} must be a number of seconds, > {low:g} and <= {high:g}")
    return float(value)


class Introspection(IntrospectionSource):
    """An OAuth 2.0 token introspection endpoint (RFC 7662) the verifier asks about tokens.

    ``Introspection(url, client_id=..., client_secret=...)``, or
    ``Introspection(discovery=issuer, client_id=...)`` to read ``introspection_endpoint`` from
    the issuer's metadata (RFC 8414 §2, OpenID Connect Discovery; its ``issuer`` checked, read
    at the first call; a verifier without ``issuer=`` then expects that issuer). Given to
    ``Verifier(introspection=...)`` or ``TrustedIssuer(introspection=...)``.

    Client authentication (RFC 7662 §2.1): ``auth_method`` ``client_secret_basic`` (the
    default with ``client_secret``), ``client_secret_post``, or ``private_key_jwt`` (the
    default with ``private_key``: a PEM or ``cryptography`` key; RFC 7523, an assertion whose
    ``aud`` is ``assertion_audience``, by default the endpoint's URL).

    ``introspect_jwts=True`` asks about compact JWTs too, after their local verification: a
    JWT revoked at the server is refused (within the positive TTL).

    ``jwt_response=True`` asks for signed answers (RFC 9701: ``Accept:
    application/token-introspection+jwt``), verified with the issuer's keys (the verifier's
    key source for it, or ``response_keys=``): ``typ`` ``token-introspection+jwt``, ``iss`` the
    issuer, ``aud`` this ``client_id``; an answer that does not verify is a 503.

    An answer must say it is about an access token (``token_type`` Bearer or DPoP, Keycloak's
    ``typ`` Bearer, Hydra's ``token_use`` access_token): oidc-provider leaves ``token_type`` out
    of a refresh token's answer. ``untyped_answers_are_access_tokens=True`` takes an answer
    that says nothing for an access token's, for a server that never says (a WARNING at
    start-up).

    Cache: ``positive_ttl`` (default 60 s, at most 3600) bounds how long an active answer is
    used, never past the token's ``exp``; ``negative_ttl`` (5 s) an inactive one;
    ``cache_size`` entries at most (0: no cache). ``timeout`` is each call's total deadline.
    ``client`` an ``httpx.Client`` or ``httpx.AsyncClient`` of your own (the other driver
    makes its own); ``allow_http`` as for ``JWKSKeys`` (loopback needs no switch).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client_id: str,
        client_secret: str | None = None,
        private_key: Any = None,
        auth_method: str | None = None,
        private_key_algorithm: str | None = None,
        private_key_id: str | None = None,
        assertion_audience: str | None = None,
        discovery: str | None = None,
        introspect_jwts: bool = False,
        positive_ttl: float = DEFAULT_POSITIVE_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_http: bool = False,
        client: httpx.Client | httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
        shared_cache: SharedCache | None = None,
        jwt_response: bool = False,
        response_keys: KeySource | None = None,
        untyped_answers_are_access_tokens: bool = False,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
    ) -> None:
        if not isinstance(allow_http, bool):
            raise ConfigurationError("allow_http must be True or False")
        if (url is None) == (discovery is None):
            raise ConfigurationError(
                "give the endpoint's URL, or discovery= (the issuer, whose metadata names its "
                "introspection_endpoint), not both"
            )
        self._allow_http = allow_http
        self._documents: tuple[str, ...] = ()
        self._issuers: tuple[str, ...] = ()
        if url is not None:
            self._url: str | None = _no_user_info(check_url(url, allow_http, "url"), "url")
            self.shown = display_url(url)
        else:
            assert discovery is not None
            _no_user_info(check_url(discovery, allow_http, "discovery"), "discovery")
            self._documents, self._issuers = metadata_documents(discovery)
            self._url = None
            self.shown = display_url(self._documents[0])
            self.pinned_issuers = self._issuers[:1]
        if auth_method is None:
            auth_method = "private_key_jwt" if private_key is not None else "client_secret_basic"
        if auth_method not in AUTH_METHODS:
            raise ConfigurationError(f"auth_method must be one of {list(AUTH_METHODS)}")
        self._auth = ClientAuth(
            auth_method, client_id, client_secret, private_key, private_key_algorithm,
            private_key_id,
        )  # fmt: skip
        if assertion_audience is not None:
            if auth_method != "private_key_jwt":
                raise ConfigurationError("assertion_audience= is for auth_method='private_key_jwt'")
            if not isinstance(assertion_audience, str) or not assertion_audience:
                raise ConfigurationError("assertion_audience must be a non-empty string")
        self._assertion_audience = assertion_audience
        if not isinstance(introspect_jwts, bool):
            raise ConfigurationError("introspect_jwts must be True or False")
        self.introspect_jwts = introspect_jwts
        positive = _seconds(positive_ttl, "positive_ttl", 0, MAX_POSITIVE_TTL)
        negative = _seconds(negative_ttl, "negative_ttl", 0, MAX_POSITIVE_TTL)
        self._timeout = _seconds(timeout, "timeout", 0, 60)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size must be a non-negative integer")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigurationError("max_bytes must be an integer >= 1024")
        self._max_bytes = max_bytes
        if (
            isinstance(max_concurrent_calls, bool)
            or not isinstance(max_concurrent_calls, int)
            or max_concurrent_calls < 1
        ):
            raise ConfigurationError("max_concurrent_calls must be a positive integer")
        self._max_calls = max_concurrent_calls
        if client is not None and not isinstance(client, (httpx.Client, httpx.AsyncClient)):
            raise ConfigurationError("client must be an httpx.Client or httpx.AsyncClient")
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning epoch seconds")
        if shared_cache is not None and not all(
            callable(getattr(shared_cache, name, None)) for name in ("get", "aget", "set", "aset")
        ):
            raise ConfigurationError(
                "shared_cache must have get, aget, set and aset (bytes by key, with a TTL)"
            )
        self._shared = shared_cache
        if not isinstance(jwt_response, bool):
            raise ConfigurationError("jwt_response must be True or False")
        if response_keys is not None and not isinstance(response_keys, KeySource):
            raise ConfigurationError("response_keys must be a key source (JWKSKeys, ...)")
        if response_keys is not None and not jwt_response:
            raise ConfigurationError(
                "response_keys= verifies signed answers: add jwt_response=True"
            )
        self.jwt_response = jwt_response
        self._response_keys = response_keys
        if not isinstance(untyped_answers_are_access_tokens, bool):
            raise ConfigurationError("untyped_answers_are_access_tokens must be True or False")
        self.untyped_answers_are_access_tokens = untyped_answers_are_access_tokens
        if untyped_answers_are_access_tokens:
            logger.warning(
                "Introspection(untyped_answers_are_access_tokens=True) at %s: an answer that "
                "does not say what kind of token it found is taken for an access token's, so "
                "a refresh token (which oidc-provider answers without token_type) may pass as "
                "an access token; use it only for a server that never sends token_type, and "
                "set the verifier's audience=",
                display_url(url or discovery or ""),
            )
        self._jwt_check: JWTResponse | None = None
        self._given_clock = clock is not None
        self._clock: Callable[[], float] = clock or time.time
        self.cache = IntrospectionCache(cache_size, positive, negative, lambda: self._clock())
        self._client_sync = client if isinstance(client, httpx.Client) else None
        self._client_async = client if isinstance(client, httpx.AsyncClient) else None
        # The shared store's names are scoped by the endpoint, the client asking and the kind
        # of answer (review R27B-1, R27B-2): the server may answer each protected resource
        # differently (RFC 7662 §2.2, §4), and a signed answer's reader never takes a plain one.
        scope = json.dumps(
            [self._url or self._documents[0], self._auth.client_id, self.jwt_response]
        ).encode()
        self._shared_prefix = f"jwt_guard:introspection:{hashlib.sha256(scope).hexdigest()[:16]}:"
        self._last_warning = -_LOG_EVERY
        self._garbage_warned = False
        self._log = RejectionLog(logging.WARNING)
        #: The failure backoff (the clock's time): consecutive endpoint faults, when the last
        #: one was recorded, no new call before ``_retry_at``; why, for the 503's detail.
        self._faults = 0
        self._fault_at = -math.inf
        self._retry_at = -math.inf
        self._fault_reason = ""
        #: The shared store's calls, each within its share of the call's deadline.
        self._store = OptionalCalls(self._shared_slow)
        self._reset()
        _INSTANCES.add(self)

    def _reset(self) -> None:
        """Fresh driver state: at construction, and in a forked child."""
        self._lock = threading.Lock()  # held to join or start a call, never across I/O
        self._calls: dict[bytes, _Call] = {}
        self._tasks: dict[bytes, asyncio.Task[Introspected | _Failure]] = {}
        self._own_sync: httpx.Client | None = None
        self._own_async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.cache.reset()

    def __repr__(self) -> str:
        return f"Introspection({self.shown!r}, auth_method={self._auth.method!r})"

    def use_clock(self, clock: Callable[[], float]) -> None:
        """The verifier's clock, unless one was given here.

        Its time checks and this cache's expiries must agree."""
        if not self._given_clock:
            self._clock = clock

    def use_issuer(
        self,
        keys: KeySource | None,
        issuers: frozenset[str] | None,
        algorithms: frozenset[str],
        own: bool,
        leeway: float,
    ) -> None:
        """Learn the issuer the verifier introspects for.

        With ``jwt_response``, its keys verify the signed answers (RFC 9701 §5) unless
        ``response_keys`` were given, and its name is the ``iss`` they must carry.
        """
        if not self.jwt_response:
            return
        source = self._response_keys or keys
        if source is None:
            raise ConfigurationError(
                "Introspection(jwt_response=True) verifies the answers with the authorization "
                "server's keys: give the verifier keys= (e.g. OIDCDiscovery(issuer)) or "
                "Introspection(response_keys=JWKSKeys(...))"
            )
        names = issuers if issuers else frozenset(self._issuers)
        if not names:
            raise ConfigurationError(
                "Introspection(jwt_response=True) checks the answers' iss: give the verifier "
                "issuer= or Introspection(discovery=issuer)"
            )
        if self._response_keys is not None:
            own = not algorithms or own
        self._jwt_check = JWTResponse(source, names, self._auth.client_id, algorithms, own, leeway)

    # -- sync driver -----------------------------------------------------------------------

    def introspect(
        self, token: bytes, key: bytes, admit: Callable[[dict[str, Any]], Introspected]
    ) -> Introspected:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            refused = None
            if call is None:
                # Double-checked: a call that ended since the caller's cache lookup stored
                # its answer before leaving _calls.
                cached = self.cache.get(key)
                if cached is not None:
                    return cached
                refused = self._refusal(len(self._calls))
                if refused is None:
                    call = self._calls[key] = _Call()
        if refused is not None:
            raise self._refused(*refused)
        assert call is not None
        if not leader:
            if not call.done.wait(self._timeout + WAIT_GRACE):
                raise self._unavailable("no answer in time to the call in flight", None)
            if call.entry is None:
                raise self._unavailable(call.reason, call.status)
            return call.entry
        try:
            call.entry = self._call_sync(token, key, admit)
            return call.entry
        except IntrospectionUnavailable as exc:
            call.reason = exc.detail.get("reason", call.reason)
            call.status = exc.detail.get("status")
            raise
        finally:
            with self._lock:
                self._calls.pop(key, None)
            call.done.set()

    def _call_sync(
        self, token: bytes, key: bytes, admit: Callable[[dict[str, Any]], Introspected]
    ) -> Introspected:
        started, began = perf_counter(), self._clock()
        deadline = time.monotonic() + self._timeout
        shared = self._shared_read_sync(key) if self._shared is not None else None
        stored = self._read_shared(shared) if shared is not None else None
        if stored is not None:
            known = self._stored_sync(stored[1])
            if known is not None:
                return self._from_shared(key, stored[0], known, admit)
        # What the store's read left of the deadline (at least half of it).
        remaining = max(deadline - time.monotonic(), 0.001)
        sockets = Sockets()
        client = self._sync_client()

        def call() -> _Answer:
            get = SyncGet(client, remaining, self._max_bytes, sockets)
            url = self._endpoint_sync(get)
            body, headers = get(url, *self._request(token, url))
            if self._jwt_check is None:
                return read_response(body, headers), None
            parsed = parse_jwt_response(body, headers)
            return self._signed_sync(parsed, self._timeout), parsed

        try:
            response, signed = call_with_deadline(call, remaining, abort=sockets.abort)
        except Exception as exc:
            raise self._failed(exc, started, began) from exc
        entry = self._answered(key, response, admit, started)
        if self._shared is not None:
            self._shared_write_sync(self._shared_value(key, response, signed, entry), deadline)
        return entry

    def _stored_sync(self, found: dict[str, Any] | CompactJWS) -> dict[str, Any] | None:
        """A stored answer, a signed one verified again (RFC 9701 §5), or ``None``: a miss."""
        if isinstance(found, dict):
            return found
        try:
            return self._signed_sync(found, self._stored_age())
        except (JWTGuardError, FetchFailed) as exc:
            self._unverified(exc)
            return None

    def _signed_sync(self, parsed: CompactJWS, max_age: float) -> dict[str, Any]:
        """The RFC 7662 answer of a signed one (RFC 9701 §5), verified with the issuer's keys."""
        check = self._jwt_check
        assert check is not None
        try:
            key_set = check.keys.keys(parsed.header.get("kid"))
        except JWTGuardError as exc:
            raise _no_keys(exc) from exc
        return read_jwt_response(parsed, key_set, check, self._clock(), max_age)

    def _sync_client(self) -> httpx.Client:
        if self._client_sync is not None:
            return self._client_sync
        with self._lock:
            if self._own_sync is None:
                self._own_sync = new_client(httpx.Client)
            return self._own_sync

    def _endpoint_sync(self, get: SyncGet) -> str:
        if self._url is None:
            url, body = read_metadata_sync(get, self._documents)
            self._url = self._endpoint_of(body, url)
        return self._url

    def _shared_name(self, key: bytes) -> str:
        """A token's name in the shared store: its hash only (a cache key's first bytes; the
        rest names the verifier that judged it). The store holds the response, judged again
        by each reader's rules."""
        return self._shared_prefix + key[:TOKEN_KEY_SIZE].hex()

    def _shared_read_sync(self, key: bytes) -> bytes | None:
        """The store's entry for the token, within the first half of the call's deadline (in
        a thread of its own: a store's ``get`` may block for ever); ``None``: a miss."""
        store = self._shared
        assert store is not None
        name = self._shared_name(key)
        value: bytes | None = self._store.call(
            lambda: store.get(name), self._timeout * OPTIONAL_SHARE, "read"
        )
        return value

    def _shared_write_sync(self, value: tuple[str, bytes, float] | None, deadline: float) -> None:
        """Tell the store the answer (``_shared_value``), within what is left of the call's
        deadline."""
        store = self._shared
        assert store is not None
        if value is not None:
            self._store.call(lambda: store.set(*value), deadline - time.monotonic(), "write")

    def _shared_slow(self, what: str, seconds: float) -> None:
        """The store ran out of time (then not asked for a second): a rate-limited WARNING."""
        self._log.line(
            "introspection_shared_slow",
            "introspection shared cache %s for %s: no answer within %.2g s, taken as a miss; "
            "the store is not asked for %g s",
            what,
            self.shown,
            seconds,
            OPTIONAL_PAUSE,
        )

    def close(self) -> None:
        """Close the sync clients made here and the shared store's.

        A client handed in is the caller's; the shared store's is closed as the key sources
        close theirs (review R27B-8)."""
        client, self._own_sync = self._own_sync, None
        if client is not None:
            client.close()
        close = getattr(self._shared, "close", None)
        if callable(close):  # RedisCache: its client made from a URL (made again if used)
            close()

    # -- async driver ----------------------------------------------------------------------

    async def aintrospect(
        self, token: bytes, key: bytes, admit: Callable[[dict[str, Any]], Introspected]
    ) -> Introspected:
        loop = asyncio.get_running_loop()
        task = self._tasks.get(key)
        if task is None or task.get_loop() is not loop:
            refused = self._refusal(len(self._tasks))
            if refused is not None:
                raise self._refused(*refused)
            task = loop.create_task(self._call_async(token, key, admit))
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget_task(key, done))
        try:
            # shield: a waiter that goes away (its client hung up) never cancels the call
            # the others wait for.
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or current.cancelling() or not task.cancelled():
                raise
            result = _Failure("the call was cancelled (shutdown)", None)
        if isinstance(result, _Failure):
            raise self._unavailable(result.reason, result.status)
        return result

    def _forget_task(self, key: bytes, task: asyncio.Task[Introspected | _Failure]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]

    async def _call_async(
        self, token: bytes, key: bytes, admit: Callable[[dict[str, Any]], Introspected]
    ) -> Introspected | _Failure:
        started, began = perf_counter(), self._clock()
        deadline = time.monotonic() + self._timeout
        store = self._shared
        if store is not None:
            shared = await self._store.acall(
                store.aget(self._shared_name(key)), self._timeout * OPTIONAL_SHARE, "read"
            )
            stored = self._read_shared(shared) if shared is not None else None
            if stored is not None:
                known = await self._stored_async(stored[1])
                if known is not None:
                    return self._from_shared(key, stored[0], known, admit)
        remaining = max(deadline - time.monotonic(), 0.001)
        client = self._async_client()

        async def call() -> _Answer:
            get = AsyncGet(client, remaining, self._max_bytes)
            url = await self._endpoint_async(get)
            body, answer = await get(url, *self._request(token, url))
            if self._jwt_check is None:
                return read_response(body, answer), None
            parsed = parse_jwt_response(body, answer)
            return await self._signed_async(parsed, self._timeout), parsed

        try:
            response, signed = await acall_with_deadline(call(), remaining)
        except Exception as exc:
            failure = self._failed(exc, started, began)
            return _Failure(failure.detail["reason"], failure.detail.get("status"))
        entry = self._answered(key, response, admit, started)
        if store is not None:
            value = self._shared_value(key, response, signed, entry)
            if value is not None:
                await self._store.acall(store.aset(*value), deadline - time.monotonic(), "write")
        return entry

    async def _stored_async(self, found: dict[str, Any] | CompactJWS) -> dict[str, Any] | None:
        """:meth:`_stored_sync` without blocking the event loop."""
        if isinstance(found, dict):
            return found
        try:
            return await self._signed_async(found, self._stored_age())
        except (JWTGuardError, FetchFailed) as exc:
            self._unverified(exc)
            return None

    async def _signed_async(self, parsed: CompactJWS, max_age: float) -> dict[str, Any]:
        """:meth:`_signed_sync` without blocking the event loop."""
        check = self._jwt_check
        assert check is not None
        try:
            key_set = await check.keys.akeys(parsed.header.get("kid"))
        except JWTGuardError as exc:
            raise _no_keys(exc) from exc
        return read_jwt_response(parsed, key_set, check, self._clock(), max_age)

    def _async_client(self) -> httpx.AsyncClient:
        if self._client_async is not None:
            return self._client_async
        return loop_client(self._own_async)

    async def _endpoint_async(self, get: AsyncGet) -> str:
        if self._url is None:
            url, body = await read_metadata_async(get, self._documents)
            self._url = self._endpoint_of(body, url)
        return self._url

    async def aclose(self) -> None:
        """Cancel this loop's calls in flight and close its clients (lifespan shutdown)."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in self._tasks.values() if t.get_loop() is loop and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client = self._own_async.pop(loop, None)
        if client is not None:
            await client.aclose()
        aclose = getattr(self._shared, "aclose", None)
        if callable(aclose):  # RedisCache: this loop's client
            await aclose()
        self.close()

    # -- shared by both --------------------------------------------------------------------

    def _audience(self, url: str) -> str:
        return self._assertion_audience or url

    def _request(self, token: bytes, url: str) -> tuple[bytes, dict[str, str]]:
        form, headers = self._auth.request(token, self._audience(url), self._clock())
        if self.jwt_response:
            if self._jwt_check is None:  # never given to a verifier: no keys to verify with
                raise FetchFailed("jwt_response=True needs the verifier's issuer and keys")
            headers["Accept"] = INTROSPECTION_JWT  # RFC 9701 §4
        return form, headers

    def _endpoint_of(self, body: bytes, url: str) -> str:
        """``introspection_endpoint`` of the issuer's metadata (RFC 8414 §2), its ``issuer``
        the configured one (RFC 8414 §3.3)."""
        try:
            document = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise FetchFailed("metadata document is not JSON", url) from exc
        if not isinstance(document, dict) or document.get("issuer") not in self._issuers:
            raise FetchFailed("metadata document names another issuer (RFC 8414 §3.3)", url)
        endpoint = document.get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise FetchFailed("metadata document has no introspection_endpoint", url)
        try:
            return _no_user_info(
                check_url(endpoint, self._allow_http, "introspection_endpoint"),
                "introspection_endpoint",
            )
        except ConfigurationError as exc:
            raise FetchFailed("metadata document has no usable introspection_endpoint") from exc

    def _answered(
        self,
        key: bytes,
        response: dict[str, Any],
        admit: Callable[[dict[str, Any]], Introspected],
        started: float,
    ) -> Introspected:
        entry = admit(response)  # judged and cached before any waiter is woken
        if self._faults:  # the endpoint answers again: the backoff is over
            with self._lock:
                self._faults, self._retry_at = 0, -math.inf
        if self._metrics is not None:
            outcome = "inactive" if entry.refusal is TokenInactive else "active"
            self._metrics.introspection_call(self.shown, outcome, perf_counter() - started)
        return entry

    def _read_shared(self, value: bytes) -> tuple[float, dict[str, Any] | CompactJWS] | None:
        """An entry another worker stored: its expiry and its answer (a signed one still to be
        verified: :meth:`_from_shared`), or ``None`` (then the endpoint is asked): one past its
        expiry (a store keeping it longer than its TTL), or unreadable."""
        found: dict[str, Any] | CompactJWS
        try:
            # The endpoint's answer's strict reading (_core.parse): a member named twice, NaN.
            stored = parse_json(value)
            until = float(stored["until"])  # OverflowError for a huge integer (R27B-7)
            if not math.isfinite(until):  # NaN would pass the expiry check below
                raise ValueError("until is not a finite number")
            if self.jwt_response:
                # RFC 9701: the signed answer as the server made it, verified again on read.
                signed = stored["jwt"]
                if not isinstance(signed, str):
                    raise ValueError("not a signed introspection response")
                found = parse_jwt_response(signed.encode(), {"content-type": INTROSPECTION_JWT})
            else:
                found = stored["response"]
                if not isinstance(found, dict) or not isinstance(found.get("active"), bool):
                    raise ValueError("not an introspection response")
        except (
            ValueError,
            KeyError,
            TypeError,
            ArithmeticError,
            MalformedToken,
            FetchFailed,
        ) as exc:
            # Garbage in a store every worker reads: tampering, or another version writing
            # there. Said once (a WARNING), then a miss like any other.
            self._unreadable(exc)
            return None
        if until <= self._clock():
            return None
        return until, found

    def _stored_age(self) -> float:
        """How old a stored signed answer may be: made for a call (its deadline) and kept
        for the longest TTL."""
        return self._timeout + max(self.cache.positive_ttl, self.cache.negative_ttl)

    def _unverified(self, exc: Exception) -> None:
        """A stored signed answer that does not verify: a miss (said once: a forged one, or
        keys that changed; the keys unreachable is the endpoint's call's to say)."""
        if isinstance(exc, FetchFailed):
            self._unreadable(exc)

    def _unreadable(self, exc: Exception) -> None:
        if not self._garbage_warned:
            self._garbage_warned = True
            logger.warning(
                "introspection shared cache entry for %s unreadable (%s): ignored, the "
                "endpoint is asked",
                self.shown,
                str(exc)[:200] or type(exc).__name__,
            )

    def _from_shared(
        self,
        key: bytes,
        until: float,
        response: dict[str, Any],
        admit: Callable[[dict[str, Any]], Introspected],
    ) -> Introspected:
        """A stored answer (:meth:`_read_shared`, a signed one verified) judged as the
        endpoint's."""
        entry = admit(response)
        # Never longer than the worker that asked the endpoint would have used it.
        return self.cache.cap(key, entry, until)

    def _shared_value(
        self,
        key: bytes,
        response: dict[str, Any],
        signed: CompactJWS | None,
        entry: Introspected,
    ) -> tuple[str, bytes, float] | None:
        """The store's entry for an answer: its name, value and TTL (``None``: expired)."""
        ttl = entry.expires - self._clock()
        if ttl <= 0:
            return None  # nothing to share
        stored: dict[str, Any] = {"until": entry.expires}
        if signed is None:
            stored["response"] = response
        else:  # the JWT as signed: every reader verifies it again (RFC 9701 §5)
            stored["jwt"] = (
                f"{signed.signing_input.decode('ascii')}.{b64url_encode(signed.signature)}"
            )
        return self._shared_name(key), json.dumps(stored).encode(), ttl

    def _failed(self, exc: Exception, started: float, began: float) -> IntrospectionUnavailable:
        """A call that gave no answer: logged (rate-limited), counted, remembered for the
        backoff when the endpoint is at fault, as the 503 to raise."""
        status = None
        if isinstance(exc, FetchFailed):
            reason = str(exc)
            status = exc.status
            if status in (401, 403):
                reason += (
                    " (the endpoint refused this resource server's client authentication: "
                    "check client_id and its secret or key)"
                )
        elif isinstance(exc, (DeadlineExceeded, TimeoutError)):
            reason = "timed out"
        else:  # a bug or an exotic transport error: still only a failed call
            reason = f"unexpected error: {type(exc).__name__}"
            logger.debug("unexpected error introspecting at %s", self.shown, exc_info=True)
        self._backoff(exc, reason, began)
        if self._metrics is not None:
            self._metrics.introspection_call(self.shown, "failure", perf_counter() - started)
        now = time.monotonic()
        level = logging.WARNING if now - self._last_warning >= _LOG_EVERY else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        logger.log(
            level,
            "token introspection at %s failed (%s)",
            self.shown,
            reason,
            extra={"url": self.shown, "reason": reason},
        )
        return self._unavailable(reason, status)

    def _backoff(self, exc: Exception, reason: str, began: float) -> None:
        """Start (or lengthen) the failure cooldown when ``exc`` is the endpoint's fault: no
        answer in time, a transport error, 5xx, 429, or a 200 whose body is no answer. A 4xx
        (a 400 for a token the server does not like) or an error of ours may be one token's
        doing, and never counts: a client must not be able to refuse everyone's new tokens."""
        if isinstance(exc, FetchFailed):
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                return
        elif not isinstance(exc, (DeadlineExceeded, TimeoutError)):
            return
        asked = exc.retry_after if isinstance(exc, FetchFailed) else None
        now = self._clock()
        with self._lock:
            if began > self._fault_at:  # calls that failed together are one failure
                self._faults += 1
            self._fault_at = now
            delay = backoff(self._faults, maximum=BACKOFF_MAX)
            if asked is not None:  # RFC 9110 §10.2.3, bounded
                delay = max(delay, min(asked, MAX_RETRY_AFTER))
            self._retry_at = max(self._retry_at, now + delay)
            self._fault_reason = reason

    def _refusal(self, in_flight: int) -> tuple[str, str, float] | None:
        """Why a new call may not be made now (the sync driver holds the lock): in a failure
        cooldown, or ``max_concurrent_calls`` in flight; ``None``: go ahead. Reads only."""
        left = self._retry_at - self._clock()
        if left > 0:
            reason = (
                f"the endpoint failed ({self._fault_reason}); no new call for {left:.1f} s "
                "(failure backoff)"
            )
            return "cooldown", reason, left
        if in_flight >= self._max_calls:
            reason = (
                f"{self._max_calls} calls in flight (max_concurrent_calls): a new token is "
                "refused until one ends"
            )
            return "max_concurrent_calls", reason, 0.0
        return None

    def _refused(self, why: str, reason: str, left: float) -> IntrospectionUnavailable:
        """The 503 for a call not made (see ``_refusal``): counted, the cap's WARNING
        rate-limited (a cooldown's failure was logged when it happened)."""
        if self._metrics is not None:
            self._metrics.introspection_skipped(self.shown, why)
        if why == "max_concurrent_calls":
            self._log.line(
                "introspection_busy", "token introspection at %s: %s", self.shown, reason
            )
        error = self._unavailable(reason, None)
        if left > 0:
            error.detail["cooldown_left"] = round(left, 1)
        return error

    def _unavailable(self, reason: str, status: int | None) -> IntrospectionUnavailable:
        detail: dict[str, Any] = {"endpoint": self.shown, "reason": reason}
        if status is not None:
            detail["status"] = status
        # In a cooldown, when it ends: no new call is made before.
        left = self._retry_at - self._clock()
        retry = max(RETRY_AFTER, math.ceil(left)) if left > 0 else RETRY_AFTER
        detail["retry_after"] = retry
        return IntrospectionUnavailable(retry_after=retry, detail=detail)


def _no_user_info(url: str, what: str) -> str:
    """``url`` without credentials in it (``user:password@``), else a ConfigurationError (the
    URL itself never shown: it holds a secret). httpx turns them into a Basic header that
    replaces client_secret_basic's, or adds a second method to the others' (RFC 6749 §2.3:
    one client authentication method per request; review R27B-5)."""
    if "@" in urllib.parse.urlsplit(url).netloc:
        raise ConfigurationError(
            f"{what} must not hold credentials (user:password@host): this resource server "
            "authenticates with client_id= and client_secret= (or private_key=), and only so "
            "(RFC 6749 §2.3)"
        )
    return url


def _no_keys(exc: JWTGuardError) -> FetchFailed:
    """The issuer's keys could not be had to verify a signed answer: no answer (503)."""
    return FetchFailed(f"the issuer's keys for the JWT response: {exc.code}")


# -- fork safety ------------------------------------------------------------------------------

_INSTANCES: weakref.WeakSet[Introspection] = weakref.WeakSet()
#: The parent's clients, kept referenced in a forked child (never closed there: see jwks_state).
_ORPHANS: list[Any] = []


def _after_fork() -> None:
    """In a forked child: no call of the parent is in flight here, its locks may be held for
    ever and its pooled connections are shared with every sibling; start afresh. The cached
    answers are plain data and stay valid."""
    for source in list(_INSTANCES):
        if source._own_sync is not None:
            _ORPHANS.append(source._own_sync)
        _ORPHANS.extend(source._own_async.values())
        source._reset()
        source._store.reset()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
