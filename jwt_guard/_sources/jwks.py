"""A JWKS fetched over HTTP and cached: :class:`JWKSKeys`, two drivers over one state.

The policy (``_core.jwks_policy``) decides, without I/O, whether a request uses the cached set,
uses it and refreshes in the background, waits for a fetch, or gives up. Only the drivers do
I/O, and both run a fetch the same way: one fetch in flight at a time, shared by every request
that waits for it (single flight), which nobody waits on for longer than a bound:

* async (``akeys``, :mod:`.jwks_async`): one ``asyncio`` task per fetch.
* sync (``keys``, :mod:`.jwks_sync`): one daemon thread per fetch and a
  :class:`threading.Event` that waiters wait on; a lock is held only to start a fetch, never
  across I/O.

A request with a *known* kid never waits for a fetch. A request with an unknown kid waits for
the fetch it triggered (or found in flight) at most ``unknown_kid_wait``; only a cold cache
(nothing usable at all) waits for the whole ``timeout``.

Both fetch with httpx (:mod:`.fetch`): status 200 only, no redirects, one total deadline per
fetch (discovery and JWKS together; :mod:`.deadline`), the body streamed with its compressed
*and* decoded size capped at ``max_bytes``. The state and what both drivers share (the plan
applied, a fetch recorded, fork safety) is :mod:`.jwks_state`; OIDC discovery, on top, is
:mod:`.discovery`.
"""

from __future__ import annotations

from .jwks_async import AsyncDriver
from .jwks_state import JWKSStats
from .jwks_sync import SyncDriver

__all__ = ["JWKSKeys", "JWKSStats"]


class JWKSKeys(SyncDriver, AsyncDriver):
    """Keys from a JWKS URL, cached and refreshed (see the module docstring for the policy).

    ``keys``/``akeys`` never raise for a provider that is down while a good set is cached
    (up to ``max_stale`` past its TTL); with nothing usable they raise
    :class:`KeySourceUnavailable` (HTTP 503).
    """
