"""Profiles: one name for what a standard asks of a resource server, set in one switch.

    Verifier(..., profile="rfc9068")              the JWT access token profile (RFC 9068)
    Verifier(..., profile=["rfc9068", "other"])   several: their demands add up

A :class:`Profile` is plain data: the header ``typ`` it requires, the claims it requires, and
the options it needs set (an issuer, an audience). It sets nothing behind the application's
back: the options it implies are added to the policy (``_core.policy``), and an explicit option
that asks for less (another ``typ=``, no ``audience=``, ``allow_tokens_without_jti=True``) is a
:class:`ConfigurationError` naming both, never silently overridden either way.

Profiles compose: each field of a combination is the union of its parts' (claims, needs) or
must agree (``typ``). A later profile (issue 28's "fapi2": its algorithms, sender-constrained
tokens) adds a field here with its own rule of combination and its row in :data:`PROFILES`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .errors import ConfigurationError

__all__ = ["PROFILES", "Profile", "resolve_profile"]


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

    def __add__(self, other: Profile) -> Profile:
        parts = self.name.split("+")
        if set(other.name.split("+")) <= set(parts):
            return self  # the same profile twice asks nothing more
        if self.typ is not None and other.typ is not None and self.typ != other.typ:
            raise ConfigurationError(
                f"profiles {self.name!r} and {other.name!r} cannot both hold: one requires typ "
                f"{self.typ!r}, the other {other.typ!r}"
            )
        return Profile(
            name=f"{self.name}+{other.name}",
            reference=f"{self.reference}; {other.reference}",
            typ=self.typ or other.typ,
            required_claims=tuple(dict.fromkeys(self.required_claims + other.required_claims)),
            string_claims=tuple(dict.fromkeys(self.string_claims + other.string_claims)),
            needs_issuer=self.needs_issuer or other.needs_issuer,
            needs_audience=self.needs_audience or other.needs_audience,
        )


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
}


def resolve_profile(value: str | Sequence[str] | None, what: str = "profile") -> Profile | None:
    """``profile=`` as given (a name, a list of names, or ``None``) into one :class:`Profile`."""
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else value
    if isinstance(names, (bytes, bytearray)) or not isinstance(names, Sequence) or not names:
        raise ConfigurationError(f"{what} must be a profile name or a list of them")
    combined: Profile | None = None
    for name in names:
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
