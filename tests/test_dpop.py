"""DPoP (RFC 9449): the sans-IO proof rules, the binding, nonces and the replay caches.

The same rules through both adapters and both drivers are in ``test_dpop_adapters.py``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from jwt_guard import (
    ClaimInvalid,
    ConfigurationError,
    DPoP,
    DPoPBoundTokenAsBearer,
    DPoPKeyMismatch,
    DPoPNonceRequired,
    DPoPNonces,
    DPoPProofMissing,
    DPoPProofReplayed,
    DPoPRateLimited,
    DPoPReplayUnavailable,
    InvalidDPoPProof,
    InvalidRequest,
    MemoryReplayCache,
    RedisReplayCache,
)
from jwt_guard._core.dpop import access_token_hash, jwk_thumbprint, normalize_htu
from jwt_guard.testing import compact, dpop_jwk, dpop_proof, forge

from .conftest import FakeClock
from .redis_server import free_port, redis_server

# RFC 9449 §4.1 (Figure 1): the example proof of a token request.
RFC9449_4_1_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik"
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR"
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE"
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj"
    "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia"
    "WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg"
    "4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
# RFC 9449 §7.1 (Figure 13): a resource request with that key, and its access token.
RFC9449_7_1_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik"
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR"
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE"
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj"
    "oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z"
    "WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF"
    "c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E"
    "OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC9449_7_1_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # §6.1: cnf.jkt of that key

URL = "https://api.example/orders"
TOKEN = "an.access.token"


class _AnyText(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_TEXT = _AnyText()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def dpop() -> DPoP:
    return DPoP()


@pytest.fixture
def prove(key: Any, clock: FakeClock) -> Callable[..., str]:
    """A good proof for GET URL with TOKEN, changed by keyword arguments."""

    def make(**changes: Any) -> str:
        options: dict[str, Any] = {"access_token": TOKEN, "iat": clock.now}
        options.update(changes)
        signer = options.pop("key", key)
        return dpop_proof(signer, options.pop("method", "GET"), options.pop("url", URL), **options)

    return make


def check(dpop: DPoP, proof: str, clock: FakeClock, **request: Any) -> Any:
    return dpop.check_proof(
        proof,
        request.get("token", TOKEN),
        request.get("method", "GET"),
        request.get("url", URL),
        clock.now,
        request.get("leeway", 0),
    )


# -- the RFC examples ----------------------------------------------------------------------------


def test_rfc9449_4_1_example_proof_header_and_signature() -> None:
    dpop = DPoP(algorithms=["ES256"])
    header = dpop._check_header(RFC9449_4_1_PROOF.split(".")[0])
    assert header.alg == "ES256" and header.key.kty == "EC" and header.key.crv == "P-256"
    assert header.jkt == RFC9449_JKT
    h64, p64, s64 = RFC9449_4_1_PROOF.split(".")
    from jwt_guard._core.parse import b64url_decode

    assert header.key.verify("ES256", f"{h64}.{p64}".encode(), b64url_decode(s64))


def test_rfc9449_7_1_example_resource_request_proof_passes_every_rule() -> None:
    proof = DPoP(algorithms=["ES256"]).check_proof(
        RFC9449_7_1_PROOF,
        RFC9449_7_1_TOKEN,
        "GET",
        "https://resource.example.org/protectedresource",
        1562262618,
        0,
    )
    assert proof.jkt == RFC9449_JKT
    assert access_token_hash(RFC9449_7_1_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_rfc9449_7_1_example_fails_for_another_request() -> None:
    dpop = DPoP(algorithms=["ES256"])
    args = (RFC9449_7_1_TOKEN, "GET", "https://resource.example.org/protectedresource")
    with pytest.raises(InvalidDPoPProof):
        dpop.check_proof(RFC9449_7_1_PROOF, *args, 1562262618 + 3600, 0)  # too old
    with pytest.raises(InvalidDPoPProof):
        dpop.check_proof(RFC9449_7_1_PROOF, "another-token", *args[1:], 1562262618, 0)


def test_rfc7638_3_1_thumbprint_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
        "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # RFC 7638 §3.2: only the required members count.
    bare = {k: jwk[k] for k in ("kty", "n", "e")}
    assert jwk_thumbprint(bare) == jwk_thumbprint(jwk)


def test_thumbprint_of_okp_and_ec_keys_matches_joserfc() -> None:
    # Another implementation's thumbprint (joserfc), for the key types the RFC has no example of.
    from joserfc.jwk import ECKey, OKPKey

    for private in (ec.generate_private_key(ec.SECP384R1()), ed25519.Ed25519PrivateKey.generate()):
        jwk = dpop_jwk(private)
        theirs = (ECKey if jwk["kty"] == "EC" else OKPKey).import_key(jwk).thumbprint()
        assert jwk_thumbprint(jwk) == theirs


def test_thumbprint_refuses_unknown_or_incomplete_keys() -> None:
    for bad in ({"kty": "oct", "k": "AAAA"}, {"kty": "EC", "crv": "P-256", "x": "AA"}, {}):
        with pytest.raises(ValueError):
            jwk_thumbprint(bad)


# -- htu normalization (RFC 9449 §4.3, RFC 3986 §6.2.2-6.2.3) -------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://API.Example/orders", "https://api.example/orders"),
        ("HTTPS://api.example:443/orders", "https://api.example/orders"),
        ("http://api.example:80", "http://api.example/"),
        ("https://api.example/%7Euser/a%2fb", "https://api.example/~user/a%2Fb"),
        ("https://api.example/a/./b/../c", "https://api.example/a/c"),
        ("https://api.example/orders?page=2#top", "https://api.example/orders"),
        ("wss://api.example/socket", "https://api.example/socket"),
        ("ws://api.example:80/socket", "http://api.example/socket"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x"),
    ],
)
def test_htu_normalization_makes_equivalent_urls_equal(a: str, b: str) -> None:
    assert normalize_htu(a) == normalize_htu(b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://api.example/orders", "http://api.example/orders"),
        ("https://api.example/orders", "https://api.example:8443/orders"),
        ("https://api.example/orders", "https://api.example/Orders"),
        ("https://api.example/a%2Fb", "https://api.example/a/b"),
        ("https://api.example/orders", "https://evil.example/orders"),
    ],
)
def test_htu_normalization_keeps_different_urls_apart(a: str, b: str) -> None:
    assert normalize_htu(a) != normalize_htu(b)


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://api.example/x",
        "https:///x",
        "https://user:pw@api.example/x",
        "https://a:99999/",
        "/x",
        # urlsplit would strip or drop these (WHATWG), leaving a URL that matches
        " https://api.example/x",
        "https://api.example/x\n",
        "https://api.ex\tample/x",
        "https://api.example/x\x00",
        "https://api.example /x",
    ],
)
def test_htu_that_is_not_an_http_url_is_refused(bad: str) -> None:
    assert normalize_htu(bad) is None


# -- the proof rules (RFC 9449 §4.3), each as a failing and a passing pair -------------------------


def test_good_proof_passes(
    dpop: DPoP, key: Any, prove: Callable[..., str], clock: FakeClock
) -> None:
    checked = check(dpop, prove(), clock)
    assert checked.jkt == jwk_thumbprint(dpop_jwk(key))
    assert checked.ttl == 60 + 1 and checked.replay_key.startswith("dpop:")


#: (name, changes to the good proof's making) for each rule a proof can break.
BROKEN_PROOFS: list[tuple[str, dict[str, Any]]] = [
    ("typ_missing", {"header": {"typ": None}}),
    ("typ_jwt", {"header": {"typ": "JWT"}}),
    ("alg_not_allowed", {"alg": "ES384", "key": ec.generate_private_key(ec.SECP384R1())}),
    ("jwk_missing", {"header": {"jwk": None}}),
    ("jwk_private", {"header": {"jwk": {"d": "AAAA"}}}),
    ("jwk_other_key", {"header": {"jwk": dpop_jwk(ec.generate_private_key(ec.SECP256R1()))}}),
    ("crit", {"header": {"crit": ["exp"], "exp": 1}}),
    ("jti_missing", {"claims": {"jti": None}}),
    ("jti_too_long", {"jti": "j" * 257}),
    ("jti_not_string", {"claims": {"jti": 7}}),
    ("htm_other", {"method": "POST"}),
    ("htm_lowercase", {"method": "get"}),
    ("htu_other_path", {"url": "https://api.example/admin"}),
    ("htu_other_host", {"url": "https://evil.example/orders"}),
    ("htu_missing", {"claims": {"htu": None}}),
    ("iat_too_old", {"iat_offset": -100}),  # beyond max_age and the leeway
    ("iat_in_future", {"iat_offset": 40}),
    ("iat_missing", {"claims": {"iat": None}}),
    ("iat_not_number", {"claims": {"iat": "now"}}),
    ("ath_missing", {"access_token": None}),
    ("ath_other_token", {"access_token": "another.access.token"}),
]


@pytest.mark.parametrize(("name", "changes"), BROKEN_PROOFS, ids=[n for n, _ in BROKEN_PROOFS])
def test_rfc9449_4_3_each_rule_refuses_a_broken_proof(
    dpop: DPoP, prove: Callable[..., str], clock: FakeClock, name: str, changes: dict[str, Any]
) -> None:
    changes = dict(changes)
    if "iat_offset" in changes:
        changes["iat"] = clock.now + changes.pop("iat_offset")
    with pytest.raises(InvalidDPoPProof) as info:
        check(dpop, prove(**changes), clock)
    assert info.value.code == "dpop_proof_invalid" and info.value.error == "invalid_dpop_proof"
    assert info.value.status_code == 401
    check(dpop, prove(), clock)  # and the good proof still passes


@pytest.mark.parametrize(
    "proof",
    [
        "",
        "not-a-jws",
        "a.b",
        "a.b.c.d",
        "eyJ0eXAiOiJkcG9wK2p3dCJ9..",
        "x" * 9000,
        compact({"typ": "dpop+jwt", "alg": "none"}, {"jti": "1"}, b"")[:-1],
    ],
)
def test_rfc9449_4_3_2_not_a_well_formed_jwt(dpop: DPoP, clock: FakeClock, proof: str) -> None:
    with pytest.raises(InvalidDPoPProof):
        check(dpop, proof, clock)


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_rfc9449_11_6_none_and_mac_algorithms_are_refused(
    dpop: DPoP, key: Any, clock: FakeClock, alg: str
) -> None:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": dpop_jwk(key)}
    claims = {"jti": "x", "htm": "GET", "htu": URL, "iat": clock.now}
    claims["ath"] = access_token_hash(TOKEN)
    proof = (
        compact(header, claims, b"") if alg == "none" else forge(header, claims, b"k" * 32, "HS256")
    )
    with pytest.raises(InvalidDPoPProof):
        check(dpop, proof, clock)
    with pytest.raises(ConfigurationError):
        DPoP(algorithms=[alg])


def test_rfc9449_4_3_7_private_key_in_jwk_is_refused(
    dpop: DPoP, clock: FakeClock, prove: Callable[..., str]
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    from jwt.algorithms import ECAlgorithm

    full = ECAlgorithm.to_jwk(private, as_dict=True)  # with "d"
    assert "d" in full
    with pytest.raises(InvalidDPoPProof):
        check(dpop, prove(key=private, header={"jwk": full}), clock)
    check(dpop, prove(key=private), clock)


def test_rfc9449_4_3_11_iat_window_includes_the_leeway(
    dpop: DPoP, prove: Callable[..., str], clock: FakeClock
) -> None:
    old = prove(iat=clock.now - 60 - 10)
    with pytest.raises(InvalidDPoPProof):
        check(dpop, old, clock)
    check(dpop, old, clock, leeway=10)
    future = prove(iat=clock.now + 10)
    with pytest.raises(InvalidDPoPProof):
        check(dpop, future, clock, leeway=9)
    check(dpop, future, clock, leeway=10)


def test_weak_rsa_proof_key_is_refused(dpop: DPoP, clock: FakeClock) -> None:
    weak = rsa.generate_private_key(65537, 1024)
    claims = {"jti": "x", "htm": "GET", "htu": URL, "iat": int(clock.now)}
    claims["ath"] = access_token_hash(TOKEN)
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": dpop_jwk(weak)}
    proof = forge(header, claims, weak, "RS256")  # PyJWT would warn about the size
    with pytest.raises(InvalidDPoPProof):
        check(dpop, proof, clock)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519", "PS256", "RS256"])
def test_every_default_algorithm_verifies(dpop: DPoP, clock: FakeClock, alg: str) -> None:
    signer: Any
    if alg.startswith("E") and alg != "ES256":
        signer = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        signer = ec.generate_private_key(ec.SECP256R1())
    else:
        signer = rsa.generate_private_key(65537, 2048)
    proof = dpop_proof(signer, "GET", URL, access_token=TOKEN, iat=clock.now, alg=alg)
    assert check(dpop, proof, clock).jkt == jwk_thumbprint(dpop_jwk(signer))


def test_proof_made_by_joserfc_is_accepted(dpop: DPoP, clock: FakeClock) -> None:
    # Another JOSE implementation's signer, not our code nor PyJWT's (joserfc, from PyPI).
    from joserfc import jws
    from joserfc.jwk import ECKey

    their_key = ECKey.generate_key("P-256")
    public = their_key.as_dict(private=False)
    claims = {"jti": "j1", "htm": "GET", "htu": URL, "iat": int(clock.now)}
    claims["ath"] = access_token_hash(TOKEN)
    import json

    proof = jws.serialize_compact(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": public}, json.dumps(claims), their_key
    )
    assert check(dpop, proof, clock).jkt == their_key.thumbprint()


# -- the binding and the downgrade (RFC 9449 §6.1, §7.2) ------------------------------------------


def run(dpop: DPoP, claims: dict[str, Any], proof: str | None, clock: FakeClock) -> Any:
    return dpop.check(claims, TOKEN, proof, "GET", URL, clock.now, 0)


def test_bound_token_with_its_key_passes_and_another_key_fails(
    dpop: DPoP, key: Any, prove: Callable[..., str], clock: FakeClock
) -> None:
    bound = {"cnf": {"jkt": jwk_thumbprint(dpop_jwk(key))}}
    assert run(dpop, bound, prove(), clock) is not None
    other = {"cnf": {"jkt": jwk_thumbprint(dpop_jwk(ec.generate_private_key(ec.SECP256R1())))}}
    with pytest.raises(DPoPKeyMismatch) as info:
        run(dpop, other, prove(), clock)
    assert info.value.code == "dpop_key_mismatch" and info.value.error == "invalid_token"


def test_unbound_token_with_a_proof_is_a_key_mismatch(
    dpop: DPoP, prove: Callable[..., str], clock: FakeClock
) -> None:
    with pytest.raises(DPoPKeyMismatch):
        run(dpop, {}, prove(), clock)
    with pytest.raises(DPoPKeyMismatch):
        run(dpop, {"cnf": {"x5t#S256": "abc"}}, prove(), clock)


def test_rfc9449_7_2_bound_token_as_bearer_is_a_downgrade(dpop: DPoP, clock: FakeClock) -> None:
    with pytest.raises(DPoPBoundTokenAsBearer) as info:
        run(dpop, {"cnf": {"jkt": "abc"}}, None, clock)
    assert info.value.code == "dpop_bound_token_as_bearer" and info.value.status_code == 401
    assert run(dpop, {}, None, clock) is None  # an unbound Bearer token is still fine


def test_required_dpop_refuses_every_bearer_token(clock: FakeClock) -> None:
    with pytest.raises(DPoPProofMissing) as info:
        run(DPoP(required=True), {}, None, clock)
    assert info.value.code == "dpop_proof_missing"


@pytest.mark.parametrize("cnf", ["jkt", ["jkt"], {"jkt": 1}, {"jkt": ""}])
def test_malformed_cnf_is_an_invalid_claim(dpop: DPoP, clock: FakeClock, cnf: Any) -> None:
    with pytest.raises(ClaimInvalid):
        run(dpop, {"cnf": cnf}, None, clock)


# -- server nonces (RFC 9449 §8, §9) -------------------------------------------------------------

SECRET = "n" * 32


def test_nonce_round_trip(key: Any, clock: FakeClock, prove: Callable[..., str]) -> None:
    dpop = DPoP(nonce=DPoPNonces(SECRET, lifetime=60))
    with pytest.raises(DPoPNonceRequired) as info:
        check(dpop, prove(), clock)
    assert info.value.code == "dpop_nonce_required" and info.value.error == "use_dpop_nonce"
    nonce = info.value.nonce
    assert check(dpop, prove(nonce=nonce), clock)
    with pytest.raises(DPoPNonceRequired):
        check(dpop, prove(nonce=nonce + "x"), clock)


def test_nonces_rotate_and_expire(clock: FakeClock) -> None:
    nonces = DPoPNonces(SECRET, lifetime=60)
    first = nonces.issue(clock.now)
    assert nonces.issue(clock.now + 1) == first
    clock.advance(30)
    second = nonces.issue(clock.now)
    assert second != first and nonces.valid(first, clock.now)  # the old one still works...
    clock.advance(31)
    assert not nonces.valid(first, clock.now)  # ... for one lifetime
    assert nonces.valid(second, clock.now)


def test_nonces_are_shared_by_instances_with_the_secret_only(clock: FakeClock) -> None:
    nonce = DPoPNonces(SECRET).issue(clock.now)
    assert DPoPNonces(SECRET).valid(nonce, clock.now)
    assert not DPoPNonces("m" * 32).valid(nonce, clock.now)
    for forged in ("", "zz.abc", f"{int(clock.now):x}.AAAA", None, 5, "a" * 100):
        assert not DPoPNonces(SECRET).valid(forged, clock.now)


def test_nonce_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        DPoPNonces("short")
    with pytest.raises(ConfigurationError):
        DPoPNonces(SECRET, lifetime=1)
    assert SECRET not in repr(DPoPNonces(SECRET))


# -- the replay caches (RFC 9449 §11.1) -----------------------------------------------------------


def test_memory_replay_cache_accepts_a_jti_once_per_window(clock: FakeClock) -> None:
    cache = MemoryReplayCache(clock=clock)
    assert cache.first_use("a", 60)
    assert not cache.first_use("a", 60)
    assert cache.first_use("b", 60)
    clock.advance(61)
    assert cache.first_use("a", 60)  # the proof would be refused as too old by now anyway
    assert len(cache) == 1  # expired entries were dropped


def test_memory_replay_cache_per_key_share_is_a_429_with_retry_after(clock: FakeClock) -> None:
    cache = MemoryReplayCache(max_entries=10, per_key=2, clock=clock)
    assert cache.first_use("a1", 30, "A")
    clock.advance(10)
    assert cache.first_use("a2", 30, "A")
    with pytest.raises(DPoPRateLimited) as info:
        cache.first_use("a3", 30, "A")
    assert info.value.status_code == 429 and info.value.code == "dpop_rate_limited"
    assert info.value.retry_after == 20  # when A's oldest proof leaves
    assert info.value.detail == {"store": "memory", "reason": ANY_TEXT, "per_key": 2}
    assert not cache.first_use("a1", 30, "A")  # a replay is still a replay
    assert cache.first_use("b1", 30, "B")  # another key has its own share
    clock.advance(20)
    assert cache.first_use("a3", 30, "A")


def test_replay_caches_default_share_is_a_tenth() -> None:
    assert MemoryReplayCache().per_key == 10_000
    assert MemoryReplayCache(max_entries=5).per_key == 1
    for bad in (0, 11, True, 1.5):
        with pytest.raises(ConfigurationError):
            MemoryReplayCache(max_entries=10, per_key=bad)
    assert RedisReplayCache("redis://127.0.0.1:9/0").per_key == 10_000
    for bad in (0, True, 1.5):
        with pytest.raises(ConfigurationError):
            RedisReplayCache("redis://127.0.0.1:9/0", per_key=bad)


def test_issue22_dpop_replay_flood_full_cache_drops_the_oldest_never_refuses_fresh_proofs(
    clock: FakeClock,
) -> None:
    # Today's main refused every new proof of every client (503) once the cache was full.
    cache = MemoryReplayCache(max_entries=4, per_key=4, clock=clock)
    for i in range(4):
        assert cache.first_use(f"a{i}", 60, "A")
        clock.advance(1)
    # Full of live entries: a fresh proof of another key is accepted, the oldest entry goes.
    assert cache.first_use("b0", 60, "B") and len(cache) == 4
    # The dropped proof (until = start + 60) is not forgotten: neither it nor any proof that
    # expires as early (to the second: ttl is whole seconds) is accepted.
    for ttl in (56, 57):  # now is start + 4: until start + 60 and start + 61
        with pytest.raises(DPoPReplayUnavailable) as info:
            cache.first_use("a0", ttl, "A")
    assert info.value.retry_after == 1 and info.value.detail["reason"].startswith("full")
    assert cache.first_use("c0", 56, "C")  # only A's proofs that old: C lost nothing
    assert cache.first_use("b1", 60, "B")  # fresh proofs go on
    assert not cache.first_use("a3", 59, "A")  # a held proof (until start + 63) is a replay
    with pytest.raises(DPoPReplayUnavailable):  # a1 was dropped for c0: refused as well
        cache.first_use("a1", 57, "A")
    assert cache.first_use("a4", 60, "A")  # and A's fresh proofs pass


@pytest.mark.parametrize("seed", range(5))
def test_memory_replay_cache_never_accepts_a_live_replay(clock: FakeClock, seed: int) -> None:
    # Fail closed under any mix: small caches that keep dropping, few keys near their share,
    # proofs made up to 30 s ahead or 90 s back (a leeway's worth), replays at random times.
    rng = random.Random(seed)
    cache = MemoryReplayCache(max_entries=rng.choice([3, 8, 20]), per_key=3, clock=clock)
    proofs: list[tuple[str, str, float]] = []  # key, jkt, when its entry must expire
    accepted: dict[str, float] = {}
    for step in range(3000):
        clock.advance(rng.choice([0, 0, 0.3, 1, 2.5]))
        if proofs and rng.random() < 0.4:
            key, jkt, expiry = rng.choice(proofs)
        else:
            key, jkt = f"p{step}", f"k{rng.randrange(5)}"
            expiry = clock.now + rng.uniform(30, 150)
            proofs.append((key, jkt, expiry))
        if expiry <= clock.now:
            continue  # DPoP.check_proof refuses it as too old before it gets here
        ttl = max(1, math.ceil(expiry - clock.now))
        try:
            fresh = cache.first_use(key, ttl, jkt)
        except (DPoPReplayUnavailable, DPoPRateLimited):
            continue
        if fresh:
            assert accepted.get(key, 0) <= clock.now, "a live proof was accepted twice"
            accepted[key] = clock.now + ttl
    assert len(cache) <= cache.max_entries


def test_issue22_full_memory_replay_cache_logs_one_warning_a_minute(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryReplayCache(max_entries=2, per_key=2, clock=clock)
    with caplog.at_level(logging.INFO, logger="jwt_guard"):
        for i in range(50):
            assert cache.first_use(f"k{i}", 60, f"key{i % 7}")
            clock.advance(1)
    lines = [r for r in caplog.records if "replay cache full" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "max_entries" in lines[0].getMessage()


def test_record_raises_on_replay(dpop: DPoP, prove: Callable[..., str], clock: FakeClock) -> None:
    checked = check(dpop, prove(), clock)
    dpop.record(checked)
    with pytest.raises(DPoPProofReplayed) as info:
        dpop.record(checked)
    assert info.value.code == "dpop_proof_replayed" and info.value.error == "invalid_dpop_proof"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_redis_replay_cache_is_shared_one_set_nx_per_check(
    redis_url: str, driver: str, request: pytest.FixtureRequest
) -> None:
    import redis

    prefix = f"t{abs(hash(request.node.nodeid))}:"
    one, two = (
        RedisReplayCache(redis_url, prefix=prefix),
        RedisReplayCache(redis_url, prefix=prefix),
    )

    async def use(cache: RedisReplayCache, key: str) -> bool:
        if driver == "sync":
            return cache.first_use(key, 30)
        return await cache.afirst_use(key, 30)

    assert await use(one, "dpop:x")
    assert not await use(two, "dpop:x")  # the other instance sees it
    assert await use(two, "dpop:y")
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl(prefix + "dpop:x") <= 30  # expires by itself
    client.close()
    one.close()
    two.close()
    if driver == "async":
        await one.aclose()
        await two.aclose()


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_issue22_redis_replay_cache_per_key_share(
    redis_url: str, driver: str, request: pytest.FixtureRequest
) -> None:
    import redis

    prefix = f"t{abs(hash(request.node.nodeid))}:"
    cache = RedisReplayCache(redis_url, prefix=prefix, per_key=2)

    async def use(key: str, jkt: str) -> bool:
        if driver == "sync":
            return cache.first_use(key, 30, jkt)
        return await cache.afirst_use(key, 30, jkt)

    assert await use("dpop:a1", "A") and await use("dpop:a2", "A")
    with pytest.raises(DPoPRateLimited) as info:
        await use("dpop:a3", "A")
    assert info.value.status_code == 429 and 1 <= info.value.retry_after <= 120
    assert info.value.detail == {"store": "redis", "reason": ANY_TEXT, "per_key": 2}
    assert not await use("dpop:a1", "A")  # a replay is a replay, whatever the count
    assert await use("dpop:b1", "B")  # another key has its own share
    client = redis.Redis.from_url(redis_url)
    assert client.get(prefix + "dpop:a3") is None  # nothing stored beyond the share
    assert 0 < client.ttl(prefix + "dpop-key:A") <= 120  # the count expires by itself
    client.close()
    cache.close()
    await cache.aclose()


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_issue22_redis_replay_cache_at_maxmemory_fails_closed(
    redis_url: str, driver: str, request: pytest.FixtureRequest
) -> None:
    # Only Redis's maxmemory bounds the store: at that limit (noeviction), a write is refused
    # and so is the request (503), never accepted unrecorded and never a 500.
    import redis

    client = redis.Redis.from_url(redis_url)
    limit = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", 1)  # less than Redis uses already
    cache = RedisReplayCache(redis_url, prefix=f"t{abs(hash(request.node.nodeid))}:")
    try:
        with pytest.raises(DPoPReplayUnavailable) as info:
            if driver == "sync":
                cache.first_use("dpop:x", 30, "A")
            else:
                await cache.afirst_use("dpop:x", 30, "A")
        assert info.value.detail == {"store": "redis", "reason": "OutOfMemoryError"}
    finally:
        client.config_set("maxmemory", limit)
        client.close()
        cache.close()
        await cache.aclose()


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_redis_replay_cache_down_fails_closed_or_open(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    async def use(cache: RedisReplayCache) -> bool:
        if driver == "sync":
            return cache.first_use("k", 30)
        return await cache.afirst_use("k", 30)

    with pytest.raises(DPoPReplayUnavailable):
        await use(RedisReplayCache(url, timeout=0.2))
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        assert await use(RedisReplayCache(url, timeout=0.2, fail_open=True))
    assert "DPoP replay cache unavailable" in caplog.text


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_issue22_redis_replay_cache_at_maxmemory_logs_ten_lines_a_minute(
    redis_url: str, driver: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    # Every request while Redis refuses writes fails the same way (a full Redis answers, so it
    # is not "known down"): like the other logs, 10 lines a minute, not one per request.
    import redis

    client = redis.Redis.from_url(redis_url)
    limit = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", 1)
    cache = RedisReplayCache(redis_url, prefix=f"t{abs(hash(request.node.nodeid))}:")
    try:
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            for n in range(25):
                with pytest.raises(DPoPReplayUnavailable):
                    if driver == "sync":
                        cache.first_use(f"dpop:{n}", 30, "A")
                    else:
                        await cache.afirst_use(f"dpop:{n}", 30, "A")
    finally:
        client.config_set("maxmemory", limit)
        client.close()
        cache.close()
        await cache.aclose()
    lines = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(lines) == 10 and all("OutOfMemoryError); refusing" in line for line in lines)


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"algorithms": []},
        {"algorithms": ["HS256"]},
        {"algorithms": ["none"]},
        {"algorithms": ["XX999"]},
        {"max_age": 0},
        {"max_age": 3600},
        {"max_age": True},
        {"required": "yes"},
        {"replay": object()},
        {"nonce": "secret"},
        {"external_url": "api.example"},
        {"external_url": "https://api.example/?q=1"},
    ],
)
def test_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DPoP(**options)


def test_a_replay_cache_without_the_jkt_argument_is_refused_at_start_up() -> None:
    class Old(MemoryReplayCache):
        def first_use(self, key: str, ttl: int) -> bool:  # type: ignore[override]
            return True

    with pytest.raises(ConfigurationError, match=r"Old.first_use must take \(key, ttl, jkt\)"):
        DPoP(replay=Old())


def test_defaults_follow_the_contract() -> None:
    dpop = DPoP()
    assert dpop.algorithms == ("ES256", "EdDSA", "Ed25519", "PS256", "RS256")
    assert dpop.algs == "ES256 EdDSA Ed25519 PS256 RS256"
    assert dpop.max_age == 60 and not dpop.required and dpop.nonce is None
    assert isinstance(dpop.replay, MemoryReplayCache)
    assert DPoP(external_url="HTTPS://API.example:443/").external_url == "https://api.example"


def test_replay_cache_async_twin_on_memory(clock: FakeClock) -> None:
    cache = MemoryReplayCache(clock=clock)
    assert asyncio.run(cache.afirst_use("a", 5))
    assert not asyncio.run(cache.afirst_use("a", 5))


# -- the request URL the proof is compared with (RFC 9449 §4.3 (9)) --------------------------------


@pytest.mark.parametrize("htu", ["/x", "urn:x", "https://h:70000/x", "not a url"])
@pytest.mark.parametrize("url", ["http://x:99999/x", "ftp://y/x", "/x", "https://[::1/x"])
def test_rfc9449_4_3_9_an_unusable_request_url_matches_no_htu(
    dpop: DPoP, prove: Callable[..., str], clock: FakeClock, htu: str, url: str
) -> None:
    # Both sides fail to normalize: None == None must not count as "the same URL" (a bad Host
    # header made any garbage htu pass).
    with pytest.raises(InvalidRequest) as caught:
        check(dpop, prove(url=htu), clock, url=url)
    assert caught.value.code == "request_url_invalid" and caught.value.status_code == 400


def test_rfc9449_4_3_9_an_htu_with_control_characters_is_refused(
    dpop: DPoP, prove: Callable[..., str], clock: FakeClock
) -> None:
    with pytest.raises(InvalidDPoPProof):
        check(dpop, prove(url=URL + "\n"), clock)
    check(dpop, prove(url=URL), clock)


def test_rfc9449_4_3_9_allowed_hosts_pin_the_request_host(
    prove: Callable[..., str], clock: FakeClock
) -> None:
    dpop = DPoP(allowed_hosts=["API.example", "api.example:8443"])
    check(dpop, prove(), clock)
    check(
        dpop,
        prove(url="https://api.example:8443/orders"),
        clock,
        url="https://api.example:8443/orders",
    )
    for url in ("https://evil.example/orders", "https://api.example:9999/orders"):
        with pytest.raises(InvalidRequest) as caught:
            check(dpop, prove(url=url), clock, url=url)
        assert caught.value.code == "host_not_allowed"


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_hosts": "api.example"},
        {"allowed_hosts": []},
        {"allowed_hosts": ["api.example/x"]},
        {"allowed_hosts": ["a:99999"]},
        {"allowed_hosts": ["u@api.example"]},
        {"allowed_hosts": ["api.example"], "external_url": "https://api.example"},
    ],
)
def test_allowed_hosts_configuration_is_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DPoP(**options)


def test_rfc9449_11_1_replay_ttl_has_a_leeway_margin(
    dpop: DPoP, prove: Callable[..., str], clock: FakeClock
) -> None:
    # Accepted until iat + max_age + leeway here; an instance sharing the store whose clock is
    # up to a leeway behind accepts it a leeway longer still: the jti must outlive both.
    assert check(dpop, prove(), clock, leeway=30).ttl == 60 + 2 * 30 + 1  # strictly past


def test_issue22_review_full_memory_replay_cache_stays_bounded_by_max_entries(
    clock: FakeClock,
) -> None:
    # Review of issue 22: a little more clients than max_entries, each sending a proof in turn
    # (50 a second here): every request drops an entry that idles its key, and every key's mark in
    # the idle order stayed there for a proof's lifetime, one per request (590,000 for a cache
    # of 10,000 at 5,000 requests a second), however few keys were really idle.
    cache = MemoryReplayCache(max_entries=100, per_key=10, clock=clock)
    for step in range(20_000):
        cache.first_use(f"p{step}", 121, f"client{step % 150}")
        clock.advance(1 / 50)
    assert len(cache) == 100 and len(cache._idle) <= 100
    assert len(cache._idle_order) <= 2 * cache.max_entries + 1
