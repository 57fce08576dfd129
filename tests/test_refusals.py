"""The manual's "Why was I refused?" page shows real output: this test makes it again."""

from __future__ import annotations

import io
import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from jwt_guard import JWTGuardMiddleware, MalformedToken
from jwt_guard._core.parse import split_compact
from jwt_guard.testing import LocalIssuer

from .conftest import AppFactory
from .manual import manual

README = manual()


async def refusals(app: Any, tokens: list[str]) -> tuple[list[str], list[str]]:
    """The "refused" log lines (as the README's logging set-up prints them) and the bodies of
    ``app``'s answers to ``tokens``, each a 401."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("jwt_guard")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    bodies = []
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for token in tokens:
                response = await client.get("/", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401
                bodies.append(response.text)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    lines = [line for line in stream.getvalue().splitlines() if "refused" in line]
    return lines, bodies


async def test_the_three_common_mistakes_in_the_readme_are_real_output() -> None:
    idp = LocalIssuer(issuer="https://idp.example.com/", audience="orders-api", algorithm="RS256")
    es256 = LocalIssuer(issuer="https://idp.example.com", audience="orders-api", algorithm="ES256")
    # Mistake 1 is in the configuration: the issuer without its trailing slash.
    verifier = idp.verifier(issuer="https://idp.example.com")
    app = JWTGuardMiddleware(Starlette(), verifier=verifier, debug=True)
    tokens = [
        idp.mint(),
        idp.mint(issuer="https://idp.example.com", audience="https://orders.example.com"),
        es256.mint(),
    ]
    lines, bodies = await refusals(app, tokens)
    assert len(lines) == 3
    for text in (*lines, *bodies):
        assert f"\n   {text}\n" in README, text


# Issue 25, item 3: reasons that pointed the wrong way --------------------------------------


@pytest.mark.parametrize(
    ("token", "segments", "reason"),
    [
        ("2YotnFZFEjr1zCsicMWpAA", 1, "not a JWT: an opaque token"),
        ("eyJhbGciOiJkaXIifQ..iv.ciphertext.tag", 5, "not a signed JWT: an encrypted token"),
    ],
    ids=["opaque", "jwe"],
)
async def test_issue25_opaque_token_says_not_a_jwt_and_what_to_ask_for(
    make_client: AppFactory, issuer: LocalIssuer, token: str, segments: int, reason: str
) -> None:
    """An opaque token (what Auth0-like servers issue without an audience) was refused with
    "a compact JWS has 3 dot-separated segments ... segments=1", which reads as a broken token;
    it says it is not a JWT and what to ask the provider for, on both adapters."""
    client = make_client(issuer.verifier(), debug=True)
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert detail["segments"] == segments
    assert detail["reason"].startswith(reason)
    assert "ask the identity provider for a JWT access token" in detail["hint"]
    assert "'audience' or 'resource' parameter" in detail["hint"]
    assert "introspection (RFC 7662)" in detail["hint"]


async def test_issue25_the_opaque_token_line_in_the_readme_is_real_output() -> None:
    idp = LocalIssuer(issuer="https://idp.example.com/", audience="orders-api", algorithm="RS256")
    app = JWTGuardMiddleware(Starlette(), verifier=idp.verifier(), debug=True)
    [line], _ = await refusals(app, ["2YotnFZFEjr1zCsicMWpAA"])
    assert f"\n   {line}\n" in README, line


@pytest.mark.parametrize("drive", ["sync", "async"])
async def test_issue25_opaque_token_detail_on_both_drivers(issuer: LocalIssuer, drive: str) -> None:
    verifier = issuer.verifier()
    with pytest.raises(MalformedToken) as caught:
        if drive == "sync":
            verifier.verify("2YotnFZFEjr1zCsicMWpAA")
        else:
            await verifier.averify("2YotnFZFEjr1zCsicMWpAA")
    assert caught.value.detail["reason"].startswith("not a JWT: an opaque token")
    assert "hint" in caught.value.detail


def test_issue25_a_dpop_proof_of_one_segment_is_not_called_an_opaque_access_token() -> None:
    # The hint is for access tokens: a proof's own malformation keeps the plain reason.
    with pytest.raises(MalformedToken) as caught:
        split_compact("opaque", 8192)
    assert caught.value.detail == {
        "reason": "a compact JWS has 3 dot-separated segments (RFC 7515 §7.1)",
        "segments": 1,
    }
