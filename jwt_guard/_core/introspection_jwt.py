"""JWT introspection responses (RFC 9701) without I/O: what to ask, how the answer is judged.

    POST, Accept: application/token-introspection+jwt ─► a JWS signed by the authorization
    server ─► :func:`parse_jwt_response` (content type, form, ``typ``: the key's ``kid``)
    ─► the driver gets the issuer's key set (the verifier's key source) ─►
    :func:`read_jwt_response` (signature, ``iss``, ``aud``, ``iat``) ─► ``token_introspection``,
    the RFC 7662 §2.2 response, judged as a plain JSON one.

A response that cannot be verified is the endpoint failing (``FetchFailed``: 503
``introspection_unavailable``), never a verdict on the token: the client asked for a signed
answer, and an unsigned, mis-typed or foreign one is no answer (RFC 9701 §8.1: a JWT of another
kind, an access token or an ID token signed by the same server, must not pass for this one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .errors import JWTGuardError
from .jwks_policy import FetchFailed
from .keyset import KeySet, KeySource
from .parse import CompactJWS, parse_compact

__all__ = [
    "INTROSPECTION_JWT",
    "INTROSPECTION_TYP",
    "JWTResponse",
    "parse_jwt_response",
    "read_jwt_response",
]

#: RFC 9701 §4 (the Accept header) and §5 (the response's content type).
INTROSPECTION_JWT: Final = "application/token-introspection+jwt"
#: RFC 9701 §5: the JWT's ``typ`` (RFC 7515 §4.1.9: ``application/`` may be left out).
INTROSPECTION_TYP: Final = "token-introspection+jwt"
#: An introspection JWT is a few KiB; the body's own cap (``max_bytes``) bounds it first.
_MAX_JWT: Final = 64 * 1024


@dataclass(frozen=True)
class JWTResponse:
    """How a signed response is checked: the authorization server's keys and issuer, and the
    client id this resource server introspects as (the response's ``aud``, RFC 9701 §5)."""

    keys: KeySource
    issuers: frozenset[str]
    audience: str
    #: The algorithms the issuer's tokens may use; with ``own``, each key's own only.
    algorithms: frozenset[str]
    own: bool
    leeway: float


def parse_jwt_response(body: bytes, headers: Mapping[str, str]) -> CompactJWS:
    """The signed response's parts, its form and ``typ`` checked; ``FetchFailed`` else."""
    mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime != INTROSPECTION_JWT:
        # Asked for a signed answer, given another: a server that ignores Accept is refused,
        # not trusted unsigned (no downgrade).
        shown = mime[:60] or "none"
        raise FetchFailed(f"content type {shown}, not {INTROSPECTION_JWT} (RFC 9701 §5)")
    try:
        parsed = parse_compact(body.decode("ascii").strip(), _MAX_JWT)
    except (UnicodeDecodeError, JWTGuardError) as exc:
        raise FetchFailed("the JWT response is not a compact JWS (RFC 9701 §5)") from exc
    typ = parsed.header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != INTROSPECTION_TYP:
        # RFC 9701 §5 and §8.1: explicit typing keeps another JWT of the same server (an access
        # token, an ID token) from passing for an introspection response.
        raise FetchFailed(f"the JWT response's typ is not {INTROSPECTION_TYP} (RFC 9701 §5)")
    if "crit" in parsed.header:
        raise FetchFailed("the JWT response has crit header parameters (RFC 7515 §4.1.11)")
    if not isinstance(parsed.header.get("alg"), str):
        raise FetchFailed("the JWT response has no alg")
    kid = parsed.header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise FetchFailed("the JWT response's kid is not a string")
    return parsed


def read_jwt_response(
    parsed: CompactJWS, key_set: KeySet, check: JWTResponse, now: float, max_age: float
) -> dict[str, Any]:
    """The RFC 7662 response a verified JWT carries (``token_introspection``), or
    ``FetchFailed`` naming what did not hold.

    ``max_age``: how long before ``now`` (and the leeway) its ``iat`` may be. The answer names
    no token (RFC 9701 §5), so one signed for a call last month would answer for any token
    today: a fresh call's answer was made within the call's deadline (review R27B-4), one
    kept in the shared store within its TTL too."""
    alg = parsed.header["alg"]
    if not check.own and alg not in check.algorithms:
        raise FetchFailed(f"the JWT response's alg {alg[:20]!r} is not an accepted algorithm")
    try:
        candidates = key_set.candidates(parsed.header.get("kid"), alg, own=check.own)
    except JWTGuardError as exc:
        raise FetchFailed(f"no key of the issuer verifies the JWT response ({exc.code})") from exc
    if not any(key.verify(alg, parsed.signing_input, parsed.signature) for key in candidates):
        raise FetchFailed("the JWT response's signature does not verify (RFC 9701 §5)")
    claims = parsed.payload
    # RFC 9701 §5: iss is the authorization server, aud this resource server, iat required.
    if claims.get("iss") not in check.issuers:
        raise FetchFailed("the JWT response's iss is not the authorization server (RFC 9701 §5)")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if check.audience not in audiences:
        raise FetchFailed("the JWT response's aud is not this client_id (RFC 9701 §5)")
    iat = _number(claims.get("iat"))
    if iat is None:
        raise FetchFailed("the JWT response has no numeric iat (RFC 9701 §5)")
    if iat > now + check.leeway:
        raise FetchFailed("the JWT response was issued in the future (iat)")
    if iat < now - max_age - check.leeway:
        raise FetchFailed("the JWT response is older than the call (iat): not made for it")
    if "exp" in claims:
        exp = _number(claims["exp"])
        if exp is None or exp <= now - check.leeway:
            raise FetchFailed("the JWT response has expired (exp)")
    document = claims.get("token_introspection")
    if not isinstance(document, dict) or not isinstance(document.get("active"), bool):
        raise FetchFailed(
            "the JWT response has no token_introspection object with a boolean active (RFC 9701 §5)"
        )
    return document


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
