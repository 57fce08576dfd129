"""Shared by the conformance suite: send a token through a guarded app and check the answer."""

from __future__ import annotations

import base64
import json

import httpx
from cryptography.hazmat.primitives import serialization

from jwt_guard._tools.signing import public_jwk
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
    """Send ``token`` as a Bearer token; assert the rejection and that nothing leaks: not the
    token, not any string in its header or claims (kid included), nor ``secrets``."""
    response = await client.get("/me", headers=bearer(token))
    secrets = (*secrets, *_strings_inside(token))
    assert response.status_code == status, response.text
    body = response.json()
    if codes:
        assert body["code"] in codes, body
    if status == 401:
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert_no_leak(response, token, *secrets)
    return response


def _strings_inside(token: str) -> list[str]:
    """Every string of 4+ characters in the token's header and claims, where they decode."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str) and len(value) >= 4:
            found.append(value)
        elif isinstance(value, dict):
            for name, item in value.items():
                if len(name) >= 6:  # custom claim names too, not "iss"/"aud"/"kid"
                    walk(name)
                walk(item)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for segment in token.split(".")[:2]:
        try:
            walk(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))
        except ValueError:
            continue
    return found


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
