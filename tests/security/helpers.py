"""Shared by the conformance suite: send a token through a guarded app and check the answer."""

from __future__ import annotations

import json

import httpx
from cryptography.hazmat.primitives import serialization

from jwt_guard._signing import public_jwk
from jwt_guard.testing import LocalIssuer

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


def public_forms(issuer: LocalIssuer) -> dict[str, bytes]:
    """The server's RSA public key in every encoding an attacker might use as an HMAC secret."""
    public = issuer.private_key.public_key()
    return {
        "spki_pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1_pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk_json": json.dumps(public_jwk(issuer.private_key, kid=issuer.kid)).encode(),
    }
