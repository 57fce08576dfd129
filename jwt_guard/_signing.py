"""Making tokens: key generation, and signing and JWK export by PyJWT.

Used by the test kit, the CLI (``keygen``, ``mint``, ``dpop-proof``) and the demo issuer. The
tokens (and DPoP proofs) are made by PyJWT, the most used Python JWT library, so the tokens our
users' tests verify come from an independent implementation rather than from an encoder of our
own. Keys are generated with ``cryptography``, with the sizes and curves of ``_algorithms``.

A verification library that can also sign is a footgun in production code paths: nothing on
the verification path imports this module, nor PyJWT (tests/test_structure.py checks it).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode

from ._algorithms import ALGORITHMS, CURVES
from ._dpop import access_token_hash

__all__ = [
    "PrivateKey",
    "b64url",
    "dpop_jwk",
    "dpop_proof",
    "encode",
    "generate_key",
    "load_private_pem",
    "private_pem",
    "public_jwk",
    "public_pem",
    "sign",
]

PrivateKey = Any  # rsa/ec/ed25519/ed448 private key objects, or bytes for HMAC

# PyJWT's JWS encoder with every algorithm of our table. PyJWT (2.15) knows "EdDSA" but not
# RFC 9864's fully specified "Ed25519" and "Ed448"; its EdDSA signer serves both, and
# encode() checks that the key is on the named curve. A private instance, so the
# application's own use of PyJWT is not changed.
_JWS = jwt.PyJWS()
for _name, _spec in ALGORITHMS.items():
    if _name not in _JWS.get_algorithms():
        assert _spec.family == "OKP", _name
        _JWS.register_algorithm(_name, OKPAlgorithm())


def b64url(data: bytes) -> str:
    return base64url_encode(data).decode("ascii")


def generate_key(alg: str, *, rsa_bits: int = 2048) -> PrivateKey:
    """A fresh private key (or HMAC secret) for ``alg``."""
    spec = ALGORITHMS[alg]
    if spec.kty == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if spec.kty == "EC":
        ec_curve = CURVES[spec.curves[0]].ec_curve
        assert ec_curve is not None
        return ec.generate_private_key(ec_curve())
    if spec.kty == "OKP":
        # "EdDSA" gets Ed25519, the curve every EdDSA verifier supports.
        return (
            ed448.Ed448PrivateKey.generate()
            if spec.curves[0] == "Ed448"
            else ed25519.Ed25519PrivateKey.generate()
        )
    return secrets.token_bytes(spec.min_key_bits // 8)


def sign(alg: str, key: PrivateKey, data: bytes) -> bytes:
    """PyJWT's JWS signature (RFC 7518 §3) over ``data``.

    Without PyJWT's key checks, on purpose: attack tests sign with keys that do not fit the
    ``alg`` (an Ed448 key under "Ed25519") or with a public key as an HMAC secret.
    """
    signature: bytes = _JWS.get_algorithm_by_name(alg).sign(data, key)
    return signature


def _curve_of(key: PrivateKey) -> str | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "Ed448"
    return None


def encode(
    payload: Mapping[str, Any],
    key: PrivateKey,
    alg: str,
    *,
    header: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS signed by PyJWT. ``header`` adds members; it has ``typ`` only if given.

    Raises ``ValueError`` when the key does not fit ``alg``.
    """
    spec = ALGORITHMS[alg]
    if spec.family == "OKP" and _curve_of(key) not in spec.curves:
        raise ValueError(f"the key does not fit {alg}")  # RFC 9864 §2.2
    # PyJWT adds "typ": "JWT" unless told None; the caller decides.
    headers = {"typ": None, **(header or {}), "alg": alg}
    # Any JSON claims, not only what jwt.encode allows (it refuses a non-string "iss"):
    # tests need tokens with claims of the wrong type.
    body = json.dumps(dict(payload), separators=(",", ":")).encode("utf-8")
    try:
        return _JWS.encode(body, key, algorithm=alg, headers=headers, sort_headers=False)
    except jwt.PyJWTError as exc:
        raise ValueError(f"the key does not fit {alg}: {exc}") from exc


def _export(public: Any) -> dict[str, Any]:
    """PyJWT's JWK of a public key."""
    jwk: Any
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise TypeError("unsupported key type")
    return dict(jwk)


def public_jwk(
    key: PrivateKey, *, kid: str | None = None, alg: str | None = None
) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a private key, as PyJWT exports it; for HMAC the secret
    itself as ``oct``."""
    jwk: dict[str, Any]
    if isinstance(key, (bytes, bytearray)):
        jwk = dict(HMACAlgorithm.to_jwk(bytes(key), as_dict=True))
    else:
        jwk = _export(key.public_key())
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    if "key_ops" not in jwk:
        # RFC 7517 §4.3: "use" and "key_ops" should not both be given; PyJWT gives RSA keys
        # key_ops ["verify"], which says the same.
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


# -- DPoP (RFC 9449): what a client makes ------------------------------------------------------

#: The proof algorithm for each kind of client key when ``dpop_proof`` is not told one.
_DPOP_DEFAULT_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "RSA": "RS256"}


def dpop_jwk(key: Any) -> dict[str, Any]:
    """The public JWK of a client's DPoP key (a private or public key object), made by PyJWT."""
    return _export(key.public_key() if hasattr(key, "public_key") else key)


def dpop_proof(
    key: PrivateKey,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    alg: str | None = None,
    jti: str | None = None,
    iat: float | None = None,
    claims: Mapping[str, Any] | None = None,
    header: Mapping[str, Any] | None = None,
) -> str:
    """A DPoP proof (RFC 9449 §4.2) for one request, signed by PyJWT with the client's ``key``.

    ``access_token`` adds ``ath``, ``nonce`` the server's nonce. ``claims`` and ``header``
    override or, with ``None`` values, drop members (to make broken proofs in tests).
    """
    jwk = dpop_jwk(key)
    if alg is None:
        alg = "EdDSA" if jwk["kty"] == "OKP" else _DPOP_DEFAULT_ALG[jwk.get("crv", jwk["kty"])]
    payload: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(iat if iat is not None else time.time()),
    }
    if access_token is not None:
        payload["ath"] = access_token_hash(access_token)
    if nonce is not None:
        payload["nonce"] = nonce
    hdr: dict[str, Any] = {"typ": "dpop+jwt", "jwk": jwk}
    for target, changes in ((payload, claims), (hdr, header)):
        for name, value in (changes or {}).items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
    return encode(payload, key, alg, header=hdr)
