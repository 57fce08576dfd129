"""RFC 7515/7519 format strictness, through the middleware."""

from __future__ import annotations

import json

import pytest

from jwt_guard.testing import LocalIssuer, forge

from ..conftest import AppFactory
from .helpers import rejected


def variants(token: str) -> dict[str, str]:
    h, p, s = token.split(".")
    return {
        "two_segments": f"{h}.{p}",
        "four_segments": f"{h}.{p}.{s}.{s}",
        "five_part_jwe": f"{h}.{p}.{s}.{s}.{s}",
        "padding": f"{h}.{p}.{s}=",
        "padding_in_header": f"{h}=.{p}.{s}",
        "whitespace": f"{h}. {p}.{s}",
        "empty_signature": f"{h}.{p}.",
        "standard_base64": f"{h}.{p}.{s[:-2]}+/",
        "jws_json_serialization": json.dumps(
            {"payload": p, "signatures": [{"protected": h, "signature": s}]}
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "two_segments",
        "four_segments",
        "five_part_jwe",
        "padding",
        "empty_signature",
        "standard_base64",
    ],
)
async def test_rfc7515_7_1_compact_serialization_only(
    make_client: AppFactory, issuer: LocalIssuer, name: str
) -> None:
    token = variants(issuer.mint())[name]
    await rejected(make_client(), token, codes=("token_malformed", "signature_invalid"))


async def test_rfc7515_2_padding_inside_is_not_even_token68(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    token = variants(issuer.mint())["padding_in_header"]
    response = await make_client().get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.json()["code"] == "header_malformed"


async def test_rfc7515_7_2_json_serialization_refused(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = make_client()
    token = variants(issuer.mint())["jws_json_serialization"]
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400  # not even token68


@pytest.mark.parametrize(
    "payload",
    [
        b"[1,2,3]",
        b'"string"',
        b"null",
        b'{"exp":1,"exp":2}',
        b'{"a":NaN}',
        b"\xff\xfe\xfd",
        b'{"iss":"https://issuer.test"',
    ],
)
async def test_rfc7519_7_2_claims_must_be_a_utf8_json_object(
    make_client: AppFactory, issuer: LocalIssuer, payload: bytes
) -> None:
    token = forge({"alg": "RS256", "kid": issuer.kid}, payload, issuer.private_key, "RS256")
    await rejected(make_client(), token, codes=("token_malformed",))


@pytest.mark.parametrize(
    "header",
    [b"[]", b'{"alg":"RS256","alg":"RS256"}', b'{"alg":"RS256"', b"\xc3\x28"],
)
async def test_rfc7515_4_header_must_be_a_json_object(
    make_client: AppFactory, issuer: LocalIssuer, header: bytes
) -> None:
    token = forge(header, issuer.claims(), issuer.private_key, "RS256")
    await rejected(make_client(), token, codes=("token_malformed",))
