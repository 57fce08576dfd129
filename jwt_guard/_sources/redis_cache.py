"""A cache shared by every worker and instance, in Redis: :class:`RedisCache`.

What a fetch from the identity provider gives (a JWKS document with its fetch time, an
introspection answer) is worth having once for the whole cluster: one refresh instead of one
per worker, and a worker that starts while the provider is down starts warm. ``get``/``set``
(and the ``a``-twins) are the interface a key source or the introspection cache uses; a short
lock (``SET NX PX``, :meth:`RedisCache.lock`) lets one worker fetch while the others use the
shared copy.

A cache, not a store of decisions: a Redis that fails makes every call here answer "nothing
there" (``None``, no lock) at once, logged once per outage, and the caller does what it does
without a shared cache; nothing is ever refused because of Redis alone. The connection handling
(URL or client, timeout, one retry after a restart, known-down interval, fork safety) is
:mod:`.redis_connection`'s, as for the denylist.

Anyone who can write to that Redis could put there a key set or an introspection answer this
library would trust, and so mint any token (review R27-8). ``integrity_key=`` is therefore
required: each entry carries an HMAC-SHA256 of its name and value, and an entry without a valid
one is ignored with a WARNING. Running without it takes the loudly named
``trust_redis_writers=True``, and logs a WARNING at start-up naming the risk and the fix.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from .._core.errors import ConfigurationError
from .redis_connection import DOWN_INTERVAL, RedisConnection

__all__ = ["MIN_INTEGRITY_KEY", "RedisCache", "check_integrity_key"]

logger = logging.getLogger("jwt_guard")

#: The shortest integrity key taken, in bytes: an HMAC-SHA256 key (RFC 2104 §3: not less
#: than the output length), the same floor as HMAC secrets for tokens.
MIN_INTEGRITY_KEY: Final = 32

#: What marks an entry that carries a MAC (the MAC follows, then the value).
_MAC_TAG: Final = b"m1:"
_MAC_LEN: Final = 32
#: Forged entries remembered (to warn once about each), at most.
_MAX_FORGED_NAMES: Final = 1024

# Deletes a lock only if it is still ours (another worker's lock, taken after ours expired,
# stays).
_UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCache:
    """A cache in Redis shared by workers and instances (``pip install jwt_guard[redis]``).

    ``url_or_client`` is a ``redis://`` URL (sync and async clients are made from it) or a
    ``redis.Redis`` / ``redis.asyncio.Redis`` client, as for :class:`RedisDenylist`. Every call
    is bounded by ``timeout`` seconds and never raises for Redis: a failed read is a miss, a
    failed write or lock is skipped, and the caller goes on as without a shared cache.

    Give it to a key source (``JWKSKeys(url, shared_cache=cache)``, ``OIDCDiscovery``, the
    presets, ``JWT_GUARD_SHARED_CACHE_URL``) to share its documents, and to
    ``Introspection(..., shared_cache=cache)`` to share introspection answers.

    ``integrity_key`` (required: bytes or text of at least 32 bytes, the same on every
    instance, e.g. ``secrets.token_hex(32)`` kept with the app's other secrets): each entry is
    stored with an HMAC-SHA256 of its name and value, and one without a valid MAC (written by
    anyone else who can write to this Redis) is ignored with a WARNING. Without it, whoever
    can write to this Redis could store a key set or an introspection answer of their own
    making and so forge any token: ``trust_redis_writers=True`` runs without it on a Redis
    only this deployment can write, and logs a WARNING at start-up saying so.
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str = "jwt_guard:cache:",
        timeout: float = 0.5,
        integrity_key: str | bytes | None = None,
        trust_redis_writers: bool = False,
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")
        self._conn = RedisConnection(url_or_client, timeout=timeout, owner="RedisCache")
        integrity_key = check_integrity_key(integrity_key, trust_redis_writers)
        self.prefix = prefix
        self.timeout = self._conn.timeout
        self._integrity = integrity_key
        # A ConfigurationError: a client handed in of the other kind (see _failed).
        self._errors: tuple[type[BaseException], ...] = (ConfigurationError, *self._conn.errors)
        #: Redis failed (logged once): calls answer at once without it for DOWN_INTERVAL.
        self._down = False
        self._down_at = 0.0
        self._forged: set[str] = set()

    def __repr__(self) -> str:
        integrity = "on" if self._integrity is not None else "off"
        return f"RedisCache(prefix={self.prefix!r}, integrity={integrity})"

    def close(self) -> None:
        """Close the sync client made from the URL (a given client is yours)."""
        self._conn.close()

    async def aclose(self) -> None:
        """Close the async client made for the running loop."""
        await self._conn.aclose()

    # -- entries ------------------------------------------------------------------------------

    def _seal(self, name: str, value: bytes) -> bytes:
        if self._integrity is None:
            return value
        return _MAC_TAG + self._mac(name, value) + value

    def _mac(self, name: str, value: bytes) -> bytes:
        assert self._integrity is not None
        # The entry's name is in the MAC: an entry copied under another name does not verify.
        message = name.encode() + b"\0" + value
        return hmac.new(self._integrity, message, hashlib.sha256).digest()

    def _open(self, name: str, raw: object) -> bytes | None:
        if raw is None:
            return None
        if not isinstance(raw, bytes):  # a client made with decode_responses=True
            raw = str(raw).encode()
        if self._integrity is None:
            return raw
        head, mac = raw[: len(_MAC_TAG)], raw[len(_MAC_TAG) : len(_MAC_TAG) + _MAC_LEN]
        value = raw[len(_MAC_TAG) + _MAC_LEN :]
        if head != _MAC_TAG or not hmac.compare_digest(mac, self._mac(name, value)):
            # Once per entry name: a forged entry stays there until it expires. Bounded: the
            # names looked up follow the tokens presented.
            if name not in self._forged:
                if len(self._forged) >= _MAX_FORGED_NAMES:
                    self._forged.clear()
                self._forged.add(name)
                logger.warning(
                    "shared cache entry %s in Redis has no valid MAC (integrity_key): ignored; "
                    "someone else writes to this Redis, or an instance has another "
                    "integrity_key",
                    name,
                )
            return None
        self._forged.discard(name)
        return value

    # -- calls: never raise for Redis --------------------------------------------------------

    def _skip(self) -> bool:
        """Redis failed less than DOWN_INTERVAL ago: answer at once, as without a cache (a
        Redis that accepts and never answers would otherwise cost a timeout per call)."""
        return self._down and 0 <= time.monotonic() - self._down_at < DOWN_INTERVAL

    def _failed(self, exc: BaseException) -> None:
        self._down_at = time.monotonic()
        if isinstance(exc, ConfigurationError):
            # A client handed in of the other kind (a sync client under an ASGI app).
            if not self._down:
                logger.error(
                    "shared cache not used: %s; give RedisCache a redis:// URL to use it from "
                    "both drivers",
                    exc.description,
                )
        elif not self._down:
            logger.warning(
                "shared cache (Redis) unavailable (%s); going on without it until it answers",
                type(exc).__name__,
            )
        self._down = True

    def _answered(self) -> None:
        if self._down:
            self._down = False
            logger.info("shared cache (Redis) answers again")

    def _call(self, command: Callable[[Any], Any]) -> tuple[bool, Any]:
        if self._skip():
            return False, None
        try:
            answer = self._conn.call(command)
        except self._errors as exc:
            self._failed(exc)
            return False, None
        self._answered()
        return True, answer

    async def _acall(self, command: Callable[[Any], Awaitable[Any]]) -> tuple[bool, Any]:
        if self._skip():
            return False, None
        try:
            answer = await self._conn.acall(command)
        except self._errors as exc:
            self._failed(exc)
            return False, None
        self._answered()
        return True, answer

    # -- the interface ------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` (absent, forged, or Redis failed)."""
        name = self.prefix + key
        _, raw = self._call(lambda c: c.get(name))
        return self._open(name, raw)

    async def aget(self, key: str) -> bytes | None:
        """:meth:`get` for the async driver."""
        name = self.prefix + key
        _, raw = await self._acall(lambda c: c.get(name))
        return self._open(name, raw)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds; a failure is logged, skipped."""
        name = self.prefix + key
        sealed, px = self._seal(name, value), _milliseconds(ttl)
        self._call(lambda c: c.set(name, sealed, px=px))

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """:meth:`set` for the async driver."""
        name = self.prefix + key
        sealed, px = self._seal(name, value), _milliseconds(ttl)
        await self._acall(lambda c: c.set(name, sealed, px=px))

    def lock(self, key: str, ttl: float) -> str | None:
        """Take the lock ``key`` for ``ttl`` seconds (``SET NX PX``).

        A token to :meth:`unlock` with, or ``None`` while another worker holds it. Without Redis
        the token is ``""``: go ahead, nobody coordinates."""
        name, token = self.prefix + key, secrets.token_hex(8)
        ok, taken = self._call(lambda c: c.set(name, token, nx=True, px=_milliseconds(ttl)))
        return (token if taken else None) if ok else ""

    async def alock(self, key: str, ttl: float) -> str | None:
        """:meth:`lock` for the async driver."""
        name, token = self.prefix + key, secrets.token_hex(8)
        ok, taken = await self._acall(lambda c: c.set(name, token, nx=True, px=_milliseconds(ttl)))
        return (token if taken else None) if ok else ""

    def unlock(self, key: str, token: str) -> None:
        """Release a lock taken with :meth:`lock` if it is still ours (else it expires)."""
        if token:
            self._call(lambda c: c.eval(_UNLOCK, 1, self.prefix + key, token))

    async def aunlock(self, key: str, token: str) -> None:
        """:meth:`unlock` for the async driver."""
        if token:
            await self._acall(lambda c: c.eval(_UNLOCK, 1, self.prefix + key, token))


def check_integrity_key(key: object, trust_redis_writers: object) -> bytes | None:
    """``integrity_key`` as bytes, or ``None`` under ``trust_redis_writers=True`` (with the
    start-up WARNING); anything else a :class:`ConfigurationError` naming the fix.

    Strength is checked by length only (RFC 2104 §3: a key shorter than the hash's output
    weakens the MAC; the floor of HMAC secrets for tokens): how random the bytes are cannot
    be told from them, so the message names a generator."""
    if not isinstance(trust_redis_writers, bool):
        raise ConfigurationError("trust_redis_writers must be True or False")
    if key is None:
        if not trust_redis_writers:
            raise ConfigurationError(
                "RedisCache needs integrity_key= (at least 32 bytes, e.g. secrets.token_hex(32), "
                "the same on every instance): without it anyone who can write to this Redis "
                "could store a key set or an introspection answer this library trusts, and so "
                "forge any token; on a Redis only this deployment can write, "
                "trust_redis_writers=True runs without it"
            )
        logger.warning(
            "RedisCache(trust_redis_writers=True): shared cache entries carry no MAC, so "
            "anyone who can write to this Redis can forge any token (a key set or an "
            "introspection answer of their own); give RedisCache(integrity_key=...) (at "
            "least 32 bytes, the same on every instance) instead"
        )
        return None
    if trust_redis_writers:
        raise ConfigurationError(
            "RedisCache: give integrity_key= or trust_redis_writers=True, not both "
            "(integrity_key= checks every entry: drop trust_redis_writers)"
        )
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise ConfigurationError("integrity_key must be bytes or a string")
    if len(key) < MIN_INTEGRITY_KEY:
        raise ConfigurationError(
            f"integrity_key must be at least {MIN_INTEGRITY_KEY} bytes (e.g. "
            "secrets.token_hex(32), the same on every instance)"
        )
    return key


def _milliseconds(ttl: float) -> int:
    return max(1, int(ttl * 1000))
