"""Profiles: one name for what a standard asks of a resource server, set in one switch.

    Verifier(..., profile="rfc9068")              the JWT access token profile (RFC 9068)
    Verifier(..., profile="fapi2", dpop=DPoP())   FAPI 2.0 Security Profile, resource server
    Verifier(..., profile=["rfc9068", "fapi2"])   several: their demands add up
    Verifier(..., profile="rfc9068+fapi2")        the same, in one string (an environment
                                                  variable, a CLI flag)

A :class:`Profile` is plain data: the header ``typ`` it requires, the claims it requires, the
options it needs set (an issuer, an audience), the algorithms and curves it allows, whether
every token must be sender-constrained, and whether tokens may come only in a header. It sets
nothing behind the application's back: the options it implies are added to the policy
(``_core.policy``), and an explicit option that asks for less (another ``typ=``, no
``audience=``, ``allow_tokens_without_jti=True``, an algorithm it does not allow) is a
:class:`ConfigurationError` naming both, never silently overridden either way.

Profiles compose: each field of a combination is the union of its parts' (claims, needs,
the yes/no demands), the intersection (algorithms, curves: what both allow; nothing in common
is a :class:`ConfigurationError`) or must agree (``typ``). Where each demand is enforced:
claims and ``typ`` in ``_core.claims``, algorithms and curves in ``_core.policy`` and the
signature step, the need for ``dpop=``/``mtls=`` in the :class:`Verifier`, header-only in the
adapters' guard (``_http.guard``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .errors import ConfigurationError

__all__ = [
    "PROFILES",
    "Profile",
    "check_token_sources",
    "check_verifier_options",
    "resolve_profile",
]


@dataclass(frozen=True)
class Profile:
    """What one profile (or a combination of profiles) asks of every token and of the options."""

    #: ``rfc9068``; a combination joins its parts with ``+``.
    name: str
    #: Where the demands come from, for the messages (``RFC 9068 §4``).
    reference: str
    #: The header ``typ`` every token must carry (normalized: lower case, no ``application/``).
    typ: str | None = None
    #: Claims every token must carry.
    required_claims: tuple[str, ...] = ()
    #: Claims whose value must be a non-empty string (an identifier: ``""`` names nothing).
    string_claims: tuple[str, ...] = ()
    #: The verifier must check ``iss`` against a configured (or discovered) issuer.
    needs_issuer: bool = False
    #: The verifier must check ``aud`` against a configured audience.
    needs_audience: bool = False
    #: The only ``alg`` values tokens may be signed with (``None``: the options decide).
    algorithms: frozenset[str] | None = None
    #: The curves a key may be on (``None``: any the algorithm takes); ``EdDSA`` takes Ed448
    #: keys too, which a profile may refuse.
    curves: frozenset[str] | None = None
    #: Every token must be sender-constrained: a ``cnf`` binding (DPoP ``jkt``, mTLS
    #: ``x5t#S256``) that the verifier checks; a bearer token is refused.
    sender_constrained: bool = False
    #: Tokens only in the ``Authorization`` header: no query parameter, no form body.
    header_only: bool = False

    def __add__(self, other: Profile) -> Profile:
        parts = self.name.split("+")
        if set(other.name.split("+")) <= set(parts):
            return self  # the same profile twice asks nothing more
        if self.typ is not None and other.typ is not None and self.typ != other.typ:
            raise ConfigurationError(
                f"profiles {self.name!r} and {other.name!r} cannot both hold: one requires typ "
                f"{self.typ!r}, the other {other.typ!r}"
            )
        algorithms = _both(self.algorithms, other.algorithms)
        if algorithms is not None and not algorithms:
            raise ConfigurationError(
                f"profiles {self.name!r} and {other.name!r} cannot both hold: they allow no "
                "algorithm in common"
            )
        return Profile(
            name=f"{self.name}+{other.name}",
            reference=f"{self.reference}; {other.reference}",
            typ=self.typ or other.typ,
            required_claims=tuple(dict.fromkeys(self.required_claims + other.required_claims)),
            string_claims=tuple(dict.fromkeys(self.string_claims + other.string_claims)),
            needs_issuer=self.needs_issuer or other.needs_issuer,
            needs_audience=self.needs_audience or other.needs_audience,
            algorithms=algorithms,
            curves=_both(self.curves, other.curves),
            sender_constrained=self.sender_constrained or other.sender_constrained,
            header_only=self.header_only or other.header_only,
        )


def _both(one: frozenset[str] | None, other: frozenset[str] | None) -> frozenset[str] | None:
    """What two allow-lists both allow (``None``: no list, anything)."""
    if one is None:
        return other
    return one if other is None else one & other


#: Every profile jwt_guard knows, by name.
PROFILES: Final[dict[str, Profile]] = {
    # RFC 9068 §4: "typ" is "at+jwt" (or "application/at+jwt"), which keeps an ID token or any
    # other JWT of the same issuer from passing as an access token (RFC 8725 §3.11); the
    # claims of §2.2 are required; "iss" must match the issuer exactly and "aud" must name
    # this resource server.
    "rfc9068": Profile(
        name="rfc9068",
        reference="RFC 9068 §2.2, §4",
        typ="at+jwt",
        required_claims=("iss", "exp", "aud", "sub", "client_id", "iat", "jti"),
        # §2.2: "sub" and "jti" as RFC 7519 §4.1.2/§4.1.7 (strings), "client_id" as RFC 8693
        # §4.3 (the client identifier: a string); each an identifier, so not "".
        string_claims=("sub", "client_id", "jti"),
        needs_issuer=True,
        needs_audience=True,
    ),
    # FAPI 2.0 Security Profile (final, February 2025), what it asks of a resource server.
    "fapi2": Profile(
        name="fapi2",
        reference="FAPI 2.0 Security Profile §5.3.4, §5.4",
        # §5.3.4 item 3: verify the validity, integrity and expiration of access tokens: a
        # token without "exp" never expires (required_claims=() cannot drop it).
        required_claims=("exp",),
        # §5.4 item 1.1: adhere to RFC 8725, whose §3.8 validates the issuer and §3.9 the
        # audience; RFC 9700 §2.3 and §4.10.2: audience-restricted access tokens, so a token
        # for another resource server is not accepted here.
        needs_issuer=True,
        needs_audience=True,
        # §5.4 item 1.2: PS256, ES256, or EdDSA with the Ed25519 subtype (RFC 9864 §2.2 names
        # it "Ed25519"); item 1.3, never "none" (refused everywhere anyway). RSA keys of at
        # least 2048 bits (item 2) and EC keys of at least 160 (item 3) hold for every key
        # jwt_guard loads (RFC 7518 §3.3; P-256 is the only curve ES256 takes).
        algorithms=frozenset({"PS256", "ES256", "EdDSA", "Ed25519"}),
        curves=frozenset({"P-256", "Ed25519"}),
        # §5.3.4 item 5 (and RFC 9700 §2.2.1, §4.10.1): only sender-constrained access tokens,
        # checked with mTLS (RFC 8705) or DPoP (RFC 9449); a bearer token is refused.
        sender_constrained=True,
        # §5.3.4 items 1 and 2: tokens in the Authorization header (RFC 6750 §2.1), never in
        # a query parameter (RFC 6750 §2.3) -- nor a form body (RFC 6750 §2.2), which is not
        # the header either.
        header_only=True,
    ),
}


def resolve_profile(value: str | Sequence[str] | None, what: str = "profile") -> Profile | None:
    """``profile=`` as given (a name, a list of names, or ``None``) into one :class:`Profile`."""
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else value
    if isinstance(names, (bytes, bytearray)) or not isinstance(names, Sequence) or not names:
        raise ConfigurationError(f"{what} must be a profile name or a list of them")
    combined: Profile | None = None
    for item in names:
        # "rfc9068+fapi2": a combination in one string, as Profile.name writes it.
        for name in item.split("+") if isinstance(item, str) else (item,):
            if not isinstance(name, str) or name.strip().lower() not in PROFILES:
                raise ConfigurationError(_unknown(name, what))
            profile = PROFILES[name.strip().lower()]
            combined = profile if combined is None else combined + profile
    return combined


def _unknown(name: object, what: str) -> str:
    known = sorted(PROFILES)
    message = f"{what}: unknown profile {name!r}"
    if isinstance(name, str):
        close = difflib.get_close_matches(name.strip().lower(), known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return f"{message} (known profiles: {', '.join(known)})"


def _where(profile: Profile) -> str:
    return f"profile {profile.name!r} ({profile.reference})"


def check_verifier_options(
    profiles: Sequence[Profile],
    *,
    dpop_algorithms: Sequence[str] | None,
    mtls: bool,
    bearer_bound_tokens: bool,
) -> None:
    """The :class:`Verifier` options the profiles need: something to check a sender-constrained
    token with, no binding accepted unchecked, DPoP proofs signed with allowed algorithms.
    A ConfigurationError names the profile and the fix."""
    for profile in profiles:
        if profile.sender_constrained:
            if dpop_algorithms is None and not mtls:
                raise ConfigurationError(
                    f"{_where(profile)} accepts only sender-constrained tokens, and this "
                    "verifier checks no binding: pass dpop=DPoP(...) (RFC 9449) or mtls=True "
                    "(RFC 8705), or both"
                )
            if bearer_bound_tokens:
                raise ConfigurationError(
                    f"accept_bound_tokens_as_bearer=True contradicts {_where(profile)}: it "
                    "accepts a bound token without checking its binding; drop it (mtls=True "
                    "checks a certificate binding here)"
                )
        if dpop_algorithms is not None and profile.algorithms is not None:
            # §5.4 item 1: "when creating or processing JWTs", and a DPoP proof is one.
            refused = sorted(set(dpop_algorithms) - profile.algorithms)
            if refused:
                kept = [a for a in dpop_algorithms if a in profile.algorithms] or sorted(
                    profile.algorithms
                )
                raise ConfigurationError(
                    f"DPoP proof algorithms {refused} contradict {_where(profile)}, which "
                    f"allows only {sorted(profile.algorithms)} for any JWT: pass "
                    f"DPoP(algorithms={kept!r})"
                )


def check_token_sources(
    profiles: Sequence[Profile],
    *,
    header: bool,
    query_param: str | None,
    where: str,
    cookie: str | None = None,
) -> None:
    """The adapter's token sources against the profiles: a profile that takes tokens in the
    header only refuses a middleware without the header, with a query parameter or a cookie."""
    for profile in profiles:
        if not profile.header_only:
            continue
        if not header:
            # FAPI 2.0 SP §5.3.4 item 1: access tokens are accepted in the header.
            raise ConfigurationError(
                f"{where}: header=False contradicts {_where(profile)}, which takes access "
                "tokens in the Authorization header (RFC 6750 §2.1): drop header=False"
            )
        if query_param is not None:
            # §5.3.4 item 2: never in a query parameter (RFC 6750 §2.3); a URL is logged,
            # cached and sent on in Referer (RFC 6750 §5.3).
            raise ConfigurationError(
                f"{where}: websocket_query_param={query_param!r} contradicts {_where(profile)}, "
                "which refuses access tokens in a query parameter (RFC 6750 §2.3): drop it"
            )
        if cookie is not None:
            # §5.3.4 item 1: the Authorization header (RFC 6750 §2.1, RFC 9449 §7.1); a cookie
            # is neither, and the browser sends it on its own (review R28 F3).
            raise ConfigurationError(
                f"{where}: cookie={cookie!r} contradicts {_where(profile)}, which takes access "
                "tokens in the Authorization header only (RFC 6750 §2.1): drop cookie="
            )
