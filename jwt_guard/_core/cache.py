"""The verified-token cache: a token seen before skips parsing and its signature check.

Why a hit is safe. An entry is keyed by the exact token string and made only after those very
bytes passed every step with this very verifier: syntax, header rules, the routing to its
issuer's policy, the signature, and every claim rule. A verifier's configuration is fixed at
construction, so for the same bytes those steps would give the same answer again. Failures are
never cached, so a token is never refused from memory either.

What can change between two presentations of the same token is checked on *every* hit:

* time: ``exp``, ``nbf``, ``iat`` and ``max_token_age`` against the clock, here in
  :meth:`VerifiedTokens.get` (the same rule function as a fresh verification);
* the key: the key that verified the signature must still be in the issuer's key set, or the
  entry is dropped and the token verified afresh (a rotated-out or revoked key stops working
  at once) — the drivers check this, because asking a key source may need I/O;
* the denylist: a revoked ``jti`` or subject is refused (the drivers ask it, after the hit);
* the ``validate_each_request`` hooks (the drivers ask them after the denylist).

The claim rules, ``validate`` hooks included, are not asked again: they are part of verifying
the bytes, and their answer is taken to hold for the token's life (the docs say so where
they are configured; a rule that can change belongs in ``validate_each_request``).

The cache is bounded and first in, first out: a hit reorders nothing, so lookups take no lock
(only insertions and removals do). A token that outlives its place is simply verified again.

Keys are the token's bytes, exactly as the request carried them (the ASGI scope hands us bytes;
a ``str`` token is encoded once by the verifier). The store is a C ``OrderedDict``: a lookup is
one dict probe, an insertion one store plus, when full, an O(1) ``popitem(last=False)``.
(cachetools' ``FIFOCache`` did the same through several Python-level calls, about a microsecond
per insertion; a plain ``dict`` would make each eviction scan the holes left by earlier ones.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from .claims import check_times
from .errors import TokenExpired
from .keys import JWK
from .keyset import KeySet, KeySource
from .metrics import Metrics
from .policy import Policy
from .principal import Principal

__all__ = ["Entry", "VerifiedTokens"]

# NamedTuples on the hot path are built with the C-level tuple constructor: the generated
# ``__new__`` is Python code and costs more than everything it stores.
_new = tuple.__new__
_INF: Final = float("inf")
#: How far inside its time window a hit must be to skip :func:`check_times`. The window is
#: computed once (``exp + leeway`` and so on); one second of margin covers any rounding of
#: those sums, so a hit near an edge is judged by the very same rule function as a fresh
#: token, and the window can only ever refuse less than the rule, never accept more.
_EDGE: Final = 1.0


class Entry(NamedTuple):
    """One verified token: its principal, what verified it, and its time claims."""

    principal: Principal
    key: JWK
    policy: Policy
    exp: float | None
    nbf: float | None
    iat: float | None
    kid: str | None
    #: The key set the key was found in (a hit with the same set skips the membership test).
    key_set: KeySet | None
    #: The source a hit asks for its current key set; ``None`` for a source whose key set never
    #: changes (``KeySource.fixed``) once the key was found in that very set.
    recheck: KeySource | None
    #: ``[valid_from, valid_until)``: inside it, with the ``_EDGE`` margin, every time rule
    #: holds (see :meth:`VerifiedTokens.hit`).
    valid_from: float
    valid_until: float


class VerifiedTokens:
    """Verified tokens remembered, up to ``size`` (``0``: nothing is remembered)."""

    def __init__(
        self,
        size: int,
        clock: Callable[[], float],
        leeway: float,
        max_age: float | None,
        metrics: Metrics | None = None,
    ) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, Entry] | None = OrderedDict() if size else None
        #: ``dict.get`` of the store, bound once (always ``None`` with the cache off).
        empty: dict[bytes, Entry] = {}
        self._lookup: Callable[[bytes], Entry | None] = (
            self._entries.get if self._entries is not None else empty.get
        )
        # The metrics' [misses, hits] list, bumped inline: the hit path stays call-free.
        self._lookups = metrics.lookups if metrics is not None else None
        self._lock = threading.Lock()
        self._clock = clock
        self._leeway = leeway
        self._max_age = max_age

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0

    def __contains__(self, token: object) -> bool:
        return self._entries is not None and token in self._entries

    def hit(self, token: bytes) -> Principal | None:
        """The principal of ``token`` when it is remembered and, right now, every check of a
        hit passes without any I/O: its time window (with a margin, see ``_EDGE``) and its key
        still in the key set its source holds. ``None`` otherwise: the caller then takes the
        full path (:meth:`get` and the drivers), which decides, raises the right error, or
        fetches a key set. Not counted in the metrics: the caller counts the hit with its
        verification, in one step."""
        entry = self._lookup(token)
        if entry is None:
            return None
        now = self._clock()
        if not entry.valid_from <= now < entry.valid_until:
            return None
        source = entry.recheck
        if source is not None:
            key_set = source.ready(entry.kid)
            if key_set is not entry.key_set and (key_set is None or entry.key not in key_set):
                return None
        return entry.principal

    def get(self, token: bytes) -> Entry | None:
        """The entry for ``token`` if its time claims still hold, else ``None``; raises
        :class:`TokenExpired` (and forgets the token) once they do not."""
        entry = self._lookup(token)
        if entry is None:  # absent, or evicted by another thread a moment ago
            if self._lookups is not None and self._entries is not None:
                self._lookups[0] += 1
            return None
        if self._lookups is not None:
            self._lookups[1] += 1
        try:
            check_times(entry.exp, entry.nbf, entry.iat, self._clock(), self._leeway, self._max_age)
        except TokenExpired:
            self.forget(token)
            raise
        return entry

    def put(
        self,
        token: bytes,
        principal: Principal,
        key: JWK,
        policy: Policy,
        exp: float | None,
        payload: Mapping[str, Any],
        kid: str | None,
        key_set: KeySet | None = None,
    ) -> None:
        """Remember a token that just passed every check. ``nbf`` and ``iat`` must already be
        validated NumericDates (or absent) in ``payload``."""
        entries = self._entries
        if entries is None:
            return
        nbf, iat = payload.get("nbf"), payload.get("iat")
        leeway = self._leeway
        # The window in which check_times() passes (RFC 7519 §4.1.4-4.1.6, max_token_age),
        # narrowed by _EDGE on both sides.
        valid_from = -_INF
        if nbf is not None:
            valid_from = nbf - leeway + _EDGE
        if iat is not None:
            valid_from = max(valid_from, iat - leeway + _EDGE)
        valid_until = exp + leeway - _EDGE if exp is not None else _INF
        if self._max_age is not None and iat is not None:
            valid_until = min(valid_until, iat + self._max_age + leeway - _EDGE)
        source: KeySource | None = policy.keys
        if source is not None and source.fixed and key_set is source.ready(kid):
            source = None
        entry = _new(
            Entry,
            (principal, key, policy, exp, nbf, iat, kid, key_set, source, valid_from, valid_until),
        )
        with self._lock:
            if token not in entries and len(entries) >= self._size:
                entries.popitem(last=False)
            entries[token] = entry

    def forget(self, token: bytes) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries.pop(token, None)

    def forget_policy(self, policy: Policy) -> None:
        """Forget every token verified under ``policy`` (a tenant's, dropped from its LRU)."""
        if self._entries is not None:
            with self._lock:
                for token in [t for t, e in self._entries.items() if e.policy is policy]:
                    del self._entries[token]

    def clear(self) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries.clear()
