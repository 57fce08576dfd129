"""Certificate-bound access tokens (RFC 8705), with no I/O: the thumbprint, the binding check,
and reading a client certificate from the forms servers and proxies hand it over in.

    token with cnf.x5t#S256 ──► check_certificate_binding(claims, thumbprint) ◄── request's
                                 (every request, a cached token's too)            certificate
    certificate forms: PEM (ASGI ``tls`` extension, WSGI ``SSL_CLIENT_CERT``), RFC 9440
    ``Client-Cert`` (``:base64-DER:``), nginx's URL-escaped PEM, Envoy's
    ``x-forwarded-client-cert`` (``Hash=`` / ``Cert=``): each read to the base64url SHA-256
    thumbprint of the DER certificate (RFC 8705 §3.1), or refused with a 400.

The certificate is not validated here: the TLS layer in front (the server, or the proxy that
terminated TLS) checked the chain, and RFC 8705 §3 binds the token to the exact DER bytes. What
is checked is that the bytes are one DER certificate (a SEQUENCE of tbsCertificate,
signatureAlgorithm and signature, each of the right tag, lengths exact), so a header carrying
something else is a clear 400 rather than a 401 mismatch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from .errors import (
    CertificateBindingMismatch,
    ClaimInvalid,
    ClientCertificateMissing,
    ConfigurationError,
    InvalidRequest,
)

__all__ = [
    "CERTIFICATE_CONFIRMATION",
    "MAX_CERTIFICATE_BYTES",
    "check_certificate_binding",
    "check_confirmation_value",
    "check_thumbprint",
    "der_from_pem",
    "der_thumbprint",
    "invalid_certificate",
    "thumbprint_from_client_cert",
    "thumbprint_from_escaped_pem",
    "thumbprint_from_pem",
    "thumbprint_from_xfcc",
]

#: RFC 8705 §3.1: the confirmation method member of ``cnf`` for a certificate-bound token.
CERTIFICATE_CONFIRMATION: Final = "x5t#S256"
#: Largest DER certificate accepted. Client certificates are 1-2 KiB; a bound keeps a forged
#: header from costing more than a header's parse.
MAX_CERTIFICATE_BYTES: Final = 16 * 1024
#: Largest header or environ value read as a certificate (URL escaping triples a PEM's size).
MAX_CERTIFICATE_TEXT: Final = 4 * 3 * MAX_CERTIFICATE_BYTES

#: A base64url SHA-256 digest without padding (RFC 8705 §3.1, RFC 7515 §2): 43 characters.
_THUMBPRINT: Final = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_PEM: Final = re.compile(
    r"\s*-----BEGIN CERTIFICATE-----\r?\n?([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----\s*"
)
#: RFC 8941 §3.3.5: a Byte Sequence is base64 (standard alphabet, padded) between colons.
_SF_BINARY: Final = re.compile(r" *:([A-Za-z0-9+/]*={0,2}):[ \t]*")
_HEX_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")
#: XFCC keys one element carries at most once (Envoy: one certificate per element); ``URI``
#: and ``DNS`` repeat, one pair per Subject Alternative Name (review R28 F9).
_XFCC_ONCE: Final = frozenset({"by", "hash", "cert", "chain", "subject"})


def invalid_certificate(reason: str, **facts: Any) -> InvalidRequest:
    """The 400 for a client certificate (or the header carrying it) that cannot be read."""
    return InvalidRequest(
        code="client_certificate_invalid",
        description="The client certificate is malformed.",
        detail={"reason": reason, **facts},
    )


def der_thumbprint(der: bytes) -> str:
    """RFC 8705 §3.1: the base64url (no padding) SHA-256 of the DER certificate."""
    digest = hashlib.sha256(der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_thumbprint(value: object) -> str:
    """A thumbprint given by the caller (``certificate_thumbprint=``), checked for shape."""
    if not isinstance(value, str) or not _THUMBPRINT.fullmatch(value):
        raise ConfigurationError(
            "certificate_thumbprint must be the base64url SHA-256 of the DER certificate "
            "(43 characters, RFC 8705 §3.1)"
        )
    return value


# -- the binding (RFC 8705 §3) ------------------------------------------------------------------


def check_certificate_binding(claims: Mapping[str, Any], thumbprint: str | None) -> None:
    """Refuse a certificate-bound token unless ``thumbprint`` (of the certificate the request
    presented over mutual TLS) is the one it is bound to (RFC 8705 §3): every request, a
    cached token's too. An unbound token passes with or without a certificate (RFC 8705 §3
    constrains only the tokens that carry the confirmation)."""
    cnf = claims.get("cnf")
    if cnf is None:
        return
    bound = cnf.get(CERTIFICATE_CONFIRMATION) if isinstance(cnf, Mapping) else None
    if bound is None:
        return
    if thumbprint is None:
        raise ClientCertificateMissing(
            detail={
                "reason": "the token has cnf.x5t#S256 and the request presented no "
                "client certificate (RFC 8705 §3)"
            }
        )
    # isascii: compare_digest raises TypeError on other text (fresh verification refused
    # such a value already; this holds whatever the options).
    if (
        not isinstance(bound, str)
        or not bound.isascii()
        or not hmac.compare_digest(bound, thumbprint)
    ):
        raise CertificateBindingMismatch(
            detail=lambda: {
                "reason": "the client certificate's SHA-256 thumbprint is not the token's "
                "cnf.x5t#S256 (RFC 8705 §3.1)",
                "expected": bound if isinstance(bound, str) else None,
                "presented": thumbprint,
            }
        )


def check_confirmation_value(value: object) -> None:
    """At fresh verification: ``cnf.x5t#S256`` is a base64url SHA-256 (RFC 8705 §3.1)."""
    if not isinstance(value, str) or not _THUMBPRINT.fullmatch(value):
        raise ClaimInvalid(
            detail={
                "claim": "cnf.x5t#S256",
                "reason": "not a base64url SHA-256 thumbprint (RFC 8705 §3.1)",
            }
        )


# -- reading the certificate --------------------------------------------------------------------


def _der_length(der: bytes, at: int) -> tuple[int, int]:
    """The length of the DER element whose length octets start at ``at``, and where its
    contents start (X.690 §8.1.3, definite form, minimal as DER requires)."""
    first = der[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    if count == 0 or count > 3 or at + 1 + count > len(der):
        raise invalid_certificate("not a DER certificate (length octets)")
    length = int.from_bytes(der[at + 1 : at + 1 + count], "big")
    if length < 0x80 or der[at + 1] == 0:
        raise invalid_certificate("not a DER certificate (length not minimal)")
    return length, at + 1 + count


def _check_der(der: bytes) -> bytes:
    """``der`` when it has the shape of an X.509 certificate (RFC 5280 §4.1): a SEQUENCE of
    exactly a SEQUENCE, a SEQUENCE and a BIT STRING, every length exact."""
    if not der:
        raise invalid_certificate("empty certificate")
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise invalid_certificate("certificate too large", limit=MAX_CERTIFICATE_BYTES)
    try:
        if der[0] != 0x30:
            raise invalid_certificate("not a DER certificate (no outer SEQUENCE)")
        length, at = _der_length(der, 1)
        if at + length != len(der):
            raise invalid_certificate("not a DER certificate (outer length)")
        for tag in (0x30, 0x30, 0x03):
            if at >= len(der) or der[at] != tag:
                raise invalid_certificate("not a DER certificate (its three parts)")
            length, start = _der_length(der, at + 1)
            at = start + length
            if at > len(der):
                raise invalid_certificate("not a DER certificate (a part's length)")
        if at != len(der):
            raise invalid_certificate("not a DER certificate (trailing data)")
    except IndexError:
        raise invalid_certificate("not a DER certificate (truncated)") from None
    return der


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_certificate(f"{what} is not base64") from None


def der_from_pem(text: str) -> bytes:
    """The DER bytes of exactly one PEM ``CERTIFICATE`` block (RFC 7468 §5)."""
    if len(text) > MAX_CERTIFICATE_TEXT:
        raise invalid_certificate("certificate too large", limit=MAX_CERTIFICATE_TEXT)
    match = _PEM.fullmatch(text)
    if match is None:
        raise invalid_certificate("not one PEM CERTIFICATE block (RFC 7468 §5)")
    body = "".join(match.group(1).split())
    return _check_der(_b64decode(body, "the PEM body"))


def thumbprint_from_pem(text: str) -> str:
    """A PEM certificate (the ASGI ``tls`` extension, ``SSL_CLIENT_CERT``), as a thumbprint."""
    return der_thumbprint(der_from_pem(text))


def thumbprint_from_escaped_pem(text: str) -> str:
    """nginx's ``$ssl_client_escaped_cert``: the PEM, URL-escaped (and Envoy's ``Cert=``)."""
    if len(text) > MAX_CERTIFICATE_TEXT:
        raise invalid_certificate("certificate too large", limit=MAX_CERTIFICATE_TEXT)
    try:
        pem = urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid_certificate("the escaped PEM is not UTF-8") from None
    return thumbprint_from_pem(pem)


def thumbprint_from_client_cert(value: str) -> str:
    """RFC 9440 §2.2: ``Client-Cert`` is a Structured Field Item, a Byte Sequence (RFC 8941
    §3.3.5) of the DER certificate. Parameters are refused (RFC 9440 defines none), as is a
    list (a repeated header joined by a server)."""
    if len(value) > MAX_CERTIFICATE_TEXT:
        raise invalid_certificate("certificate too large", limit=MAX_CERTIFICATE_TEXT)
    match = _SF_BINARY.fullmatch(value)
    if match is None:
        raise invalid_certificate("Client-Cert is not one byte sequence (RFC 9440 §2.2)")
    encoded = match.group(1)
    if len(encoded) % 4:
        raise invalid_certificate("Client-Cert is not padded base64 (RFC 8941 §3.3.5)")
    return der_thumbprint(_check_der(_b64decode(encoded, "Client-Cert")))


def _xfcc_elements(value: str) -> list[dict[str, str]]:
    """Envoy's ``x-forwarded-client-cert``: elements separated by ``,``, each ``key=value``
    pairs separated by ``;``; keys case-insensitive; a value holding ``,;=`` is double-quoted,
    with ``\\"`` for a quote in it. ``By``, ``Hash``, ``Cert``, ``Chain`` or ``Subject`` twice in
    one element is refused; ``URI`` and ``DNS`` repeat (one pair per SAN, Envoy's docs)."""
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    i, n = 0, len(value)
    while True:
        eq = value.find("=", i)
        if eq < 0:
            raise invalid_certificate("x-forwarded-client-cert: a pair without '='")
        key = value[i:eq].strip().lower()
        if not key or any(c in key for c in ',;"'):
            raise invalid_certificate("x-forwarded-client-cert: a malformed key")
        i = eq + 1
        if i < n and value[i] == '"':
            out: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise invalid_certificate("x-forwarded-client-cert: an unclosed quote")
                c = value[i]
                if c == "\\" and i + 1 < n and value[i + 1] == '"':
                    out.append('"')
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    out.append(c)
                    i += 1
            text = "".join(out)
            end = i
            while end < n and value[end] in " \t":
                end += 1
            if end < n and value[end] not in ",;":
                raise invalid_certificate("x-forwarded-client-cert: text after a quoted value")
            i = end
        else:
            end = i
            while end < n and value[end] not in ",;":
                end += 1
            text = value[i:end].strip()
            if '"' in text or "=" in text:
                raise invalid_certificate("x-forwarded-client-cert: a malformed value")
            i = end
        if key not in pairs:
            pairs[key] = text
        elif key in _XFCC_ONCE:
            raise invalid_certificate("x-forwarded-client-cert: a key twice in one element")
        # else a URI or DNS SAN: Envoy writes one pair per name; none is read here.
        if i >= n:
            elements.append(pairs)
            return elements
        separator = value[i]
        i += 1
        if separator == ",":
            elements.append(pairs)
            pairs = {}


def thumbprint_from_xfcc(value: str, *, last_element: bool) -> str | None:
    """The thumbprint of the client certificate Envoy names in ``x-forwarded-client-cert``.

    One element is what an Envoy with ``forward_client_cert_details: SANITIZE_SET`` sends;
    several come from ``APPEND_FORWARD``, each proxy adding its own peer's, and all but the
    last were written by hops this server does not talk to: refused unless ``last_element``
    (the element the trusted proxy added). ``Hash=`` is the hex SHA-256 of the DER
    certificate; ``Cert=`` (the URL-escaped PEM), when present, must agree with it.
    ``None``: the element names no certificate.
    """
    if len(value) > MAX_CERTIFICATE_TEXT:
        raise invalid_certificate("certificate too large", limit=MAX_CERTIFICATE_TEXT)
    elements = _xfcc_elements(value)
    if len(elements) > 1 and not last_element:
        raise invalid_certificate(
            "x-forwarded-client-cert has several elements",
            elements=len(elements),
            fix="have the proxy sanitize the header, or ClientCertificate.envoy_xfcc("
            "last_element=True) to take the one the trusted proxy appended",
        )
    element = elements[-1]
    digest = element.get("hash")
    cert = element.get("cert")
    thumbprint = None
    if digest is not None:
        if not _HEX_SHA256.fullmatch(digest):
            raise invalid_certificate("x-forwarded-client-cert: Hash is not a hex SHA-256")
        raw = bytes.fromhex(digest)
        thumbprint = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    if cert is not None:
        from_cert = thumbprint_from_escaped_pem(cert)
        if thumbprint is not None and from_cert != thumbprint:
            raise invalid_certificate("x-forwarded-client-cert: Hash and Cert disagree")
        thumbprint = from_cert
    return thumbprint
