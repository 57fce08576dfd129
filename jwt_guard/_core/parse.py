"""Strict parsing of a compact JWS (RFC 7515 §7.1) into header, payload and signature.

No I/O and no key material here: this module only answers "is this a well-formed compact JWS
whose header and payload are JSON objects", as cheaply as the strictness allows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from .errors import MalformedToken, TokenTooLarge

__all__ = [
    "DEFAULT_MAX_TOKEN_BYTES",
    "MAX_KID_LENGTH",
    "CompactJWS",
    "b64url_decode",
    "b64url_encode",
    "parse_compact",
    "parse_json",
    "segments_detail",
]

#: Real access tokens are 0.5-2 KiB; 8 KiB leaves room for fat claim sets while bounding the
#: work an attacker can make us do before the signature is checked.
DEFAULT_MAX_TOKEN_BYTES = 8192
#: Objects and arrays a header or claims set may open (counted as "[" and "{" bytes, strings
#: included). Real claim sets open a few dozen at most; this bounds nesting cheaply.
MAX_JSON_CONTAINERS = 256
#: A ``kid`` is a lookup key, never a path or a query (RFC 7515 §4.1.4). Real ones are short.
#: The verifier applies it to a token's header, key loading to a key's ``kid``.
MAX_KID_LENGTH = 256

# A base64url text is canonical only if the bits after the last full octet are zero; otherwise
# several strings decode to the same bytes. Characters (as byte values) allowed last, by
# ``len % 4``.
_CANONICAL_LAST = {
    0: None,
    2: frozenset(b"AQgw"),
    3: frozenset(b"AEIMQUYcgkosw048"),
}
# base64url to base64 in one pass: "-_" become "+/", and "+", "/" and "=" (which base64url does
# not have) become "*", which the strict decoder refuses like any other stray byte.
_TO_STD = bytes.maketrans(b"-_+/=", b"+/***")
_NOT_BASE64URL = {"reason": "not unpadded base64url (RFC 7515 §2)"}
_PAD = {0: b"", 2: b"==", 3: b"="}


def b64url_decode(segment: bytes | str) -> bytes:
    """Decode one unpadded, canonical base64url segment (RFC 7515 §2), strictly.

    Bytes in, bytes out (a ``str`` is encoded as ASCII first). No per-character Python loop:
    one ``translate`` maps the alphabet to standard base64 (and ``+``, ``/``, ``=`` to a byte
    it refuses), then ``binascii`` decodes in strict mode. Whitespace, padding and any other
    byte fail the strict decode.
    """
    if not isinstance(segment, bytes):
        try:
            segment = segment.encode("ascii")
        except (UnicodeEncodeError, AttributeError) as exc:
            raise MalformedToken(detail=_NOT_BASE64URL) from exc
    rest = len(segment) % 4
    if not segment:
        raise MalformedToken(detail={"reason": "empty segment"})
    if rest == 1:
        raise MalformedToken(detail=_NOT_BASE64URL)
    try:
        raw = binascii.a2b_base64(segment.translate(_TO_STD) + _PAD[rest], strict_mode=True)
    except binascii.Error as exc:
        raise MalformedToken(detail=_NOT_BASE64URL) from exc
    allowed_last = _CANONICAL_LAST[rest]
    if allowed_last is not None and segment[-1] not in allowed_last:
        raise MalformedToken(detail={"reason": "not canonical base64url (RFC 7515 §2)"})
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 step 4 / RFC 7519 §4: duplicate member names MUST be rejected (or the
    # last one wins, which lets two parsers disagree about the same token).
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MalformedToken(detail={"reason": "duplicate member name (RFC 7515 §5.2)"})
    return obj


def _reject_constant(name: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON (RFC 8259 §6).
    raise MalformedToken(detail={"reason": "NaN or Infinity is not JSON (RFC 8259 §6)"})


class _Decoder(json.JSONDecoder):
    """``json.JSONDecoder`` with a shorter way for the common text.

    A text that is exactly one JSON value, with no whitespace around it (what issuers send),
    is parsed by the C scanner alone (the same scanner, with the same hooks, that ``decode``
    uses); anything else goes through ``JSONDecoder.decode``, which skips the whitespace and
    raises for the rest. The two regex matches ``decode`` makes for the whitespace are saved.
    """

    def decode(self, s: str, *args: Any) -> Any:
        try:
            value, end = self.scan_once(s, 0)  # type: ignore[attr-defined]
        except StopIteration:
            end = -1
        if end == len(s):
            return value
        return super().decode(s)


# Built once: json.loads(..., object_pairs_hook=...) would build a decoder on every call.
_DECODER = _Decoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def parse_json(raw: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object, rejecting duplicates and non-JSON constants."""
    # (A text no longer than the limit cannot open more containers than it.)
    if len(raw) > MAX_JSON_CONTAINERS and raw.count(b"[") + raw.count(b"{") > MAX_JSON_CONTAINERS:
        # Refused before the recursive parser sees it: a 6 KiB "[[[[..." costs the decoder
        # ~60 µs to give up on; counting costs well under a microsecond.
        raise MalformedToken(
            detail={"reason": f"more than {MAX_JSON_CONTAINERS} JSON objects and arrays"}
        )
    try:
        # RFC 7515 §2: the header is UTF-8; json.loads(bytes) would also guess UTF-16/32.
        value = _DECODER.decode(raw.decode("utf-8"))
    except MalformedToken:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError covers UnicodeDecodeError, JSONDecodeError and integers beyond
        # sys.get_int_max_str_digits(); RecursionError covers absurd nesting.
        raise MalformedToken(detail={"reason": "not UTF-8 JSON"}) from exc
    if not isinstance(value, dict):
        raise MalformedToken(detail={"reason": "JSON is not an object"})
    return value


class CompactJWS(NamedTuple):
    """The parts of a compact JWS, decoded but not verified."""

    header_segment: str
    header: Mapping[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def split_compact(token: object, max_bytes: int) -> list[str]:
    """Check the size and split into the three segments (RFC 7515 §7.1).

    Each segment's alphabet is checked when it is decoded (:func:`b64url_decode`); an empty
    segment — an unsecured JWS's signature included — is refused there.
    """
    if type(token) is not str:
        raise MalformedToken(detail={"reason": "the token is not a string"})
    # The limit is applied before any decoding: it bounds the work an attacker can cause
    # before the signature is checked.
    if len(token) > max_bytes:
        raise TokenTooLarge(detail={"length": len(token), "limit": max_bytes})
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken(detail={"reason": SEGMENTS_REASON, "segments": len(parts)})
    return parts


#: Why a token that is not 3 dot-separated segments is refused.
SEGMENTS_REASON: Final = "a compact JWS has 3 dot-separated segments (RFC 7515 §7.1)"
#: What to do about an access token that is not a JWT (an opaque or an encrypted one): most
#: providers issue a JWT access token only for an API named in the authorization request.
NOT_A_JWT_HINT: Final = (
    "ask the identity provider for a JWT access token (many issue one only when the "
    "authorization request names this API, with an 'audience' or 'resource' parameter, "
    "RFC 8707); an opaque token can only be checked by the provider's token introspection "
    "(RFC 7662)"
)


def segments_detail(segments: int) -> dict[str, Any]:
    """The detail of an *access token* that is not 3 segments: a token without a dot is an
    opaque token, one of 5 an encrypted JWT (RFC 7516 §7.1); both say what to ask the
    provider for, since "3 segments expected" points at a broken token instead."""
    if segments == 1:
        reason = "not a JWT: an opaque token (no dots; a JWT has 3 segments, RFC 7515 §7.1)"
    elif segments == 5:
        reason = (
            "not a signed JWT: an encrypted token (JWE, 5 segments, RFC 7516 §7.1); "
            "jwt_guard verifies signed access tokens (JWS, 3 segments)"
        )
    else:
        return {"reason": SEGMENTS_REASON, "segments": segments}
    return {"reason": reason, "segments": segments, "hint": NOT_A_JWT_HINT}


def parse_header(segment: bytes | str) -> Mapping[str, Any]:
    """Decode and parse a protected header segment into a read-only mapping."""
    return MappingProxyType(parse_json(b64url_decode(segment)))


def parse_compact(token: object, max_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> CompactJWS:
    """Parse a compact JWS without checking anything but its form."""
    h64, p64, s64 = split_compact(token, max_bytes)
    header = parse_header(h64)
    payload = parse_json(b64url_decode(p64))
    signature = b64url_decode(s64)
    return CompactJWS(h64, header, payload, f"{h64}.{p64}".encode("ascii"), signature)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2): the inverse of :func:`b64url_decode`."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
