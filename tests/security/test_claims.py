"""Claim type confusion, through the middleware (ASGI and WSGI)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from jwt_guard.testing import LocalIssuer, forge

from ..conftest import AppFactory
from .helpers import rejected

BAD_DATES: list[tuple[str, bytes]] = [
    ("string", b'"1800000000"'),
    ("true", b"true"),
    ("false", b"false"),
    ("null", b"null"),
    ("array", b"[1800000000]"),
    ("object", b'{"t":1}'),
    ("nan", b"NaN"),
    ("infinity", b"Infinity"),
    ("minus_infinity", b"-Infinity"),
    ("1e400", b"1e400"),
    ("huge_int", b"9" * 5000),
    ("negative", b"-1"),
    ("beyond_9999", b"253402300800"),
]


def signed_with(issuer: LocalIssuer, name: str, raw: bytes) -> str:
    claims = issuer.claims()
    body = {k: v for k, v in claims.items() if k != name}
    text = json.dumps(body)[:-1].encode() + b', "' + name.encode() + b'": ' + raw + b"}"
    return forge({"alg": "RS256", "kid": issuer.kid}, text, issuer.private_key, "RS256")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("label,raw", BAD_DATES, ids=[b[0] for b in BAD_DATES])
async def test_rfc7519_2_numeric_date_type_confusion(
    make_client: AppFactory, issuer: LocalIssuer, claim: str, label: str, raw: bytes
) -> None:
    token = signed_with(issuer, claim, raw)
    client = make_client(issuer.verifier(max_token_bytes=65536))
    await rejected(client, token, codes=("claim_invalid", "token_malformed"))


@pytest.mark.parametrize(
    "claim,value",
    [
        ("iss", ["https://issuer.test"]),
        ("iss", 1),
        ("iss", {"url": "https://issuer.test"}),
        ("iss", True),
        ("aud", 5),
        ("aud", [["api://test"]]),
        ("aud", {"api://test": True}),
        ("aud", []),
        ("aud", None),
        ("sub", 123),
        ("jti", ["x"]),
    ],
)
async def test_rfc7519_4_1_string_claims_type_confusion(
    make_client: AppFactory, issuer: LocalIssuer, claim: str, value: Any
) -> None:
    claims = issuer.claims()
    claims[claim] = value
    token = forge({"alg": "RS256", "kid": issuer.kid}, claims, issuer.private_key, "RS256")
    await rejected(make_client(), token, codes=("claim_invalid", "claim_missing"))


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
async def test_huge_audience_array_rejected_before_verification(
    issuer: LocalIssuer, adapter: str
) -> None:
    # In process: a real HTTP server refuses a 1 MB header line before any middleware runs.
    from ..apps import flask_app, starlette_app

    claims = issuer.claims()
    claims["aud"] = [f"a{i}" for i in range(100_000)]
    token = forge({"alg": "RS256", "kid": issuer.kid}, claims, issuer.private_key, "RS256")
    headers = {"Authorization": f"Bearer {token}"}
    if adapter == "asgi":
        transport: Any = httpx.ASGITransport(app=starlette_app(issuer.verifier()))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/me", headers=headers)
    else:
        wsgi = httpx.WSGITransport(app=flask_app(issuer.verifier()))
        with httpx.Client(transport=wsgi, base_url="http://t") as sync_client:
            response = sync_client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_too_large"
