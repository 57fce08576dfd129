"""OAuth2Login: the /docs login scheme from discovery, the OpenAPI rewrite, local Swagger UI.

The whole flow in a browser against the demo issuer is in tests/test_browser.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from jwt_guard import ConfigurationError
from jwt_guard.fastapi import (
    CurrentPrincipal,
    OAuth2Login,
    require_roles,
    require_scopes,
    serve_swagger_ui,
)
from jwt_guard.testing import JWKSServer, LocalIssuer

ISSUER = "https://idp.example.com"
DOCUMENT = {
    "issuer": ISSUER,
    "jwks_uri": f"{ISSUER}/jwks",
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "scopes_supported": ["openid", "orders:read", 7],
}


def idp(document: Any = DOCUMENT, status: int = 200, **headers: str) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url == f"{ISSUER}/.well-known/openid-configuration"
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        return httpx.Response(status, content=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_from_discovery_reads_endpoints_and_scopes() -> None:
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", client=idp())
    assert login.authorization_url == f"{ISSUER}/authorize"
    assert login.token_url == f"{ISSUER}/token"
    assert login.scopes == {"openid": "", "orders:read": ""}  # non-strings dropped
    assert login.swagger_ui_init_oauth == {
        "clientId": "docs",
        "usePkceWithAuthorizationCodeGrant": True,
    }
    given = OAuth2Login.from_discovery(
        f"{ISSUER}/.well-known/openid-configuration",
        client_id="docs",
        scopes={"orders:read": "Read orders"},
        default_scopes=["orders:read"],
        client=idp(),
    )
    assert given.scopes == {"orders:read": "Read orders"}
    assert given.swagger_ui_init_oauth["scopes"] == "orders:read"


def test_from_discovery_against_a_real_server() -> None:
    issuer = LocalIssuer()
    extra = {"authorization_endpoint": "http://127.0.0.1:1/authorize", "token_endpoint": "x"}
    with JWKSServer(issuer.jwks, discovery=extra) as server:
        extra["token_endpoint"] = f"{server.base_url}/token"
        server.discovery.update(extra)
        login = OAuth2Login.from_discovery(server.base_url, client_id="docs")
        assert login.token_url == f"{server.base_url}/token"


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (lambda: idp({**DOCUMENT, "issuer": "https://evil.example"}), "is not"),
        (lambda: idp({**DOCUMENT, "issuer": ISSUER + "/"}), "is not"),  # §4.3: exact
        (lambda: idp({"issuer": ISSUER}), "no authorization_endpoint"),
        (lambda: idp({**DOCUMENT, "token_endpoint": 1}), "no token_endpoint"),
        (lambda: idp(status=302, location="https://elsewhere"), "HTTP 302"),
        (lambda: idp(status=500), "HTTP 500"),
        (lambda: idp(b"<html>"), "not JSON"),
        (lambda: idp([1]), "not a JSON object"),
        (lambda: idp(b"{" + b" " * 300_000 + b"}"), "too large"),
        (
            lambda: idp({**DOCUMENT, "token_endpoint": "http://idp.example.com/token"}),
            "token_url must use https",
        ),
    ],
)
def test_from_discovery_refuses(client: Callable[[], httpx.Client], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OAuth2Login.from_discovery(ISSUER, client_id="docs", client=client())


def test_from_discovery_unreachable_says_so() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = httpx.Client(transport=httpx.MockTransport(down))
    with pytest.raises(ConfigurationError, match="is the issuer up"):
        OAuth2Login.from_discovery(ISSUER, client_id="docs", client=client)


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": ""},
        {"authorization_url": "http://idp.example.com/authorize"},  # https only off loopback
        {"token_url": "ftp://idp.example.com/token"},
    ],
)
def test_constructor_checks(overrides: dict[str, str]) -> None:
    values = {
        "authorization_url": f"{ISSUER}/authorize",
        "token_url": f"{ISSUER}/token",
        "client_id": "docs",
        **overrides,
    }
    with pytest.raises(ConfigurationError):
        OAuth2Login(**values)


def test_loopback_http_is_allowed() -> None:
    # Development against a local issuer (the demo), as everywhere in jwt_guard.
    login = OAuth2Login(
        authorization_url="http://127.0.0.1:8000/authorize",
        token_url="http://127.0.0.1:8000/token",
        client_id="docs",
    )
    assert login.scheme.model.flows.authorizationCode is not None


def make_app() -> FastAPI:
    login = OAuth2Login(
        authorization_url=f"{ISSUER}/authorize",
        token_url=f"{ISSUER}/token",
        client_id="docs",
        scopes={"orders:read": "Read", "orders:write": "Write"},
        default_scopes=["orders:read"],
    )
    app = FastAPI()

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str | None]:
        return {"sub": principal.subject}

    @app.get(
        "/orders",
        dependencies=[Depends(require_scopes("orders:read")), Depends(require_roles("clerk"))],
    )
    async def orders(principal: CurrentPrincipal) -> list[str]:
        return []

    @app.post(
        "/orders",
        dependencies=[Depends(require_scopes("orders:write")), Depends(require_scopes("x"))],
    )
    async def add_order() -> None:
        return None

    @app.get("/public")
    async def public() -> str:
        return "ok"

    login.install(app)
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_install_adds_the_oauth2_scheme_with_each_routes_scopes() -> None:
    app = make_app()
    schema = (await get(app, "/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OAuth2"]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == f"{ISSUER}/authorize"
    assert flow["tokenUrl"] == f"{ISSUER}/token"
    assert flow["scopes"] == {"orders:read": "Read", "orders:write": "Write"}
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = schema["paths"]
    assert paths["/me"]["get"]["security"] == [{"OAuth2": []}, {"HTTPBearer": []}]
    # Requirements of one route are merged (a list of them would mean "any one of").
    assert paths["/orders"]["get"]["security"] == [{"OAuth2": ["orders:read"]}, {"HTTPBearer": []}]
    assert paths["/orders"]["post"]["security"] == [
        {"OAuth2": ["orders:write", "x"]},
        {"HTTPBearer": []},
    ]
    assert "security" not in paths["/public"]["get"]
    assert app.openapi() is app.openapi()  # built once


async def test_install_serves_swagger_ui_locally_with_pkce_settings() -> None:
    app = make_app()
    page = (await get(app, "/docs")).text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert '"usePkceWithAuthorizationCodeGrant": true' in page
    assert '"clientId": "docs"' in page and '"scopes": "orders:read"' in page
    bundle = await get(app, "/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
    assert (await get(app, "/docs/assets/swagger-ui.css")).status_code == 200
    redirect = await get(app, "/docs/oauth2-redirect")
    assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()
    assert len([r for r in app.routes if getattr(r, "path", None) == "/docs"]) == 1


def test_without_the_package_fastapi_keeps_its_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi_swagger", None)
    app = FastAPI()
    assert serve_swagger_ui(app) is False
    assert serve_swagger_ui(FastAPI(docs_url=None)) is False
