"""Making tokens (jwt_guard._tools.signing): PyJWT signs, the table decides which key fits."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwt_guard import JWK
from jwt_guard._core.algorithms import ALGORITHMS, CURVES
from jwt_guard._core.parse import b64url_decode
from jwt_guard._tools.signing import encode, generate_key, public_jwk

CLAIMS = {"sub": "x", "exp": 60}


@pytest.mark.parametrize("alg", sorted(ALGORITHMS))
def test_generated_keys_fit_their_algorithm_and_sign(alg: str) -> None:
    key = generate_key(alg)
    token = encode(CLAIMS, key, alg, header={"kid": "k"})
    assert json.loads(b64url_decode(token.split(".")[0])) == {"alg": alg, "kid": "k"}


def _p384() -> Any:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        # ECDSA curves are checked by the table, not left to PyJWT (which checks them only
        # since 2.11): RFC 7518 §3.4, ES256 is P-256 with SHA-256.
        ("ES256", _p384),
        ("ES512", _p384),
        ("ES256", lambda: generate_key("Ed25519")),
        ("Ed25519", lambda: generate_key("Ed448")),  # RFC 9864 §2.2
        ("ES256", lambda: generate_key("ES256").public_key()),  # a public key cannot sign
        # PyJWT raises TypeError for a key of the wrong type: the documented ValueError here.
        ("RS256", lambda: b"x" * 32),
        ("HS256", lambda: generate_key("ES256")),
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        ("HS512", lambda: b"x" * 32),  # RFC 7518 §3.2: at least the hash size
    ],
)
def test_encode_refuses_a_key_that_does_not_fit_the_algorithm(alg: str, key: Any) -> None:
    with pytest.raises(ValueError, match=f"does not fit {alg}"):
        encode(CLAIMS, key(), alg)


def test_encode_refuses_an_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        encode(CLAIMS, b"x" * 32, "HS1")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA", "Ed448", "HS256"])
def test_public_jwks_say_use_sig_for_every_key_type(alg: str) -> None:
    # One rule for every kty (RFC 7517 §4.3: "use" and "key_ops" not both): "use": "sig",
    # as identity providers publish it. PyJWT's own export gives RSA keys key_ops instead.
    jwk = public_jwk(generate_key(alg), kid="k", alg=alg)
    assert jwk["use"] == "sig" and "key_ops" not in jwk
    assert jwk["kid"] == "k" and jwk["alg"] == alg
    if alg != "HS256":
        assert JWK.from_dict(jwk).fits(alg)


def test_curves_name_their_key_classes() -> None:
    for curve in CURVES.values():
        if curve.kty == "EC":
            assert curve.ec_curve is not None and curve.okp_public is None
        else:
            assert curve.okp_public is not None and curve.okp_private is not None
            assert curve.ec_curve is None


_WITHOUT_ES512 = """
import jwt.api_jws
defaults = jwt.api_jws.get_default_algorithms
jwt.api_jws.get_default_algorithms = lambda: {
    name: alg for name, alg in defaults().items() if name != "ES512"
}
try:
    import jwt_guard._tools.signing
except ImportError as exc:
    print(exc)
"""


def test_a_pyjwt_without_a_jwa_algorithm_fails_at_import() -> None:
    # A real check, not an assert (stripped under python -O).
    for flags in ([], ["-O"]):
        result = subprocess.run(
            [sys.executable, *flags, "-c", _WITHOUT_ES512],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "cannot sign ES512" in result.stdout
