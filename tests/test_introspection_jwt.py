"""JWT introspection responses (RFC 9701) on the client side: ``Introspection(jwt_response=True)``
asks for a signed answer and verifies it with the issuer's keys; an answer it cannot verify is
the endpoint failing (503), never a verdict on the token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from jwt_guard import (
    ConfigurationError,
    Introspection,
    IntrospectionUnavailable,
    JWKSKeys,
    OIDCDiscovery,
    TokenInactive,
    Verifier,
)
from jwt_guard._core.introspection_jwt import INTROSPECTION_JWT
from jwt_guard.testing import LocalIssuer

from .conftest import AppFactory, Drive, bearer
from .oidc_provider import AUDIENCE, OIDCProvider

ISSUER = "https://as.test"
SECRET = "rs-secret"


@pytest.fixture(scope="module")
def authorization_server() -> LocalIssuer:
    issuer = LocalIssuer(issuer=ISSUER, audience="api", algorithm="ES256", kid="as-1")
    issuer.register_client("rs", client_secret=SECRET)
    return issuer


def verifier_for(
    issuer: LocalIssuer, transport: httpx.MockTransport, drive: Drive, **options: Any
) -> Verifier:
    client: Any = (
        httpx.Client(transport=transport)
        if drive.mode == "sync"
        else httpx.AsyncClient(transport=transport)
    )
    settings: dict[str, Any] = {
        "keys": issuer.keys(),
        "algorithms": ["ES256"],
        "issuer": ISSUER,
        "audience": "api",
    }
    settings.update(options)
    return Verifier(
        introspection=Introspection(
            issuer.introspection_endpoint,
            client_id="rs",
            client_secret=SECRET,
            jwt_response=True,
            client=client,
        ),
        **settings,
    )


@pytest.fixture
def close() -> Iterator[Callable[[Verifier], None]]:
    made: list[Verifier] = []
    yield made.append
    for verifier in made:
        verifier.close()
        endpoint = verifier.introspection
        assert endpoint is not None
        client = endpoint._client_sync or endpoint._client_async
        if isinstance(client, httpx.Client):
            client.close()


async def test_rfc9701_a_signed_answer_verified_with_the_issuers_keys(
    authorization_server: LocalIssuer, drive: Drive, close: Callable[[Verifier], None]
) -> None:
    issuer = authorization_server
    seen: list[str] = []
    kit = issuer.introspection_transport()

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("accept", ""))
        return kit.handle_request(request)

    verifier = verifier_for(issuer, httpx.MockTransport(handle), drive)
    close(verifier)
    try:
        principal = await drive.verify(verifier, issuer.opaque_token(sub="alice", scopes=["r"]))
        assert principal.subject == "alice" and principal.scopes == {"r"}
        assert seen == [INTROSPECTION_JWT]  # RFC 9701 §4
        revoked = issuer.opaque_token()
        issuer.revoke(revoked)
        with pytest.raises(TokenInactive):
            await drive.verify(verifier, revoked)
    finally:
        await verifier.aclose()


def answer(
    issuer: LocalIssuer,
    *,
    header: dict[str, Any] | None = None,
    content_type: str = INTROSPECTION_JWT,
    signer: LocalIssuer | None = None,
    **claims: Any,
) -> Callable[[httpx.Request], httpx.Response]:
    """An endpoint whose signed answer is as the test makes it (an active token's)."""

    def handle(request: httpx.Request) -> httpx.Response:
        now = int(issuer.clock())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": "rs",
            "iat": now,
            "token_introspection": {
                "active": True,
                "sub": "mallory",
                "aud": "api",
                "iss": ISSUER,
                "token_type": "Bearer",
            },
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        typ = {"typ": "token-introspection+jwt"}
        body = (signer or issuer).mint(payload, header={**typ, **(header or {})})
        return httpx.Response(
            200, headers={"Content-Type": content_type}, stream=httpx.ByteStream(body.encode())
        )

    return handle


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("an access token of the same issuer (typ at+jwt)", "typ"),
        ("typ JWT", "typ"),
        ("no typ", "typ"),
        ("signed by another key with the same kid", "signature"),
        ("another issuer", "iss"),
        ("for another client", "aud"),
        ("no iat", "iat"),
        ("issued in the future", "iat"),
        ("expired", "exp"),
        ("no token_introspection", "token_introspection"),
        ("active not a boolean", "token_introspection"),
        ("crit", "crit"),
        ("plain JSON: the server ignored Accept", "content type"),
        ("alg none", "compact JWS"),
    ],
)
async def test_rfc9701_8_1_an_answer_that_does_not_verify_is_503_never_a_principal(
    authorization_server: LocalIssuer,
    drive: Drive,
    close: Callable[[Verifier], None],
    case: str,
    reason: str,
) -> None:
    issuer = authorization_server
    now = int(issuer.clock())
    handle: Callable[[httpx.Request], httpx.Response]
    if case.startswith("an access token"):
        handle = answer(issuer, header={"typ": "at+jwt"})
    elif case == "typ JWT":
        handle = answer(issuer, header={"typ": "JWT"})
    elif case == "no typ":
        handle = answer(issuer, header={"typ": None})
    elif case.startswith("signed by another key"):
        handle = answer(issuer, signer=LocalIssuer(algorithm="ES256", kid="as-1"))
    elif case == "another issuer":
        handle = answer(issuer, iss="https://evil.test")
    elif case == "for another client":
        handle = answer(issuer, aud="another-rs")
    elif case == "no iat":
        handle = answer(issuer, iat=None)
    elif case == "issued in the future":
        handle = answer(issuer, iat=now + 3600)
    elif case == "expired":
        handle = answer(issuer, exp=now - 3600)
    elif case == "no token_introspection":
        handle = answer(issuer, token_introspection=None, active=True, sub="mallory")
    elif case == "active not a boolean":
        handle = answer(issuer, token_introspection={"active": "true", "sub": "mallory"})
    elif case == "crit":
        handle = answer(issuer, header={"crit": ["exp"]})
    elif case.startswith("plain JSON"):

        def handle(request: httpx.Request) -> httpx.Response:
            body = b'{"active": true, "sub": "mallory", "aud": "api", "iss": "https://as.test"}'
            headers = {"Content-Type": "application/json"}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))

    else:

        def handle(request: httpx.Request) -> httpx.Response:
            payload = {"iss": ISSUER, "aud": "rs", "iat": now, "token_introspection": {}}
            from jwt_guard.testing import compact

            body = compact({"alg": "none", "typ": "token-introspection+jwt"}, payload, b"")
            headers = {"Content-Type": INTROSPECTION_JWT}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body.encode()))

    verifier = verifier_for(issuer, httpx.MockTransport(handle), drive)
    close(verifier)
    try:
        with pytest.raises(IntrospectionUnavailable) as refused:
            await drive.verify(verifier, "an-opaque-token")
        assert reason in refused.value.detail["reason"]
        assert refused.value.status_code == 503
    finally:
        await verifier.aclose()


def test_rfc9701_typ_may_carry_the_application_prefix(
    authorization_server: LocalIssuer, close: Callable[[Verifier], None]
) -> None:
    issuer = authorization_server
    handle = answer(issuer, header={"typ": "application/token-introspection+jwt"})
    verifier = verifier_for(issuer, httpx.MockTransport(handle), Drive("sync"))
    close(verifier)
    assert verifier.verify("an-opaque-token").subject == "mallory"


def test_jwt_response_needs_the_issuers_keys_and_name() -> None:
    def endpoint(**options: Any) -> Introspection:
        return Introspection(
            "https://as.test/introspect", client_id="rs", client_secret="s", **options
        )

    with pytest.raises(ConfigurationError, match="give the verifier keys="):
        Verifier(issuer=ISSUER, introspection=endpoint(jwt_response=True))
    with pytest.raises(ConfigurationError, match="checks the answers' iss"):
        Verifier(
            introspection=endpoint(jwt_response=True),
            keys=LocalIssuer().keys(),
            algorithms=["ES256"],
        )
    with pytest.raises(ConfigurationError, match="add jwt_response=True"):
        endpoint(response_keys=LocalIssuer().keys())
    with pytest.raises(ConfigurationError, match="jwt_response must be True or False"):
        endpoint(jwt_response="yes")
    # response_keys: a verifier that introspects every token (no keys of its own)
    verifier = Verifier(
        issuer=ISSUER, introspection=endpoint(jwt_response=True, response_keys=LocalIssuer().keys())
    )
    verifier.close()


async def test_rfc9701_the_kit_served_keys_by_jwks_through_both_adapters(
    make_client: AppFactory,
) -> None:
    issuer = LocalIssuer(audience="api")
    issuer.register_client("rs", client_secret=SECRET)
    with issuer.serve(as_issuer=True) as server:
        verifier = Verifier(
            issuer=server.base_url,
            audience="api",
            introspection=Introspection(
                discovery=server.base_url,
                client_id="rs",
                client_secret=SECRET,
                jwt_response=True,
                response_keys=JWKSKeys(server.url),
            ),
        )
        try:
            client = make_client(verifier)
            token = issuer.opaque_token(sub="erin")
            response = await client.get("/me", headers=bearer(token))
            assert response.status_code == 200 and response.json()["sub"] == "erin"
            server.faults_on = "introspection"
            server.body = b"not a jwt"  # the answer, replaced: no signed answer
            verifier.clear_cache()
            down = await client.get("/me", headers=bearer(token))
            assert down.status_code == 503 and "retry-after" in down.headers
        finally:
            await verifier.aclose()
            verifier.close()


async def test_rfc9701_oidc_provider_signed_answers_on_both_drivers(
    oidc_provider: OIDCProvider, drive: Drive
) -> None:
    client = oidc_provider.client("client_secret_post")
    verifier = Verifier(
        keys=OIDCDiscovery(oidc_provider.issuer),
        audience=AUDIENCE,
        introspection=Introspection(
            discovery=oidc_provider.issuer,
            client_id=client.client_id,
            client_secret=client.client_secret,
            auth_method="client_secret_post",
            jwt_response=True,
        ),
    )
    try:
        principal = await drive.verify(verifier, oidc_provider.token())
        assert principal.issuer == oidc_provider.issuer
        assert principal.claims["exp"] > time.time()
    finally:
        await verifier.aclose()
        verifier.close()
