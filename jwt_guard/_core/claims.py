"""Claim rules (RFC 7519 §4.1, RFC 9068 §4, RFC 8725 §3.8-3.11). Pure functions, no I/O."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from .authorization_details import check_authorization_details
from .errors import (
    AudienceInvalid,
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    IssuerInvalid,
    JWTGuardError,
    TokenExpired,
    TokenIssuedInFuture,
    TokenNotSenderConstrained,
    TokenNotYetValid,
    TypeInvalid,
    json_type,
    safe_value,
)
from .scopes import SCOPE_TOKEN

__all__ = [
    "MAX_LEEWAY",
    "MAX_NUMERIC_DATE",
    "SENDER_CONSTRAINTS",
    "ClaimRules",
    "check_time_claims",
    "check_times",
    "normalize_typ",
    "resolve_claim_path",
]

#: Clock skew tolerated, in seconds. Beyond five minutes "leeway" stops being skew and starts
#: being a longer token lifetime.
MAX_LEEWAY: Final = 300
#: The confirmation methods (RFC 7800 §3.1) that make a token sender-constrained: DPoP's key
#: thumbprint (RFC 9449 §6.1) and the mTLS certificate thumbprint (RFC 8705 §3.1).
SENDER_CONSTRAINTS: Final = frozenset({"jkt", "x5t#S256"})
#: 9999-12-31T23:59:59Z. A NumericDate beyond this is not a date but an attack on arithmetic.
MAX_NUMERIC_DATE: Final = 253_402_300_799

logger = logging.getLogger("jwt_guard")

#: What a ``validate`` hook raises when the claims are not what it expected: a refusal of the
#: token (401 ``claim_invalid``), logged with its traceback for the developer.
_HOOK_ERRORS: Final = (LookupError, TypeError, ValueError, AttributeError)


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2): a JSON number, finite, in a sane range."""
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise _not_a_date(name, value)  # "exp": null is not an absent claim
        return None
    # bool is an int subclass in Python; JSON true is not a number.
    if type(value) is int or type(value) is float:
        if type(value) is float and not math.isfinite(value):
            raise _not_a_date(name, value)
        if 0 <= value <= MAX_NUMERIC_DATE:
            return value
    raise _not_a_date(name, value)


def _not_a_date(name: str, value: Any) -> ClaimInvalid:
    # A time claim is not secret; its value shows what the issuer got wrong.
    return ClaimInvalid(
        detail={
            "claim": name,
            "reason": f"must be a NumericDate from 0 to {MAX_NUMERIC_DATE} (RFC 7519 §2)",
            "found": safe_value(value),
        }
    )


def _times(name: str, value: float, now: float, leeway: float) -> dict[str, Any]:
    return {"claim": name, name: value, "now": round(now, 3), "leeway": leeway}


def check_times(
    exp: float | None,
    nbf: float | None,
    iat: float | None,
    now: float,
    leeway: float,
    max_age: float | None,
) -> None:
    """The time rules (RFC 7519 §4.1.4-4.1.6, plus ``max_age``) on already-validated dates.

    Shared by a fresh verification and by every hit of the verified-token cache.
    """
    if exp is not None and now - leeway >= exp:
        # §4.1.4: the current time MUST be before "exp".
        detail = _times("exp", exp, now, leeway)
        detail["expired_seconds_ago"] = round(now - exp, 3)
        raise TokenExpired(detail=detail)
    if nbf is not None and now + leeway < nbf:
        detail = _times("nbf", nbf, now, leeway)
        detail["valid_in_seconds"] = round(nbf - now, 3)
        raise TokenNotYetValid(detail=detail)
    if iat is not None and now + leeway < iat:
        detail = _times("iat", iat, now, leeway)
        detail["issued_in_seconds"] = round(iat - now, 3)
        raise TokenIssuedInFuture(detail=detail)
    if max_age is not None:
        if iat is None:
            raise ClaimMissing(detail={"claim": "iat", "reason": "max_token_age needs it"})
        if now - leeway > iat + max_age:
            detail = _times("iat", iat, now, leeway)
            detail["max_token_age"] = max_age
            detail["age_seconds"] = round(now - iat, 3)
            raise TokenExpired(
                code="token_too_old", description="The token is too old.", detail=detail
            )


def check_time_claims(
    claims: Mapping[str, Any],
    now: float,
    leeway: float,
    max_age: float | None,
) -> float | None:
    """Validate ``exp``, ``nbf``, ``iat``, ``auth_time`` as NumericDates and check them; return
    ``exp``."""
    exp = numeric_date(claims, "exp")
    check_times(exp, numeric_date(claims, "nbf"), numeric_date(claims, "iat"), now, leeway, max_age)
    if "auth_time" in claims:
        # OIDC Core §2 / RFC 9068 §2.2.1 (RFC 9470 §6.1 registers its use): when the user
        # last logged in. A login in the future is a broken or forged token, and would pass
        # every require_auth_age check.
        auth_time = numeric_date(claims, "auth_time")
        if auth_time is not None and now + leeway < auth_time:
            detail = _times("auth_time", auth_time, now, leeway)
            detail["logged_in_in_seconds"] = round(auth_time - now, 3)
            raise ClaimInvalid(code="auth_time_in_future", detail=detail)
    return exp


def normalize_typ(value: str) -> str:
    """RFC 7515 §4.1.9 / RFC 9068 §4: compare case-insensitively, ``application/`` optional."""
    lowered = value.lower()
    return lowered[12:] if lowered.startswith("application/") else lowered


def resolve_claim_path(claims: Mapping[str, Any], path: str) -> Any:
    """Find a claim by a dotted path that may also name claims containing dots.

    ``realm_access.roles`` reaches the nested Keycloak claim; ``https://example.com/roles``
    (an Auth0 namespaced claim) is found as one name. At each level the longest run of path
    segments that is a member name wins.
    """
    if path in claims:
        return claims[path]
    parts = path.split(".")
    node: Any = claims
    i = 0
    while i < len(parts):
        if not isinstance(node, Mapping):
            return None
        for j in range(len(parts), i, -1):
            name = ".".join(parts[i:j])
            if name in node:
                node = node[name]
                i = j
                break
        else:
            return None
    return node


def _scope_set(items: list[str]) -> frozenset[str]:
    """RFC 6749 §3.3: ``scope = scope-token *( SP scope-token )``, split on the space character
    only (``str.split()`` also splits on NBSP, NEL, tabs...: a scope with text a client chose in
    it, ``file:x<NBSP>notes:admin``, would become ``notes:admin``). An item that is not a
    scope-token is dropped, never reinterpreted: no configured scope can name it (fail closed)."""
    return frozenset(s for s in items if SCOPE_TOKEN.fullmatch(s))


def _string_set(value: Any, *, split: bool) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        # A role given as a string is one role ("admin"), never matched as a substring;
        # OAuth "scope" is a space-separated list (RFC 8693 §4.2, RFC 9068 §2.2.3).
        return _scope_set(value.split(" ")) if split else frozenset((value,))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return _scope_set(value) if split else frozenset(value)
    raise ClaimInvalid(detail={"reason": "must be a string or a list of strings"})


#: Claims whose values are identifiers of an application, a tenant or a kind of token, never of
#: a person: a claim-value rule may show the value it found for them in a ``detail``.
SHOWN_CLAIM_VALUES: Final = frozenset(
    {"azp", "cid", "client_id", "hd", "tid", "token_use", "typ", "ver", "appid", "idp", "acr"}
)
#: Claims only an OpenID Connect ID token carries (OIDC Core §2, §3.3.2.11; FAPI's s_hash):
#: named in the refusal of an ID token presented where an access token is expected.
ID_TOKEN_CLAIMS: Final = ("at_hash", "c_hash", "nonce", "s_hash")
#: Claims that have their own option; a claim-value rule for them is a configuration mistake.
_OWN_OPTION: Final = {
    "iss": "issuer=",
    "aud": "audience=",
    "exp": "the time checks (leeway=)",
    "nbf": "the time checks (leeway=)",
    "iat": "the time checks (max_token_age=)",
}

ClaimValue = str | int | float | bool
Validator = Callable[[Mapping[str, Any]], object]


def claim_value_rules(rules: Mapping[str, Any] | None, what: str) -> dict[str, frozenset[Any]]:
    """``{"token_use": "access", "client_id": {"a", "b"}}`` into name -> accepted values.

    A value is a string, number or boolean; a set, list or tuple of them accepts any one.
    """
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise ConfigurationError(f"{what} must be a mapping of claim names to values")
    out: dict[str, frozenset[Any]] = {}
    for name, value in rules.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{what}: claim names must be non-empty strings")
        if name in _OWN_OPTION:
            raise ConfigurationError(f"{what}: check {name!r} with {_OWN_OPTION[name]}")
        values = tuple(value) if isinstance(value, (set, frozenset, list, tuple)) else (value,)
        if not values or not all(
            isinstance(v, (str, int, float, bool)) and v != "" for v in values
        ):
            raise ConfigurationError(
                f"{what}[{name!r}] must be a string, number or boolean, or a set of them"
            )
        # (type, value) pairs: JSON true is not 1, and 1 is not "1".
        out[name] = frozenset((type(v), v) for v in values)
    return out


def _shown(values: frozenset[Any]) -> list[Any]:
    return sorted((v for _, v in values), key=str)


@dataclass(frozen=True)
class ClaimRules:
    """The claim checks of one trusted issuer configuration."""

    issuers: frozenset[str] | None
    audiences: frozenset[str] | None
    required: tuple[str, ...]
    typ: str | None
    # name -> accepted (type, value) pairs (see claim_value_rules)
    values: Mapping[str, frozenset[Any]] = field(default_factory=dict)
    # claims whose found value a failed rule shows (SHOWN_CLAIM_VALUES and the opt-ins)
    shown: frozenset[str] = SHOWN_CLAIM_VALUES
    #: ``validate=`` hooks: part of verifying the token, so once per token (a cache hit skips
    #: them, like the signature).
    validators: tuple[Validator, ...] = ()
    #: ``validate_each_request=`` hooks: asked on every request, cache hits included.
    per_request: tuple[Validator, ...] = ()
    #: Why a claim is required beyond ``required_claims=`` (``jti`` for a denylist): said
    #: when it is missing.
    required_by: Mapping[str, str] = field(default_factory=dict)
    #: The profile these rules hold tokens to (``rfc9068``), and the claims it requires, for
    #: the refusals' details (``_core.profiles``).
    profile: str | None = None
    profile_claims: frozenset[str] = frozenset()
    #: The claims the profile requires to be non-empty strings (RFC 9068 §2.2's identifiers).
    profile_strings: tuple[str, ...] = ()
    #: The profile accepts only sender-constrained tokens (FAPI 2.0 SP §5.3.4): ``cnf`` must
    #: name a binding; whether this verifier checks it is the confirmation step's question.
    sender_constrained: bool = False

    def check_typ(self, header: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        """The expected header ``typ``, once the token is routed to this issuer's rules (the
        header step already refused a ``typ`` that is not a string)."""
        typ = header.get("typ")
        # RFC 8725 §3.11: explicit typing keeps one kind of JWT from being used as another.
        if typ is not None and normalize_typ(typ) == self.typ:
            return
        detail: dict[str, Any] = {"typ": safe_value(typ), "expected": self.typ}
        if self.profile is not None:
            detail["profile"] = self.profile
        id_token = sorted(name for name in ID_TOKEN_CLAIMS if name in payload)
        if payload.get("typ") == "ID":  # Keycloak names its ID tokens in a "typ" claim
            id_token.append("typ")
        if id_token:
            # The commonest way to get here: a client sends the ID token it got at login. It
            # is signed by the same keys, and its "aud" is the client id, which some APIs
            # accept as their audience (RFC 9068 §4, RFC 8725 §3.11).
            detail["id_token_claims"] = id_token
            detail["hint"] = (
                "the token carries ID token claims: an OpenID Connect ID token is not an "
                "access token; send the access token"
            )
        raise TypeInvalid(detail=detail)

    def check(self, claims: Mapping[str, Any]) -> None:
        """Issuer, audience, required claims and the types of the registered string claims."""
        for name in self.required:
            if claims.get(name) is None:
                # "client_id": null is no client id: a required claim must have a value.
                raise self._missing(name, claims)
        for name in self.profile_strings:
            value = claims.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                # Only the JSON type: identifiers are not for logs.
                raise ClaimInvalid(
                    detail={
                        "claim": name,
                        "reason": "must be a non-empty string",
                        "found": json_type(value) if value != "" else "empty string",
                        "profile": self.profile,
                    }
                )
        if self.sender_constrained:
            self._check_sender_constrained(claims.get("cnf"))
        if "authorization_details" in claims:
            # RFC 9396 §9.1: checked once here, so the app never reads a malformed one.
            check_authorization_details(claims["authorization_details"])
        iss = claims.get("iss")
        if iss is not None and not isinstance(iss, str):
            raise ClaimInvalid(
                detail={"claim": "iss", "reason": "must be a string", "found": safe_value(iss)}
            )
        if self.issuers is not None:
            # Exact comparison against each configured issuer: no prefix, no substring
            # (CVE-2024-53861 was "in" applied to a string).
            if iss is None:
                raise ClaimMissing(detail={"claim": "iss", "expected": sorted(self.issuers)})
            if iss not in self.issuers:
                raise issuer_invalid(iss, self.issuers)
        self._check_audience(claims)
        # RFC 7519 §4.1.2/§4.1.7; "acr" is a string too (OIDC Core §2, RFC 9068 §2.2.1).
        for name in ("sub", "jti", "acr"):
            value = claims.get(name)
            if value is not None and not isinstance(value, str):
                # Only the JSON type: sub and jti values are not for logs.
                raise ClaimInvalid(
                    detail={"claim": name, "reason": "must be a string", "found": json_type(value)}
                )
        for name, accepted in self.values.items():
            if name not in claims:
                raise ClaimMissing(detail={"claim": name, "expected": _shown(accepted)})
            value = claims[name]
            if (
                not isinstance(value, (str, int, float, bool))
                or (type(value), value) not in accepted
            ):
                detail: dict[str, Any] = {"claim": name, "expected": _shown(accepted)}
                detail["found"] = (
                    safe_value(value) if name in self.shown else f"<{json_type(value)}>"
                )
                raise ClaimInvalid(detail=detail)
        if self.validators:
            run_hooks(self.validators, MappingProxyType(claims), "validate")

    def _check_sender_constrained(self, cnf: object) -> None:
        # FAPI 2.0 SP §5.3.4 item 5, RFC 9700 §2.2.1: a confirmation method the resource
        # server verifies (RFC 7800 §3.1); the confirmation step then refuses one this
        # verifier has no check for (token_binding_unsupported), so no binding goes unchecked.
        if isinstance(cnf, Mapping) and not SENDER_CONSTRAINTS.isdisjoint(cnf):
            return
        raise TokenNotSenderConstrained(
            detail={
                "profile": self.profile,
                "reason": "a bearer token: the profile accepts only tokens bound to the "
                "client's DPoP key (cnf.jkt) or certificate (cnf.x5t#S256)",
                "cnf": (
                    safe_value(sorted(cnf))
                    if isinstance(cnf, Mapping)
                    else "absent"
                    if cnf is None
                    else json_type(cnf)
                ),
            }
        )

    def _missing(self, name: str, claims: Mapping[str, Any]) -> ClaimMissing:
        detail: dict[str, Any] = {"claim": name, "required": list(self.required)}
        if name in claims:
            detail["found"] = None
        if name in self.required_by:
            detail["reason"] = self.required_by[name]
        if name in self.profile_claims:
            detail["profile"] = self.profile
        return ClaimMissing(detail=detail)

    def check_each_request(self, claims: Mapping[str, Any]) -> None:
        """The ``validate_each_request`` hooks, on a token's read-only claims."""
        run_hooks(self.per_request, claims, "validate_each_request")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        if "aud" not in claims:
            if self.audiences is not None:
                raise ClaimMissing(detail={"claim": "aud", "expected": sorted(self.audiences)})
            return
        aud = claims["aud"]
        present: Collection[str]
        if isinstance(aud, str):
            present = (aud,)
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            present = aud
        else:
            raise ClaimInvalid(
                detail={
                    "claim": "aud",
                    "reason": "must be a string or a non-empty list of strings",
                    "found": safe_value(aud),
                }
            )
        if self.audiences is None:
            # RFC 7519 §4.1.3: a recipient that does not identify itself with a value in
            # "aud" MUST reject the token. Configure ``audience`` to accept it.
            raise AudienceInvalid(
                detail={
                    "expected": None,
                    "found": safe_value(aud),
                    "hint": "the token has 'aud' but no audience is configured (RFC 7519 §4.1.3)",
                }
            )
        if self.audiences.isdisjoint(present):
            raise AudienceInvalid(
                detail={"expected": sorted(self.audiences), "found": safe_value(aud)}
            )


def run_hooks(hooks: Sequence[Validator], claims: Mapping[str, Any], option: str) -> None:
    """Anything else the application checks, on read-only ``claims``: each hook raises
    ClaimInvalid with its own detail, or returns False (a plain refusal)."""
    for hook in hooks:
        try:
            verdict = hook(claims)
        except JWTGuardError:
            raise
        except _HOOK_ERRORS as exc:
            # A hook that trips over the claims it was given (``claims["tenant"]`` on a token
            # without one, a claim of another type) is refusing the token, not failing the
            # server: a signed token never becomes a 500.
            name = _name(option, hook)
            logger.warning("%s raised on a verified token", name, exc_info=True)
            raise ClaimInvalid(detail={"reason": f"{name} raised {type(exc).__name__}"}) from exc
        if verdict is False:
            raise ClaimInvalid(detail={"reason": f"{_name(option, hook)} returned False"})
        if inspect.isawaitable(verdict):
            # Never awaited here: its answer is unknown, so the token is refused (fail closed).
            if inspect.iscoroutine(verdict):
                verdict.close()
            logger.warning("%s returned an awaitable; hooks must be sync", _name(option, hook))
            raise ClaimInvalid(
                detail={"reason": f"{_name(option, hook)} returned an awaitable (hooks are sync)"}
            )


def _name(option: str, func: object) -> str:
    return f"{option} {getattr(func, '__qualname__', type(func).__name__)}"


def issuer_invalid(found: Any, expected: Collection[str]) -> IssuerInvalid:
    """``issuer_invalid`` with expected versus found, and a hint for the common near misses."""
    detail: dict[str, Any] = {"expected": sorted(expected), "found": safe_value(found)}
    if isinstance(found, str):
        for name in expected:
            if found.rstrip("/") == name.rstrip("/"):
                detail["hint"] = "differs from a configured issuer only by a trailing slash"
                break
            if found.lower() == name.lower():
                detail["hint"] = "differs from a configured issuer only in letter case"
                break
    return IssuerInvalid(detail=detail)


def collect_strings(
    claims: Mapping[str, Any], paths: Sequence[str], *, split: bool
) -> frozenset[str]:
    """Union of the string sets found at each claim path."""
    found: frozenset[str] = frozenset()
    for path in paths:
        value = claims.get(path)
        if value is None and "." in path:
            value = resolve_claim_path(claims, path)
        if value is not None:
            try:
                found |= _string_set(value, split=split)
            except ClaimInvalid as exc:
                exc.detail["claim"] = path
                exc.detail["found"] = json_type(value)
                raise
    return found
