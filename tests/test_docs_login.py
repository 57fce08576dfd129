"""OAuth2Login: the /docs login scheme from discovery, the OpenAPI rewrite, local Swagger UI.

The whole flow in a browser against the demo issuer is in tests/test_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Security
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import ConfigurationError, JWTGuardMiddleware
from jwt_guard.fastapi import (
    CurrentPrincipal,
    JWTBearer,
    OAuth2Login,
    require_roles,
    require_scopes,
    serve_swagger_ui,
)
from jwt_guard.testing import JWKSServer, LocalIssuer

from .redis_server import free_port
from .servers import IssuerSite, run_uvicorn

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
        return httpx.Response(status, stream=httpx.ByteStream(body), headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_from_discovery_reads_endpoints_and_scopes() -> None:
    asked: list[str] = []
    client = idp()
    client.event_hooks["request"].append(lambda request: asked.append(str(request.url)))
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", client=client)
    assert asked == [] and not login.ready  # nothing read when it is made (issue 25, item 6)
    login.discover()
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
    given.discover()
    assert given.scopes == {"orders:read": "Read orders"}
    assert given.swagger_ui_init_oauth["scopes"] == "orders:read"


@pytest.fixture(params=["sync", "async"])
def discover(request: pytest.FixtureRequest) -> Callable[[OAuth2Login], Awaitable[None]]:
    """The login's discovery read by either driver: a thread (a script), or the event loop."""

    async def in_a_thread(login: OAuth2Login) -> None:
        await asyncio.to_thread(login.discover)

    async def on_the_loop(login: OAuth2Login) -> None:
        await login.adiscover()

    return in_a_thread if request.param == "sync" else on_the_loop


async def test_from_discovery_against_a_real_server(
    discover: Callable[[OAuth2Login], Awaitable[None]],
) -> None:
    issuer = LocalIssuer()
    extra = {"authorization_endpoint": "http://127.0.0.1:1/authorize", "token_endpoint": "x"}
    with JWKSServer(issuer.jwks, discovery=extra) as server:
        extra["token_endpoint"] = f"{server.base_url}/token"
        server.discovery.update(extra)
        login = OAuth2Login.from_discovery(server.base_url, client_id="docs")
        await discover(login)
        assert login.token_url == f"{server.base_url}/token"
        assert server.requests == {"/.well-known/openid-configuration": 1}


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (lambda: idp({**DOCUMENT, "issuer": "https://evil.example"}), "is not"),
        (lambda: idp({**DOCUMENT, "issuer": ISSUER + "/"}), "is not"),  # §4.3: exact
        (lambda: idp({"issuer": ISSUER}), "no authorization_endpoint"),
        (lambda: idp({**DOCUMENT, "token_endpoint": 1}), "no token_endpoint"),
        (lambda: idp(status=302, location="https://elsewhere"), "HTTP status 302"),
        (lambda: idp(status=500), "HTTP status 500"),
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
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", client=client())
    with pytest.raises(ConfigurationError, match=message):
        login.discover()
    assert not login.ready


def test_from_discovery_unreachable_says_so() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = httpx.Client(transport=httpx.MockTransport(down))
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", client=client)
    with pytest.raises(ConfigurationError, match="is the issuer up"):
        login.discover()


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": ""},
        {"authorization_url": "http://idp.example.com/authorize"},  # https only off loopback
        {"token_url": "ftp://idp.example.com/token"},
        {"authorization_url": "", "token_url": ""},  # never a login that cannot log in
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
    # "x" is required by a route but was not given: offered all the same (issue 25, item 6).
    assert flow["scopes"] == {
        "orders:read": "Read",
        "orders:write": "Write",
        "x": "Required by POST /orders",
    }
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


# Issue 25, item 6: the /docs login against Auth0-like servers, and a provider that is down.


def discovery_app(base: str, scopes: list[str]) -> Starlette:
    """A provider's discovery document, served by uvicorn on a port chosen before it runs."""

    async def document(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "scopes_supported": scopes,
            }
        )

    return Starlette(routes=[Route("/.well-known/openid-configuration", document)])


def guarded_app(login: OAuth2Login, issuer: LocalIssuer) -> FastAPI:
    """An API as the README builds it: the middleware, then the login, then the routes."""
    app = FastAPI()
    verifier = issuer.verifier()
    app.add_middleware(
        JWTGuardMiddleware, verifier=verifier, exclude=["/docs", "/docs/*", "/openapi.json"]
    )
    login.install(app)
    guard = JWTBearer(verifier)

    @app.get("/api/orders", dependencies=[Depends(require_scopes("orders:read"))])
    async def orders(principal: CurrentPrincipal) -> dict[str, str | None]:
        return {"for": principal.subject}

    @app.get("/api/refunds", dependencies=[Security(guard, scopes=["refunds:write"])])
    async def refunds() -> str:
        return "ok"

    return app


@pytest.fixture(scope="module")
def api_issuer() -> LocalIssuer:
    return LocalIssuer(audience="https://api.example")


async def test_issue25_item6_authorization_params_reach_the_authorization_request() -> None:
    # Auth0-like servers issue an opaque token unless the authorization request names the
    # API (audience, or RFC 8707 resource); Swagger UI sends additionalQueryStringParams.
    login = OAuth2Login(
        authorization_url=f"{ISSUER}/authorize",
        token_url=f"{ISSUER}/token",
        client_id="docs",
        authorization_params={"audience": "https://api.example", "prompt": "login"},
    )
    assert login.swagger_ui_init_oauth["additionalQueryStringParams"] == {
        "audience": "https://api.example",
        "prompt": "login",
    }
    app = FastAPI()
    login.install(app)
    page = (await get(app, "/docs")).text
    assert '"additionalQueryStringParams": {"audience": "https://api.example"' in page


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"resource": "orders-api"}, "RFC 8707"),  # §2: an absolute URI
        ({"resource": "https://api.example/#x"}, "RFC 8707"),  # §2: no fragment
        ({"client_id": "other"}, "set by Swagger UI"),
        ({"scope": "openid"}, "scopes="),
        ({"audience": 1}, "strings"),
    ],
)
def test_rfc8707_section2_and_swagger_ui_parameters_refused(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OAuth2Login.from_discovery(ISSUER, client_id="docs", authorization_params=params)


def test_audience_param_and_the_same_authorization_param_refused() -> None:
    with pytest.raises(ConfigurationError, match="give one"):
        OAuth2Login.from_discovery(
            ISSUER,
            client_id="docs",
            audience_param="audience",
            authorization_params={"audience": "https://other.example"},
        )


@pytest.mark.parametrize(
    ("name", "audience"), [("audience", "orders-api"), ("resource", "https://api.example")]
)
def test_issue25_item6_audience_param_sends_the_verifiers_audience(
    name: Any, audience: str
) -> None:
    issuer = LocalIssuer(audience=audience)
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", audience_param=name)
    app = FastAPI()
    app.add_middleware(JWTGuardMiddleware, verifier=issuer.verifier())
    login.install(app)
    assert app.swagger_ui_init_oauth is not None
    assert app.swagger_ui_init_oauth["additionalQueryStringParams"] == {name: audience}
    # Without a middleware, the verifier is handed to install().
    other = OAuth2Login.from_discovery(ISSUER, client_id="docs", audience_param=name)
    other.install(FastAPI(), verifier=issuer.verifier())
    assert other.authorization_params == {name: audience}


@pytest.mark.parametrize(
    ("name", "verifier", "message"),
    [
        ("audience", None, "no JWTGuardMiddleware"),
        ("audience", {"audience": ["a", "b"]}, "accepts 2"),
        ("resource", {"audience": "orders-api"}, "RFC 8707"),
    ],
)
def test_audience_param_without_one_audience_is_refused_at_install(
    name: Any, verifier: dict[str, Any] | None, message: str
) -> None:
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", audience_param=name)
    found = LocalIssuer().verifier(**verifier) if verifier is not None else None
    with pytest.raises(ConfigurationError, match=message):
        login.install(FastAPI(), verifier=found)


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({}, True),
        ({"authorization_params": {"prompt": "login"}}, True),
        ({"authorization_params": {"audience": "https://api.example"}}, False),
        ({"authorization_params": {"resource": "https://api.example"}}, False),
        ({"audience_param": "audience"}, False),
        ({"audience_param": False}, False),  # the provider needs neither: said out loud
    ],
)
def test_issue25_item6_login_without_audience_warns_at_start_up(
    options: dict[str, Any],
    warned: bool,
    api_issuer: LocalIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Silence is a bug: the API accepts one audience and the login asks for none.
    login = OAuth2Login.from_discovery(ISSUER, client_id="docs", **options)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        guarded_app(login, api_issuer)
    lines = [r.getMessage() for r in caplog.records if "/docs login" in r.getMessage()]
    assert bool(lines) is warned
    if warned:
        assert "'https://api.example'" in lines[0] and "audience_param='audience'" in lines[0]


async def test_issue25_item6_routes_scopes_offered_when_scopes_supported_lacks_them(
    api_issuer: LocalIssuer,
) -> None:
    # The provider lists only OpenID scopes; the routes need orders:read (require_scopes) and
    # refunds:write (Security(JWTBearer, scopes=...)): both are offered in the login.
    with JWKSServer(api_issuer.jwks, discovery={"scopes_supported": ["openid"]}) as server:
        server.discovery["authorization_endpoint"] = f"{server.base_url}/authorize"
        server.discovery["token_endpoint"] = f"{server.base_url}/token"
        login = OAuth2Login.from_discovery(server.base_url, client_id="docs")
        app = guarded_app(login, api_issuer)
        schema = (await get(app, "/openapi.json")).json()
        base = server.base_url
    flow = schema["components"]["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"]
    assert flow["scopes"] == {
        "openid": "",
        "orders:read": "Required by GET /api/orders",
        "refunds:write": "Required by GET /api/refunds",
    }
    assert flow["authorizationUrl"] == f"{base}/authorize"


def served(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_issue25_item6_provider_down_at_import(
    api_issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    # from_discovery at import while the provider is down: the API starts and answers; only
    # the /docs login is unavailable, and says so.
    base = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        login = OAuth2Login.from_discovery(base, client_id="docs")  # main: ConfigurationError
        app = guarded_app(login, api_issuer)
    token = api_issuer.mint(sub="alice", scope="orders:read")
    async with served(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        orders = await client.get("/api/orders", headers=headers)
        assert orders.status_code == 200 and orders.json() == {"for": "alice"}
        assert (await client.get("/docs")).status_code == 200
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            answer = await client.get("/openapi.json")
        assert answer.status_code == 200
        schema = answer.json()
        assert schema["info"]["description"].startswith("**Login unavailable**")
        assert "OAuth2" not in schema["components"]["securitySchemes"]
        bearer_only = [{"HTTPBearer": ["orders:read"]}]
        assert schema["paths"]["/api/orders"]["get"]["security"] == bearer_only
        assert base not in json.dumps(schema)  # the URL and the reason are for the log
        (line,) = [r.getMessage() for r in caplog.records if "/docs login" in r.getMessage()]
        assert "is the issuer up" in line and f"{base}/.well-known/openid-configuration" in line
        orders = await client.get("/api/orders", headers=headers)
        assert orders.status_code == 200  # still no 503


async def test_issue25_item6_provider_up_after_a_failure_is_read_again(
    api_issuer: LocalIssuer,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    login = OAuth2Login.from_discovery(
        base, client_id="docs", audience_param="resource", retry_interval=0
    )
    app = guarded_app(login, api_issuer)
    async with served(app) as client:
        schema = (await client.get("/openapi.json")).json()
        assert "OAuth2" not in schema["components"]["securitySchemes"]
        with run_uvicorn(discovery_app(base, ["openid"]), port=port):
            schema = (await client.get("/openapi.json")).json()
        flow = schema["components"]["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"]
        assert flow["authorizationUrl"] == f"{base}/authorize"
        assert "orders:read" in flow["scopes"]
        assert "description" not in schema["info"]
        # Read once: the provider going down again changes nothing.
        assert (await client.get("/openapi.json")).json() == schema


async def test_issue25_item6_discovery_does_not_block_the_event_loop(
    api_issuer: LocalIssuer,
) -> None:
    # While the provider is slow, the app's other requests are answered on the same loop, and
    # the /openapi.json requests waiting for it share one read (single flight).
    with JWKSServer(api_issuer.jwks) as server:
        server.discovery["authorization_endpoint"] = f"{server.base_url}/authorize"
        server.discovery["token_endpoint"] = f"{server.base_url}/token"
        login = OAuth2Login.from_discovery(server.base_url, client_id="docs", timeout=30)
        app = guarded_app(login, api_issuer)
        assert server.requests == {}  # not at import: at the first request for the schema
        token = api_issuer.mint(sub="alice", scope="orders:read")
        async with served(app) as client:
            with server.held():
                first = asyncio.create_task(client.get("/openapi.json"))
                second = asyncio.create_task(client.get("/openapi.json"))
                while not server.requests:
                    await asyncio.sleep(0.01)  # until the read has reached the provider
                orders = await client.get(
                    "/api/orders", headers={"Authorization": f"Bearer {token}"}
                )
                assert orders.status_code == 200
                assert not first.done() and not second.done()
            for task in (first, second):
                flows = (await task).json()["components"]["securitySchemes"]["OAuth2"]["flows"]
                assert flows["authorizationCode"]["tokenUrl"] == f"{server.base_url}/token"
        assert server.requests == {"/.well-known/openid-configuration": 1}


async def test_issue25_item6_discovery_timeout_is_bounded_and_retried_later(
    api_issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    with JWKSServer(api_issuer.jwks) as server:
        server.discovery["authorization_endpoint"] = f"{server.base_url}/authorize"
        server.discovery["token_endpoint"] = f"{server.base_url}/token"
        login = OAuth2Login.from_discovery(
            server.base_url, client_id="docs", timeout=0.5, retry_interval=3600
        )
        app = guarded_app(login, api_issuer)
        async with served(app) as client:
            with server.held(), caplog.at_level(logging.WARNING, logger="jwt_guard"):
                schema = (await client.get("/openapi.json")).json()
            assert "OAuth2" not in schema["components"]["securitySchemes"]
            assert any("timed out" in r.getMessage() for r in caplog.records)
            # Within retry_interval the public schema route does not ask the provider again.
            schema = (await client.get("/openapi.json")).json()
            assert "OAuth2" not in schema["components"]["securitySchemes"]
            assert server.requests == {"/.well-known/openid-configuration": 1}
            await login.adiscover()  # an explicit read is not held back
            schema = (await client.get("/openapi.json")).json()
            assert "OAuth2" in schema["components"]["securitySchemes"]


def test_issue25_item6_sync_openapi_reads_discovery_outside_the_loop(
    api_issuer: LocalIssuer,
) -> None:
    # app.openapi() from a script (the sync path): read in this thread, under the deadline;
    # called on a running loop, it never fetches (that would block the loop).
    with JWKSServer(api_issuer.jwks) as server:
        server.discovery["authorization_endpoint"] = f"{server.base_url}/authorize"
        server.discovery["token_endpoint"] = f"{server.base_url}/token"
        on_loop = guarded_app(
            OAuth2Login.from_discovery(server.base_url, client_id="docs"), api_issuer
        )

        async def inside() -> dict[str, Any]:
            return on_loop.openapi()

        assert "OAuth2" not in asyncio.run(inside())["components"]["securitySchemes"]
        assert server.requests == {}
        app = guarded_app(OAuth2Login.from_discovery(server.base_url, client_id="docs"), api_issuer)
        schema = app.openapi()
        assert "OAuth2" in schema["components"]["securitySchemes"]
        assert server.requests == {"/.well-known/openid-configuration": 1}
        base = server.base_url
        server.stop()
        down = OAuth2Login.from_discovery(base, client_id="docs", timeout=1)
        schema = guarded_app(down, api_issuer).openapi()
        assert schema["info"]["description"].startswith("**Login unavailable**")


async def test_rfc8414_s3_login_from_an_authorization_server_without_openid_configuration(
    discover: Callable[[OAuth2Login], Awaitable[None]], api_issuer: LocalIssuer
) -> None:
    # An issuer with a path that publishes only RFC 8414 metadata: the login reads the same
    # addresses as the verifier's discovery (404 on the OpenID ones, then the RFC 8414 one).
    with IssuerSite(lambda: api_issuer.jwks, "/tenant") as site:
        site.routes["/.well-known/oauth-authorization-server/tenant"] = 200
        site.document = {
            "authorization_endpoint": f"{site.origin}/authorize",
            "token_endpoint": f"{site.origin}/token",
            "scopes_supported": ["orders:read"],
        }
        login = OAuth2Login.from_discovery(site.issuer, client_id="docs")
        await discover(login)
        assert login.token_url == f"{site.origin}/token"
        assert login.scopes == {"orders:read": ""}
        assert site.requests == [
            "/tenant/.well-known/openid-configuration",
            "/.well-known/openid-configuration/tenant",
            "/.well-known/oauth-authorization-server/tenant",
        ]
        # Its document's own URL works too (what JWT_GUARD_DISCOVERY_URL may name).
        direct = OAuth2Login.from_discovery(
            f"{site.origin}/.well-known/oauth-authorization-server/tenant", client_id="docs"
        )
        await direct.adiscover()
        assert direct.authorization_url == f"{site.origin}/authorize"
