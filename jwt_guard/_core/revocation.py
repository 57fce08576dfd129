"""Revocation: a denylist of token ids (``jti``) and of subjects, checked after the signature.

Stateless tokens cannot be taken back, so a revoked token's ``jti`` is kept until the token can
no longer verify anyway; a subject entry ("log out everywhere", "ban this account") rejects
every token of that subject issued before a whole second. The :class:`Verifier` decides what
an entry covers and for how long (:func:`revocation_keys`, :func:`token_lifetime`,
:func:`subject_lifetime`); a denylist only stores and looks up.

* :class:`MemoryDenylist` (here): one process, no I/O.
* ``RedisDenylist`` (``_sources.redis_stores``): shared by every instance behind the load
  balancer; one round trip per check (``MGET`` of the token and subject keys), bounded by a
  timeout; fails closed (503) unless ``fail_open=True``.

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

from .errors import ConfigurationError, DenylistUnavailable, TokenRevoked
from .metrics import Metrics

__all__ = [
    "CLOCK_MARGIN",
    "Denylist",
    "MemoryDenylist",
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
BY_JTI: Final = {"revoked": "token", "reason": "its jti is on the denylist"}
BY_SUBJECT: Final = {
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
    (``claims.check_times``); the entry outlives the earlier of the two by
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


def revoked_before(issued_at: object, subject_cutoff: float | None) -> bool:
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
            raise TokenRevoked(detail=BY_JTI)
        entry = self._lookup(keys.subject, now)
        if entry is not None and revoked_before(issued_at, entry[1]):
            raise TokenRevoked(detail=BY_SUBJECT)

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


# -- fork safety ------------------------------------------------------------------------------

# A Redis denylist's clients are renewed by ``_sources.redis_connection``.
_INSTANCES: weakref.WeakSet[MemoryDenylist] = weakref.WeakSet()


def _after_fork() -> None:
    for denylist in list(_INSTANCES):
        denylist._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
