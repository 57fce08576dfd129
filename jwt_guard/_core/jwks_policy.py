"""The cache policy of a remote key set (JWKS), pure: no I/O, no clock of its own.

*Should this request use the cached set, use it and refresh in the background, wait for
a fetch, or give up?* is :func:`plan`, a function of :class:`CacheState`, the token's
``kid`` and the time. :func:`after_success` and :func:`after_failure` give the next
state, :func:`ttl_from_headers` the TTL a response asks for, :func:`parse_document` the
key set a response holds. The drivers that act on the plan are
``jwt_guard._sources.jwks`` (sync and async, single flight).
"""

from __future__ import annotations

import enum
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from .keyset import KeySet

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "MAX_KEYS",
    "REFRESH_AHEAD",
    "Action",
    "CachePolicy",
    "CacheState",
    "DiscoveryMismatch",
    "FetchFailed",
    "after_failure",
    "after_success",
    "backoff",
    "parse_document",
    "plan",
    "ttl_from_headers",
]


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
    """A JWKS (or discovery) fetch did not produce a usable document; the text is the reason.
    ``status`` is the HTTP status of an answer other than 200 (discovery moves on after a 404);
    ``retry_after`` the seconds a 429 or 503 asked for (RFC 9110 §10.2.3), if it said."""

    def __init__(
        self,
        reason: str,
        url: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.url = url
        self.status = status
        self.retry_after = retry_after


class DiscoveryMismatch(FetchFailed):
    """The discovery document names another issuer than the one configured."""

    def __init__(self, url: str, found: object, expected: tuple[str, ...]) -> None:
        # Both values are public; showing them makes a trailing-slash mismatch obvious.
        shown = " or ".join(repr(e) for e in expected)
        reason = f"OIDC discovery mismatch: the document names {found!r}, not the configured"
        super().__init__(f"{reason} {shown}"[:400], url)
        self.found = found
        self.expected = expected

    def explain(self) -> str:
        expected = " or ".join(repr(e) for e in self.expected)
        return (
            f"OIDC discovery mismatch: {self.url} names issuer {self.found!r}, but the configured "
            f"issuer is {expected}; they must be identical, trailing slash included (OpenID "
            "Connect Discovery 1.0 §4.3, RFC 8414 §3.3). No keys are fetched until this is fixed."
        )


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
    FETCH_AND_WAIT = "fetch_and_wait"  # nothing usable: wait for the fetch (up to the timeout)
    FETCH_FOR_KID = "fetch_for_kid"  # an unknown kid: wait for the fetch up to a short bound
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
        # request per cooldown), and never during a failure backoff. While fetches fail, the
        # backoff alone sets the pace: the first unknown kid after it tries again, so a
        # recovered provider is noticed at once (issue #13, item 27).
        if in_backoff:
            return Action.USE
        last = state.last_attempt if state.last_attempt is not None else float("-inf")
        if state.failures or now - last >= policy.cooldown:
            return Action.FETCH_FOR_KID
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
    # A successful fetch replaces the set whole: keys missing from it stop being trusted from
    # this fetch on (not before: a removed key is trusted until the next successful fetch).
    return CacheState(
        key_set=key_set,
        fetched_at=now,
        expires_at=now + ttl,
        refresh_at=now + ttl * REFRESH_AHEAD,
        last_attempt=now,
        failures=0,
        retry_at=0.0,
    )


def backoff(
    failures: int, rand: Callable[[], float] = random.random, maximum: float = BACKOFF_MAX
) -> float:
    """Seconds to wait after ``failures`` consecutive failures before the next attempt:
    BACKOFF_INITIAL doubling up to ``maximum``, with jitter. The key sets' backoff, and the
    introspection endpoint's (``_sources.introspection``)."""
    delay = min(maximum, BACKOFF_INITIAL * 2.0 ** min(failures - 1, 32))
    return delay * (0.5 + rand() / 2)  # jitter: instances that failed together retry apart


def after_failure(
    state: CacheState, now: float, rand: Callable[[], float] = random.random
) -> CacheState:
    failures = state.failures + 1
    delay = backoff(failures, rand)
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
        # The entries' reasons go into the failure (logged as one): no set, nothing else logs them.
        why = "; ".join(f"entry {e.number}: {e.reason}" for e in key_set.skipped_entries[:3])
        raise FetchFailed("document holds no usable key" + (f" ({why})" if why else ""))
    return key_set
