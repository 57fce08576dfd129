"""Making tokens: key generation, and signing and JWK export by PyJWT.

Used by the test kit, the CLI (``keygen``, ``mint``, ``dpop-proof``) and the demo issuer. The
tokens (and DPoP proofs) are made by PyJWT, the most used Python JWT library, so the tokens our
users' tests verify come from an independent implementation rather than from an encoder of our
own. Keys are generated with ``cryptography``, with the sizes and curves of ``_core.algorithms``.

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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode

from .._core.algorithms import ALGORITHMS, CURVES, MIN_RSA_BITS, RSA_EXPONENT, Algorithm, curve_of
from .._core.dpop import access_token_hash

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
    "pyjwt_writes_as_given",
    "sign",
]

PrivateKey = Any  # rsa/ec/ed25519/ed448 private key objects, or bytes for HMAC

# PyJWT's JWS encoder with every algorithm of our table. PyJWT (2.15) knows "EdDSA" but not
# RFC 9864's fully specified "Ed25519" and "Ed448"; its EdDSA signer serves both, and
# encode() checks that the key is on the named curve. A private instance, so the
# application's own use of PyJWT is not changed.
_JWS = jwt.PyJWS()
for _name, _spec in ALGORITHMS.items():
    if _name in _JWS.get_algorithms():
        continue
    if _spec.family != "OKP":
        # A PyJWT without one of JWA's own algorithms cannot make our tokens: say so at
        # import, not at the first token.
        raise ImportError(f"PyJWT {jwt.__version__} cannot sign {_name}: upgrade PyJWT")
    _JWS.register_algorithm(_name, OKPAlgorithm())


def b64url(data: bytes) -> str:
    return base64url_encode(data).decode("ascii")


def generate_key(alg: str, *, rsa_bits: int = MIN_RSA_BITS) -> PrivateKey:
    """A fresh private key (or HMAC secret) for ``alg``."""
    spec = ALGORITHMS[alg]
    if spec.kty == "RSA":
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=rsa_bits)
    if spec.kty == "oct":
        return secrets.token_bytes(spec.min_key_bits // 8)
    # "EdDSA" lists Ed25519 first, the curve every EdDSA verifier supports.
    curve = CURVES[spec.curves[0]]
    if curve.ec_curve is not None:
        return ec.generate_private_key(curve.ec_curve())
    assert curve.okp_private is not None  # every OKP curve of the table names its classes
    return curve.okp_private.generate()


def sign(alg: str, key: PrivateKey, data: bytes) -> bytes:
    """PyJWT's JWS signature (RFC 7518 §3) over ``data``.

    Without PyJWT's key checks, on purpose: attack tests sign with keys that do not fit the
    ``alg`` (an Ed448 key under "Ed25519") or with a public key as an HMAC secret.
    """
    signature: bytes = _JWS.get_algorithm_by_name(alg).sign(data, key)
    return signature


def _misfit(key: PrivateKey, spec: Algorithm) -> str | None:
    """Why ``key`` cannot sign ``spec`` by the table (type, curve, size), or ``None``.

    Checked here rather than left to PyJWT, whose checks depend on its version (ECDSA
    curves only since 2.11).
    """
    if spec.kty == "oct":
        if not isinstance(key, (bytes, bytearray)):
            return "an HMAC secret is bytes"
        if len(key) * 8 < spec.min_key_bits:  # RFC 7518 §3.2
            return f"the secret is shorter than {spec.min_key_bits // 8} bytes"
        return None
    if spec.kty == "RSA":
        if not isinstance(key, rsa.RSAPrivateKey):
            return "not an RSA private key"
        if key.key_size < spec.min_key_bits:  # RFC 7518 §3.3
            return f"RSA keys have at least {spec.min_key_bits} bits"
        return None
    curve = curve_of(key)
    private = isinstance(key, ec.EllipticCurvePrivateKey) or (
        curve is not None and curve.okp_private is not None and isinstance(key, curve.okp_private)
    )
    if curve is None or curve.name not in spec.curves or not private:
        # RFC 7518 §3.4, RFC 9864 §2.2: each name signs on its curves only.
        return f"it signs with a private key on {' or '.join(spec.curves)}"
    return None


def encode(
    payload: Mapping[str, Any],
    key: PrivateKey,
    alg: str,
    *,
    header: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS signed by PyJWT. ``header`` adds members; it has ``typ`` only if given.

    Raises ``ValueError`` when ``alg`` is not in the table or the key does not fit it (its
    type, curve and size, by the table). PyJWT may rewrite some header members: see
    :func:`pyjwt_writes_as_given`.
    """
    spec = ALGORITHMS.get(alg)
    if spec is None:
        raise ValueError(f"unknown algorithm {alg!r}")
    misfit = _misfit(key, spec)
    if misfit is not None:
        raise ValueError(f"the key does not fit {alg}: {misfit}")
    # PyJWT adds "typ": "JWT" unless told None; the caller decides.
    headers = {"typ": None, **(header or {}), "alg": alg}
    # Any JSON claims, not only what jwt.encode allows (it refuses a non-string "iss"):
    # tests need tokens with claims of the wrong type.
    body = json.dumps(dict(payload), separators=(",", ":")).encode("utf-8")
    try:
        return _JWS.encode(body, key, algorithm=alg, headers=headers, sort_headers=False)
    except (jwt.PyJWTError, TypeError) as exc:
        # TypeError: PyJWT's word for a key of the wrong type ("Expecting a PEM-formatted
        # key"); the table check above should have caught it first.
        raise ValueError(f"the key does not fit {alg}: {exc}") from exc


def _export(public: Any) -> dict[str, Any]:
    """PyJWT's JWK of a public key."""
    jwk: Any
    curve = curve_of(public)
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif curve is not None and curve.kty == "EC":
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    elif curve is not None:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise TypeError("unsupported key type")
    return dict(jwk)


def pyjwt_writes_as_given(header: Mapping[str, Any], alg: str) -> bool:
    """Whether :func:`encode` signing with ``alg`` writes the complete ``header`` exactly.

    PyJWT's encoder writes the ``alg`` it signs with, drops a falsy ``typ``, refuses a ``kid``
    that is not a string, and turns ``"b64": false`` into a detached payload with ``crit``
    added (RFC 7797 §3) or drops ``"b64": true``. A header that needs any of these is not
    PyJWT's to write: :func:`jwt_guard.testing.forge` signs it as it is.
    """
    return (
        header.get("alg") == alg
        and bool(header.get("typ", True))
        and isinstance(header.get("kid", ""), str)
        and "b64" not in header
    )


def public_jwk(
    key: PrivateKey, *, kid: str | None = None, alg: str | None = None
) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a private key, as PyJWT exports it; for HMAC the secret
    itself as ``oct``.

    Every key type carries ``"use": "sig"`` and no ``key_ops``, as identity providers
    publish them (RFC 7517 §4.3: the two should not both be given). PyJWT gives RSA keys
    ``key_ops`` instead; they are replaced, so every JWK says the same thing the same way.
    """
    jwk: dict[str, Any]
    if isinstance(key, (bytes, bytearray)):
        jwk = dict(HMACAlgorithm.to_jwk(bytes(key), as_dict=True))
    else:
        jwk = _export(key.public_key())
    jwk.pop("key_ops", None)
    jwk["use"] = "sig"
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
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

#: The proof algorithm for each kind of client key when ``dpop_proof`` is not told one. A
#: P-384 or P-521 key has only its own algorithm (ES384, ES512), which ``DPoP()``'s default
#: algorithms do not list: the verifier must name it (``DPoP(algorithms=[..., "ES384"])``).
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
