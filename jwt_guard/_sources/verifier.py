"""The verification core: the order of the steps, and the two thin drivers ``verify``/``averify``.

    token ─► 1 size, syntax, split ─► 2 header: alg allowed, crit, b64, typ, kid (cached per header)
          ─► 3 payload JSON ─► 4 route by configured issuer ─► 5 key set (the only I/O: driver)
          ─► 6 signature ─► 7 claims ─► 8 denylist (I/O: driver) ─► Principal

Steps 1-4, 6 and 7 live in :meth:`Verifier._begin` and :meth:`Verifier._finish`, which do no
I/O. ``verify`` and ``averify`` differ only in how they call the key source and the denylist.
The options become policies in ``_policy`` (step 4 routes among them); a verified token is
remembered in ``_cache``, whose docstring says what a hit skips and what it never skips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from .._core.cache import VerifiedTokens
from .._core.claims import Validator, check_time_claims, collect_strings
from .._core.dpop import DPoP, Proof, check_confirmation
from .._core.errors import (
    AlgorithmNotAllowed,
    ClaimMissing,
    ConfigurationError,
    CriticalHeaderUnsupported,
    InvalidSignature,
    JWTGuardError,
    MalformedToken,
    TokenTooLarge,
    safe_value,
)
from .._core.keys import JWK
from .._core.keyset import KeySet, KeySource
from .._core.metrics import Metrics, resolve_metrics
from .._core.parse import (
    DEFAULT_MAX_TOKEN_BYTES,
    MAX_KID_LENGTH,
    b64url_decode,
    parse_header,
    parse_json,
)
from .._core.policy import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_ROLES_CLAIM,
    DEFAULT_SCOPES_CLAIM,
    Policy,
    TrustedIssuer,
    configure,
)
from .._core.principal import Principal, read_only_mapping, verified_principal
from .._core.revocation import (
    Denylist,
    RevocationKeys,
    revocation_keys,
    subject_lifetime,
    token_lifetime,
)
from .config import options_from_env

__all__ = ["Verifier"]

#: Distinct protected headers remembered after they passed the header checks. Tokens of one
#: key share their header, so a handful of entries covers real traffic; the bound keeps a
#: flood of made-up headers from growing memory.
HEADER_CACHE_SIZE: Final = 256


class _Header(NamedTuple):
    alg: str
    kid: str | None
    #: Deeply read-only, made once per distinct header: every principal shares it.
    mapping: MappingProxyType[str, Any]


class _Pending(NamedTuple):
    header: _Header
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes
    policy: Policy
    #: The claims JSON opened no nested array or object (see verified_principal).
    flat: bool


def _signature_detail(header: _Header, candidates: Sequence[JWK]) -> dict[str, Any]:
    return {
        "alg": header.alg,
        "kid": header.kid,
        "keys_tried": [k.kid for k in candidates],
    }


# NamedTuples on the hot path are built with the C-level tuple constructor: the generated
# ``__new__`` is Python code and costs more than everything it stores.
_new = tuple.__new__
_SEGMENTS_REASON: Final = "a compact JWS has 3 dot-separated segments (RFC 7515 §7.1)"


def token_bytes(token: object) -> bytes:
    """The token as the bytes the core works on (and the cache is keyed by).

    The ASGI scope hands us bytes, used as they are. A ``str`` is encoded once; a character
    outside ASCII becomes one ``?`` (one byte for one character, so the size limit and the
    segment a failure is reported in stay those of the text), which no base64url segment
    accepts.
    """
    kind = type(token)
    if kind is bytes:
        return token  # type: ignore[return-value]
    if kind is str:
        return token.encode("ascii", "replace")  # type: ignore[attr-defined,no-any-return]
    raise MalformedToken(detail={"reason": "the token is not a string"})


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


class Verifier:
    """Verifies compact JWS access tokens and returns a :class:`Principal`.

    Give either ``keys`` (one key source, optionally with ``issuer``) or ``issuers`` (several
    :class:`TrustedIssuer`). Everything is validated here and raises
    :class:`ConfigurationError`; a running verifier only raises errors about tokens.

    A token bound to a key (``cnf``, RFC 7800) is refused unless the binding is checked here:
    ``cnf.jkt`` with ``dpop=DPoP(...)`` (RFC 9449). ``accept_bound_tokens_as_bearer=True``
    accepts the bindings this verifier cannot check as plain Bearer tokens: only when
    something in front of the app checks them (a proxy terminating mTLS, RFC 8705).

    ``validate`` and the claim rules (``claims``, ``issuer``, ``audience``...) are part of
    verifying a token: they run once, at its first verification, and a cached token is not
    asked again. ``validate_each_request`` runs on every request, a cached token's too, after
    every other check: for a rule whose answer can change while the token lives (a disabled
    user, a suspended tenant).
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
        issuers: Sequence[TrustedIssuer] | None = None,
        denylist: Denylist | None = None,
        allow_tokens_without_jti: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
        claims: Mapping[str, Any] | None = None,
        validate: Validator | None = None,
        detail_claims: Sequence[str] = (),
        dpop: DPoP | None = None,
        accept_bound_tokens_as_bearer: bool = False,
        metrics: bool | Metrics = True,
        validate_each_request: Validator | None = None,
    ) -> None:
        if dpop is not None and not isinstance(dpop, DPoP):
            raise ConfigurationError("dpop must be a jwt_guard.DPoP")
        if not isinstance(accept_bound_tokens_as_bearer, bool):
            raise ConfigurationError("accept_bound_tokens_as_bearer must be True or False")
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
        # RFC 7800 §3.1, RFC 9449 §7.2: a "cnf" binding this verifier cannot check is refused
        # unless the app loudly says it checks it elsewhere (a proxy doing mTLS).
        self._check_cnf = not accept_bound_tokens_as_bearer
        # validate_each_request hooks are an after-step: a cache hit must ask them too.
        self._each_request = config.per_request
        self._no_after_steps = dpop is None and self._denylist is None and not self._each_request
        self._all_algorithms = config.algorithms
        self._route = config.route
        self._headers: dict[bytes, _Header] = {}
        # OpenTelemetry instruments, or None (not installed, or metrics=False): every caller
        # tests for None, so metrics off cost one attribute check per request.
        self.metrics = resolve_metrics(metrics)
        if self.metrics is not None:
            for source in config.key_sources:
                source.use_metrics(self.metrics)
            if config.denylist is not None:
                config.denylist.use_metrics(self.metrics)
        self._cache = VerifiedTokens(
            config.cache_size, self._clock, self._leeway, self._max_age, self.metrics
        )
        self._cached = self._cache.get
        #: A cache hit that needs no I/O and no error, or None (see VerifiedTokens.hit): the
        #: ASGI middleware's fast path. Only without after-steps (DPoP, denylist,
        #: validate_each_request).
        self._hit = self._cache.hit if self._no_after_steps else None
        self._remember = self._cache.put
        self._forget = self._cache.forget

    @classmethod
    def from_env(cls, prefix: str = "JWT_GUARD_", **overrides: Any) -> Verifier:
        """A verifier configured by environment variables (see ``_config.options_from_env``):
        ``ISSUER``, ``AUDIENCE``, ``JWKS_URL`` or ``DISCOVERY_URL``, ``ALGORITHMS``, ``LEEWAY``,
        ``TYP``, ``ROLES_CLAIM``, ``SCOPES_CLAIM``, ``ALLOW_HTTP``. Keyword arguments win."""
        return cls(**{**options_from_env(prefix), **overrides})

    def __repr__(self) -> str:
        algs = sorted(self._all_algorithms)
        return f"Verifier(algorithms={algs!r}, issuers={len(self._config.policies)})"

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

    def close(self) -> None:
        """Close the key sources', the denylist's and the DPoP replay cache's connections."""
        for source in self.key_sources:
            source.close()
        if self._denylist is not None:
            self._denylist.close()
        if self._dpop is not None:
            self._dpop.replay_cache.close()

    async def aclose(self) -> None:
        """Close this loop's connections, and cancel its background key refreshes (an ASGI
        lifespan shutdown calls this)."""
        for source in self.key_sources:
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
        """Each trusted issuer (``None``: any, with a single configuration) with the audiences
        its tokens must carry (``None``: that policy does not check ``aud``)."""
        result: list[tuple[str | None, frozenset[str] | None]] = []
        for policy in self._config.policies:
            issuers = policy.rules.issuers
            name = ", ".join(sorted(issuers)) if issuers else None
            result.append((name, policy.rules.audiences))
        return tuple(result)

    @property
    def denylist(self) -> Denylist | None:
        return self._denylist

    @property
    def dpop(self) -> DPoP | None:
        """The DPoP settings (RFC 9449), ``None`` when DPoP is off."""
        return self._dpop

    @property
    def leeway(self) -> float:
        return self._leeway

    def now(self) -> float:
        """The verifier's clock (injectable for tests)."""
        return self._clock()

    def clear_cache(self) -> None:
        """Drop every verified token remembered (they are re-verified on next use)."""
        self._cache.clear()

    # -- drivers ------------------------------------------------------------------------

    def verify(
        self,
        token: str | bytes,
        *,
        dpop_proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> Principal:
        """Verify ``token`` (text, or the ASCII bytes of a header) and return its principal;
        may block on a key fetch (WSGI, CLI).

        With ``Verifier(dpop=...)``, ``dpop_proof`` is the request's ``DPoP`` header, checked
        against the request's ``method`` and ``url`` (RFC 9449); without a proof the token is
        taken as a Bearer token.
        """
        token = token_bytes(token)
        principal = self._authenticate(token)
        if self._no_after_steps and dpop_proof is None:
            return principal
        return self._after_steps(principal, token, dpop_proof, method, url)

    async def averify(
        self,
        token: str | bytes,
        *,
        dpop_proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> Principal:
        """Verify ``token`` without blocking the event loop (ASGI); DPoP as in :meth:`verify`."""
        token = token_bytes(token)
        principal = await self._aauthenticate(token)
        if self._no_after_steps and dpop_proof is None:
            return principal
        return await self._aafter_steps(principal, token, dpop_proof, method, url)

    def _authenticate(self, token: bytes) -> Principal:
        """Everything but the denylist and DPoP (sync driver)."""
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

    async def _aauthenticate(self, token: bytes) -> Principal:
        """Everything but the denylist and DPoP (async driver)."""
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
        source = pending.policy.keys
        key_set = source.ready(pending.header.kid)
        if key_set is None:
            key_set = await source.akeys(pending.header.kid)
        return self._finish(token, pending, key_set)

    # After the token's own checks: the DPoP step (RFC 9449; the proof is checked on every
    # request, as the token may come from the cache but the proof is new each time), the
    # denylist, the validate_each_request hooks, then the proof's jti is recorded, once
    # everything else has passed. A verifier with none of these skips this call altogether
    # (``_no_after_steps``), so plain verification pays nothing for them.

    def _after_steps(
        self,
        principal: Principal,
        token: bytes,
        proof: str | None,
        method: str | None,
        url: str | None,
    ) -> Principal:
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
    ) -> Principal:
        dpop, checked = self._check_dpop(principal, token, proof, method, url)
        if self._denylist is not None:
            keys = self._revocation_keys(principal)
            await self._denylist.acheck(keys, principal.claims.get("iat"))
        if self._each_request:
            self._route(principal.claims).rules.check_each_request(principal.claims)
        if dpop is not None and checked is not None:
            await dpop.arecord(checked, self._clock())
        return principal

    # -- revocation (see _denylist for what an entry covers and how long it lives) -----------

    def _revocations(self) -> Denylist:
        if self._denylist is None:
            raise ConfigurationError("revocation needs Verifier(denylist=...)")
        return self._denylist

    def _revocation_keys(self, principal: Principal) -> RevocationKeys:
        # Scoped by the configured issuer the token was verified for; a verifier that names
        # no issuer accepts any "iss", so its revocations do not depend on it either.
        scope = principal.issuer if self._config.names_issuers else None
        return revocation_keys(scope, principal.token_id, principal.subject)

    def _token_revocation(self, principal: Principal) -> tuple[str, float | None]:
        key = self._revocation_keys(principal).token
        if key is None:
            # a token without jti cannot be revoked individually
            raise ClaimMissing(detail={"claim": "jti", "reason": "needed to revoke one token"})
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
        """Reject every token of ``subject`` issued before ``issued_before`` (default: now),
        in whole seconds: tokens whose ``iat`` is in an earlier second.

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

    # -- the core (no I/O) ------------------------------------------------------------------

    def _check_dpop(
        self,
        principal: Principal,
        token: bytes,
        proof: str | None,
        method: str | None,
        url: str | None,
    ) -> tuple[DPoP | None, Proof | None]:
        dpop = self._dpop
        if dpop is None:
            if proof is not None:
                # Never ignored silently: a caller passing a proof expects it to be checked.
                raise ConfigurationError("dpop_proof= needs Verifier(dpop=DPoP(...))")
            return None, None
        now = self._clock()
        return dpop, dpop.check(principal.claims, token, proof, method, url, now, self._leeway)

    def _check_header(self, segment: bytes) -> _Header:
        header = parse_header(segment)
        alg = header.get("alg")
        if not isinstance(alg, str):
            # RFC 7515 §4.1.1: "alg" is required
            raise MalformedToken(
                detail={"part": "header", "reason": "no 'alg' string (RFC 7515 §4.1.1)"}
            )
        if alg not in self._all_algorithms:
            # Covers "none" in any spelling and every algorithm not configured (RFC 8725 §3.1).
            allowed = self._all_algorithms
            raise AlgorithmNotAllowed(
                detail=lambda: {"alg": safe_value(alg), "allowed": sorted(allowed)}
            )
        if "crit" in header:
            crit = header["crit"]
            if (
                not isinstance(crit, list)
                or not crit
                or not all(isinstance(c, str) and c in header for c in crit)
            ):
                # RFC 7515 §4.1.11: a non-empty list of present names
                raise MalformedToken(
                    detail={
                        "part": "header",
                        "reason": "'crit' must list header names present (RFC 7515 §4.1.11)",
                    }
                )
            # We implement no extension: every listed name is one we do not understand.
            raise CriticalHeaderUnsupported(detail={"crit": safe_value(crit), "supported": []})
        if "b64" in header and header["b64"] is not True:
            # RFC 7797 §3/§7: unencoded payloads change what the signature covers.
            raise CriticalHeaderUnsupported(
                detail={"reason": "unencoded payloads ('b64': false, RFC 7797) are refused"}
            )
        kid = header.get("kid")
        if "kid" in header and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
            # RFC 7515 §4.1.4: a string when present ("kid": null is not "no kid"); ours:
            # bounded
            raise MalformedToken(
                detail={
                    "part": "header",
                    "reason": f"'kid' must be a string of at most {MAX_KID_LENGTH} characters",
                }
            )
        # "jwk", "jku", "x5u", "x5c" are deliberately never read: keys come only from the
        # configured key source (RFC 8725 §3.10).
        self._config.policies[0].rules.check_header_typ(header)
        parsed = _Header(alg, kid, read_only_mapping(header))
        if len(self._headers) >= HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[segment] = parsed
        return parsed

    def _begin(self, token: bytes) -> _Pending:
        # RFC 7515 §7.1, in bytes: the size limit first (it bounds the work before the
        # signature is checked), then exactly three segments; each segment's alphabet is
        # checked when it is decoded.
        if len(token) > self._max_bytes:
            raise TokenTooLarge(detail={"length": len(token), "limit": self._max_bytes})
        parts = token.split(b".")
        if len(parts) != 3:
            raise MalformedToken(detail={"reason": _SEGMENTS_REASON, "segments": len(parts)})
        h64, p64, s64 = parts
        header = self._headers.get(h64)
        part = "header"
        try:
            if header is None:
                header = self._check_header(h64)
            part = "payload"
            raw = b64url_decode(p64)
            payload = parse_json(raw)
            part = "signature"
            signature = b64url_decode(s64)
        except MalformedToken as exc:
            exc.add_detail("part", part)
            raise
        policy = self._route(payload)
        if header.alg not in policy.algorithms:
            raise AlgorithmNotAllowed(
                detail=lambda: {
                    "alg": header.alg,
                    "allowed": sorted(policy.algorithms),
                    "iss": safe_value(payload.get("iss")),
                }
            )
        # The signing input is a slice of the bytes received, never re-encoded (RFC 7515 §5.2).
        signing_input = token[: len(h64) + 1 + len(p64)]
        flat = raw.find(b"[") < 0 and raw.find(b"{", 1) < 0
        return _new(_Pending, (header, payload, signing_input, signature, policy, flat))

    def _finish(self, token: bytes, pending: _Pending, key_set: KeySet) -> Principal:
        header, payload, signing_input, signature, policy, flat = pending
        candidates = key_set.candidates(header.kid, header.alg)
        for key in candidates:
            try:
                ok = key.verify(header.alg, signing_input, signature)
            except (ValueError, TypeError) as exc:
                raise InvalidSignature(
                    detail=lambda: _signature_detail(header, candidates)
                ) from exc
            if ok:
                break
        else:
            raise InvalidSignature(detail=lambda: _signature_detail(header, candidates))
        exp = check_time_claims(payload, self._clock(), self._leeway, self._max_age)
        policy.rules.check(payload)
        if "cnf" in payload and self._check_cnf:
            # Fresh tokens only: a cached token passed this already.
            check_confirmation(payload["cnf"], self._dpop is not None)
        roles = collect_strings(payload, policy.roles_paths, split=False)
        scopes = collect_strings(payload, policy.scopes_paths, split=True)
        principal = verified_principal(payload, header.mapping, roles, scopes, flat=flat)
        self._remember(token, principal, key, policy, exp, payload, header.kid, key_set)
        return principal
