"""Shared by the conformance suite: send a token through a guarded app and check the answer."""

from __future__ import annotations

import httpx

from ..conftest import assert_no_leak, bearer


async def rejected(
    client: httpx.AsyncClient,
    token: str,
    *,
    status: int = 401,
    codes: tuple[str, ...] = (),
    secrets: tuple[str, ...] = (),
) -> httpx.Response:
    """Send ``token`` as a Bearer token; assert the rejection and that nothing leaks."""
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == status, response.text
    body = response.json()
    if codes:
        assert body["code"] in codes, body
    if status == 401:
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert_no_leak(response, token, *secrets)
    return response
