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
* the denylist: a revoked ``jti`` or subject is refused (the drivers ask it, after the hit).

The cache is bounded and first in, first out: a hit reorders nothing, so lookups take no lock
(only insertions and removals do). A token that outlives its place is simply verified again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from cachetools import FIFOCache

from ._claims import check_times
from ._errors import TokenExpired
from ._keys import JWK
from ._metrics import Metrics
from ._policy import Policy
from ._principal import Principal

__all__ = ["Entry", "VerifiedTokens"]

# NamedTuples on the hot path are built with the C-level tuple constructor: the generated
# ``__new__`` is Python code and costs more than everything it stores.
_new = tuple.__new__


class Entry(NamedTuple):
    """One verified token: its principal, what verified it, and its time claims."""

    principal: Principal
    key: JWK
    policy: Policy
    exp: float | None
    nbf: float | None
    iat: float | None
    kid: str | None


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
        self._entries: FIFOCache[str, Entry] | None = FIFOCache(maxsize=size) if size else None
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

    def get(self, token: str) -> Entry | None:
        """The entry for ``token`` if its time claims still hold, else ``None``; raises
        :class:`TokenExpired` (and forgets the token) once they do not."""
        entries = self._entries
        if entries is None or type(token) is not str:
            return None
        try:
            entry = entries[token]
        except KeyError:  # absent, or evicted by another thread a moment ago
            if self._lookups is not None:
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
        token: str,
        principal: Principal,
        key: JWK,
        policy: Policy,
        exp: float | None,
        payload: Mapping[str, Any],
        kid: str | None,
    ) -> None:
        """Remember a token that just passed every check. ``nbf`` and ``iat`` must already be
        validated NumericDates (or absent) in ``payload``."""
        entries = self._entries
        if entries is None:
            return
        nbf, iat = payload.get("nbf"), payload.get("iat")
        entry = _new(Entry, (principal, key, policy, exp, nbf, iat, kid))
        with self._lock:
            entries[token] = entry

    def forget(self, token: str) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries.pop(token, None)

    def clear(self) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries.clear()
