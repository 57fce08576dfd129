"""The verification core: the order of the steps, and the two thin drivers ``verify``/``averify``.

    token ─► 1 size, syntax, split ─► 2 header: alg allowed, crit, b64, typ, kid (cached per header)
          ─► 3 payload JSON ─► 4 route by configured issuer ─► 5 key set (the only I/O: driver)
          ─► 6 signature ─► 7 claims ─► 8 denylist (I/O: driver) ─► Principal

Steps 1-4, 6 and 7 live in :meth:`Verifier._begin` and :meth:`Verifier._finish`, which do no
I/O. ``verify`` and ``averify`` differ only in how they call the key source and the denylist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from cachetools import FIFOCache

from ._claims import (
    MAX_LEEWAY,
    ClaimRules,
    check_time_claims,
    check_times,
    collect_strings,
    normalize_typ,
)
from ._denylist import DEFAULT_NO_EXP_TTL, DEFAULT_SUBJECT_TTL, Denylist
from ._errors import (
    AlgorithmNotAllowed,
    ClaimMissing,
    ConfigurationError,
    CriticalHeaderUnsupported,
    InvalidSignature,
    IssuerInvalid,
    MalformedToken,
    TokenExpired,
)
from ._keys import ALGORITHMS, JWK, MAX_KID_LENGTH, KeySet, KeySource
from ._parse import DEFAULT_MAX_TOKEN_BYTES, b64url_decode, parse_header, parse_json, split_compact
from ._principal import Principal

__all__ = ["TrustedIssuer", "Verifier"]

#: Distinct protected headers remembered after they passed the header checks. Tokens of one
#: key share their header, so a handful of entries covers real traffic; the bound keeps a
#: flood of made-up headers from growing memory.
HEADER_CACHE_SIZE: Final = 256
#: Default number of verified tokens remembered (issue #8); 0 turns the cache off.
DEFAULT_CACHE_SIZE: Final = 10_000

_DEFAULT_ROLES_CLAIM: Final = ("roles",)
_DEFAULT_SCOPES_CLAIM: Final = ("scope", "scp")


def _strings(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        items = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        items = ()
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(f"{what} must be a non-empty string or list of strings")
    return items


def _algorithms(value: str | Sequence[str] | None) -> frozenset[str]:
    algs = _strings(value, "algorithms")
    if algs is None:
        # RFC 8725 §3.1: the algorithms must be given by the application, never taken from
        # the token.
        raise ConfigurationError("algorithms must be given, e.g. algorithms=['RS256']")
    for alg in algs:
        if alg.lower() == "none":
            raise ConfigurationError("'none' can never be an allowed algorithm (RFC 8725 §3.1)")
        if alg not in ALGORITHMS:
            raise ConfigurationError(
                f"unsupported algorithm {alg!r}; use one of {sorted(ALGORITHMS)}"
            )
    return frozenset(algs)


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer a multi-issuer :class:`Verifier` trusts, with its own keys and rules.

    ``audience``, ``algorithms``, ``roles_claim`` and ``scopes_claim`` default to the
    verifier's settings when ``None``.
    """

    issuer: str
    keys: KeySource
    audience: str | Sequence[str] | None = None
    algorithms: str | Sequence[str] | None = None
    roles_claim: str | Sequence[str] | None = None
    scopes_claim: str | Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigurationError("issuer must be a non-empty string")
        if not isinstance(self.keys, KeySource):
            raise ConfigurationError("keys must be a key source (StaticKeys, JWKSKeys, ...)")


@dataclass(frozen=True)
class _Policy:
    keys: KeySource
    algorithms: frozenset[str]
    rules: ClaimRules
    roles_paths: tuple[str, ...]
    scopes_paths: tuple[str, ...]


class _Header(NamedTuple):
    alg: str
    kid: str | None
    mapping: Mapping[str, Any]


class _Pending(NamedTuple):
    header: _Header
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes
    policy: _Policy


class _Cached(NamedTuple):
    principal: Principal
    key: JWK
    policy: _Policy
    exp: float | None
    nbf: float | None
    iat: float | None
    kid: str | None


# NamedTuples on the hot path are built with the C-level tuple constructor: the generated
# ``__new__`` is Python code and costs more than everything it stores.
_new = tuple.__new__


class Verifier:
    """Verifies compact JWS access tokens and returns a :class:`Principal`.

    Give either ``keys`` (one key source, optionally with ``issuer``) or ``issuers`` (several
    :class:`TrustedIssuer`). Everything is validated here and raises
    :class:`ConfigurationError`; a running verifier only raises errors about tokens.
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
        roles_claim: str | Sequence[str] = _DEFAULT_ROLES_CLAIM,
        scopes_claim: str | Sequence[str] = _DEFAULT_SCOPES_CLAIM,
        clock: Callable[[], float] | None = None,
        issuers: Sequence[TrustedIssuer] | None = None,
        denylist: Denylist | None = None,
        allow_tokens_without_jti: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if isinstance(leeway, bool) or not isinstance(leeway, (int, float)):
            raise ConfigurationError("leeway must be a number of seconds")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ConfigurationError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
        if max_token_age is not None and (
            isinstance(max_token_age, bool)
            or not isinstance(max_token_age, (int, float))
            or max_token_age <= 0
        ):
            raise ConfigurationError("max_token_age must be a positive number of seconds")
        if (
            isinstance(max_token_bytes, bool)
            or not isinstance(max_token_bytes, int)
            or not 256 <= max_token_bytes <= 65536
        ):
            raise ConfigurationError("max_token_bytes must be an integer from 256 to 65536")
        if isinstance(required_claims, str) or not all(
            isinstance(c, str) and c for c in required_claims
        ):
            raise ConfigurationError("required_claims must be a list of claim names")
        if typ is not None and (not isinstance(typ, str) or not typ):
            raise ConfigurationError("typ must be a non-empty string")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size must be a non-negative integer")
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning epoch seconds")
        if denylist is not None and not isinstance(denylist, Denylist):
            raise ConfigurationError("denylist must be a MemoryDenylist, RedisDenylist or Denylist")
        roles_paths = _strings(roles_claim, "roles_claim") or ()
        scopes_paths = _strings(scopes_claim, "scopes_claim") or ()
        required = tuple(dict.fromkeys(required_claims))
        if denylist is not None and not allow_tokens_without_jti and "jti" not in required:
            # A token without jti could never be revoked (issue #6).
            required += ("jti",)

        self._leeway = float(leeway)
        self._max_age = float(max_token_age) if max_token_age is not None else None
        self._max_bytes = max_token_bytes
        self._typ = normalize_typ(typ) if typ is not None else None
        self._clock: Callable[[], float] = clock or time.time
        self._denylist = denylist
        self._routes: dict[str, _Policy] | None = None

        def make_policy(
            source: KeySource,
            algs: str | Sequence[str] | None,
            issuer_names: tuple[str, ...] | None,
            aud: str | Sequence[str] | None,
            roles: tuple[str, ...],
            scopes: tuple[str, ...],
        ) -> _Policy:
            if not isinstance(source, KeySource):
                raise ConfigurationError("keys must be a key source (StaticKeys, JWKSKeys, ...)")
            auds = _strings(aud, "audience")
            rules = ClaimRules(
                issuers=frozenset(issuer_names) if issuer_names is not None else None,
                audiences=frozenset(auds) if auds is not None else None,
                required=required,
                typ=self._typ,
            )
            return _Policy(source, _algorithms(algs), rules, roles, scopes)

        if issuers is not None:
            if keys is not None or issuer is not None:
                raise ConfigurationError("give either issuers=[...] or keys=/issuer=, not both")
            if not issuers:
                raise ConfigurationError("issuers must list at least one TrustedIssuer")
            routes: dict[str, _Policy] = {}
            for trusted in issuers:
                if not isinstance(trusted, TrustedIssuer):
                    raise ConfigurationError("issuers must be TrustedIssuer objects")
                if trusted.issuer in routes:
                    raise ConfigurationError("an issuer is listed twice")
                routes[trusted.issuer] = make_policy(
                    trusted.keys,
                    trusted.algorithms if trusted.algorithms is not None else algorithms,
                    (trusted.issuer,),
                    trusted.audience if trusted.audience is not None else audience,
                    _strings(trusted.roles_claim, "roles_claim") or roles_paths,
                    _strings(trusted.scopes_claim, "scopes_claim") or scopes_paths,
                )
            self._routes = routes
            self._policies = tuple(routes.values())
        else:
            if keys is None:
                raise ConfigurationError("keys must be given (StaticKeys, JWKSKeys, ...)")
            self._policies = (
                make_policy(
                    keys,
                    algorithms,
                    _strings(issuer, "issuer"),
                    audience,
                    roles_paths,
                    scopes_paths,
                ),
            )
        self._all_algorithms = frozenset().union(*(p.algorithms for p in self._policies))
        self._headers: dict[str, _Header] = {}
        # First in, first out: a hit does not reorder anything, so lookups need no lock (only
        # insertions and removals take it). A token outliving its place is verified again.
        self._cache: FIFOCache[str, _Cached] | None = (
            FIFOCache(maxsize=cache_size) if cache_size else None
        )
        self._cache_lock = threading.Lock()

    @classmethod
    def from_env(cls, prefix: str = "JWT_GUARD_", **overrides: Any) -> Verifier:
        """A verifier configured by environment variables (see ``_config.verifier_from_env``):
        ``ISSUER``, ``AUDIENCE``, ``JWKS_URL`` or ``DISCOVERY_URL``, ``ALGORITHMS``, ``LEEWAY``,
        ``TYP``, ``ROLES_CLAIM``, ``SCOPES_CLAIM``, ``ALLOW_HTTP``. Keyword arguments win."""
        from ._config import verifier_from_env

        return verifier_from_env(prefix, **overrides)

    def __repr__(self) -> str:
        algs = sorted(self._all_algorithms)
        return f"Verifier(algorithms={algs!r}, issuers={len(self._policies)})"

    @property
    def key_sources(self) -> tuple[KeySource, ...]:
        """Every key source this verifier uses (for prefetch, stats and shutdown)."""
        return tuple(dict.fromkeys(p.keys for p in self._policies))

    def prefetch(self, *, required: bool = False) -> None:
        """Warm every key source (sync). Failures are logged; raised only when ``required``."""
        for source in self.key_sources:
            source.prefetch(required=required)

    async def aprefetch(self, *, required: bool = False) -> None:
        """Warm every key source without blocking the loop (e.g. in an ASGI lifespan)."""
        for source in self.key_sources:
            await source.aprefetch(required=required)

    def close(self) -> None:
        for source in self.key_sources:
            source.close()

    async def aclose(self) -> None:
        for source in self.key_sources:
            await source.aclose()

    @property
    def denylist(self) -> Denylist | None:
        return self._denylist

    @property
    def leeway(self) -> float:
        return self._leeway

    def now(self) -> float:
        """The verifier's clock (injectable for tests)."""
        return self._clock()

    # -- drivers ------------------------------------------------------------------------

    def verify(self, token: str) -> Principal:
        """Verify ``token`` and return its principal; may block on a key fetch (WSGI, CLI)."""
        cached = self._cached(token)
        if cached is not None:
            if cached.key not in cached.policy.keys.keys(cached.kid):
                self._forget(token)
            else:
                principal = cached.principal
                if self._denylist is not None:
                    self._denylist.check(principal, self._leeway)
                return principal
        pending = self._begin(token)
        key_set = pending.policy.keys.keys(pending.header.kid)
        principal = self._finish(token, pending, key_set)
        if self._denylist is not None:
            self._denylist.check(principal, self._leeway)
        return principal

    async def averify(self, token: str) -> Principal:
        """Verify ``token`` without blocking the event loop (ASGI)."""
        cached = self._cached(token)
        if cached is not None:
            source = cached.policy.keys
            key_set = source.ready(cached.kid)
            if key_set is None:
                key_set = await source.akeys(cached.kid)
            if cached.key not in key_set:
                self._forget(token)
            else:
                principal = cached.principal
                if self._denylist is not None:
                    await self._denylist.acheck(principal, self._leeway)
                return principal
        pending = self._begin(token)
        source = pending.policy.keys
        key_set = source.ready(pending.header.kid)
        if key_set is None:
            key_set = await source.akeys(pending.header.kid)
        principal = self._finish(token, pending, key_set)
        if self._denylist is not None:
            await self._denylist.acheck(principal, self._leeway)
        return principal

    # -- revocation --------------------------------------------------------------------------

    def _revoked_until(self, principal: Principal) -> float:
        """Until when the principal's jti must stay on the denylist."""
        if self._denylist is None:
            raise ConfigurationError("revocation needs Verifier(denylist=...)")
        if principal.token_id is None:
            raise ClaimMissing()  # a token without jti cannot be revoked individually
        exp = principal.expires_at
        return exp + self._leeway if exp is not None else self._clock() + DEFAULT_NO_EXP_TTL

    def revoke(self, token_or_principal: str | Principal) -> Principal:
        """Revoke one token (its ``jti``, scoped by issuer) until it expires anyway.

        A token string is verified first: only a token this verifier accepts can be revoked.
        """
        principal = (
            self.verify(token_or_principal)
            if isinstance(token_or_principal, str)
            else token_or_principal
        )
        until = self._revoked_until(principal)
        assert self._denylist is not None and principal.token_id is not None
        self._denylist.add_token(principal.issuer, principal.token_id, until)
        return principal

    async def arevoke(self, token_or_principal: str | Principal) -> Principal:
        """Async twin of :meth:`revoke`."""
        principal = (
            await self.averify(token_or_principal)
            if isinstance(token_or_principal, str)
            else token_or_principal
        )
        until = self._revoked_until(principal)
        assert self._denylist is not None and principal.token_id is not None
        await self._denylist.aadd_token(principal.issuer, principal.token_id, until)
        return principal

    def _subject_revocation(self, issued_before: float | None, ttl: float) -> tuple[float, float]:
        if self._denylist is None:
            raise ConfigurationError("revocation needs Verifier(denylist=...)")
        now = self._clock()
        return (now if issued_before is None else float(issued_before)), now + ttl

    def revoke_subject(
        self,
        subject: str,
        *,
        issuer: str | None = None,
        issued_before: float | None = None,
        ttl: float = DEFAULT_SUBJECT_TTL,
    ) -> None:
        """Reject every token of ``subject`` issued before ``issued_before`` (default: now).

        "Log out everywhere" / "ban this account". ``issuer`` defaults to the verifier's only
        configured issuer; ``ttl`` must outlive the longest token lifetime.
        """
        cutoff, until = self._subject_revocation(issued_before, ttl)
        assert self._denylist is not None
        self._denylist.add_subject(self._issuer_for(issuer), subject, cutoff, until)

    async def arevoke_subject(
        self,
        subject: str,
        *,
        issuer: str | None = None,
        issued_before: float | None = None,
        ttl: float = DEFAULT_SUBJECT_TTL,
    ) -> None:
        """Async twin of :meth:`revoke_subject`."""
        cutoff, until = self._subject_revocation(issued_before, ttl)
        assert self._denylist is not None
        await self._denylist.aadd_subject(self._issuer_for(issuer), subject, cutoff, until)

    def _issuer_for(self, issuer: str | None) -> str | None:
        if issuer is not None:
            return issuer
        names = [n for p in self._policies for n in (p.rules.issuers or ())]
        if len(names) > 1:
            raise ConfigurationError("several issuers are trusted: pass issuer=")
        return names[0] if names else None

    # -- the core (no I/O) ------------------------------------------------------------------

    def _cached(self, token: str) -> _Cached | None:
        """A verified-token cache hit whose time claims still hold, else ``None``.

        Security reasoning: the entry is keyed by the exact token string, so a hit means the
        same bytes that already passed the signature and every static claim check with this
        very verifier (its configuration is fixed at construction). What can change between
        two presentations is time, the key set and the denylist, so those are checked on
        every hit: ``exp``/``nbf``/``max_token_age`` against the clock here, key presence and
        the denylist by the drivers. Failures are never cached.
        """
        cache = self._cache
        if cache is None or type(token) is not str:
            return None
        try:
            entry = cache[token]
        except KeyError:  # absent, or evicted by another thread a moment ago
            return None
        try:
            check_times(entry.exp, entry.nbf, entry.iat, self._clock(), self._leeway, self._max_age)
        except TokenExpired:
            self._forget(token)
            raise
        return entry

    def _forget(self, token: str) -> None:
        if self._cache is not None:
            with self._cache_lock:
                self._cache.pop(token, None)

    def clear_cache(self) -> None:
        """Drop every verified token remembered (they are re-verified on next use)."""
        if self._cache is not None:
            with self._cache_lock:
                self._cache.clear()

    def _check_header(self, segment: str) -> _Header:
        header = parse_header(segment)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise MalformedToken()  # RFC 7515 §4.1.1: "alg" is required
        if alg not in self._all_algorithms:
            # Covers "none" in any spelling and every algorithm not configured (RFC 8725 §3.1).
            raise AlgorithmNotAllowed()
        if "crit" in header:
            crit = header["crit"]
            if (
                not isinstance(crit, list)
                or not crit
                or not all(isinstance(c, str) and c in header for c in crit)
            ):
                raise MalformedToken()  # RFC 7515 §4.1.11: a non-empty list of present names
            # We implement no extension: every listed name is one we do not understand.
            raise CriticalHeaderUnsupported()
        if "b64" in header and header["b64"] is not True:
            # RFC 7797 §3/§7: unencoded payloads change what the signature covers.
            raise CriticalHeaderUnsupported()
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
            raise MalformedToken()  # RFC 7515 §4.1.4: a string; ours: bounded
        # "jwk", "jku", "x5u", "x5c" are deliberately never read: keys come only from the
        # configured key source (RFC 8725 §3.10).
        self._policies[0].rules.check_header_typ(header)
        parsed = _Header(alg, kid, header)
        if len(self._headers) >= HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[segment] = parsed
        return parsed

    def _begin(self, token: str) -> _Pending:
        h64, p64, s64 = split_compact(token, self._max_bytes)
        header = self._headers.get(h64)
        if header is None:
            header = self._check_header(h64)
        payload = parse_json(b64url_decode(p64))
        policy = self._route(payload)
        if header.alg not in policy.algorithms:
            raise AlgorithmNotAllowed()
        signature = b64url_decode(s64)
        signing_input = token[: len(h64) + 1 + len(p64)].encode("ascii")
        return _new(_Pending, (header, payload, signing_input, signature, policy))

    def _route(self, payload: Mapping[str, Any]) -> _Policy:
        if self._routes is None:
            return self._policies[0]
        # The unverified "iss" only *selects* among configured issuers; an unknown one is
        # refused here, before any key source is asked (so before any network request).
        iss = payload.get("iss")
        if iss is None:
            raise ClaimMissing()
        if not isinstance(iss, str) or iss not in self._routes:
            raise IssuerInvalid()
        return self._routes[iss]

    def _finish(self, token: str, pending: _Pending, key_set: KeySet) -> Principal:
        header, payload, signing_input, signature, policy = pending
        candidates = key_set.candidates(header.kid, header.alg)
        for key in candidates:
            try:
                ok = key.verify(header.alg, signing_input, signature)
            except (ValueError, TypeError) as exc:
                raise InvalidSignature() from exc
            if ok:
                break
        else:
            raise InvalidSignature()
        exp = check_time_claims(payload, self._clock(), self._leeway, self._max_age)
        policy.rules.check(payload)
        roles = collect_strings(payload, policy.roles_paths, split=False)
        scopes = collect_strings(payload, policy.scopes_paths, split=True)
        principal = Principal(claims=payload, header=header.mapping, roles=roles, scopes=scopes)
        if self._cache is not None:
            # nbf and iat were validated as NumericDates (or absent) by check_time_claims.
            entry = _new(
                _Cached,
                (principal, key, policy, exp, payload.get("nbf"), payload.get("iat"), header.kid),
            )
            with self._cache_lock:
                self._cache[token] = entry
        return principal
