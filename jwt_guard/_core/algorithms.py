"""The JWA signature algorithms and curves jwt_guard knows: the one table every part reads.

Verification (which key fits a token, how its signature is checked), key loading (curve and
coordinate sizes, the RSA and HMAC limits, the key classes of each curve), making tokens (key
generation, the key a signer needs) and the CLI (its ``--alg`` choices) all read
:data:`ALGORITHMS` and :data:`CURVES`; no other module lists facts about an algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

__all__ = [
    "ALGORITHMS",
    "ASYMMETRIC",
    "CURVES",
    "DIGEST_SIZES",
    "HASHES",
    "MAX_RSA_BITS",
    "MIN_HMAC_BYTES",
    "MIN_RSA_BITS",
    "RSA_EXPONENT",
    "Algorithm",
    "Curve",
    "curve_of",
    "implied_algorithm",
]

#: RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used" with RS* and PS*.
MIN_RSA_BITS: Final = 2048
#: Ours, a resource limit: a 16,384-bit modulus makes each verification cost milliseconds, and
#: no provider uses more than 4096.
MAX_RSA_BITS: Final = 8192
#: The one RSA public exponent accepted and generated (F4). Every mainstream provider uses it;
#: small exponents (3) invite sloppy-padding forgeries and huge ones cost time.
RSA_EXPONENT: Final = 65537
#: RFC 7518 §3.2: an HMAC key must be at least as long as the hash output; 32 bytes for HS256,
#: the floor for a secret not bound to one HS* algorithm.
MIN_HMAC_BYTES: Final = 32
#: The hashes JWA uses, by their hashlib name (RFC 7518 §3.1: SHA-2).
HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: Output size in bytes of each of :data:`HASHES`.
DIGEST_SIZES: Final[Mapping[str, int]] = {name: h().digest_size for name, h in HASHES.items()}

OKPPublicKey = ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
OKPPrivateKey = ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True, slots=True)
class Curve:
    """A curve a JWK may name in ``crv`` (RFC 7518 §6.2.1.1, RFC 8037 §2)."""

    name: str
    kty: str  # "EC" or "OKP"
    #: The curve's size in bits: for the NIST curves the bit length of n and cryptography's
    #: ``key_size``; for the Edwards curves the size of the field.
    bits: int
    size: int  # bytes of one coordinate (EC, RFC 7518 §6.2.1.2) or of the public key (OKP)
    #: The order n of the base point (FIPS 186-4 §D.1.2): ECDSA's r and s lie in [1, n-1].
    order: int | None = None
    ec_curve: type[ec.EllipticCurve] | None = None  # cryptography's class for EC curves
    #: cryptography's key classes for an OKP curve (RFC 8037 §2); EC keys share one class.
    okp_public: type[OKPPublicKey] | None = None
    okp_private: type[OKPPrivateKey] | None = None


#: Curves by JWK ``crv`` name.
CURVES: Final[Mapping[str, Curve]] = {
    c.name: c
    for c in (
        Curve(
            "P-256",
            "EC",
            256,
            32,
            0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
            ec.SECP256R1,
        ),
        Curve(
            "P-384",
            "EC",
            384,
            48,
            int(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
                16,
            ),
            ec.SECP384R1,
        ),
        Curve(
            "P-521",
            "EC",
            521,
            66,
            int(
                "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
                16,
            ),
            ec.SECP521R1,
        ),
        Curve(
            "Ed25519",
            "OKP",
            255,
            32,
            okp_public=ed25519.Ed25519PublicKey,
            okp_private=ed25519.Ed25519PrivateKey,
        ),
        Curve(
            "Ed448",
            "OKP",
            448,
            57,
            okp_public=ed448.Ed448PublicKey,
            okp_private=ed448.Ed448PrivateKey,
        ),
    )
}


def curve_of(key: object) -> Curve | None:
    """The curve of a cryptography EC or OKP key object, public or private; ``None`` for
    other keys and for curves not in :data:`CURVES`."""
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        for curve in CURVES.values():
            if curve.ec_curve is not None and isinstance(key.curve, curve.ec_curve):
                return curve
        return None
    for curve in CURVES.values():
        if curve.okp_public is not None and isinstance(key, curve.okp_public):
            return curve
        if curve.okp_private is not None and isinstance(key, curve.okp_private):
            return curve
    return None


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One JWS ``alg`` value and what it needs from a key."""

    name: str
    family: str  # "RSA" (PKCS#1 v1.5), "PSS", "EC" (ECDSA), "OKP" (EdDSA), "HMAC"
    kty: str  # the JWK key type that can verify it
    hash_name: str | None  # hashlib name; None for EdDSA, where the curve fixes the hash
    curves: tuple[str, ...] = ()  # the curves a key may be on (EC and OKP)
    #: The smallest key: RSA modulus bits, HMAC secret bits. A curve fixes its own key size.
    min_key_bits: int = 0


def _rsa(name: str, family: str, hash_name: str) -> Algorithm:
    return Algorithm(name, family, "RSA", hash_name, min_key_bits=MIN_RSA_BITS)


def _hmac(name: str, hash_name: str) -> Algorithm:
    # RFC 7518 §3.2: a key of the same size as the hash output or larger.
    return Algorithm(name, "HMAC", "oct", hash_name, min_key_bits=8 * DIGEST_SIZES[hash_name])


#: The signature algorithms jwt_guard verifies (RFC 7518 §3.1, RFC 8037 §3.1, RFC 9864 §2.2).
ALGORITHMS: Final[Mapping[str, Algorithm]] = {
    a.name: a
    for a in (
        _rsa("RS256", "RSA", "sha256"),
        _rsa("RS384", "RSA", "sha384"),
        _rsa("RS512", "RSA", "sha512"),
        _rsa("PS256", "PSS", "sha256"),
        _rsa("PS384", "PSS", "sha384"),
        _rsa("PS512", "PSS", "sha512"),
        Algorithm("ES256", "EC", "EC", "sha256", ("P-256",)),
        Algorithm("ES384", "EC", "EC", "sha384", ("P-384",)),
        Algorithm("ES512", "EC", "EC", "sha512", ("P-521",)),
        # RFC 8037 §3.1: "EdDSA" names the curve only through the key, so it takes both.
        Algorithm("EdDSA", "OKP", "OKP", None, ("Ed25519", "Ed448")),
        # RFC 9864 §2.2: the fully specified names, each bound to one curve.
        Algorithm("Ed25519", "OKP", "OKP", None, ("Ed25519",)),
        Algorithm("Ed448", "OKP", "OKP", None, ("Ed448",)),
        _hmac("HS256", "sha256"),
        _hmac("HS384", "sha384"),
        _hmac("HS512", "sha512"),
    )
}

#: Every algorithm a published key (a JWKS) may be for: all but HMAC, whose secrets a JWKS
#: never holds (RFC 8725 §3.1).
ASYMMETRIC: Final = frozenset(a.name for a in ALGORITHMS.values() if a.family != "HMAC")


def implied_algorithm(kty: str, crv: str | None) -> str | None:
    """The one algorithm a key without ``alg`` is for when algorithms follow the keys (RFC 8725
    §3.1 and §2.1: the key, never the token, picks): RSA keys RS256 (what identity providers
    sign with; PS* only when the key's ``alg`` says so), an EC key its curve's ECDSA (RFC 7518
    §3.4), an OKP key EdDSA (RFC 8037 §3.1). ``None`` for a secret: never HS* by default."""
    if kty == "RSA":
        return "RS256"
    if kty == "OKP" and crv in CURVES:
        return "EdDSA"
    if kty == "EC":
        for alg in ALGORITHMS.values():
            if alg.family == "EC" and alg.curves == (crv,):
                return alg.name
    return None
