"""The one table of JWA algorithms and curves (RFC 7518 §3, RFC 8037, RFC 9864)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from jwt_guard import JWK
from jwt_guard._core.algorithms import ALGORITHMS, CURVES, DIGEST_SIZES
from jwt_guard._tools.signing import generate_key, public_jwk, sign
from jwt_guard.cli import build_parser

# FIPS 186-4 §D.1.2 (the same values as SEC 2), written in decimal as the standard prints
# them, so a slip in the table's hex cannot be copied into the test.
KNOWN_ORDERS = {
    "P-256": 115792089210356248762697446949407573529996955224135760342422259061068512044369,
    "P-384": int(
        "39402006196394479212279040100143613805079739270465446667946905279627659399113263569398956308152294913554433653942643"
    ),
    "P-521": int(
        "6864797660130609714981900799081393217269435300143305409394463459185543183397655394245057746333217197532963996371363321113864768612440380340372808892707005449"
    ),
}
EC_CURVES = [name for name, curve in CURVES.items() if curve.kty == "EC"]
DATA = b"header.payload"


@pytest.mark.parametrize("name", EC_CURVES)
def test_curve_order_has_the_curves_bit_length_and_value(name: str) -> None:
    curve = CURVES[name]
    assert curve.order is not None and curve.ec_curve is not None
    assert curve.order.bit_length() == curve.bits == curve.ec_curve().key_size
    assert curve.size == math.ceil(curve.bits / 8)  # RFC 7518 §6.2.1.2
    assert curve.order == KNOWN_ORDERS[name]


@pytest.mark.parametrize("name", EC_CURVES)
def test_curve_order_is_the_group_order_cryptography_uses(name: str) -> None:
    # ECDSA signatures are malleable: if (r, s) verifies, so does (r, n - s), but only for
    # the true group order n. cryptography (OpenSSL) is the independent judge here.
    curve = CURVES[name]
    assert curve.order is not None and curve.ec_curve is not None
    private = ec.generate_private_key(curve.ec_curve())
    r, s = decode_dss_signature(private.sign(DATA, ec.ECDSA(hashes.SHA256())))
    private.public_key().verify(
        encode_dss_signature(r, curve.order - s), DATA, ec.ECDSA(hashes.SHA256())
    )
    with pytest.raises(InvalidSignature):
        private.public_key().verify(
            encode_dss_signature(r, curve.order - s + 1), DATA, ec.ECDSA(hashes.SHA256())
        )


class _CountingKey:
    """A public key that counts the signature checks that reach ``cryptography``."""

    def __init__(self, inner: ec.EllipticCurvePublicKey) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, signature: bytes, data: bytes, algorithm: Any) -> None:
        self.calls += 1
        self.inner.verify(signature, data, algorithm)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_cve_2022_21449_r_and_s_at_or_above_n_refused_before_cryptography(alg: str) -> None:
    spec = ALGORITHMS[alg]
    curve = CURVES[spec.curves[0]]
    assert curve.order is not None
    private = generate_key(alg)
    key = JWK.from_dict(public_jwk(private, alg=alg))
    counting = _CountingKey(private.public_key())
    key._material = counting  # type: ignore[attr-defined]  # watch what reaches cryptography
    good = sign(alg, private, DATA)
    r = int.from_bytes(good[: curve.size], "big")
    s = int.from_bytes(good[curve.size :], "big")
    assert key.verify(alg, DATA, good) and counting.calls == 1

    def raw(r: int, s: int) -> bytes:
        return r.to_bytes(curve.size, "big") + s.to_bytes(curve.size, "big")

    # r or s at or above n, and the same values plus n where they fit the fixed width (for
    # P-521 they do: 66 bytes hold 528 bits): a verifier that reduced r or s modulo n, or
    # left the range to the library, would be one bug away from accepting them.
    n = curve.order
    pairs = [(r, n), (n, s), (0, s), (r, 0), (r, s + n), (r + n, s)]
    refused = [p for p in pairs if max(p) < 2 ** (8 * curve.size)]
    if alg == "ES512":
        assert (r, s + n) in refused and (r + n, s) in refused
    for bad_r, bad_s in refused:
        assert not key.verify(alg, DATA, raw(bad_r, bad_s))
    assert counting.calls == 1  # our range check refused them; cryptography never saw them
    # n - s is a valid signature (see above) and inside the range: it reaches cryptography.
    assert key.verify(alg, DATA, raw(r, n - s)) and counting.calls == 2


def test_every_algorithm_is_consistent() -> None:
    for name, spec in ALGORITHMS.items():
        assert spec.name == name
        for crv in spec.curves:
            assert CURVES[crv].kty == spec.kty
        if spec.family == "HMAC":
            assert spec.hash_name is not None
            assert spec.min_key_bits == 8 * DIGEST_SIZES[spec.hash_name]  # RFC 7518 §3.2
        elif spec.kty == "RSA":
            assert spec.min_key_bits == 2048  # RFC 7518 §3.3
        else:
            assert spec.curves
    # RFC 9864 §2.2: the fully specified names each name one curve; EdDSA takes both.
    assert ALGORITHMS["Ed25519"].curves == ("Ed25519",)
    assert ALGORITHMS["Ed448"].curves == ("Ed448",)
    assert set(ALGORITHMS["EdDSA"].curves) == {"Ed25519", "Ed448"}


def test_cli_offers_exactly_the_table() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: Any = sub.choices
    verify_algs = next(a for a in choices["verify"]._actions if a.dest == "algorithm").choices
    keygen_algs = next(a for a in choices["keygen"]._actions if a.dest == "alg").choices
    assert set(verify_algs) == set(ALGORITHMS)
    assert set(keygen_algs) == {a for a, s in ALGORITHMS.items() if s.family != "HMAC"}
