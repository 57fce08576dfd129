"""RFC 6750 §2–3 through the middleware (ASGI and WSGI)."""

from __future__ import annotations

import re

import pytest

from jwt_guard.testing import LocalIssuer

from ..conftest import AppFactory, assert_no_leak, bearer

# RFC 6750 §3: error_description / scope values: %x20-21 / %x23-5B / %x5D-7E
_ALLOWED = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_2_1_scheme_case_insensitive(
    make_client: AppFactory, issuer: LocalIssuer, scheme: str
) -> None:
    response = await make_client().get(
        "/me", headers={"Authorization": f"{scheme} {issuer.mint()}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["Bearer a,b", "Bearer tok en", "Bearer", "Bearer !!!"])
async def test_2_1_token68_syntax(make_client: AppFactory, value: str) -> None:
    response = await make_client().get("/me", headers={"Authorization": value})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_2_multiple_tokens_400(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client(cookie="at")
    response = await client.get(
        "/me", headers={**bearer(issuer.mint()), "Cookie": f"at={issuer.mint(sub='b')}"}
    )
    assert response.status_code == 400 and response.json()["code"] == "multiple_tokens"


async def test_3_missing_401_without_error(make_client: AppFactory) -> None:
    response = await make_client().get("/me")
    assert response.status_code == 401
    assert "error" not in response.headers["www-authenticate"]


async def test_3_1_invalid_token_401(make_client: AppFactory, issuer: LocalIssuer) -> None:
    response = await make_client().get("/me", headers=bearer(issuer.mint(expired=True)))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_3_1_insufficient_scope_403_with_scope(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    response = await make_client().get("/scoped", headers=bearer(issuer.mint(scopes=["read"])))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="read write"' in challenge


@pytest.mark.parametrize(
    "token_factory",
    [
        lambda i: i.mint(expired=True),
        lambda i: i.mint(audience="x"),
        lambda i: i.mint(issuer="https://x"),
        lambda i: i.mint()[:-5] + "AAAAA",
        lambda i: "a.b.c",
        lambda i: i.mint(nbf=4_000_000_000),
    ],
)
async def test_3_error_description_uses_allowed_characters(
    make_client: AppFactory, issuer: LocalIssuer, token_factory: object
) -> None:
    token = token_factory(issuer)  # type: ignore[operator]
    response = await make_client().get("/me", headers=bearer(token))
    challenge = response.headers["www-authenticate"]
    description = re.search(r'error_description="([^"]*)"', challenge)
    assert description is not None
    assert _ALLOWED.fullmatch(description.group(1))
    assert_no_leak(response, token)
