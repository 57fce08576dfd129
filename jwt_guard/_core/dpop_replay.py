"""DPoP (RFC 9449) against replay: server nonces and the replay caches' interface.

:class:`DPoPNonces` makes stateless server nonces (§9) that every instance sharing the
secret accepts; with nonces, proofs made in advance stop working (§11.2).
:class:`ReplayCache` is where the ``jti`` of accepted proofs is kept (§11.1):
:class:`MemoryReplayCache` here (one process, no I/O), ``RedisReplayCache`` in
``_sources.redis_stores`` (every instance). The proof checks are in :mod:`.dpop`.
"""

from __future__ import annotations

import abc
import hmac
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from .errors import ConfigurationError, DPoPRateLimited, DPoPReplayUnavailable
from .log import RejectionLog
from .parse import b64url_encode

__all__ = [
    "DEFAULT_NONCE_LIFETIME",
    "DEFAULT_REPLAY_ENTRIES",
    "PER_KEY_SHARE",
    "DPoPNonces",
    "MemoryReplayCache",
    "ReplayCache",
]


DEFAULT_NONCE_LIFETIME: Final = 300

#: Proofs a :class:`MemoryReplayCache` holds: ~260 bytes each, 26 MB. An entry lives
#: ``max_age`` + 2 * leeway (120 s by default), so this is ~830 requests a second.
DEFAULT_REPLAY_ENTRIES: Final = 100_000

#: One client key may hold 1/10 of a memory replay cache (10,000 proofs, ~83 requests a
#: second by default): one token holder cannot take the cache from the others.
PER_KEY_SHARE: Final = 10

# -- server nonces (RFC 9449 §8, §9) -------------------------------------------------------------


class DPoPNonces:
    """Stateless server nonces: ``<issued-at>.<HMAC>``, valid for ``lifetime`` seconds.

    Nonces cannot be predicted without ``secret`` (RFC 9449 §8: "MUST be unpredictable"), and
    every instance holding the same secret accepts the others' nonces, with no shared store. A
    new nonce is handed out every ``lifetime / 2`` seconds, so a client always has at least
    half a lifetime left. Proofs made before the nonce existed cannot carry it: with nonces,
    pre-made proofs stop working (RFC 9449 §11.2).
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        lifetime: float = DEFAULT_NONCE_LIFETIME,
    ) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        if not isinstance(raw, bytes) or len(raw) < 32:
            raise ConfigurationError("the DPoP nonce secret must be at least 32 bytes")
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, (int, float))
            or not 10 <= lifetime <= 86400
        ):
            raise ConfigurationError("lifetime must be from 10 to 86400 seconds")
        self._secret = raw
        self.lifetime = int(lifetime)
        self._step = max(1, self.lifetime // 2)
        self._current: tuple[int, str] = (-1, "")

    def __repr__(self) -> str:
        return f"DPoPNonces(lifetime={self.lifetime})"  # never the secret

    def _mac(self, issued: int) -> str:
        message = b"jwt_guard dpop nonce\x00%d" % issued
        return b64url_encode(hmac.digest(self._secret, message, "sha256")[:18])

    def issue(self, now: float) -> str:
        """The nonce to hand out at ``now`` (the same one for ``lifetime / 2`` seconds)."""
        issued = int(now) - int(now) % self._step
        current = self._current
        if current[0] != issued:
            current = self._current = (issued, f"{issued:x}.{self._mac(issued)}")
        return current[1]

    def valid(self, nonce: object, now: float, leeway: float = 0) -> bool:
        """Whether ``nonce`` is one of ours and still fresh.

        It was issued by a holder of the secret and is not older than ``lifetime`` (``leeway``
        covers clocks of instances that differ a little)."""
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        stamp, dot, mac = nonce.partition(".")
        if not dot or not 1 <= len(stamp) <= 12 or not all(c in "0123456789abcdef" for c in stamp):
            return False
        issued = int(stamp, 16)
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(issued).encode()):
            return False
        return issued - leeway <= now < issued + self.lifetime + leeway


# -- replay caches (RFC 9449 §11.1) --------------------------------------------------------------


class ReplayCache(abc.ABC):
    """Where the ``jti`` of accepted proofs is kept while the proofs could still be accepted."""

    @abc.abstractmethod
    def first_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        """Record ``key`` for ``ttl`` seconds; ``False`` if it was already recorded (sync).

        ``jkt`` is the thumbprint of the key that signed the proof, whose share it counts in.
        """

    @abc.abstractmethod
    async def afirst_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        """Async twin of :meth:`first_use`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources (sync)."""

    async def aclose(self) -> None:  # noqa: B027
        """Release network resources of the running loop."""


class _Share:
    """One client key's part of a :class:`MemoryReplayCache`."""

    __slots__ = ("floor", "untils")

    def __init__(self) -> None:
        self.untils: deque[float] = deque()  # of its entries, in arrival order
        # The latest ``until`` of its entries dropped before they expired: a proof of this key
        # that expires no later may be the replay of a dropped one.
        self.floor = 0.0


class MemoryReplayCache(ReplayCache):
    """The proofs seen by this process: up to ``max_entries``, at most ``per_key`` of one key.

    Enough for one process; several workers or instances need :class:`RedisReplayCache`, or a
    proof refused here is accepted by the process next door.

    Fair (issue 22): a client key (``jkt``) holding ``per_key`` live proofs gets 429
    ``dpop_rate_limited`` with ``Retry-After`` (when its oldest proof leaves) and no other key
    notices. A key only gets here with an access token bound to it that verified and a proof
    its private key signed, so filling the whole cache takes ``max_entries / per_key`` tokens
    the authorization server issued. Even then it locks no one out: full, it drops its oldest
    entry, and refuses (503, ``Retry-After: 1``) the proofs of that entry's key that expire no
    later than it did, the only ones that could be its replays: never forgotten, and a fresh
    proof of any key still passes.

    Every call is O(1) amortized: entries leave in arrival order, from the front.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_REPLAY_ENTRIES,
        *,
        per_key: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError("max_entries must be a positive integer")
        if per_key is None:
            per_key = max(1, max_entries // PER_KEY_SHARE)
        if (
            isinstance(per_key, bool)
            or not isinstance(per_key, int)
            or not 1 <= per_key <= max_entries
        ):
            raise ConfigurationError("per_key must be a positive integer, at most max_entries")
        self.max_entries = max_entries
        self.per_key = per_key
        self._clock: Callable[[], float] = clock or time.time
        self._seen: dict[str, float] = {}  # replay key -> until
        self._queue: deque[tuple[float, str, str]] = deque()  # (until, key, jkt), arrival order
        self._keys: dict[str, _Share] = {}
        # Keys with no entry left but a floor still ahead (jkt -> floor), and the order they
        # came in (a dict is no queue: ``next(iter())`` skips every slot deleted at its front).
        # At most max_entries: beyond, the oldest one's floor becomes everyone's (still safe,
        # only stricter).
        self._idle: dict[str, float] = {}
        self._idle_order: deque[tuple[float, str]] = deque()
        self._floor = 0.0
        self._log = RejectionLog(logging.WARNING, limit=1)
        self._lock = threading.Lock()
        _MEMORY_CACHES.add(self)

    def _after_fork(self) -> None:
        # A lock another thread held at the fork stays held for ever in the child.
        self._lock = threading.Lock()
        self._log = RejectionLog(logging.WARNING, limit=1)

    def __len__(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return f"MemoryReplayCache(max_entries={self.max_entries}, per_key={self.per_key})"

    def _pop(self, now: float) -> None:
        """The front entry leaves: expired, or dropped alive (then it raises its key's floor)."""
        until, key, jkt = self._queue.popleft()
        if self._seen.get(key) == until:  # not recorded again since (after it expired)
            del self._seen[key]
        share = self._keys[jkt]
        share.untils.popleft()
        if until > now:
            share.floor = max(share.floor, until)
        if share.untils:
            return
        if share.floor <= now:
            del self._keys[jkt]
            return
        self._idle[jkt] = share.floor
        order = self._idle_order
        order.append((share.floor, jkt))
        if len(order) > 2 * self.max_entries:
            # The marks of keys that came back since are left in place (skipped when they
            # reach the front): they would pile up one per request for a proof's lifetime.
            # Rebuilt in place from the keys still idle, in the order they went idle (the
            # dict's): O(max_entries) once every max_entries marks at least.
            order.clear()
            order.extend((floor, key) for key, floor in self._idle.items())
        while len(self._idle) > self.max_entries:
            floor, oldest = self._idle_order.popleft()
            if self._idle.get(oldest) == floor:  # still idle since (else a stale mark)
                self._floor = max(self._floor, floor)
                del self._idle[oldest], self._keys[oldest]

    def first_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        now = self._clock()
        until = now + ttl
        queue = self._queue
        idle, order = self._idle, self._idle_order
        full = False
        with self._lock:
            # Proofs live about the same time, so those that arrived first expire first: an
            # entry that expires behind a younger one waits for it (at most a proof lifetime).
            while queue and queue[0][0] <= now:
                self._pop(now)
            while order and order[0][0] <= now:
                floor, oldest = order.popleft()
                if idle.get(oldest) == floor:
                    del idle[oldest], self._keys[oldest]
            known = self._seen.get(key)
            if known is not None and known > now:
                return False
            share = self._keys.get(jkt)
            # The same proof gets an ``until`` up to a second apart on two checks (ttl is in
            # whole seconds): one more second keeps a dropped proof's replay out.
            floor = self._floor if share is None else max(self._floor, share.floor)
            if until <= floor + _TTL_ROUNDING:
                raise DPoPReplayUnavailable(retry_after=1, detail=self._too_old)
            if share is not None and len(share.untils) >= self.per_key:
                raise DPoPRateLimited(
                    retry_after=math.ceil(share.untils[0] - now),
                    detail={"store": "memory", "reason": SHARE_REASON, "per_key": self.per_key},
                )
            if len(queue) >= self.max_entries:
                # Never forget a live proof silently: its key's floor rises past it.
                self._pop(now)
                full = True
            if share is None or jkt not in self._keys:  # new, or just dropped with its last
                share = self._keys[jkt] = _Share()
            elif not share.untils:
                idle.pop(jkt, None)
            self._seen[key] = until
            queue.append((until, key, jkt))
            share.untils.append(until)
        if full:
            self._log.line(
                "dpop_replay_full",
                "DPoP replay cache full (%d entries): the oldest are dropped and proofs as old "
                "of their keys refused (503); raise max_entries or use RedisReplayCache",
                self.max_entries,
            )
        return True

    @property
    def _too_old(self) -> dict[str, Any]:
        return {"store": "memory", "reason": _TOO_OLD, "max_entries": self.max_entries}

    async def afirst_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        return self.first_use(key, ttl, jkt)


SHARE_REASON: Final = "this key holds its share of the replay cache (per_key proofs)"

_TOO_OLD: Final = "full: an entry of this key that expired no earlier was dropped"

#: A proof's ``ttl`` is in whole seconds (see :meth:`DPoP.check_proof`).
_TTL_ROUNDING: Final = 1.0

_MEMORY_CACHES: weakref.WeakSet[MemoryReplayCache] = weakref.WeakSet()


def _after_fork() -> None:
    for cache in list(_MEMORY_CACHES):
        cache._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
