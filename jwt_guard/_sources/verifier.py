"""The :class:`Verifier`: options validated into policies, the two drivers
(:mod:`.drivers`) over the core's steps (``_core.steps``), and revocation.

    token ─► 1 size, syntax, split ─► 2 header: alg allowed, crit, b64, kid (cached per header)
          ─► 3 payload JSON ─► 4 route by configured issuer, its typ ─► 5 key set (I/O: driver)
          ─► 6 signature ─► 7 claims ─► 8 denylist (I/O: driver) ─► Principal

Steps 1-4, 6 and 7 do no I/O (``_core.steps``); ``verify`` and ``averify`` (:mod:`.drivers`)
differ only in how they call the key source and the denylist. The options become policies in
``_core.policy`` (step 4 routes among them); a verified token is remembered in ``_core.cache``,
whose docstring says what a hit skips and what it never skips. Revoking a token or a subject
is here (what an entry covers and for how long: ``_core.revocation``).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from .._core.cache import VerifiedTokens
from .._core.claims import Validator
from .._core.dpop import DPoP
from .._core.errors import ClaimMissing, ConfigurationError
from .._core.introspection import TOKEN_KEY_SIZE, IntrospectionSource, NoKeys, token_key
from .._core.keyset import KeySource
from .._core.log import logger
from .._core.metrics import Metrics, resolve_metrics
from .._core.parse import DEFAULT_MAX_TOKEN_BYTES
from .._core.policy import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_ROLES_CLAIM,
    DEFAULT_SCOPES_CLAIM,
    TrustedIssuer,
    configure,
)
from .._core.principal import Principal
from .._core.profiles import Profile, check_verifier_options
from .._core.revocation import Denylist, revocation_keys, subject_lifetime, token_lifetime
from .._core.steps import token_bytes
from .._core.tenants import TenantIssuer
from .config import options_from_env, overridden_settings
from .drivers import Drivers

__all__ = ["Verifier"]


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


class Verifier(Drivers):
    """Verifies compact JWS access tokens and returns a :class:`Principal`.

    Give either ``keys`` (one key source, optionally with ``issuer``) or ``issuers`` (several
    :class:`TrustedIssuer`). ``algorithms`` names the accepted ``alg`` values; left out with
    keys from a JWKS URL or discovery, each published key verifies its own (its ``alg``, else
    the one its type and curve imply; never HS*, RFC 8725 §3.1). Everything is validated here
    and raises :class:`ConfigurationError`; a running verifier only raises errors about tokens.

    A token bound to a key (``cnf``, RFC 7800) is refused unless the binding is checked here:
    ``cnf.jkt`` with ``dpop=DPoP(...)`` (RFC 9449), ``cnf.x5t#S256`` with ``mtls=True`` (RFC
    8705: the client certificate is passed to ``verify``/``averify`` as ``client_certificate``,
    by the middleware from its ``client_certificate=`` source; checked on every request, a
    cached token's too). ``accept_bound_tokens_as_bearer=True``
    accepts the bindings this verifier cannot check as plain Bearer tokens: only when
    something in front of the app checks them (a proxy terminating mTLS, RFC 8705).

    ``validate`` and the claim rules (``claims``, ``issuer``, ``audience``...) are part of
    verifying a token: they run once, at its first verification, and a cached token is not
    asked again. ``validate_each_request`` runs on every request, a cached token's too, after
    every other check: for a rule whose answer can change while the token lives (a disabled
    user, a suspended tenant).

    ``profile="rfc9068"`` holds every token to the JWT access token profile (RFC 9068): header
    ``typ`` ``at+jwt``, the claims of its §2.2, an issuer and an audience configured; ID tokens
    are refused. ``profile="fapi2"`` to the FAPI 2.0 Security Profile's resource-server rules:
    sender-constrained tokens only (``dpop=`` or ``mtls=`` needed), PS256/ES256/Ed25519, an
    issuer and an audience, tokens in the header only. A name, a list of names or names joined
    by ``+`` (``_core.profiles``).

    ``scope_implies`` maps a broader scope to the narrower scopes it implies
    (``{"notes:admin": ["notes:write"], "notes:write": ["notes:read"]}``): transitive, cycles
    refused here. Every scope decision honours it (``require_scopes``, ``Principal.has_scopes``,
    MCP ``tool_scopes``); ``Principal.scopes`` stays the token's own and
    ``Principal.effective_scopes`` adds the implied ones. Per issuer: ``TrustedIssuer``.

    ``introspection=Introspection(...)`` (RFC 7662) introspects the tokens that are not a
    compact JWS (opaque tokens), or every token when ``keys`` is not given; the response's
    members are the claims, held to the same rules (``exp`` not required: see the docs' guide
    "Opaque tokens"). Per issuer: ``TrustedIssuer(introspection=...)``, on one issuer at most.
    """

    def __init__(
        self,
        *,
        keys: KeySource | None = None,
        algorithms: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: float = 30,
        required_claims: Sequence[str] = ("exp",),
        typ: str | None = None,
        max_token_age: float | None = None,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        roles_claim: str | Sequence[str] = DEFAULT_ROLES_CLAIM,
        scopes_claim: str | Sequence[str] = DEFAULT_SCOPES_CLAIM,
        clock: Callable[[], float] | None = None,
        issuers: Sequence[TrustedIssuer | TenantIssuer] | None = None,
        denylist: Denylist | None = None,
        allow_tokens_without_jti: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
        claims: Mapping[str, Any] | None = None,
        validate: Validator | None = None,
        detail_claims: Sequence[str] = (),
        dpop: DPoP | None = None,
        accept_bound_tokens_as_bearer: bool = False,
        mtls: bool = False,
        metrics: bool | Metrics = True,
        validate_each_request: Validator | None = None,
        profile: str | Sequence[str] | None = None,
        scope_implies: Mapping[str, str | Sequence[str]] | None = None,
        introspection: IntrospectionSource | None = None,
    ) -> None:
        if dpop is not None and not isinstance(dpop, DPoP):
            raise ConfigurationError("dpop must be a jwt_guard.DPoP")
        if not isinstance(accept_bound_tokens_as_bearer, bool):
            raise ConfigurationError("accept_bound_tokens_as_bearer must be True or False")
        if not isinstance(mtls, bool):
            raise ConfigurationError("mtls must be True or False")
        if mtls and accept_bound_tokens_as_bearer:
            raise ConfigurationError(
                "mtls=True checks certificate-bound tokens here (RFC 8705); "
                "accept_bound_tokens_as_bearer=True would stop checking the others: choose one"
            )
        config = configure(
            keys=keys,
            algorithms=algorithms,
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            required_claims=required_claims,
            typ=typ,
            max_token_age=max_token_age,
            max_token_bytes=max_token_bytes,
            roles_claim=roles_claim,
            scopes_claim=scopes_claim,
            clock=clock,
            issuers=issuers,
            denylist=denylist,
            allow_tokens_without_jti=allow_tokens_without_jti,
            cache_size=cache_size,
            claims=claims,
            validate=validate,
            detail_claims=detail_claims,
            validate_each_request=validate_each_request,
            profile=profile,
            scope_implies=scope_implies,
            introspection=introspection,
        )
        # What the profiles need of the other options (fapi2: dpop= or mtls=), checked here.
        check_verifier_options(
            config.profiles,
            dpop_algorithms=dpop.algorithms if dpop is not None else None,
            mtls=mtls,
            bearer_bound_tokens=accept_bound_tokens_as_bearer,
        )
        self._config = config
        # Copied onto the instance: the hot path reads them as plain attributes, and the
        # routing and the cache's methods are bound once here, not looked up per token.
        self._leeway = config.leeway
        self._max_age = config.max_age
        self._max_bytes = config.max_bytes
        self._clock = config.clock
        self._denylist = config.denylist
        self._dpop = dpop
        # RFC 8705 §3: a cnf.x5t#S256 token is checked against the request's client
        # certificate on every request (an after-step: a cache hit is checked too).
        self._mtls = mtls
        # RFC 7800 §3.1, RFC 9449 §7.2: a "cnf" binding this verifier cannot check is refused
        # unless the app loudly says it checks it elsewhere (a proxy doing mTLS).
        self._check_cnf = not accept_bound_tokens_as_bearer
        # validate_each_request hooks are an after-step: a cache hit must ask them too.
        self._each_request = config.per_request
        self._no_after_steps = (
            dpop is None and self._denylist is None and not self._each_request and not mtls
        )
        self._opaque = config.opaque
        self._judges = {}
        # Without keys at all, every token is introspected (a JWT too: not parsed here).
        self._keyless = all(isinstance(p.keys, NoKeys) for p in config.policies)
        endpoint = config.opaque.introspection if config.opaque is not None else None
        if endpoint is not None:
            endpoint.use_clock(self._clock)
            opaque = config.opaque
            assert opaque is not None
            endpoint.use_issuer(
                None if isinstance(opaque.keys, NoKeys) else opaque.keys,
                opaque.rules.issuers,
                opaque.algorithms,
                opaque.own_algorithms,
                self._leeway,
            )
        self._all_algorithms = config.algorithms
        self._route = config.route
        # Tenants' key sources dropped from their LRU, closed by the drivers (see drivers.py).
        self._retired = config.retired
        self._draining = weakref.WeakValueDictionary()
        self._headers = {}
        # OpenTelemetry instruments, or None (not installed, or metrics=False): every caller
        # tests for None, so metrics off cost one attribute check per request.
        self.metrics = resolve_metrics(metrics)
        if self.metrics is not None:
            for source in config.key_sources:
                source.use_metrics(self.metrics)
            for tenants in config.tenants:
                tenants.metrics = self.metrics
            if config.denylist is not None:
                config.denylist.use_metrics(self.metrics)
            if endpoint is not None:
                endpoint.use_metrics(self.metrics)
        self._cache = VerifiedTokens(
            config.cache_size, self._clock, self._leeway, self._max_age, self.metrics
        )
        self._cached = self._cache.get
        #: A cache hit that needs no I/O and no error, or None (see VerifiedTokens.hit): the
        #: ASGI middleware's fast path. Only without after-steps (DPoP, mTLS, denylist,
        #: validate_each_request).
        self._hit = (
            self._cache.hit
            if self._no_after_steps and (endpoint is None or not endpoint.introspect_jwts)
            else None
        )
        #: The certificate binding is the only after-step: the ASGI fast path serves a cache
        #: hit after checking it itself (RFC 8705 §3, every request).
        self._mtls_only = (
            mtls
            and dpop is None
            and self._denylist is None
            and not self._each_request
            and (endpoint is None or not endpoint.introspect_jwts)
        )
        self._remember = self._cache.put
        #: An opaque token's cached introspection answer with no I/O, or None (the ASGI fast
        #: path's twin of ``_hit``; only without after-steps).
        self._opaque_hit = (
            self._introspection_hit if self._hit is not None and endpoint is not None else None
        )
        if self._opaque_hit is not None:
            assert config.opaque is not None and endpoint is not None
            # What _introspection_key adds to a token's hash for this policy, and the cache's
            # lookup, found once: the hit path is a hash, a probe and a clock reading.
            self._opaque_judge = self._introspection_key(b"", config.opaque)[TOKEN_KEY_SIZE:]
            self._opaque_get = endpoint.cache.get
            self._jwt_shaped = not self._keyless
        self._forget = self._cache.forget

    @classmethod
    def from_env(
        cls, prefix: str = "JWT_GUARD_", *, ignore_unknown: Collection[str] = (), **overrides: Any
    ) -> Verifier:
        """A verifier configured by environment variables (see ``config.options_from_env``).

        ``ISSUER``, ``AUDIENCE``, ``JWKS_URL`` or ``DISCOVERY_URL``, ``ALGORITHMS``, ``LEEWAY``,
        ``TYP``, ``PROFILE``, ``ROLES_CLAIM``, ``SCOPES_CLAIM``, ``ALLOW_HTTP``,
        ``SHARED_CACHE_URL`` with ``SHARED_CACHE_KEY`` (or ``SHARED_CACHE_TRUST_REDIS_WRITERS``),
        ``MTLS``, and the introspection endpoint: ``INTROSPECTION_URL`` or
        ``INTROSPECTION_DISCOVERY``, ``INTROSPECTION_CLIENT_ID``, ``INTROSPECTION_CLIENT_SECRET``
        or ``INTROSPECTION_PRIVATE_KEY_FILE``, ``INTROSPECTION_AUTH_METHOD``,
        ``INTROSPECT_JWTS`` (without ``JWKS_URL`` and ``DISCOVERY_URL``, every token is
        introspected). Half a shared-cache or introspection configuration is refused with what
        is missing. Keyword arguments win; one that replaces a variable set to another
        value logs a WARNING naming both (not their values), once, when the verifier is built.

        Any other variable with the prefix is a :class:`ConfigurationError` naming the closest
        setting (``JWT_GUARD_ALGORITHM``: did you mean ``JWT_GUARD_ALGORITHMS``?), unless
        ``ignore_unknown`` lists it: names or shell-style patterns (``"JWT_GUARD_OTHER_*"``)
        that another program reads under the same prefix."""
        options = options_from_env(prefix, ignore_unknown=ignore_unknown)
        verifier = cls(**{**options, **overrides})
        replaced = overridden_settings(options, overrides, prefix)
        if replaced:
            # Silence would leave a deployment's variable looking in force while it is not.
            logger.warning("Verifier.from_env: %s", "; ".join(replaced))
        return verifier

    def __repr__(self) -> str:
        own = all(p.own_algorithms for p in self._config.policies)
        algs = "<the keys' own>" if own else repr(sorted(self._all_algorithms))
        return f"Verifier(algorithms={algs}, issuers={len(self._config.policies)})"

    @property
    def profiles(self) -> tuple[Profile, ...]:
        """The profiles this verifier holds tokens to (``profile=``, a ``TrustedIssuer``'s).

        Each combination once: the adapters check their token sources against them."""
        return self._config.profiles

    @property
    def profile_all_sender_constrained(self) -> bool:
        """Whether every token is held to a sender-constrained profile.

        True with ``profile="fapi2"`` on the verifier, or on each issuer it trusts: a Bearer
        token then passes for none.
        """
        policies = self._config.policies
        return (
            bool(policies)
            and not self._config.tenants
            and all(p.profile is not None and p.profile.sender_constrained for p in policies)
        )

    @property
    def key_sources(self) -> tuple[KeySource, ...]:
        """Every key source this verifier uses (for prefetch, stats and shutdown)."""
        return self._config.key_sources

    def prefetch(self, *, required: bool = False) -> None:
        """Warm every key source (sync). Failures are logged; raised only when ``required``."""
        for source in self.key_sources:
            source.prefetch(required=required)

    async def aprefetch(self, *, required: bool = False) -> None:
        """Warm every key source without blocking the loop (e.g. in an ASGI lifespan)."""
        for source in self.key_sources:
            await source.aprefetch(required=required)

    def _introspection_hit(self, token: bytes) -> Principal | None:
        """The principal of an opaque token whose answer is cached, else ``None`` (the caller
        takes the full path, which counts the lookup, calls, or raises the refusal)."""
        if (self._jwt_shaped and token.count(b".") == 2) or len(token) > self._max_bytes:
            return None
        # _introspection_key(token, self._opaque), its judge's part found once.
        entry = self._opaque_get(token_key(token) + self._opaque_judge)
        return entry.principal if entry is not None else None

    @property
    def introspection(self) -> IntrospectionSource | None:
        """The introspection endpoint opaque tokens go to (RFC 7662), ``None`` without."""
        return self._opaque.introspection if self._opaque is not None else None

    def close(self) -> None:
        """Close every connection this verifier holds.

        The key sources', the introspection endpoint's, the denylist's and the DPoP replay
        cache's."""
        if self.introspection is not None:
            self.introspection.close()
        self._close_retired()
        for source in (*self._draining.values(), *self.key_sources):
            source.close()
        if self._denylist is not None:
            self._denylist.close()
        if self._dpop is not None:
            self._dpop.replay_cache.close()

    async def aclose(self) -> None:
        """Close this loop's connections, and cancel its background key refreshes.

        An ASGI lifespan shutdown calls this."""
        if self.introspection is not None:
            await self.introspection.aclose()
        await self._aclose_retired()
        for source in (*self._draining.values(), *self.key_sources):
            await source.aclose()
        if self._denylist is not None:
            await self._denylist.aclose()
        if self._dpop is not None:
            await self._dpop.replay_cache.aclose()

    @property
    def audiences(self) -> frozenset[str]:
        """Every audience a token may carry to be accepted, over all trusted issuers."""
        return frozenset().union(*(p.rules.audiences or () for p in self._config.policies))

    @property
    def issuer_audiences(self) -> tuple[tuple[str | None, frozenset[str] | None], ...]:
        """Each trusted issuer with the audiences its tokens must carry.

        The issuer is ``None`` (any) with a single configuration; the audiences are ``None`` when
        that policy does not check ``aud``."""
        result: list[tuple[str | None, frozenset[str] | None]] = []
        for policy in self._config.policies:
            issuers = policy.rules.issuers
            name = ", ".join(sorted(issuers)) if issuers else None
            result.append((name, policy.rules.audiences))
        return tuple(result)

    @property
    def denylist(self) -> Denylist | None:
        """The denylist revoked tokens are checked against, or ``None``."""
        return self._denylist

    @property
    def dpop(self) -> DPoP | None:
        """The DPoP settings (RFC 9449), ``None`` when DPoP is off."""
        return self._dpop

    @property
    def mtls(self) -> bool:
        """Whether certificate-bound tokens (``cnf.x5t#S256``, RFC 8705) are checked here."""
        return self._mtls

    @property
    def leeway(self) -> float:
        """The clock skew allowed on the time claims, in seconds."""
        return self._leeway

    def now(self) -> float:
        """The verifier's clock (injectable for tests)."""
        return self._clock()

    def clear_cache(self) -> None:
        """Drop every verified token remembered, and every introspection answer.

        They are verified again on next use."""
        self._cache.clear()
        if self.introspection is not None:
            self.introspection.cache.clear()

    def _revocations(self) -> Denylist:
        if self._denylist is None:
            raise ConfigurationError("revocation needs Verifier(denylist=...)")
        return self._denylist

    def _token_revocation(self, principal: Principal) -> tuple[str, float | None]:
        key = self._revocation_keys(principal).token
        if key is None:
            # a token without jti cannot be revoked individually
            reason = "needed to revoke one token"
            if not principal.header:  # introspected (it has no JOSE header): say what works
                reason += (
                    "; an introspected token without one is revoked at the authorization "
                    "server (RFC 7009), or by its subject (revoke_subject)"
                )
            raise ClaimMissing(detail={"claim": "jti", "reason": reason})
        return key, token_lifetime(principal.claims, self._leeway, self._max_age)

    def revoke(self, token_or_principal: str | bytes | Principal) -> Principal:
        """Revoke one token (its ``jti``) until it can no longer verify anyway.

        A token string is verified first (signature and claims: only a token this verifier
        accepts can be revoked), but not against the denylist: revoking twice is harmless. A
        DPoP-bound token needs no proof here: whoever holds it may end it.
        """
        token = token_or_principal
        denylist = self._revocations()
        principal = (
            token if isinstance(token, Principal) else self._authenticate(token_bytes(token))
        )
        denylist.add_token(*self._token_revocation(principal))
        return principal

    async def arevoke(self, token_or_principal: str | bytes | Principal) -> Principal:
        """Async twin of :meth:`revoke`."""
        token = token_or_principal
        denylist = self._revocations()
        principal = (
            token if isinstance(token, Principal) else await self._aauthenticate(token_bytes(token))
        )
        await denylist.aadd_token(*self._token_revocation(principal))
        return principal

    def _subject_revocation(
        self, subject: str, issuer: str | None, issued_before: float | None, ttl: float | None
    ) -> tuple[str, int, float | None]:
        if not isinstance(subject, str):
            raise ConfigurationError("subject must be a string")
        if ttl is not None and not _positive(ttl):
            raise ConfigurationError("ttl must be a positive number of seconds")
        now = self._clock()
        if issued_before is None:
            issued_before = now
        elif isinstance(issued_before, bool) or not isinstance(issued_before, (int, float)):
            raise ConfigurationError("issued_before must be epoch seconds")
        if not math.isfinite(issued_before):
            raise ConfigurationError("issued_before must be epoch seconds")
        # Whole seconds, as "iat" is: a token issued in the second of the revocation passes,
        # so logging in again right after "log out everywhere" works.
        cutoff = math.floor(issued_before)
        key = revocation_keys(self._config.revocation_scope(issuer), None, subject).subject
        assert key is not None
        return key, cutoff, subject_lifetime(cutoff, self._leeway, self._max_age, ttl, now)

    def revoke_subject(
        self,
        subject: str,
        *,
        issuer: str | None = None,
        issued_before: float | None = None,
        ttl: float | None = None,
    ) -> None:
        """Reject every token of ``subject`` issued before ``issued_before`` (default: now).

        In whole seconds: tokens whose ``iat`` is in an earlier second.

        "Log out everywhere" / "ban this account". ``issuer`` is needed only when the verifier
        trusts several. The entry lives until no token it covers can verify: derived from
        ``max_token_age``; without it, for ever unless ``ttl`` states the longest lifetime of
        a token (in seconds from now).
        """
        denylist = self._revocations()
        denylist.add_subject(*self._subject_revocation(subject, issuer, issued_before, ttl))

    async def arevoke_subject(
        self,
        subject: str,
        *,
        issuer: str | None = None,
        issued_before: float | None = None,
        ttl: float | None = None,
    ) -> None:
        """Async twin of :meth:`revoke_subject`."""
        denylist = self._revocations()
        revocation = self._subject_revocation(subject, issuer, issued_before, ttl)
        await denylist.aadd_subject(*revocation)
