"""The verifier's order of steps, with no I/O (RFC 7515 §5.2, RFC 8725, RFC 9068, RFC 9449).

    token ─► 1 size, syntax, split ─► 2 header: alg allowed, crit, b64, kid (cached per header)
          ─► 3 payload JSON ─► 4 route by configured issuer, its typ ─► 5 key set (I/O: driver)
          ─► 6 signature ─► 7 claims, cnf ─► Principal, remembered by the cache

Steps 1-4 are :meth:`Steps._begin`, 6 and 7 :meth:`Steps._finish`; between them a driver gets
the key set (``jwt_guard._sources.drivers``), and after them it checks a DPoP proof
(:meth:`Steps._check_dpop`, the checks only) and asks the denylist. The options become policies
in :mod:`.policy` (step 4 routes among them); a verified token is remembered in :mod:`.cache`,
whose docstring says what a hit skips and what it never skips.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from .claims import check_time_claims, collect_strings
from .dpop import DPoP, Proof, check_confirmation
from .errors import (
    AlgorithmNotAllowed,
    ConfigurationError,
    CriticalHeaderUnsupported,
    InvalidSignature,
    InvalidToken,
    MalformedToken,
    TokenTooLarge,
    TypeInvalid,
    safe_value,
)
from .introspection import (
    Introspected,
    check_access_token,
    check_agreement,
    inactive_entry,
    refusal_entry,
    token_key,
)
from .keys import JWK
from .keyset import KeySet
from .parse import MAX_KID_LENGTH, b64url_decode, parse_header, parse_json, segments_detail
from .policy import Configuration, Policy
from .principal import Principal, read_only_mapping, verified_principal

__all__ = ["HEADER_CACHE_SIZE", "Steps", "token_bytes"]

#: The "header" of an introspected token's principal: it has none.
_NO_HEADER: Final[MappingProxyType[str, Any]] = MappingProxyType({})

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


_OWN_REASON: Final = (
    "no algorithms configured: each published key's own is accepted, never HS* or none "
    "(RFC 8725 §3.1)"
)


def _on_curves(candidates: Sequence[JWK], policy: Policy, alg: str) -> Sequence[JWK]:
    """The candidate keys on a curve the policy's profile allows (FAPI 2.0 SP §5.4: EdDSA
    with Ed25519 only, never an Ed448 key); none left is an algorithm the profile refuses."""
    curves = policy.curves or frozenset()
    kept = [k for k in candidates if k.crv is None or k.crv in curves]
    if not kept:
        profile = policy.profile.name if policy.profile is not None else None
        raise AlgorithmNotAllowed(
            detail={
                "alg": alg,
                "reason": "the key's curve is not one the profile allows",
                "curves": sorted(curves),
                "profile": profile,
            }
        )
    return kept


def _allowed_detail(policies: Sequence[Policy]) -> dict[str, Any]:
    """What a refused algorithm's detail says is allowed: the algorithms named, and for a
    policy that follows its keys the algorithms of the keys it holds now (not all that a
    published key might be for); the reason for following the keys only where it applies."""
    allowed: set[str] = set()
    own: list[Policy] = []
    unfetched = False
    for policy in policies:
        if not policy.own_algorithms:
            allowed |= policy.algorithms
            continue
        own.append(policy)
        loaded = policy.keys.loaded
        if loaded is None:
            unfetched = True
        else:
            allowed |= loaded.algorithms
    detail: dict[str, Any] = {"allowed": sorted(allowed)}
    if own:
        if len(own) == len(policies):
            reason = _OWN_REASON
        else:
            # "never HS*" would contradict an HS256 another issuer names.
            names = ", ".join(sorted(i for p in own for i in p.rules.issuers or ()))
            reason = (
                f"no algorithms configured for {names}: each published key's own is accepted "
                "there (RFC 8725 §3.1)"
            )
        detail["reason"] = reason + ("; no key set fetched yet" if unfetched else "")
    return detail


# NamedTuples on the hot path are built with the C-level tuple constructor: the generated
# ``__new__`` is Python code and costs more than everything it stores.
_new = tuple.__new__


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


#: A number for each (verifier, policy) judging introspection responses, never reused in a
#: process: a cached judgement is keyed by it (review R27-6).
_JUDGES: Final = itertools.count(1)


class Steps:
    """The steps of :class:`~jwt_guard.Verifier` that decide and do no I/O; its drivers call
    them in order and do the I/O between them.

    A base class only: it has no constructor, its state is set by ``Verifier.__init__``
    (``_sources.verifier``), so the steps are tested through a verifier."""

    # Set by Verifier.__init__; the hot path reads them as plain attributes.
    _config: Configuration
    _clock: Callable[[], float]
    _leeway: float
    _max_age: float | None
    _max_bytes: int
    _dpop: DPoP | None
    _mtls: bool
    _check_cnf: bool
    _all_algorithms: frozenset[str]
    _route: Callable[[Mapping[str, Any]], Policy]
    _headers: dict[bytes, _Header]
    _remember: Callable[..., None]
    _judges: dict[int, tuple[Policy, bytes]]

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

    def _check_binding(self, cnf: object) -> None:
        """A key binding (``cnf``) this verifier can check, else the refusal: one rule for a
        JWT's claims and an introspection response's."""
        check_confirmation(cnf, self._dpop is not None, self._mtls)

    def _introspection_key(self, token: bytes, policy: Policy) -> bytes:
        """The cache key of a token's judged answer: its hash (``token_key``, the shared
        store's key too) and this verifier's number for ``policy``. One Introspection given to
        two verifiers (or issuers) caches a principal per judge: each holds the response to its
        own audience, issuer and claim rules (review R27-6)."""
        judge = self._judges.get(id(policy))
        if judge is None:  # the policy is held here: its id is never another's
            judge = self._judges.setdefault(id(policy), (policy, next(_JUDGES).to_bytes(8, "big")))
        return token_key(token) + judge[1]

    def _admit(self, policy: Policy, key: bytes, response: dict[str, Any]) -> Introspected:
        """An introspection response (RFC 7662 §2.2) judged by the rules of ``policy``'s
        tokens, and cached by ``key`` (``_introspection_key``): the principal, or the refusal."""
        source = policy.introspection
        rules = policy.introspection_rules
        assert source is not None and rules is not None
        if response["active"] is not True:
            entry = inactive_entry({"endpoint": source.shown, "active": False})
            return source.cache.put(key, entry, self._max_age)
        # The members are the token's claims (RFC 7662 §2.2 uses the JWT claim names).
        claims = {name: value for name, value in response.items() if name != "active"}
        issuers = rules.issuers
        if "iss" not in claims and issuers is not None and len(issuers) == 1:
            # "iss" is optional in the response: the endpoint configured for this one issuer
            # speaks for it (with several names, which one would be a guess: refused below).
            claims["iss"] = next(iter(issuers))
        try:
            check_access_token(claims, source.untyped_answers_are_access_tokens)
            check_time_claims(claims, self._clock(), self._leeway, self._max_age)
            rules.check(claims)
            if "cnf" in claims and self._check_cnf:
                # RFC 9449 §6.2: a DPoP-bound token's cnf.jkt comes in the response; its proof
                # is checked by the after-steps, as for a JWT.
                self._check_binding(claims["cnf"])
        except InvalidToken as exc:
            exc.add_detail("endpoint", source.shown)
            exc.add_detail("active", True)
            return source.cache.put(key, refusal_entry(exc), self._max_age)
        roles = collect_strings(claims, policy.roles_paths, split=False)
        scopes = collect_strings(claims, policy.scopes_paths, split=True)
        principal = verified_principal(
            claims, _NO_HEADER, roles, scopes, policy.scope_hierarchy, flat=False
        )
        return source.cache.put(key, Introspected(principal, None, "", {}, 0.0), self._max_age)

    def _admit_jwt(
        self, policy: Policy, key: bytes, principal: Principal, response: dict[str, Any]
    ) -> Introspected:
        """An introspection response about a JWT verified locally (``introspect_jwts``): the
        JWT's own principal while the server says it is active and describes it alike
        (``check_agreement``, review R27-9), the refusal otherwise; cached as ``_admit``'s."""
        source = policy.introspection
        assert source is not None
        if response["active"] is not True:
            entry = inactive_entry({"endpoint": source.shown, "active": False})
            return source.cache.put(key, entry, self._max_age)
        try:
            check_agreement(response, principal.claims)
        except InvalidToken as exc:
            exc.add_detail("endpoint", source.shown)
            exc.add_detail("active", True)
            return source.cache.put(key, refusal_entry(exc), self._max_age)
        return source.cache.put(key, Introspected(principal, None, "", {}, 0.0), self._max_age)

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
            policies = self._config.policies
            raise AlgorithmNotAllowed(
                detail=lambda: {"alg": safe_value(alg)} | _allowed_detail(policies)
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
        typ = header.get("typ")
        if typ is not None and not isinstance(typ, str):
            # RFC 7515 §4.1.9: a string when present. The expected value is the routed
            # issuer's (step 4, ``ClaimRules.check_typ``): each may expect its own.
            raise TypeInvalid(detail={"typ": safe_value(typ), "reason": "'typ' must be a string"})
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
            # An opaque or encrypted token says so, with what to ask the provider for.
            raise MalformedToken(detail=segments_detail(len(parts)))
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
        if policy.rules.typ is not None:
            # Before the signature, like the header's other checks: a token of another kind
            # (an ID token, RFC 9068 §4) costs no key lookup.
            policy.rules.check_typ(header.mapping, payload)
        if header.alg not in policy.algorithms:
            raise AlgorithmNotAllowed(
                detail=lambda: (
                    {"alg": header.alg}
                    | _allowed_detail((policy,))
                    | {"iss": safe_value(payload.get("iss"))}
                )
            )
        # The signing input is a slice of the bytes received, never re-encoded (RFC 7515 §5.2).
        signing_input = token[: len(h64) + 1 + len(p64)]
        flat = raw.find(b"[") < 0 and raw.find(b"{", 1) < 0
        return _new(_Pending, (header, payload, signing_input, signature, policy, flat))

    def _finish(self, token: bytes, pending: _Pending, key_set: KeySet) -> Principal:
        header, payload, signing_input, signature, policy, flat = pending
        candidates = key_set.candidates(header.kid, header.alg, policy.own_algorithms)
        if policy.curves is not None:
            candidates = _on_curves(candidates, policy, header.alg)
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
            self._check_binding(payload["cnf"])
        roles = collect_strings(payload, policy.roles_paths, split=False)
        scopes = collect_strings(payload, policy.scopes_paths, split=True)
        principal = verified_principal(
            payload, header.mapping, roles, scopes, policy.scope_hierarchy, flat=flat
        )
        self._remember(token, principal, key, policy, exp, payload, header.kid, key_set)
        return principal
