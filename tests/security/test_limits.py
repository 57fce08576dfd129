"""Resource limits: nothing an attacker sends makes us work or remember without bound."""

from __future__ import annotations

import json
import random

import pytest

from jwt_guard import JWTGuardError, KeySet, MalformedToken, TokenTooLarge
from jwt_guard._core.jwks_policy import MAX_KEYS
from jwt_guard._tools.signing import b64url, generate_key, public_jwk
from jwt_guard.testing import JWKSServer, LocalIssuer, compact, forge


def test_token_size_limit_applies_before_decoding(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    with pytest.raises(TokenTooLarge):
        verifier.verify("x" * 8193)
    assert verifier.verify(issuer.mint())


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_json_nesting_rejected_cheaply(
    issuer: LocalIssuer, opener: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jwt_guard._core import parse as _parse

    payload = opener * (2000 if opener == b"[" else 1000)
    token = forge({"alg": "RS256", "kid": issuer.kid}, payload, issuer.private_key, "RS256")
    verifier = issuer.verifier()
    decoded: list[str] = []
    real = _parse._DECODER.decode
    monkeypatch.setattr(_parse._DECODER, "decode", lambda text: decoded.append(text) or real(text))
    with pytest.raises(MalformedToken) as info:
        verifier.verify(token)
    # Refused by the container count: the payload never reached the recursive JSON parser
    # (only the small protected header did).
    assert [t for t in decoded if t.startswith(opener.decode())] == []
    assert len(decoded) == 1 and info.value.__cause__ is None


def test_invalid_token_flood_keeps_caches_bounded(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    for i in range(2000):
        token = compact({"alg": "RS256", "kid": issuer.kid, "n": i}, issuer.claims(), b"x" * 256)
        with pytest.raises(JWTGuardError):
            verifier.verify(token)
    assert len(verifier._headers) <= 256
    assert verifier._cache is not None and len(verifier._cache) == 0  # failures never cached


def test_jwks_key_count_cap() -> None:
    key = public_jwk(generate_key("ES256"))
    doc = {"keys": [dict(key, kid=str(i)) for i in range(MAX_KEYS + 1)]}
    with pytest.raises(ValueError):
        KeySet.from_jwks(doc, allow_symmetric=False, strict=False)


def test_16384_bit_rsa_key_in_jwks_is_skipped_before_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    rng = random.Random(7)
    n = rng.getrandbits(16384) | (1 << 16383) | 1
    huge = {"kty": "RSA", "kid": "huge", "n": b64url(n.to_bytes(2048, "big")), "e": "AQAB"}
    good = public_jwk(generate_key("RS256"), kid="good")
    built: list[int] = []
    real = rsa.RSAPublicNumbers.public_key
    monkeypatch.setattr(
        rsa.RSAPublicNumbers, "public_key", lambda self, *a: built.append(self.n) or real(self, *a)
    )
    key_set = KeySet.from_jwks({"keys": [huge, good]}, allow_symmetric=False, strict=False)
    assert key_set.key_ids == ("good",)
    assert n not in built  # refused by its size, never turned into a key object
    assert "8192" in key_set.skipped_entries[0].reason  # what its source logs


async def test_jwks_response_size_cap(clock: object) -> None:
    from jwt_guard import JWKSKeys

    idp = LocalIssuer(algorithm="ES256")
    with JWKSServer(lambda: idp.jwks) as server:
        server.body = json.dumps({"keys": [], "pad": "x" * (2 * 1024 * 1024)}).encode()
        source = JWKSKeys(server.url, max_bytes=64 * 1024)
        await source.aprefetch()
        assert source.stats.failures == 1
        assert source.stats.last_failure_reason == "response too large"
        source.prefetch()
        assert source.stats.failures == 2
        await source.aclose()
