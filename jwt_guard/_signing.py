"""Making tokens: key generation, signing and JWK export.

Used by the test kit, the CLI (``keygen``, ``mint``) and the demo issuer. A verification
library that can also sign is a footgun in production code paths, so nothing in the request
path imports this module.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ._keys import _CURVES, _DIGEST_SIZE, ALGORITHMS

__all__ = [
    "PrivateKey",
    "b64url",
    "encode_compact",
    "generate_key",
    "load_private_pem",
    "private_pem",
    "public_jwk",
    "sign",
]

PrivateKey = Any  # rsa/ec/ed25519/ed448 private key objects, or bytes for HMAC

_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_key(alg: str, *, rsa_bits: int = 2048) -> PrivateKey:
    """A fresh private key (or HMAC secret) for ``alg``."""
    spec = ALGORITHMS[alg]
    if spec.family in ("RSA", "PSS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if spec.family == "EC":
        assert spec.curve is not None
        return ec.generate_private_key(_CURVES[spec.curve][0])
    if spec.family == "OKP":
        return ed25519.Ed25519PrivateKey.generate()
    assert spec.hash_name is not None
    return secrets.token_bytes(_DIGEST_SIZE[spec.hash_name])


def sign(alg: str, key: PrivateKey, data: bytes) -> bytes:
    """A JWS signature (RFC 7518 §3) over ``data``."""
    spec = ALGORITHMS[alg]
    if spec.family == "HMAC":
        assert spec.hash_name is not None
        return hmac.digest(key, data, spec.hash_name)
    if spec.family == "OKP":
        signature: bytes = key.sign(data)
        return signature
    assert spec.hash_name is not None
    hash_obj = _HASH[spec.hash_name]()
    if spec.family == "RSA":
        rsa_sig: bytes = key.sign(data, padding.PKCS1v15(), hash_obj)
        return rsa_sig
    if spec.family == "PSS":
        pss = padding.PSS(mgf=padding.MGF1(hash_obj), salt_length=hash_obj.digest_size)
        pss_sig: bytes = key.sign(data, pss, hash_obj)
        return pss_sig
    assert spec.curve is not None
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_obj)))
    size = _CURVES[spec.curve][1]
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def encode_compact(
    header: Mapping[str, Any], payload: Mapping[str, Any], key: PrivateKey, alg: str | None = None
) -> str:
    """A signed compact JWS. ``alg`` defaults to ``header["alg"]``."""
    algorithm = alg or str(header["alg"])
    h = b64url(json.dumps(dict(header), separators=(",", ":")).encode("utf-8"))
    p = b64url(json.dumps(dict(payload), separators=(",", ":")).encode("utf-8"))
    signing_input = f"{h}.{p}".encode("ascii")
    return f"{h}.{p}.{b64url(sign(algorithm, key, signing_input))}"


def public_jwk(
    key: PrivateKey, *, kid: str | None = None, alg: str | None = None
) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a private key; for HMAC the secret itself as ``oct``."""
    jwk: dict[str, Any]
    if isinstance(key, (bytes, bytearray)):
        jwk = {"kty": "oct", "k": b64url(bytes(key))}
    elif isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        jwk = {
            "kty": "RSA",
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
        size = _CURVES[crv][1]
        pub = key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64url(pub.x.to_bytes(size, "big")),
            "y": b64url(pub.y.to_bytes(size, "big")),
        }
    elif isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        crv = "Ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "Ed448"
        jwk = {"kty": "OKP", "crv": crv, "x": b64url(raw)}
    else:
        raise TypeError("unsupported key type")
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    jwk["use"] = "sig"
    return jwk


def private_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key (unencrypted: for development keys)."""
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


def public_pem(key: PrivateKey) -> bytes:
    """SPKI PEM of the public half of a private key."""
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def load_private_pem(data: bytes) -> PrivateKey:
    return serialization.load_pem_private_key(data, password=None)
