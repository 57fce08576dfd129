"""RFC 8725 (JWT Best Current Practices) §3.1–3.12, through the middleware (ASGI and WSGI)."""

from __future__ import annotations

import base64
import itertools
import json
import zlib
from typing import Any

import pytest

from jwt_guard import StaticKeys, Verifier
from jwt_guard._tools.signing import generate_key, public_jwk
from jwt_guard.testing import LocalIssuer, compact, forge

from ..conftest import AppFactory, bearer
from .helpers import rejected

NONE_SPELLINGS = ["".join(c) for c in itertools.product(*zip("none", "NONE", strict=True))]


@pytest.mark.parametrize("alg", NONE_SPELLINGS)
async def test_3_1_algorithm_verification_none(
    make_client: AppFactory, issuer: LocalIssuer, alg: str
) -> None:
    assert len(NONE_SPELLINGS) == 16
    client = make_client(issuer.verifier(algorithms=["RS256", "HS256", "ES256"]))
    token = compact({"alg": alg, "kid": issuer.kid}, issuer.claims(), b"sig")
    await rejected(client, token, codes=("algorithm_not_allowed",))


async def test_3_1_off_list_algorithm_correctly_signed(make_client: AppFactory) -> None:
    rs = LocalIssuer(algorithm="RS256", kid="k")
    # The same RSA key, PS256-signed; only RS256 is configured.
    token = forge({"alg": "PS256", "kid": "k"}, rs.claims(), rs.private_key, "PS256")
    await rejected(make_client(rs.verifier()), token, codes=("algorithm_not_allowed",))


async def test_3_2_use_appropriate_algorithms_key_type_must_fit(make_client: AppFactory) -> None:
    es = LocalIssuer(algorithm="ES256", kid="k")
    verifier = es.verifier(algorithms=["ES256", "ES384"])
    # ES384 header against a P-256 key: curve mismatch.
    token = forge({"alg": "ES384", "kid": "k"}, es.claims(), generate_key("ES384"), "ES384")
    await rejected(make_client(verifier), token, codes=("key_not_found",))


async def test_3_3_validate_all_cryptographic_operations(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = make_client()
    good = issuer.mint()
    h, _, s = good.split(".")
    tampered_payload = (
        base64.urlsafe_b64encode(json.dumps({**issuer.claims(), "roles": ["admin"]}).encode())
        .rstrip(b"=")
        .decode()
    )
    await rejected(client, f"{h}.{tampered_payload}.{s}", codes=("signature_invalid",))


async def test_3_4_validate_cryptographic_inputs_ecdsa(make_client: AppFactory) -> None:
    es = LocalIssuer(algorithm="ES256", kid="k")
    client = make_client(es.verifier())
    zero = compact({"alg": "ES256", "kid": "k"}, es.claims(), b"\x00" * 64)
    await rejected(client, zero, codes=("signature_invalid",))  # CVE-2022-21449


def test_3_4_invalid_curve_point_in_key_set_refused() -> None:
    jwk = public_jwk(generate_key("ES256"), kid="k")
    jwk["y"] = jwk["x"]
    with pytest.raises(ValueError):
        StaticKeys.from_jwks({"keys": [jwk]})


def test_3_5_keys_have_sufficient_entropy() -> None:
    with pytest.raises(ValueError):
        StaticKeys.from_secret("password123")


async def test_3_6_compression_is_never_applied(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    deflated = zlib.compress(json.dumps(issuer.claims()).encode())[2:-4]
    token = forge(
        {"alg": "RS256", "kid": issuer.kid, "zip": "DEF"}, deflated, issuer.private_key, "RS256"
    )
    await rejected(make_client(), token, codes=("token_malformed",))


async def test_3_7_utf8_only(make_client: AppFactory, issuer: LocalIssuer) -> None:
    payload = json.dumps(issuer.claims()).encode("utf-16")
    token = forge({"alg": "RS256", "kid": issuer.kid}, payload, issuer.private_key, "RS256")
    await rejected(make_client(), token, codes=("token_malformed",))


async def test_3_8_validate_issuer(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client()
    for iss in ("https://issuer.test.evil", "https://issuer.tes", "HTTPS://ISSUER.TEST"):
        await rejected(client, issuer.mint(issuer=iss), codes=("issuer_invalid",), secrets=(iss,))


async def test_3_8_keys_chosen_by_configured_issuer_not_by_token(
    make_client: AppFactory, clock: Any
) -> None:
    from jwt_guard import TrustedIssuer

    a = LocalIssuer(issuer="https://a.test", algorithm="ES256", kid="same", clock=clock)
    b = LocalIssuer(issuer="https://b.test", algorithm="ES256", kid="same", clock=clock)
    verifier = Verifier(
        algorithms=["ES256"],
        issuers=[TrustedIssuer(a.issuer, a.keys(), audience=a.audience)],
        clock=clock,
    )
    # b signs a token claiming to be from a, with the same kid: a's keys refuse it.
    await rejected(make_client(verifier), b.mint(issuer=a.issuer), codes=("signature_invalid",))


async def test_3_9_use_and_validate_audience(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client()
    await rejected(
        client,
        issuer.mint(audience="other-api"),
        codes=("audience_invalid",),
        secrets=("other-api",),
    )
    unconfigured = make_client(issuer.verifier(audience=None))
    await rejected(unconfigured, issuer.mint(), codes=("audience_invalid",))


async def test_3_10_do_not_trust_received_claims_kid(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    attacker = generate_key("RS256")
    token = forge(
        {"alg": "RS256", "kid": "../../../../dev/null"}, issuer.claims(), attacker, "RS256"
    )
    await rejected(make_client(), token, codes=("key_not_found",), secrets=("dev/null",))


@pytest.mark.parametrize("typ", ["JWT", "id+jwt", "application/jwt"])
async def test_3_11_explicit_typing(make_client: AppFactory, issuer: LocalIssuer, typ: str) -> None:
    client = make_client(issuer.verifier(typ="at+jwt"))
    await rejected(client, issuer.mint(header={"typ": typ}), codes=("type_invalid",))
    ok = await client.get("/me", headers=bearer(issuer.mint(header={"typ": "at+jwt"})))
    assert ok.status_code == 200


async def test_3_12_mutually_exclusive_validation_rules(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    # An ID token (typ JWT, aud = the client id) presented to an API that expects RFC 9068
    # access tokens for its own audience: refused on both counts.
    client = make_client(issuer.verifier(typ="at+jwt", audience="orders-api"))
    id_token = issuer.mint(audience="web-client", header={"typ": "JWT"}, nonce="n-0S6")
    await rejected(client, id_token, codes=("type_invalid", "audience_invalid"))
