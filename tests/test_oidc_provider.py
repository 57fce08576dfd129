"""A real authorization server in the tests (issue 27, item 8): panva's oidc-provider issues
opaque access tokens and introspects them (RFC 7662), with JWT responses (RFC 9701).

The same tests run against the test kit's served introspection endpoint (``LocalIssuer.serve``),
so the kit answers as a real authorization server does: what an app's tests see from the kit,
it sees in production.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from jwt_guard import Introspection, TokenInactive, Verifier
from jwt_guard._tools.introspection_endpoint import CLIENT_ASSERTION_TYPE, INTROSPECTION_JWT
from jwt_guard._tools.signing import generate_key
from jwt_guard.testing import LocalIssuer

from .conftest import AppFactory, Drive, bearer
from .oidc_provider import AUDIENCE, SCOPE, Client, OIDCProvider

METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


@dataclass
class Server:
    """An authorization server as the tests meet it: its issuer and endpoints, one client per
    authentication method, a way to get a new opaque access token and to revoke one."""

    name: str
    issuer: str
    introspection_endpoint: str
    clients: dict[str, Client]
    token: Callable[[], str]
    revoke: Callable[[str], None]

    def credentials(self, method: str, *, audience: str | None = None) -> dict[str, Any]:
        """``httpx.post`` keyword arguments authenticating as the client of ``method``."""
        client = self.clients[method]
        if method == "client_secret_basic":
            assert client.client_secret is not None
            return {"auth": (client.client_id, client.client_secret), "data": {}}
        if method == "client_secret_post":
            data = {"client_id": client.client_id, "client_secret": client.client_secret}
            return {"data": data}
        now = int(time.time())
        assertion = pyjwt.encode(
            {
                "iss": client.client_id,
                "sub": client.client_id,
                "aud": audience or self.issuer,  # RFC 7523 §3: the authorization server
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            },
            client.private_key,
            algorithm="ES256",
        )
        form = {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}
        return {"data": form}

    def introspect(
        self, token: str, method: str = "client_secret_basic", **headers: str
    ) -> httpx.Response:
        kwargs = self.credentials(method)
        kwargs["data"] = {"token": token, **kwargs["data"]}
        return httpx.post(self.introspection_endpoint, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def kit() -> Iterator[Server]:
    """The test kit's endpoint, with the clients and tokens oidc-provider has."""
    issuer = LocalIssuer(algorithm="RS256", audience=AUDIENCE)
    clients = {
        "client_secret_basic": Client("rs-basic", "client_secret_basic", "kit-basic-secret"),
        "client_secret_post": Client("rs-post", "client_secret_post", "kit-post-secret"),
        "private_key_jwt": Client("rs-jwt", "private_key_jwt", private_key=generate_key("ES256")),
    }
    for client in clients.values():
        issuer.register_client(
            client.client_id,
            client_secret=client.client_secret,
            public_key=client.private_key,
            auth_method=client.auth_method,
        )
    with issuer.serve(as_issuer=True) as served:
        yield Server(
            "kit",
            served.base_url,
            served.introspection_url,
            clients,
            lambda: issuer.opaque_token(scopes=SCOPE.split(), client_id="rs-basic"),
            issuer.revoke,
        )


@pytest.fixture(scope="module")
def real(oidc_provider: OIDCProvider) -> Server:
    return Server(
        "oidc-provider",
        oidc_provider.issuer,
        oidc_provider.introspection_endpoint,
        oidc_provider.clients,
        oidc_provider.token,
        oidc_provider.revoke,
    )


@pytest.fixture(params=["oidc-provider", "kit"])
def server(request: pytest.FixtureRequest, real: Server, kit: Server) -> Server:
    # Both taken as arguments: started before the test's leak check looks (tests/leaks.py).
    return real if request.param == "oidc-provider" else kit


def test_discovery_names_the_introspection_endpoint(server: Server) -> None:
    document = httpx.get(server.issuer + "/.well-known/openid-configuration").json()
    assert document["issuer"] == server.issuer
    assert document["introspection_endpoint"] == server.introspection_endpoint
    # oidc-provider names its client authentication methods once, for all its endpoints
    methods = document.get(
        "introspection_endpoint_auth_methods_supported",
        document.get("token_endpoint_auth_methods_supported"),
    )
    assert set(METHODS) <= set(methods)


@pytest.mark.parametrize("method", METHODS)
def test_rfc7662_an_opaque_token_is_introspected_by_each_client_authentication(
    server: Server, method: str
) -> None:
    token = server.token()
    assert "." not in token  # opaque: nothing to verify locally
    response = server.introspect(token, method)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["iss"] == server.issuer and body["aud"] == AUDIENCE
    assert body["scope"] == SCOPE and body["client_id"] == "rs-basic"
    assert body["exp"] > body["iat"] >= int(time.time()) - 60


def test_rfc7523_the_assertion_may_name_the_endpoint(server: Server) -> None:
    response = httpx.post(
        server.introspection_endpoint,
        **{
            **server.credentials("private_key_jwt", audience=server.introspection_endpoint),
        },
    )
    # the token parameter is missing: the client authenticated, the request is refused 400
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_rfc7662_2_3_a_client_with_a_wrong_secret_is_401(server: Server) -> None:
    client = server.clients["client_secret_basic"]
    response = httpx.post(
        server.introspection_endpoint,
        data={"token": server.token()},
        auth=(client.client_id, "not-the-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_rfc7662_2_2_a_revoked_or_unknown_token_is_active_false_only(server: Server) -> None:
    token = server.token()
    server.revoke(token)
    for inactive in [token, "no-such-token"]:
        response = server.introspect(inactive)
        assert response.status_code == 200 and response.json() == {"active": False}


@pytest.mark.parametrize("method", METHODS)
def test_rfc9701_a_jwt_response_signed_with_the_servers_keys(server: Server, method: str) -> None:
    token = server.token()
    response = server.introspect(token, method, Accept=INTROSPECTION_JWT)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == INTROSPECTION_JWT
    document = httpx.get(server.issuer + "/.well-known/openid-configuration").json()
    jwks = httpx.get(document["jwks_uri"]).json()
    header = pyjwt.get_unverified_header(response.text)
    assert header["typ"] == "token-introspection+jwt"  # RFC 9701 §5
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    client_id = server.clients[method].client_id
    claims = pyjwt.decode(
        response.text,
        pyjwt.PyJWK(key).key,
        algorithms=[header["alg"]],
        audience=client_id,  # RFC 9701 §5: aud is the resource server that asked
        issuer=server.issuer,
    )
    assert isinstance(claims["iat"], int)
    introspection = claims["token_introspection"]
    assert introspection["active"] is True and introspection["aud"] == AUDIENCE
    assert introspection["scope"] == SCOPE


# -- jwt_guard.Introspection against the real server -------------------------------------------


def introspection_for(provider: OIDCProvider, method: str, **options: Any) -> Introspection:
    """jwt_guard's client of oidc-provider's endpoint, found by discovery (RFC 8414 §3)."""
    client = provider.client(method)
    return Introspection(
        discovery=provider.issuer,
        client_id=client.client_id,
        client_secret=client.client_secret,
        private_key=client.private_key,
        auth_method=method,
        **options,
    )


@pytest.mark.parametrize("method", METHODS)
async def test_an_oidc_provider_token_is_accepted_through_both_adapters(
    oidc_provider: OIDCProvider, make_client: AppFactory, method: str
) -> None:
    verifier = Verifier(audience=AUDIENCE, introspection=introspection_for(oidc_provider, method))
    try:
        client = make_client(verifier)
        token = oidc_provider.token()
        response = await client.get("/me", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["scopes"] == sorted(SCOPE.split())
        oidc_provider.revoke(token)
        verifier.clear_cache()
        refused = await client.get("/me", headers=bearer(token))
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    finally:
        await verifier.aclose()
        verifier.close()


async def test_an_oidc_provider_token_on_both_drivers(
    oidc_provider: OIDCProvider, drive: Drive
) -> None:
    verifier = Verifier(
        issuer=oidc_provider.issuer,
        audience=AUDIENCE,
        introspection=introspection_for(oidc_provider, "private_key_jwt"),
    )
    try:
        principal = await drive.verify(verifier, oidc_provider.token("notes:read"))
        assert principal.issuer == oidc_provider.issuer and principal.scopes == {"notes:read"}
        with pytest.raises(TokenInactive):
            await drive.verify(verifier, "not-a-token-it-issued")
    finally:
        await verifier.aclose()
        verifier.close()
