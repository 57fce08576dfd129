"""Revocation: a denylist of token ids (``jti``) and of subjects, checked after the signature.

Stateless tokens cannot be taken back, so a revoked token's ``jti`` (scoped by issuer) is kept
until the token's own ``exp`` plus leeway — after that the token is dead anyway, so entries
expire by themselves and the store never grows without bound. A subject entry ("log out
everywhere", "ban this account") rejects every token of that subject issued before a time.

* :class:`MemoryDenylist`: one process.
* :class:`RedisDenylist`: shared by every instance behind the load balancer; one round trip
  per check (``MGET`` of the token and subject keys), bounded by a timeout; fails closed
  (503) unless ``fail_open=True``.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from ._errors import ClaimMissing, ConfigurationError, DenylistUnavailable, TokenRevoked
from ._principal import Principal

__all__ = ["Denylist", "MemoryDenylist", "RedisDenylist"]

logger = logging.getLogger("jwt_guard")

#: How long a subject revocation is kept by default: it must outlive the longest-lived token
#: the issuer hands out (access tokens live minutes to hours).
DEFAULT_SUBJECT_TTL: Final = 7 * 86400
#: How long a revoked token without ``exp`` is remembered (such tokens are refused by default).
DEFAULT_NO_EXP_TTL: Final = 30 * 86400


def _key(kind: str, issuer: str | None, value: str) -> str:
    # Hashed: bounded length, and no character of an attacker-chosen jti can reach the
    # store's key syntax.
    digest = hashlib.sha256(f"{issuer or ''}\x00{value}".encode()).hexdigest()
    return f"{kind}:{digest}"


# Details name the kind of revocation, never the jti or the subject.
_BY_JTI: Final = {"revoked": "token", "reason": "its jti is on the denylist"}
_BY_SUBJECT: Final = {
    "revoked": "subject",
    "reason": "every token of its subject issued before a cut-off was revoked",
}


def _redis_down(exc: BaseException) -> dict[str, Any]:
    return {"store": "redis", "reason": type(exc).__name__}


def _revoked(principal: Principal, subject_cutoff: float | None) -> bool:
    if subject_cutoff is None:
        return False
    iat = principal.claims.get("iat")
    if type(iat) is not int and type(iat) is not float:
        return True  # cannot show it was issued after the cut-off
    return bool(iat < subject_cutoff)


def token_revocation(
    principal: Principal, leeway: float, now: float
) -> tuple[str | None, str, float]:
    """``(issuer, jti, until)`` to revoke the principal's token: kept until it expires anyway."""
    if principal.token_id is None:
        # a token without jti cannot be revoked individually
        raise ClaimMissing(detail={"claim": "jti", "reason": "needed to revoke one token"})
    exp = principal.expires_at
    until = exp + leeway if exp is not None else now + DEFAULT_NO_EXP_TTL
    return principal.issuer, principal.token_id, until


class Denylist(abc.ABC):
    """Where revocations are stored. ``check``/``acheck`` raise :class:`TokenRevoked`."""

    @abc.abstractmethod
    def check(self, principal: Principal, leeway: float) -> None:
        """Raise if the principal's token is revoked (sync driver)."""

    @abc.abstractmethod
    async def acheck(self, principal: Principal, leeway: float) -> None:
        """Raise if the principal's token is revoked (async driver)."""

    @abc.abstractmethod
    def add_token(self, issuer: str | None, jti: str, until: float) -> None:
        """Revoke one token id until ``until`` (epoch seconds)."""

    @abc.abstractmethod
    async def aadd_token(self, issuer: str | None, jti: str, until: float) -> None:
        """Async twin of :meth:`add_token`."""

    @abc.abstractmethod
    def add_subject(
        self, issuer: str | None, subject: str, issued_before: float, until: float
    ) -> None:
        """Revoke every token of ``subject`` issued before ``issued_before``."""

    @abc.abstractmethod
    async def aadd_subject(
        self, issuer: str | None, subject: str, issued_before: float, until: float
    ) -> None:
        """Async twin of :meth:`add_subject`."""


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

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: str, now: float) -> tuple[float, float] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= now:
            return None
        return entry

    def check(self, principal: Principal, leeway: float) -> None:
        now = self._clock()
        iss = principal.issuer
        if principal.token_id is not None and self._lookup(
            _key("jti", iss, principal.token_id), now
        ):
            raise TokenRevoked(detail=_BY_JTI)
        if principal.subject is not None:
            entry = self._lookup(_key("sub", iss, principal.subject), now)
            if _revoked(principal, entry[1] if entry else None):
                raise TokenRevoked(detail=_BY_SUBJECT)

    async def acheck(self, principal: Principal, leeway: float) -> None:
        self.check(principal, leeway)

    def _store(self, key: str, until: float, cutoff: float) -> None:
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                now = self._clock()
                for stale in [k for k, (u, _) in self._entries.items() if u <= now]:
                    del self._entries[stale]
                if len(self._entries) >= self.max_entries:
                    # Dropping a live revocation would silently un-revoke a token.
                    logger.error("memory denylist is full (%d entries)", self.max_entries)
                    raise DenylistUnavailable(
                        detail={"store": "memory", "reason": f"full ({self.max_entries} entries)"}
                    )
            previous = self._entries.get(key)
            if previous is not None:
                until = max(until, previous[0])
                cutoff = max(cutoff, previous[1])
            self._entries[key] = (until, cutoff)

    def add_token(self, issuer: str | None, jti: str, until: float) -> None:
        self._store(_key("jti", issuer, jti), until, 0.0)

    async def aadd_token(self, issuer: str | None, jti: str, until: float) -> None:
        self.add_token(issuer, jti, until)

    def add_subject(
        self, issuer: str | None, subject: str, issued_before: float, until: float
    ) -> None:
        self._store(_key("sub", issuer, subject), until, issued_before)

    async def aadd_subject(
        self, issuer: str | None, subject: str, issued_before: float, until: float
    ) -> None:
        self.add_subject(issuer, subject, issued_before, until)


# Stores max(old, new) with the longer of the two lifetimes, atomically: a second revocation
# of a subject with an earlier cut-off, or a shorter-lived token, never weakens the first.
_KEEP_MAX: Final = """
local value = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current > value then value = current end
local left = redis.call('TTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], string.format('%.6f', value), 'EX', ttl)
return 1
"""


class RedisDenylist(Denylist):
    """A denylist in Redis, shared by every instance (``pip install jwt_guard[redis]``).

    ``url_or_client`` is a ``redis://`` URL (sync and async clients are made from it) or a
    ``redis.Redis`` / ``redis.asyncio.Redis`` client. Each check is one ``MGET`` bounded by
    ``timeout`` seconds; when Redis does not answer, requests fail closed with 503
    ``denylist_unavailable`` unless ``fail_open=True`` (then they pass, with a warning log).
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
        try:
            import redis
            import redis.asyncio as aredis
        except ImportError as exc:  # pragma: no cover - only without the redis extra
            raise ConfigurationError("RedisDenylist needs the redis extra") from exc
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")
        self._redis = redis
        self._aredis = aredis
        self.prefix = prefix
        self.fail_open = fail_open
        self.timeout = float(timeout)
        self._clock: Callable[[], float] = clock or time.time
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
            self._sync = url_or_client
        else:
            raise ConfigurationError("url_or_client must be a redis:// URL or a Redis client")

    def __repr__(self) -> str:
        return f"RedisDenylist(prefix={self.prefix!r}, fail_open={self.fail_open})"

    # -- clients ------------------------------------------------------------------------------

    def _sync_client(self) -> Any:
        if self._sync is None:
            if self._url is None:
                raise ConfigurationError("this RedisDenylist has only an async client")
            self._sync = self._redis.Redis.from_url(
                self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._sync

    def _async_client(self) -> Any:
        if self._async_given is not None:
            return self._async_given
        if self._url is None:
            raise ConfigurationError("this RedisDenylist has only a sync client")
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
        if self._sync is not None and self._url is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        client = self._async_by_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # -- keys and decisions ---------------------------------------------------------------------

    def _keys(self, principal: Principal) -> list[str]:
        iss = principal.issuer
        keys = []
        if principal.token_id is not None:
            keys.append(self.prefix + _key("jti", iss, principal.token_id))
        if principal.subject is not None:
            keys.append(self.prefix + _key("sub", iss, principal.subject))
        return keys

    def _decide(self, principal: Principal, keys: list[str], values: list[Any]) -> None:
        found = dict(zip(keys, values, strict=True))
        if principal.token_id is not None and found.get(
            self.prefix + _key("jti", principal.issuer, principal.token_id)
        ):
            raise TokenRevoked(detail=_BY_JTI)
        if principal.subject is not None:
            raw = found.get(self.prefix + _key("sub", principal.issuer, principal.subject))
            try:
                cutoff = float(raw) if raw is not None else None
            except (TypeError, ValueError):
                cutoff = float("inf")  # an unreadable entry fails closed
            if _revoked(principal, cutoff):
                raise TokenRevoked(detail=_BY_SUBJECT)

    def _unavailable(self, exc: BaseException) -> None:
        if self.fail_open:
            logger.warning(
                "Redis denylist unavailable (%s); letting the request through (fail_open)",
                type(exc).__name__,
            )
            return
        logger.warning("Redis denylist unavailable (%s); refusing", type(exc).__name__)
        raise DenylistUnavailable(detail=_redis_down(exc)) from exc

    def _ttl(self, until: float) -> int:
        return max(1, int(until - self._clock() + 0.999))

    # -- drivers --------------------------------------------------------------------------------

    def check(self, principal: Principal, leeway: float) -> None:
        keys = self._keys(principal)
        if not keys:
            return
        try:
            values = self._sync_client().mget(keys)
        except (self._redis.RedisError, OSError) as exc:
            self._unavailable(exc)
            return
        self._decide(principal, keys, values)

    async def acheck(self, principal: Principal, leeway: float) -> None:
        keys = self._keys(principal)
        if not keys:
            return
        try:
            values = await asyncio.wait_for(self._async_client().mget(keys), self.timeout)
        except (TimeoutError, self._redis.RedisError, OSError) as exc:
            self._unavailable(exc)
            return
        self._decide(principal, keys, values)

    def _write_sync(self, key: str, value: str, until: float) -> None:
        try:
            self._sync_client().eval(_KEEP_MAX, 1, self.prefix + key, value, self._ttl(until))
        except (self._redis.RedisError, OSError) as exc:
            # Writes never fail open: a revocation that was not stored must not look stored.
            raise DenylistUnavailable(detail=_redis_down(exc)) from exc

    async def _write_async(self, key: str, value: str, until: float) -> None:
        try:
            await asyncio.wait_for(
                self._async_client().eval(_KEEP_MAX, 1, self.prefix + key, value, self._ttl(until)),
                self.timeout,
            )
        except (TimeoutError, self._redis.RedisError, OSError) as exc:
            raise DenylistUnavailable(detail=_redis_down(exc)) from exc

    def add_token(self, issuer: str | None, jti: str, until: float) -> None:
        self._write_sync(_key("jti", issuer, jti), "1", until)

    async def aadd_token(self, issuer: str | None, jti: str, until: float) -> None:
        await self._write_async(_key("jti", issuer, jti), "1", until)

    def add_subject(
        self, issuer: str | None, subject: str, issued_before: float, until: float
    ) -> None:
        self._write_sync(_key("sub", issuer, subject), repr(float(issued_before)), until)

    async def aadd_subject(
        self, issuer: str | None, subject: str, issued_before: float, until: float
    ) -> None:
        await self._write_async(_key("sub", issuer, subject), repr(float(issued_before)), until)
