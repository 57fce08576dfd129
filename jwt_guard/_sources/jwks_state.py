"""A remote key set's state, shared by its two drivers (:mod:`.jwks_sync`, :mod:`.jwks_async`).

The configuration (URL, timeouts, TTL bounds, size cap), the cache state the policy reads
(``_core.jwks_policy``), the counters behind :class:`JWKSStats`, and the glue both drivers use:
what the plan says for this request, the answer it gives (a key set, or 503 when there is none
to stand behind), and what a finished fetch records (success, failure, the log line).
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
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import httpx

from .._core.algorithms import ALGORITHMS
from .._core.errors import ConfigurationError, KeySourceUnavailable
from .._core.jwks_policy import (
    REFRESH_AHEAD,
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
from .._core.keyset import KeySet, KeySource, unfit
from .._core.log import RejectionLog
from .._core.metrics import Metrics
from .deadline import OPTIONAL_PAUSE, OPTIONAL_SHARE, DeadlineExceeded, OptionalCalls
from .fetch import Flight, check_url, display_url
from .redis_cache import RedisCache

__all__ = [
    "SHARED_DEFER",
    "SHARED_POLL",
    "UNKNOWN_KID_WAIT",
    "WAIT_GRACE",
    "Fetched",
    "JWKSState",
    "JWKSStats",
    "SharedCopy",
]

logger = logging.getLogger("jwt_guard")

#: How long a request with an unknown kid waits for a fetch at most (then 503 + Retry-After):
#: long enough for a healthy provider, short enough that a slow one cannot hold worker threads.
UNKNOWN_KID_WAIT: Final = 1.0


#: What a waiter adds to the fetch deadline before it stops waiting: the fetch records its own
#: failure at the deadline, so this only covers thread scheduling.
WAIT_GRACE: Final = 1.0

#: With a shared cache, how long a worker that found another worker fetching (the lock held)
#: keeps the set it has before it looks at the shared cache again.
SHARED_DEFER: Final = 1.0

#: How often a cold worker that found another worker fetching looks for its result.
SHARED_POLL: Final = 0.05


@dataclass(frozen=True)
class SharedCopy:
    """A key set read from the shared cache, with the time it was fetched and its TTL."""

    key_set: KeySet
    fetched_at: float
    ttl: float


#: What a fetch comes to: a fetched set (and its response headers), a shared copy, or
#: ``None``: another worker is fetching, this one keeps what it has (see ``_defer``).
Fetched = tuple[KeySet, Mapping[str, str]] | SharedCopy | None


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
    #: Key sets taken from the shared cache (``shared_cache=``) instead of a fetch.
    shared_hits: int = 0


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


class JWKSState(KeySource):
    """A remote key set's configuration, cache state and counters, and what the drivers share:
    the policy's plan applied, a fetch's outcome recorded, the answer (a key set or 503)."""

    # The drivers' state, made by _reset_drivers (and again in a forked child).
    _own_async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient]
    _inflight: asyncio.Task[None] | None
    _background: set[asyncio.Task[None]]
    _start_lock: threading.Lock
    _flight: Flight | None

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
        shared_cache: RedisCache | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._url: str | None = check_url(url, allow_http) if url is not None else None
        self._allow_http = allow_http
        self._timeout = _number(timeout, "timeout", minimum=0.001)
        self._unknown_kid_wait = min(
            _number(unknown_kid_wait, "unknown_kid_wait"), self._timeout + WAIT_GRACE
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
        if shared_cache is not None and not isinstance(shared_cache, RedisCache):
            raise ConfigurationError("shared_cache must be a jwt_guard.RedisCache")
        self._max_bytes = max_bytes
        #: The cache shared with other workers, and this source's entry and lock in it: named
        #: by the kind of source and its configured URL (a hash: no URL in Redis key names).
        self._shared = shared_cache
        digest = hashlib.sha256(str(url).encode()).hexdigest()[:32]
        self._shared_key = f"{self._shared_kind}:{digest}"
        self._shared_hits = 0
        #: The shared cache's calls, each within a share of the fetch's deadline: a Redis
        #: slower than that is a miss, and the provider is asked within the rest.
        self._store = OptionalCalls(self._shared_slow)
        self._store_log = RejectionLog(logging.WARNING)
        #: The kid the fetch in flight was started for (an unknown kid), if any.
        self._wanted_kid: str | None = None
        #: Until then, another worker's fetch is awaited: an unknown kid is a 503, not a 401.
        self._deferred_until = 0.0
        self._garbage_warned = False
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
        #: The algorithms of each policy built on this source (check_policy), and the
        #: mismatches already warned about (once per state: see _warn_unfit).
        self._in_force: frozenset[frozenset[str]] = frozenset()
        self._unfit: frozenset[str] = frozenset()
        #: The skipped entries of the last fetched set (see _log_skipped).
        self._skipped_entries: frozenset[str] = frozenset()
        #: Retired (its tenant left the LRU): each fetch closes its client when it ends.
        self._retiring = False
        self._reset_drivers()
        _INSTANCES.add(self)

    def _reset_drivers(self) -> None:
        """Fresh driver state: at construction, and in a forked child (see ``_after_fork``)."""
        self._own_async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._start_lock = threading.Lock()  # held only to start a fetch, never across I/O
        self._flight: Flight | None = None  # the sync fetch in flight, or the last one

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={len(self._state.key_set or ())})"

    def inherit(self, previous: KeySource) -> None:
        # Plain data, replaced whole (never mutated): safe to share. Only from a source of the
        # same kind and URL, so the keys are the very ones this source would fetch.
        if (
            previous is not self
            and type(previous) is type(self)
            and isinstance(previous, JWKSState)
            and previous._url == self._url
        ):
            self._state = previous._state

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
            shared_hits=self._shared_hits,
        )

    @property
    def loaded(self) -> KeySet | None:
        return self._state.key_set

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

    def _check_prefetched(self, required: bool) -> None:
        if required and self._state.key_set is None:
            if self._mismatch is not None:
                # Configuration to fix, not an outage: say so at start-up.
                raise ConfigurationError(self._mismatch.explain())
            raise KeySourceUnavailable(detail=self._unavailable_detail())

    published = True  # the provider's keys: algorithms may follow them

    def check_policy(self, algorithms: frozenset[str], issuers: frozenset[str] | None) -> None:
        # Each fetched set is checked against them: see _succeeded.
        self._in_force = self._in_force | {algorithms}
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

    def _plan(self, kid: str | None) -> Action:
        state = self._state
        now = self._clock()
        action = plan(state, self._policy, kid, now)
        if action is not Action.USE:
            self._wanted_kid = kid if action is Action.FETCH_FOR_KID else None
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

    def _current(
        self, kid: str | None, pending: bool = False, action: Action | None = None
    ) -> KeySet:
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
            and (pending or state.failures or now < self._deferred_until)
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
        if action is Action.USE and kid is not None and not state.key_set.has_kid(kid):
            # The plan skipped the refetch (cooldown, backoff): a miss must say so, and when
            # the next one may happen, not read as "the provider lacks the key".
            return state.key_set.skipped_refetch(self._skipped_detail(state, now))
        return state.key_set

    def _skipped_detail(self, state: CacheState, now: float) -> Callable[[], dict[str, Any]]:
        """Why an unknown kid was not looked for again at ``now``: a snapshot, built when the
        refusal's detail is read."""
        cooldown = self._policy.cooldown

        def detail() -> dict[str, Any]:
            if now < state.retry_at:  # backoff after a failed fetch
                why = "the last fetch failed, and retries back off"
                next_in = state.retry_at - now
            else:
                last = state.last_attempt if state.last_attempt is not None else now
                why = (
                    f"the key set was fetched {now - last:.0f} s ago, within the {cooldown:g} s "
                    "cooldown between refetches for unknown kids"
                )
                next_in = max(0.0, last + cooldown - now)
            return {
                "reason": f"the kid is not in the cached key set, and the refetch was skipped: "
                f"{why}; the next refetch may happen in {next_in:.0f} s",
                "next_refetch_in": round(next_in, 1),
            }

        return detail

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
        self._log_skipped(key_set)
        self._warn_unfit(key_set)
        logger.debug(
            "JWKS refreshed from %s: %d keys, ttl %.0fs",
            display_url(self._source_url()),
            len(key_set),
            ttl,
        )

    # -- the shared cache (RedisCache): what both drivers decide the same way ----------------

    _shared_kind = "jwks"

    def _shared_copy(self, raw: bytes | None) -> SharedCopy | None:
        """The shared entry read as a key set, by the same strict parser as a fetched
        document; ``None`` when there is none, or none we can use (garbage is logged once
        and ignored: the provider is asked instead)."""
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            fetched_at, ttl, document = entry["fetched_at"], entry["ttl"], entry["document"]
            if not all(
                isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n)
                for n in (fetched_at, ttl)
            ) or not isinstance(document, str):
                raise ValueError("fetched_at, ttl or document of the wrong type")
            key_set = parse_document(document.encode(), self._state.key_set)
        # ArithmeticError: isfinite() of an integer too large for a float is an OverflowError,
        # no ValueError (review R27B-7); a miss like the rest.
        except (
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
            ArithmeticError,
            FetchFailed,
        ) as exc:
            if not self._garbage_warned:
                self._garbage_warned = True
                logger.warning(
                    "the shared cache's entry for %s is not a usable key set (%s): ignored, "
                    "the keys are fetched from the provider",
                    display_url(self._source_url()),
                    str(exc)[:200] or type(exc).__name__,
                )
            return None
        self._garbage_warned = False
        now = self._clock()
        # A fetch time from the future (another host's clock) counts as now.
        fetched_at = min(float(fetched_at), now)
        ttl = min(max(float(ttl), self._policy.min_ttl), self._policy.max_ttl)
        if now > fetched_at + ttl + self._policy.max_stale:
            return None
        return SharedCopy(key_set, fetched_at, ttl)

    def _newer(self, copy: SharedCopy | None) -> bool:
        """``copy`` is a newer set than the one this worker has."""
        fetched_at = self._state.fetched_at
        return copy is not None and (fetched_at is None or copy.fetched_at > fetched_at)

    def _adoptable(self, copy: SharedCopy | None) -> bool:
        """Take ``copy`` instead of fetching: not older than ours and not due for a refresh
        itself (a prefetch of a worker that has it makes no request); for an unknown kid,
        holding it, or newer than ours and fetched within the cooldown (another worker just
        looked: what this worker would have waited for anyway)."""
        if copy is None:
            return False
        ours = self._state.fetched_at
        now = self._clock()
        if (ours is not None and copy.fetched_at < ours) or (
            now >= copy.fetched_at + copy.ttl * REFRESH_AHEAD
        ):
            return False
        kid = self._wanted_kid
        return (
            kid is None
            or copy.key_set.has_kid(kid)
            or (self._newer(copy) and now - copy.fetched_at < self._policy.cooldown)
        )

    def _shared_entry(self, body: bytes, headers: Mapping[str, str]) -> tuple[bytes, float]:
        """A fetched document as the shared entry, and how long Redis keeps it (as long as a
        worker may serve it: its TTL and ``max_stale``)."""
        ttl = ttl_from_headers(headers, self._policy)
        entry = {"fetched_at": self._clock(), "ttl": ttl, "document": body.decode("utf-8")}
        return json.dumps(entry).encode(), ttl + self._policy.max_stale

    @property
    def _store_bound(self) -> float:
        """How long one call to the shared cache may take within a fetch."""
        return self._timeout * OPTIONAL_SHARE

    def _shared_slow(self, what: str, seconds: float) -> None:
        self._store_log.line(
            "shared_cache_slow",
            "shared cache %s for %s: no answer within %.2g s, taken as a miss; not asked for %g s",
            what,
            display_url(self._source_url()),
            seconds,
            OPTIONAL_PAUSE,
        )

    @property
    def _lock_ttl(self) -> float:
        # A fetch ends by its deadline; a worker that died holding the lock holds it no longer.
        return self._timeout + WAIT_GRACE

    def _usable(self) -> bool:
        state = self._state
        return (
            state.key_set is not None and self._clock() <= state.expires_at + self._policy.max_stale
        )

    def _adopt(self, copy: SharedCopy) -> None:
        """Take the shared copy as if this worker had fetched it at ``copy.fetched_at``."""
        self._shared_hits += 1
        if self._metrics is not None:
            self._metrics.jwks_shared_hit(self._metric_name)
        self._mismatch = None
        self._state = after_success(self._state, copy.key_set, copy.ttl, copy.fetched_at)
        self._log_skipped(copy.key_set)
        self._warn_unfit(copy.key_set)
        logger.debug(
            "JWKS for %s from the shared cache: %d keys, fetched %.0fs ago",
            display_url(self._source_url()),
            len(copy.key_set),
            self._clock() - copy.fetched_at,
        )

    def _defer(self) -> None:
        """Another worker is fetching: keep this set a little longer, then look again."""
        now = self._clock()
        self._deferred_until = now + SHARED_DEFER
        self._state = replace(self._state, retry_at=max(self._state.retry_at, now + SHARED_DEFER))

    def _record(self, outcome: Fetched) -> None:
        """What a fetch with a shared cache came to: fetched, a shared copy, or deferred."""
        if outcome is None:
            self._defer()
        elif isinstance(outcome, SharedCopy):
            self._adopt(outcome)
        else:
            self._succeeded(*outcome)

    def _fallback(self, seen: list[SharedCopy]) -> None:
        """A fetch failed: a newer shared copy (stale maybe, within ``max_stale``) is better
        than none; the failure is recorded after it (backoff, stale serving)."""
        if seen and self._newer(seen[-1]):
            self._adopt(seen[-1])

    def _log_skipped(self, key_set: KeySet) -> None:
        """The entries the set left out, each warned about once while it stays published
        (then DEBUG): anyone can make a fetch per cooldown with a made-up kid, and a line at
        every fetch would be the same WARNING for ever."""
        shown = display_url(self._source_url())
        known = self._skipped_entries
        for entry in key_set.skipped_entries:
            level = logging.DEBUG if entry.fingerprint in known else entry.level
            logger.log(
                level, "skipping JWKS entry %d from %s: %s", entry.number, shown, entry.reason
            )
        self._skipped_entries = frozenset(e.fingerprint for e in key_set.skipped_entries)

    def _warn_unfit(self, key_set: KeySet) -> None:
        """At the first fetch (prefetch or the first token) and whenever the set changes: a
        WARNING when no published key fits the algorithms in force, once per such state."""
        where = f"{self._fetch_kind(self._source_url())} at {display_url(self._source_url())}"
        found = frozenset(
            warning
            for algorithms in self._in_force
            if (warning := unfit(key_set, algorithms, where)) is not None
        )
        for warning in sorted(found - self._unfit):
            logger.warning("%s", warning)
        self._unfit = found

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

    _metric_name: str = ""


# -- fork safety ------------------------------------------------------------------------------

_INSTANCES: weakref.WeakSet[JWKSState] = weakref.WeakSet()


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
        source._store.reset()


#: The parent's clients, kept referenced in a forked child (see ``_after_fork``).
_ORPHANS: list[Any] = []


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
