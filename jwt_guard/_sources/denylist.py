"""Revocation: a denylist of token ids (``jti``) and of subjects, checked after the signature.

Stateless tokens cannot be taken back, so a revoked token's ``jti`` is kept until the token can
no longer verify anyway; a subject entry ("log out everywhere", "ban this account") rejects
every token of that subject issued before a whole second. The :class:`Verifier` decides what
an entry covers and for how long (:func:`revocation_keys`, :func:`token_lifetime`,
:func:`subject_lifetime`); a denylist only stores and looks up.

* :class:`MemoryDenylist`: one process.
* :class:`RedisDenylist`: shared by every instance behind the load balancer; one round trip
  per check (``MGET`` of the token and subject keys), bounded by a timeout; fails closed
  (503) unless ``fail_open=True``.

Lifetimes (no entry lapses while a token it covers can still verify on any instance):

* a token: until ``min(exp, iat + max_token_age) + leeway`` + :data:`CLOCK_MARGIN`; kept for
  ever when neither bound exists (a token without ``exp`` on a verifier without
  ``max_token_age`` verifies for ever).
* a subject cut-off: until ``cut-off + max_token_age + leeway`` + :data:`CLOCK_MARGIN`
  with ``max_token_age``; without it no token lifetime is known, so it is kept for ever unless
  the caller states the longest lifetime (``ttl=``).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from .._core.errors import ConfigurationError, DenylistUnavailable, TokenRevoked
from .._core.metrics import Metrics
from .redis_connection import RedisConnection, down_detail

__all__ = [
    "CLOCK_MARGIN",
    "Denylist",
    "MemoryDenylist",
    "RedisDenylist",
    "RevocationKeys",
    "revocation_keys",
    "subject_lifetime",
    "token_lifetime",
]

logger = logging.getLogger("jwt_guard")


#: Seconds an entry outlives the last moment a token it covers can verify: the instances
#: sharing a denylist judge time by their own clocks, which differ a little.
CLOCK_MARGIN: Final = 60


# Details name the kind of revocation, never the jti or the subject.
_BY_JTI: Final = {"revoked": "token", "reason": "its jti is on the denylist"}
_BY_SUBJECT: Final = {
    "revoked": "subject",
    "reason": "every token of its subject issued before a cut-off was revoked",
}


class RevocationKeys(NamedTuple):
    """The denylist keys of one token: its ``jti`` entry and its subject's entry."""

    token: str | None
    subject: str | None


def _digest(kind: str, scope: str | None, value: str) -> str:
    # Hashed: bounded length, and no character of an attacker-chosen jti can reach the
    # store's key syntax. "surrogatepass": a signed claim may hold a lone surrogate ("\ud800"
    # is valid JSON); it gets its own key, distinct from every well-formed string's.
    data = f"{scope or ''}\x00{value}".encode("utf-8", "surrogatepass")
    return f"{kind}:{hashlib.sha256(data).hexdigest()}"


def revocation_keys(scope: str | None, jti: str | None, subject: str | None) -> RevocationKeys:
    """The one place denylist keys are built, for revoking and for checking alike.

    ``scope`` is the configured issuer the token was verified for, or ``None`` when the
    verifier names no issuer (then revocations are not scoped by ``iss``).
    """
    return RevocationKeys(
        _digest("jti", scope, jti) if jti is not None else None,
        _digest("sub", scope, subject) if subject is not None else None,
    )


def _number(value: object) -> float | None:
    return value if (type(value) is int or type(value) is float) else None


def token_lifetime(claims: Any, leeway: float, max_age: float | None) -> float | None:
    """Until when a token's ``jti`` entry is kept (epoch seconds), ``None`` for ever.

    The token verifies while ``now < exp + leeway`` and ``now <= iat + max_age + leeway``
    (``_claims.check_times``); the entry outlives the earlier of the two by
    :data:`CLOCK_MARGIN`.
    """
    bounds = []
    exp = _number(claims.get("exp"))
    if exp is not None:
        bounds.append(exp)
    iat = _number(claims.get("iat"))
    if max_age is not None and iat is not None:
        bounds.append(iat + max_age)
    if not bounds:
        return None
    return min(bounds) + leeway + CLOCK_MARGIN


def subject_lifetime(
    cutoff: int, leeway: float, max_age: float | None, ttl: float | None, now: float
) -> float | None:
    """Until when a subject cut-off is kept, ``None`` for ever (see the module docstring).

    Every token it covers was issued before ``cutoff``; with ``max_token_age`` none of them
    verifies after ``cutoff + max_age + leeway``. ``ttl`` (the caller's longest token lifetime)
    can only lengthen that.
    """
    derived = cutoff + max_age + leeway + CLOCK_MARGIN if max_age is not None else None
    stated = now + ttl if ttl is not None else None
    if derived is None:
        return stated
    return max(derived, stated) if stated is not None else derived


def _revoked(issued_at: object, subject_cutoff: float | None) -> bool:
    if subject_cutoff is None:
        return False
    iat = _number(issued_at)
    if iat is None:
        return True  # cannot show it was issued after the cut-off
    # Whole seconds on both sides (``iat`` is a NumericDate in seconds, the cut-off is
    # floored): a token issued in the second of the revocation, or later, passes.
    return iat < subject_cutoff


def _forever(until: float | None) -> float:
    return math.inf if until is None else until


class Denylist(abc.ABC):
    """Where revocations are stored. ``check``/``acheck`` raise :class:`TokenRevoked`.

    Keys come from :func:`revocation_keys`; ``until`` is epoch seconds, ``None`` for ever.
    """

    #: The verifier's instruments, when metrics are on.
    _metrics: Metrics | None = None

    def use_metrics(self, metrics: Metrics) -> None:
        """Count store errors on ``metrics`` (the verifier calls this)."""
        self._metrics = metrics

    def _count_error(self, store: str) -> None:
        if self._metrics is not None:
            self._metrics.denylist_error(store)

    @abc.abstractmethod
    def check(self, keys: RevocationKeys, issued_at: object) -> None:
        """Raise if the token with these keys (and ``iat``) is revoked (sync driver)."""

    @abc.abstractmethod
    async def acheck(self, keys: RevocationKeys, issued_at: object) -> None:
        """Raise if the token with these keys (and ``iat``) is revoked (async driver)."""

    @abc.abstractmethod
    def add_token(self, key: str, until: float | None) -> None:
        """Revoke one token id until ``until``."""

    @abc.abstractmethod
    async def aadd_token(self, key: str, until: float | None) -> None:
        """Async twin of :meth:`add_token`."""

    @abc.abstractmethod
    def add_subject(self, key: str, issued_before: int, until: float | None) -> None:
        """Revoke every token of a subject issued before ``issued_before`` (whole seconds)."""

    @abc.abstractmethod
    async def aadd_subject(self, key: str, issued_before: int, until: float | None) -> None:
        """Async twin of :meth:`add_subject`."""

    def close(self) -> None:  # noqa: B027 - optional: a store without connections has none
        """Release connections (sync)."""

    async def aclose(self) -> None:  # noqa: B027
        """Release this event loop's connections."""


class MemoryDenylist(Denylist):
    """An in-process denylist, bounded to ``max_entries`` (expired entries are purged first)."""

    def __init__(
        self, max_entries: int = 100_000, *, clock: Callable[[], float] | None = None
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError("max_entries must be a positive integer")
        self.max_entries = max_entries
        self._clock: Callable[[], float] = clock or time.time
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (until, cutoff)
        self._lock = threading.Lock()
        _INSTANCES.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    def _after_fork(self) -> None:
        # A lock another thread held at the fork stays held for ever in the child.
        self._lock = threading.Lock()

    def _lookup(self, key: str | None, now: float) -> tuple[float, float] | None:
        if key is None:
            return None
        entry = self._entries.get(key)
        if entry is not None and entry[0] < now:
            return None
        return entry

    def check(self, keys: RevocationKeys, issued_at: object) -> None:
        now = self._clock()
        if self._lookup(keys.token, now):
            raise TokenRevoked(detail=_BY_JTI)
        entry = self._lookup(keys.subject, now)
        if entry is not None and _revoked(issued_at, entry[1]):
            raise TokenRevoked(detail=_BY_SUBJECT)

    async def acheck(self, keys: RevocationKeys, issued_at: object) -> None:
        self.check(keys, issued_at)

    def _store(self, key: str, until: float | None, cutoff: float) -> None:
        until_ = _forever(until)
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                now = self._clock()
                for stale in [k for k, (u, _) in self._entries.items() if u < now]:
                    del self._entries[stale]
                if len(self._entries) >= self.max_entries:
                    # Dropping a live revocation would silently un-revoke a token.
                    logger.error("memory denylist is full (%d entries)", self.max_entries)
                    self._count_error("memory")
                    raise DenylistUnavailable(
                        detail={"store": "memory", "reason": f"full ({self.max_entries} entries)"}
                    )
            previous = self._entries.get(key)
            if previous is not None:
                # A second revocation never weakens the first (idempotent, and a shorter
                # lifetime or an earlier cut-off does not replace a longer or later one).
                until_ = max(until_, previous[0])
                cutoff = max(cutoff, previous[1])
            self._entries[key] = (until_, cutoff)

    def add_token(self, key: str, until: float | None) -> None:
        self._store(key, until, 0.0)

    async def aadd_token(self, key: str, until: float | None) -> None:
        self.add_token(key, until)

    def add_subject(self, key: str, issued_before: int, until: float | None) -> None:
        self._store(key, until, float(issued_before))

    async def aadd_subject(self, key: str, issued_before: int, until: float | None) -> None:
        self.add_subject(key, issued_before, until)


# Stores max(old, new) with the longer of the two lifetimes, atomically: a second revocation
# of a subject with an earlier cut-off, or a shorter-lived token, never weakens the first.
# A ttl of 0 means for ever, and an entry kept for ever stays so.
_KEEP_MAX: Final = """
local value = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]))
if current then
  if current > value then value = current end
  local left = redis.call('TTL', KEYS[1])
  if left == -1 then ttl = 0 elseif ttl > 0 and left > ttl then ttl = left end
end
if ttl == 0 then
  redis.call('SET', KEYS[1], string.format('%d', value))
else
  redis.call('SET', KEYS[1], string.format('%d', value), 'EX', ttl)
end
return 1
"""


class RedisDenylist(Denylist):
    """A denylist in Redis, shared by every instance (``pip install jwt_guard[redis]``).

    ``url_or_client`` is a ``redis://`` URL (sync and async clients are made from it) or a
    ``redis.Redis`` / ``redis.asyncio.Redis`` client. Each check is one ``MGET`` bounded by
    ``timeout`` seconds; when Redis does not answer, requests fail closed with 503
    ``denylist_unavailable`` unless ``fail_open=True`` (then they pass, with a warning log).

    A connection that died with a Redis restart fails once when it is next used; reads and
    writes are idempotent, so they are tried once more on a fresh connection, within the same
    ``timeout``. A sync client handed in keeps its own timeouts and retries, so its calls run
    under a deadline of ``timeout`` in a helper thread; one without ``socket_timeout`` is
    refused (it could hold that thread for ever).
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str = "jwt_guard:",
        fail_open: bool = False,
        timeout: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")
        # The connection handling (clients, timeout, one retry after a restart, fork safety)
        # is shared with the DPoP replay cache.
        self._conn = RedisConnection(url_or_client, timeout=timeout, owner="RedisDenylist")
        self.prefix = prefix
        self.fail_open = fail_open
        self.timeout = self._conn.timeout
        self._clock: Callable[[], float] = clock or time.time

    def __repr__(self) -> str:
        return f"RedisDenylist(prefix={self.prefix!r}, fail_open={self.fail_open})"

    def close(self) -> None:
        """Close the sync client this denylist made from its URL (a given client is yours)."""
        self._conn.close()

    async def aclose(self) -> None:
        """Close the async client this denylist made for the running loop."""
        await self._conn.aclose()

    # -- decisions ------------------------------------------------------------------------------

    def _names(self, keys: RevocationKeys) -> list[str]:
        return [self.prefix + key for key in keys if key is not None]

    def _decide(self, keys: RevocationKeys, issued_at: object, values: list[Any]) -> None:
        found = iter(values)
        if keys.token is not None and next(found) is not None:
            raise TokenRevoked(detail=_BY_JTI)
        if keys.subject is not None:
            raw = next(found)
            try:
                cutoff = float(raw) if raw is not None else None
            except (TypeError, ValueError):
                cutoff = math.inf  # an unreadable entry fails closed
            if _revoked(issued_at, cutoff):
                raise TokenRevoked(detail=_BY_SUBJECT)

    def _unavailable(self, exc: BaseException) -> None:
        self._count_error("redis")
        self._conn.unavailable(
            exc, fail_open=self.fail_open, error=DenylistUnavailable, what="denylist"
        )

    def _ttl(self, until: float | None) -> int:
        """Seconds to keep an entry, rounded up; 0 for ever (``_KEEP_MAX``)."""
        if until is None:
            return 0
        return max(1, math.ceil(until - self._clock()))

    # -- drivers: one round trip each, through the shared connection handling ----------------

    def check(self, keys: RevocationKeys, issued_at: object) -> None:
        names = self._names(keys)
        if not names:
            return
        try:
            values = self._conn.call(lambda c: c.mget(names))
        except self._conn.errors as exc:
            self._unavailable(exc)
            return
        self._decide(keys, issued_at, values)

    async def acheck(self, keys: RevocationKeys, issued_at: object) -> None:
        names = self._names(keys)
        if not names:
            return
        try:
            values = await self._conn.acall(lambda c: c.mget(names))
        except self._conn.errors as exc:
            self._unavailable(exc)
            return
        self._decide(keys, issued_at, values)

    def _write(self, key: str, value: int, until: float | None) -> None:
        args = (_KEEP_MAX, 1, self.prefix + key, value, self._ttl(until))
        try:
            self._conn.call(lambda c: c.eval(*args))
        except self._conn.errors as exc:
            # Writes never fail open: a revocation that was not stored must not look stored.
            self._count_error("redis")
            raise DenylistUnavailable(detail=down_detail(exc)) from exc

    async def _awrite(self, key: str, value: int, until: float | None) -> None:
        args = (_KEEP_MAX, 1, self.prefix + key, value, self._ttl(until))
        try:
            await self._conn.acall(lambda c: c.eval(*args))
        except self._conn.errors as exc:
            self._count_error("redis")
            raise DenylistUnavailable(detail=down_detail(exc)) from exc

    def add_token(self, key: str, until: float | None) -> None:
        self._write(key, 1, until)

    async def aadd_token(self, key: str, until: float | None) -> None:
        await self._awrite(key, 1, until)

    def add_subject(self, key: str, issued_before: int, until: float | None) -> None:
        self._write(key, issued_before, until)

    async def aadd_subject(self, key: str, issued_before: int, until: float | None) -> None:
        await self._awrite(key, issued_before, until)


# -- fork safety ------------------------------------------------------------------------------

# A Redis denylist's clients are renewed by ``_redis`` (``RedisConnection``).
_INSTANCES: weakref.WeakSet[MemoryDenylist] = weakref.WeakSet()


def _after_fork() -> None:
    for denylist in list(_INSTANCES):
        denylist._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
