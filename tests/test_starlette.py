"""Starlette integration: request.user/auth, Starlette's @requires, HTTPEndpoint, WebSockets and
lifespan under a real uvicorn server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from jwt_guard import JWKSKeys, JWTGuardMiddleware, Principal, require_roles
from jwt_guard.testing import JWKSServer, LocalIssuer

from .servers import run_uvicorn


def app_with(verifier: Any, **options: Any) -> Starlette:
    @requires("authenticated")
    async def starlette_requires(request: Request) -> JSONResponse:
        return JSONResponse({"auth": sorted(request.auth.scopes)})

    @requires("orders:read")
    async def starlette_scope(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    class Orders(HTTPEndpoint):
        @require_roles("admin")
        async def get(self, request: Request) -> JSONResponse:
            assert isinstance(request.user, Principal)
            return JSONResponse({"user": request.user.display_name})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        user = websocket.scope["user"]
        await websocket.send_text(user.identity)
        await websocket.close()

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/requires", starlette_requires),
            Route("/requires-scope", starlette_scope),
            Route("/orders", Orders),
            Route("/plain", plain),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, **options)],
    )


@pytest.fixture
async def client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_with(issuer.verifier()))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_starlette_requires_works_unmodified(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    token = issuer.mint(scopes=["orders:read"])
    response = await client.get("/requires", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"auth": ["authenticated", "orders:read"]}
    ok = await client.get("/requires-scope", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    other = issuer.mint(scopes=["orders:write"])
    denied = await client.get("/requires-scope", headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403


async def test_http_endpoint_method_decorator(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    admin = issuer.mint(roles=["admin"], preferred_username="Ada")
    response = await client.get("/orders", headers={"Authorization": f"Bearer {admin}"})
    assert response.json() == {"user": "Ada"}
    user = issuer.mint(roles=["user"])
    denied = await client.get("/orders", headers={"Authorization": f"Bearer {user}"})
    assert denied.status_code == 403


def test_requirement_outside_a_request_is_a_clear_error() -> None:
    @require_roles("admin")
    def view() -> str:
        return "x"

    with pytest.raises(RuntimeError, match="found no request"):
        view()


# -- real server: WebSockets and lifespan ---------------------------------------------------------


def test_websocket_handshake_verified_before_the_app(issuer: LocalIssuer) -> None:
    app = app_with(issuer.verifier(), websocket_query_param="access_token", cookie="at")
    with run_uvicorn(app) as base:
        url = base.replace("http", "ws") + "/ws"
        token = issuer.mint(sub="ws-user")
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ws.recv() == "ws-user"
        with connect(f"{url}?access_token={token}") as ws:
            assert ws.recv() == "ws-user"
        with pytest.raises(InvalidStatus) as denied:
            with connect(url):
                pass
        assert denied.value.response.status_code == 401
        assert denied.value.response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
        bad = issuer.mint(expired=True)
        with pytest.raises(InvalidStatus) as expired:
            with connect(url, additional_headers={"Authorization": f"Bearer {bad}"}):
                pass
        assert expired.value.response.status_code == 401
        assert bad.encode() not in expired.value.response.body


def test_websocket_cookie_auth_checks_origin(issuer: LocalIssuer) -> None:
    app = app_with(issuer.verifier(), cookie="at")
    with run_uvicorn(app) as base:
        url = base.replace("http", "ws") + "/ws"
        cookie = {"Cookie": f"at={issuer.mint(sub='c')}"}
        with connect(url, additional_headers=cookie, origin=base) as ws:  # type: ignore[arg-type]
            assert ws.recv() == "c"
        with pytest.raises(InvalidStatus) as hijack:
            with connect(url, additional_headers=cookie, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert hijack.value.response.status_code == 403


async def test_websocket_without_denial_extension_closes_with_1008(issuer: LocalIssuer) -> None:
    app = app_with(issuer.verifier())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    sent.clear()
    # A server that sends "extensions": None (the key is optional in the ASGI spec).
    await app({**scope, "extensions": None}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_lifespan_prefetches_jwks_and_passes_through(issuer: LocalIssuer) -> None:
    started: list[bool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append(True)
        yield

    with JWKSServer(lambda: issuer.jwks) as jwks:
        source = JWKSKeys(jwks.url)
        verifier = issuer.verifier(keys=source)
        app = Starlette(
            routes=[Route("/plain", lambda r: PlainTextResponse("ok"))],
            middleware=[Middleware(JWTGuardMiddleware, verifier=verifier)],
            lifespan=lifespan,
        )
        with run_uvicorn(app) as base:
            assert started == [True]
            assert jwks.count == 1  # warmed before the first request
            response = httpx.get(
                base + "/plain", headers={"Authorization": f"Bearer {issuer.mint()}"}
            )
            assert response.status_code == 200
            assert jwks.count == 1


def test_lifespan_start_up_survives_provider_down(issuer: LocalIssuer) -> None:
    source = JWKSKeys("http://127.0.0.1:9/jwks.json", timeout=0.5)
    app = app_with(issuer.verifier(keys=source))
    with run_uvicorn(app) as base:
        response = httpx.get(base + "/plain", headers={"Authorization": f"Bearer {issuer.mint()}"})
        assert response.status_code == 503
        assert "retry-after" in response.headers
