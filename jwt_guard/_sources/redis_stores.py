"""The stores every instance shares, in Redis (``pip install jwt_guard[redis]``).

* :class:`RedisDenylist`: revocations; one round trip per check (``MGET`` of the token
  and subject keys).
* :class:`RedisReplayCache`: the DPoP proofs seen (RFC 9449 §11.1); one ``SET NX EX``.

Both use the one connection handling of :mod:`.redis_connection` (URL or client,
timeout, fail closed with 503 unless ``fail_open=True``). The rules (what an entry
covers, for how long) and the interfaces are the core's (``_core.revocation``,
``_core.dpop_replay``); a store only stores and looks up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from .._core.dpop_replay import DEFAULT_REPLAY_ENTRIES, PER_KEY_SHARE, SHARE_REASON, ReplayCache
from .._core.errors import (
    ConfigurationError,
    DenylistUnavailable,
    DPoPRateLimited,
    DPoPReplayUnavailable,
    TokenRevoked,
)
from .._core.revocation import BY_JTI, BY_SUBJECT, Denylist, RevocationKeys, revoked_before
from .redis_connection import RedisConnection, down_detail

__all__ = ["REDIS_SHARE_WINDOW", "RedisDenylist", "RedisReplayCache"]


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
            raise TokenRevoked(detail=BY_JTI)
        if keys.subject is not None:
            raw = next(found)
            try:
                cutoff = float(raw) if raw is not None else None
            except (TypeError, ValueError):
                cutoff = math.inf  # an unreadable entry fails closed
            if revoked_before(issued_at, cutoff):
                raise TokenRevoked(detail=BY_SUBJECT)

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


#: One round trip records a proof and counts it in its client key's share (issue 22): the
#: replay check first (a replay is a replay, whatever the count), then the count, then the entry.
#: KEYS: the proof's entry, its key's count; ARGV: the entry's ttl, per_key, the window. Returns
#: 1 (new), 0 (a replay), or minus the seconds until the key's window ends.
_FIRST_USE_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local count = redis.call('INCR', KEYS[2])
local left = redis.call('TTL', KEYS[2])
if left < 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  left = tonumber(ARGV[3])
end
if count > tonumber(ARGV[2]) then return -math.max(left, 1) end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""

#: The window a :class:`RedisReplayCache` counts a key's proofs in: a proof's default lifetime
#: (``max_age`` 60 s + 2 * the verifier's 30 s leeway).
REDIS_SHARE_WINDOW: Final = 120


class RedisReplayCache(ReplayCache):
    """Proofs seen by every instance, in Redis (``pip install jwt_guard[redis]``).

    One round trip per request: a script records the proof (``SET key 1 EX ttl``) unless it
    is there already, and counts it in its client key's share: at most ``per_key`` proofs of
    one key per :data:`REDIS_SHARE_WINDOW` seconds, beyond which 429 ``dpop_rate_limited``
    (issue 22: one token holder cannot fill Redis for everyone). ``url_or_client``,
    ``timeout`` and ``fail_open`` work as for :class:`RedisDenylist` (the same connection
    handling): when Redis does not answer, requests fail closed with 503
    ``dpop_replay_unavailable`` unless ``fail_open=True``.
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str = "jwt_guard:",
        per_key: int = DEFAULT_REPLAY_ENTRIES // PER_KEY_SHARE,
        fail_open: bool = False,
        timeout: float = 0.5,
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")
        if isinstance(per_key, bool) or not isinstance(per_key, int) or per_key < 1:
            raise ConfigurationError("per_key must be a positive integer")
        self._conn = RedisConnection(url_or_client, timeout=timeout, owner="RedisReplayCache")
        self.prefix = prefix
        self.per_key = per_key
        self.fail_open = fail_open

    def __repr__(self) -> str:
        return (
            f"RedisReplayCache(prefix={self.prefix!r}, per_key={self.per_key}, "
            f"fail_open={self.fail_open})"
        )

    def _unavailable(self, exc: BaseException) -> bool:
        self._conn.unavailable(
            exc, fail_open=self.fail_open, error=DPoPReplayUnavailable, what="DPoP replay cache"
        )
        return True

    def _args(self, key: str, ttl: int, jkt: str) -> tuple[object, ...]:
        count = f"{self.prefix}dpop-key:{jkt}"
        window = REDIS_SHARE_WINDOW
        return (_FIRST_USE_SCRIPT, 2, self.prefix + key, count, ttl, self.per_key, window)

    def _decide(self, answer: object) -> bool:
        if not isinstance(answer, int) or answer >= 0:
            return bool(answer)
        raise DPoPRateLimited(
            retry_after=-answer,
            detail={"store": "redis", "reason": SHARE_REASON, "per_key": self.per_key},
        )

    def first_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        args = self._args(key, ttl, jkt)
        try:
            answer = self._conn.call(lambda client: client.eval(*args))
        except self._conn.errors as exc:
            return self._unavailable(exc)
        return self._decide(answer)

    async def afirst_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        args = self._args(key, ttl, jkt)
        try:
            answer = await self._conn.acall(lambda client: client.eval(*args))
        except self._conn.errors as exc:
            return self._unavailable(exc)
        return self._decide(answer)

    def close(self) -> None:
        self._conn.close()

    async def aclose(self) -> None:
        await self._conn.aclose()
