"""The verifier's two drivers: ``verify`` (sync: WSGI, the CLI) and ``averify`` (async: ASGI).

They run the core's steps (``_core.steps``) in order and do the only I/O between them: the key
set for a token (``keys`` or ``akeys`` of its key source, unless ``ready`` answers at once), and
after the token's own checks the certificate binding (RFC 8705, no I/O), the denylist and the
DPoP replay cache. A token verified before is
answered from the verified-token cache (``_core.cache``), its key still checked against the
current key set. The two differ only in how they call those sources.

With an introspection endpoint (RFC 7662, :mod:`.introspection`), a token that is not a compact
JWS (not three segments), or every token when the verifier has no keys, is introspected instead:
its cached answer, or one call per token in flight, judged by the same rules (``Steps._admit``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any

from .._core.cache import Entry, VerifiedTokens
from .._core.certificates import check_certificate_binding, check_thumbprint, der_thumbprint
from .._core.errors import ConfigurationError, JWTGuardError, TokenTooLarge
from .._core.introspection import (
    Introspected,
    IntrospectionSource,
    NoKeys,
    check_opaque_token,
)
from .._core.keyset import KeySource
from .._core.metrics import Metrics
from .._core.policy import Policy
from .._core.principal import Principal
from .._core.revocation import Denylist, RevocationKeys, revocation_keys
from .._core.steps import Steps, token_bytes

__all__ = ["Drivers"]


class Drivers(Steps):
    """``verify`` and ``averify``: the steps in order, and the I/O between them."""

    # Set by Verifier.__init__.
    metrics: Metrics | None
    _denylist: Denylist | None
    _mtls: bool
    _no_after_steps: bool
    _each_request: bool
    _cached: Callable[[bytes], Entry | None]
    _forget: Callable[[bytes], None]
    _cache: VerifiedTokens
    _retired: list[Policy]
    _draining: weakref.WeakValueDictionary[int, KeySource]
    #: The policy opaque tokens are introspected for (None: no introspection), and whether
    #: it has no keys (then every token is introspected).
    _opaque: Policy | None
    _keyless: bool

    def verify(
        self,
        token: str | bytes,
        *,
        dpop_proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
        client_certificate: bytes | None = None,
        certificate_thumbprint: str | None = None,
    ) -> Principal:
        """Verify ``token`` (text, or the ASCII bytes of a header) and return its principal;
        may block on a key fetch (WSGI, CLI).

        With ``Verifier(dpop=...)``, ``dpop_proof`` is the request's ``DPoP`` header, checked
        against the request's ``method`` and ``url`` (RFC 9449); without a proof the token is
        taken as a Bearer token.

        With ``Verifier(mtls=True)``, ``client_certificate`` is the DER certificate the client
        presented over mutual TLS (or ``certificate_thumbprint``, its base64url SHA-256, where
        a proxy gives only that): a token with ``cnf.x5t#S256`` must be bound to it (RFC 8705
        §3), checked on every call, a cached token's too.
        """
        token = token_bytes(token)
        principal = self._authenticate(token)
        if (
            self._no_after_steps
            and dpop_proof is None
            and client_certificate is None
            and certificate_thumbprint is None
        ):
            return principal
        thumbprint = self._thumbprint(client_certificate, certificate_thumbprint)
        return self._after_steps(principal, token, dpop_proof, method, url, thumbprint)

    async def averify(
        self,
        token: str | bytes,
        *,
        dpop_proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
        client_certificate: bytes | None = None,
        certificate_thumbprint: str | None = None,
    ) -> Principal:
        """Verify ``token`` without blocking the event loop (ASGI); DPoP and the client
        certificate as in :meth:`verify`."""
        token = token_bytes(token)
        principal = await self._aauthenticate(token)
        if (
            self._no_after_steps
            and dpop_proof is None
            and client_certificate is None
            and certificate_thumbprint is None
        ):
            return principal
        thumbprint = self._thumbprint(client_certificate, certificate_thumbprint)
        return await self._aafter_steps(principal, token, dpop_proof, method, url, thumbprint)

    def _thumbprint(self, certificate: bytes | None, thumbprint: str | None) -> str | None:
        """The presented certificate's RFC 8705 §3.1 thumbprint, from its DER bytes or given."""
        if certificate is None and thumbprint is None:
            return None
        if not self._mtls:
            # Never ignored silently: a caller passing a certificate expects it to be checked.
            raise ConfigurationError(
                "client_certificate= needs Verifier(mtls=True) (RFC 8705 certificate binding)"
            )
        if certificate is not None:
            if thumbprint is not None:
                raise ConfigurationError("give client_certificate or certificate_thumbprint")
            if not isinstance(certificate, (bytes, bytearray, memoryview)):
                raise ConfigurationError("client_certificate must be the DER bytes")
            return der_thumbprint(bytes(certificate))
        return check_thumbprint(thumbprint)

    def _authenticate(self, token: bytes) -> Principal:
        """Everything but the denylist and DPoP (sync driver)."""
        opaque = self._opaque
        if opaque is None:
            return self._authenticate_jwt(token)
        if self._keyless or token.count(b".") != 2:
            return self._introspected(token, opaque)
        principal = self._authenticate_jwt(token)
        if self._introspects_jwt(principal, opaque):
            self._introspected(token, opaque, principal)  # still active at the server?
        return principal

    async def _aauthenticate(self, token: bytes) -> Principal:
        """Everything but the denylist and DPoP (async driver)."""
        opaque = self._opaque
        if opaque is None:
            return await self._aauthenticate_jwt(token)
        if self._keyless or token.count(b".") != 2:
            return await self._aintrospected(token, opaque)
        principal = await self._aauthenticate_jwt(token)
        if self._introspects_jwt(principal, opaque):
            await self._aintrospected(token, opaque, principal)
        return principal

    def _introspects_jwt(self, principal: Principal, opaque: Policy) -> bool:
        source = opaque.introspection
        return (
            source is not None
            and source.introspect_jwts
            and self._route(principal.claims) is opaque
        )

    def _introspected(
        self, token: bytes, policy: Policy, verified: Principal | None = None
    ) -> Principal:
        source, key, entry = self._introspection_lookup(token, policy)
        if entry is None:
            entry = source.introspect(token, key, self._admission(policy, key, verified))
        return entry.outcome()  # type: ignore[no-any-return]

    async def _aintrospected(
        self, token: bytes, policy: Policy, verified: Principal | None = None
    ) -> Principal:
        source, key, entry = self._introspection_lookup(token, policy)
        if entry is None:
            entry = await source.aintrospect(token, key, self._admission(policy, key, verified))
        return entry.outcome()  # type: ignore[no-any-return]

    def _admission(
        self, policy: Policy, key: bytes, verified: Principal | None
    ) -> Callable[[dict[str, Any]], Introspected]:
        """How a response is judged: an opaque token's by the rules of the policy's tokens; a
        JWT ``verified`` locally only for "still active?" (review R27-9)."""
        if verified is None:
            return lambda response: self._admit(policy, key, response)
        return lambda response: self._admit_jwt(policy, key, verified, response)

    def _introspection_lookup(
        self, token: bytes, policy: Policy
    ) -> tuple[IntrospectionSource, bytes, Introspected | None]:
        """The endpoint, the token's cache key and its cached entry (``None``: a call)."""
        # The size limit holds for every token: a huge one is never sent to the endpoint.
        if len(token) > self._max_bytes:
            raise TokenTooLarge(detail={"length": len(token), "limit": self._max_bytes})
        check_opaque_token(token)
        source = policy.introspection
        assert source is not None
        key = self._introspection_key(token, policy)
        entry = source.cache.get(key)
        if self.metrics is not None:
            self.metrics.introspection_lookup(entry is not None)
        return source, key, entry

    def _authenticate_jwt(self, token: bytes) -> Principal:
        """A compact JWS: everything but the denylist and DPoP (sync driver)."""
        cached = self._cached(token)
        if cached is not None:
            if cached.key in cached.policy.keys.keys(cached.kid):
                return cached.principal
            self._forget(token)
        if self.metrics is not None:
            return self._timed(self._fresh, token)
        return self._fresh(token)

    def _fresh(self, token: bytes) -> Principal:
        pending = self._begin(token)
        if type(pending.policy.keys) is NoKeys:  # an issuer whose every token is introspected
            return self._introspected(token, pending.policy)
        if self._retired:
            self._close_retired()
        key_set = pending.policy.keys.keys(pending.header.kid)
        return self._finish(token, pending, key_set)

    def _timed(self, fresh: Callable[[bytes], Principal], token: bytes) -> Principal:
        assert self.metrics is not None
        started = perf_counter()
        try:
            principal = fresh(token)
        except JWTGuardError as exc:
            self.metrics.fresh_verification(exc.code, perf_counter() - started)
            raise
        self.metrics.fresh_verification("valid", perf_counter() - started)
        return principal

    async def _aauthenticate_jwt(self, token: bytes) -> Principal:
        """A compact JWS: everything but the denylist and DPoP (async driver)."""
        cached = self._cached(token)
        if cached is not None:
            source = cached.policy.keys
            key_set = source.ready(cached.kid)
            if key_set is None:
                key_set = await source.akeys(cached.kid)
            if cached.key in key_set:
                return cached.principal
            self._forget(token)
        if self.metrics is None:
            return await self._afresh(token)
        started = perf_counter()
        try:
            principal = await self._afresh(token)
        except JWTGuardError as exc:
            self.metrics.fresh_verification(exc.code, perf_counter() - started)
            raise
        self.metrics.fresh_verification("valid", perf_counter() - started)
        return principal

    async def _afresh(self, token: bytes) -> Principal:
        pending = self._begin(token)
        if type(pending.policy.keys) is NoKeys:
            return await self._aintrospected(token, pending.policy)
        if self._retired:
            await self._aclose_retired()
        source = pending.policy.keys
        key_set = source.ready(pending.header.kid)
        if key_set is None:
            key_set = await source.akeys(pending.header.kid)
        return self._finish(token, pending, key_set)

    def _retire(self) -> Policy | None:
        """The next tenant policy dropped from its LRU (routing a new tenant drops the least
        recently used beyond ``max_tenants``), its cached tokens forgotten: they would ask its
        closed key source again. ``None`` when there is none left."""
        try:
            policy = self._retired.pop()
        except IndexError:  # another request took the last one
            return None
        self._cache.forget_policy(policy)
        return policy

    # Retired, not closed: a request routed to the tenant before it left the LRU may be waiting
    # on its fetch (closing would cancel it: a 500 under uvicorn, or abort its sockets: a 503
    # for a good token). ``retire`` lets that fetch end and closes the client after it; the
    # verifier's own close closes what is still in flight then (``_draining``: weak, so a
    # retired source nobody uses any more is simply collected).
    def _close_retired(self) -> None:
        while (policy := self._retire()) is not None:
            self._drain(policy.keys)
            policy.keys.retire()

    async def _aclose_retired(self) -> None:
        while (policy := self._retire()) is not None:
            self._drain(policy.keys)
            await policy.keys.aretire()

    def _drain(self, source: KeySource) -> None:
        with contextlib.suppress(TypeError):  # a source of the app's own: no weak reference
            self._draining[id(source)] = source

    def _after_steps(
        self,
        principal: Principal,
        token: bytes,
        proof: str | None,
        method: str | None,
        url: str | None,
        thumbprint: str | None = None,
    ) -> Principal:
        if self._mtls:
            check_certificate_binding(principal.claims, thumbprint)
        dpop, checked = self._check_dpop(principal, token, proof, method, url)
        if self._denylist is not None:
            self._denylist.check(self._revocation_keys(principal), principal.claims.get("iat"))
        if self._each_request:
            self._route(principal.claims).rules.check_each_request(principal.claims)
        if dpop is not None and checked is not None:
            dpop.record(checked, self._clock())
        return principal

    async def _aafter_steps(
        self,
        principal: Principal,
        token: bytes,
        proof: str | None,
        method: str | None,
        url: str | None,
        thumbprint: str | None = None,
    ) -> Principal:
        if self._mtls:
            check_certificate_binding(principal.claims, thumbprint)
        dpop, checked = self._check_dpop(principal, token, proof, method, url)
        if self._denylist is not None:
            keys = self._revocation_keys(principal)
            await self._denylist.acheck(keys, principal.claims.get("iat"))
        if self._each_request:
            self._route(principal.claims).rules.check_each_request(principal.claims)
        if dpop is not None and checked is not None:
            await dpop.arecord(checked, self._clock())
        return principal

    def _revocation_keys(self, principal: Principal) -> RevocationKeys:
        # Scoped by the configured issuer the token was verified for; a verifier that names
        # no issuer accepts any "iss", so its revocations do not depend on it either.
        scope = principal.issuer if self._config.names_issuers else None
        return revocation_keys(scope, principal.token_id, principal.subject)
