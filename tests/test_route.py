"""Per-route authentication without a middleware: FastAPI ``JWTBearer``, ``RouteGuard`` on
Starlette endpoints and Flask views; the same answers as the middleware; the middleware's
principal reused; never a 500 where a dependency finds no middleware."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Security
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from jwt_guard import (
    CSRF,
    InsufficientRole,
    JWTGuardMiddleware,
    JWTGuardWSGIMiddleware,
    Principal,
    ProtectedResource,
    RouteGuard,
    Verifier,
    bound_csrf_value,
    require_roles,
)
from jwt_guard import fastapi as jg_fastapi
from jwt_guard.fastapi import CurrentPrincipal, JWTBearer
from jwt_guard.testing import LocalIssuer

from .conftest import bearer
from .servers import run_uvicorn, run_wsgi


class CountingVerifier(Verifier):
    """Counts verifications, to show the middleware's principal is reused."""

    calls = 0

    async def averify(self, token: str, *args: Any, **kwargs: Any) -> Principal:
        self.calls += 1
        return await super().averify(token, *args, **kwargs)

    def verify(self, token: str, *args: Any, **kwargs: Any) -> Principal:
        self.calls += 1
        return super().verify(token, *args, **kwargs)


def counting(issuer: LocalIssuer) -> CountingVerifier:
    return CountingVerifier(
        keys=issuer.keys(),
        algorithms=[issuer.algorithm],
        issuer=issuer.issuer,
        audience=issuer.audience,
        clock=issuer.clock,
    )


def fastapi_app(verifier: Verifier, *, middleware: bool = False, **guard: Any) -> FastAPI:
    # Dependencies as defaults: the guards are local names, which FastAPI cannot resolve from
    # a string annotation (this module uses `from __future__ import annotations`).
    app = FastAPI()
    if middleware:
        app.add_middleware(
            JWTGuardMiddleware, verifier=verifier, exclude=["/public", "/openapi.json"]
        )
    jwt = JWTBearer(verifier, **guard)
    maybe = JWTBearer(verifier, auto_error=False, **guard)

    @app.get("/public")
    async def public() -> dict[str, bool]:
        return {"public": True}

    @app.get("/me")
    @app.post("/me", operation_id="post_me")
    async def me(principal: Principal = Depends(jwt)) -> dict[str, Any]:
        return {"sub": principal.subject}

    @app.get("/maybe")
    async def maybe_me(principal: Principal | None = Depends(maybe)) -> dict[str, Any]:
        return {"sub": principal.subject if principal else None}

    @app.get("/orders")
    async def orders(
        principal: Principal = Security(jwt, scopes=["orders:read"]),
    ) -> dict[str, Any]:
        return {"scopes": sorted(principal.scopes)}

    @app.get("/neutral", dependencies=[Depends(jg_fastapi.require_scopes("a", "b"))])
    async def neutral() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/current")
    async def current(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": principal.subject}

    @app.get("/public/current")
    async def public_current(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": principal.subject}

    @app.get("/roles", dependencies=[Depends(require_roles("admin"))])
    def roles() -> dict[str, bool]:  # the framework-neutral requirement, run in a thread
        return {"ok": True}

    return app


@pytest.fixture
async def fastapi_client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fastapi_app(issuer.verifier()))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def middleware_answer(issuer: LocalIssuer, **request: Any) -> httpx.Response:
    """What JWTGuardMiddleware answers to the same request, for comparison."""

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/me", ok, methods=["GET", "POST"])],
        middleware=[Middleware(JWTGuardMiddleware, verifier=issuer.verifier(), cookie="at")],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(url="/me", **request)


def same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
    assert a.headers["cache-control"] == b.headers["cache-control"] == "no-store"


async def test_jwt_bearer_without_middleware(
    fastapi_client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    assert (await fastapi_client.get("/public")).json() == {"public": True}
    ok = await fastapi_client.get("/me", headers=bearer(issuer.mint(sub="alice")))
    assert ok.json() == {"sub": "alice"}
    missing = await fastapi_client.get("/me")
    same_answer(missing, await middleware_answer(issuer, method="GET"))
    expired = issuer.mint(expired=True)
    bad = await fastapi_client.get("/me", headers=bearer(expired))
    assert bad.json()["code"] == "token_expired"
    same_answer(bad, await middleware_answer(issuer, method="GET", headers=bearer(expired)))
    malformed = await fastapi_client.get("/me", headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 400
    same_answer(
        malformed,
        await middleware_answer(issuer, method="GET", headers={"Authorization": "Bearer a b"}),
    )


async def test_jwt_bearer_security_scopes(
    fastapi_client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    ok = await fastapi_client.get("/orders", headers=bearer(issuer.mint(scopes=["orders:read"])))
    assert ok.json() == {"scopes": ["orders:read"]}
    denied = await fastapi_client.get("/orders", headers=bearer(issuer.mint(scopes=["other"])))
    assert denied.status_code == 403 and denied.json()["code"] == "insufficient_scope"
    assert 'scope="orders:read"' in denied.headers["www-authenticate"]
    assert (await fastapi_client.get("/orders")).status_code == 401


async def test_jwt_bearer_optional_form(
    fastapi_client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    assert (await fastapi_client.get("/maybe")).json() == {"sub": None}
    signed = await fastapi_client.get("/maybe", headers=bearer(issuer.mint(sub="bob")))
    assert signed.json() == {"sub": "bob"}
    # A bad token is refused, not taken as anonymous.
    bad = await fastapi_client.get("/maybe", headers=bearer(issuer.mint(expired=True)))
    assert bad.status_code == 401 and bad.json()["code"] == "token_expired"


async def test_jwt_bearer_cookie_and_csrf(issuer: LocalIssuer) -> None:
    app = fastapi_app(issuer.verifier(), cookie="at")
    transport = httpx.ASGITransport(app=app)
    token = issuer.mint(sub="carol")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        client.cookies.set("at", token)
        assert (await client.get("/me")).json() == {"sub": "carol"}
        refused = await client.post("/me", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
        same_answer(
            refused,
            await middleware_answer(
                issuer,
                method="POST",
                headers={"Origin": "https://evil.example", "Cookie": f"at={token}"},
            ),
        )
        same_site = await client.post("/me", headers={"Origin": "http://t"})
        assert same_site.json() == {"sub": "carol"}


async def test_openapi_declares_scopes(fastapi_client: httpx.AsyncClient) -> None:
    spec = (await fastapi_client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert paths["/orders"]["get"]["security"] == [{"HTTPBearer": ["orders:read"]}]
    assert paths["/neutral"]["get"]["security"] == [{"HTTPBearer": ["a", "b"]}]
    assert paths["/me"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/public"]["get"]


async def test_dependency_without_any_middleware_is_a_401_not_a_500(
    fastapi_client: httpx.AsyncClient, issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    # CurrentPrincipal and the requirements read what a middleware verified: with none, a
    # plain 401 for the client and the reason in the log (ASGITransport would raise a 500).
    token = issuer.mint(roles=["admin"])
    for path in ("/current", "/roles", "/neutral"):
        response = await fastapi_client.get(path, headers=bearer(token))
        assert response.status_code == 401, path
        assert response.json()["code"] == "token_missing"
        assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert "no JWTGuardMiddleware ran" in caplog.text


async def test_middleware_principal_is_reused(issuer: LocalIssuer) -> None:
    verifier = counting(issuer)
    app = fastapi_app(verifier, middleware=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        token = issuer.mint(sub="dave", scopes=["orders:read"])
        assert (await client.get("/orders", headers=bearer(token))).status_code == 200
        assert verifier.calls == 1


async def test_dependency_on_an_excluded_path_verifies_on_demand(issuer: LocalIssuer) -> None:
    verifier = counting(issuer)
    app = fastapi_app(verifier, middleware=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.get("/public/current", headers=bearer(issuer.mint(sub="erin")))
        assert ok.json() == {"sub": "erin"}
        # The middleware's public path stays public...
        assert (await client.get("/public")).json() == {"public": True}
        # ...and a dependency there that needs a principal gets the usual 401s.
        missing = await client.get("/public/current")
        assert missing.status_code == 401 and missing.json()["code"] == "token_missing"
        bad = await client.get("/public/current", headers=bearer(issuer.mint(expired=True)))
        assert bad.json()["code"] == "token_expired"
    assert verifier.calls == 2


def test_jwt_bearer_on_uvicorn(issuer: LocalIssuer) -> None:
    with run_uvicorn(fastapi_app(issuer.verifier())) as base:
        with httpx.Client(base_url=base) as client:
            assert client.get("/public").status_code == 200
            missing = client.get("/me")
            assert missing.status_code == 401
            assert missing.json()["code"] == "token_missing"
            token = issuer.mint(sub="f", scopes=["orders:read"])
            assert client.get("/orders", headers=bearer(token)).status_code == 200


# -- Starlette: RouteGuard.protect --------------------------------------------------------------


def starlette_app(verifier: Verifier, *, middleware: bool = False) -> Starlette:
    guard = RouteGuard(verifier, cookie="at")

    @guard.protect
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    @guard.protect(roles=["admin"])
    def admin(request: Request) -> JSONResponse:  # a sync endpoint (run in a thread)
        return JSONResponse({"admin": request.user.subject})

    @guard.protect(scopes=["w", "x"], any_of=True)
    async def write(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @guard.protect(optional=True)
    async def maybe(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"sub": user.subject if user.is_authenticated else None})

    @require_roles("admin")
    async def neutral(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def public(request: Request) -> JSONResponse:
        return JSONResponse({"public": True})

    return Starlette(
        routes=[
            Route("/me", me, methods=["GET", "POST"]),
            Route("/admin", admin),
            Route("/write", write),
            Route("/maybe", maybe),
            Route("/neutral", neutral),
            Route("/public", public),
            Route("/public/admin", neutral),
        ],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, exclude=["/public*"])]
        if middleware
        else [],
    )


@pytest.fixture
async def starlette_client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=starlette_app(issuer.verifier()))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_starlette_route_guard(
    starlette_client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    client = starlette_client
    assert (await client.get("/public")).json() == {"public": True}
    assert (await client.get("/me", headers=bearer(issuer.mint(sub="g")))).json() == {"sub": "g"}
    same_answer(await client.get("/me"), await middleware_answer(issuer, method="GET"))
    admin = await client.get("/admin", headers=bearer(issuer.mint(sub="h", roles=["admin"])))
    assert admin.json() == {"admin": "h"}
    user = await client.get("/admin", headers=bearer(issuer.mint(roles=["user"])))
    assert user.status_code == 403 and user.json()["code"] == "insufficient_role"
    assert (await client.get("/write", headers=bearer(issuer.mint(scopes=["x"])))).is_success
    assert (await client.get("/write", headers=bearer(issuer.mint(scopes=["y"])))).is_error
    assert (await client.get("/maybe")).json() == {"sub": None}
    expired = await client.get("/maybe", headers=bearer(issuer.mint(expired=True)))
    assert expired.json()["code"] == "token_expired"
    client.cookies.set("at", issuer.mint(sub="i"))
    refused = await client.post("/me", headers={"Origin": "https://evil.example"})
    assert refused.json()["code"] == "csrf_failed"


async def test_starlette_requirement_without_middleware_is_a_401(
    starlette_client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    response = await starlette_client.get("/neutral", headers=bearer(issuer.mint(roles=["admin"])))
    assert response.status_code == 401 and response.json()["code"] == "token_missing"


async def test_starlette_with_middleware(issuer: LocalIssuer) -> None:
    verifier = counting(issuer)
    transport = httpx.ASGITransport(app=starlette_app(verifier, middleware=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        token = issuer.mint(roles=["admin"])
        assert (await client.get("/admin", headers=bearer(token))).is_success
        assert verifier.calls == 1  # the guard used the middleware's principal
        # require_roles on an excluded path authenticates with the middleware's settings.
        assert (await client.get("/public/admin", headers=bearer(token))).is_success
        user = await client.get("/public/admin", headers=bearer(issuer.mint(roles=["user"])))
        assert user.status_code == 403
        assert (await client.get("/public/admin")).status_code == 401


# -- Flask: RouteGuard.protect on views --------------------------------------------------------


def flask_app(verifier: Verifier, mode: str) -> Any:
    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard, current_principal

    app = Flask(__name__)
    if mode == "extension":
        JWTGuard(app, verifier=verifier, exclude=["/public*"], optional=True)
    elif mode == "plain":
        app.wsgi_app = JWTGuardWSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, verifier=verifier, exclude=["/public*"], optional=True
        )
    guard = RouteGuard(verifier, cookie="at")

    @app.route("/me", methods=["GET", "POST"])
    @guard.protect
    def me() -> Any:
        return jsonify({"sub": current_principal.subject})

    @app.get("/admin")
    @guard.protect(roles=["admin"], scopes=["read"])
    def admin() -> Any:
        return jsonify({"admin": current_principal.subject})

    @app.get("/maybe")
    @guard.protect(optional=True)
    def maybe() -> Any:
        return jsonify({"sub": current_principal.subject if current_principal else None})

    @app.get("/public/admin")
    @require_roles("admin")
    def public_admin() -> Any:
        return jsonify({"sub": current_principal.subject})

    @app.get("/public")
    def public() -> Any:
        return jsonify({"public": True})

    return app


@pytest.fixture(params=["bare", "extension", "plain"])
def flask_base(request: pytest.FixtureRequest, issuer: LocalIssuer) -> Iterator[tuple[str, str]]:
    with run_wsgi(flask_app(issuer.verifier(), request.param)) as base:
        yield base, request.param


def test_flask_route_guard(flask_base: tuple[str, str], issuer: LocalIssuer) -> None:
    base, mode = flask_base
    with httpx.Client(base_url=base) as client:
        assert client.get("/public").json() == {"public": True}
        assert client.get("/me", headers=bearer(issuer.mint(sub="j"))).json() == {"sub": "j"}
        missing = client.get("/me")
        assert missing.status_code == 401 and missing.json()["code"] == "token_missing"
        if mode == "bare":
            assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
        strong = issuer.mint(sub="k", roles=["admin"], scopes=["read"])
        assert client.get("/admin", headers=bearer(strong)).json() == {"admin": "k"}
        weak = client.get("/admin", headers=bearer(issuer.mint(roles=["admin"])))
        assert weak.status_code == 403 and weak.json()["code"] == "insufficient_scope"
        assert client.get("/maybe").json() == {"sub": None}
        expired = client.get("/maybe", headers=bearer(issuer.mint(expired=True)))
        assert expired.status_code == 401 and expired.json()["code"] == "token_expired"
        client.cookies.set("at", issuer.mint(sub="l"))
        assert client.get("/me").json() == {"sub": "l"}
        refused = client.post("/me", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"


def test_flask_requirement_on_excluded_path(
    flask_base: tuple[str, str], issuer: LocalIssuer
) -> None:
    # The case: require_roles on an excluded path answered token_missing although a
    # valid token was sent. It now authenticates with the middleware's settings; with no
    # middleware at all it is a plain 401, never a 500.
    base, mode = flask_base
    with httpx.Client(base_url=base) as client:
        response = client.get(
            "/public/admin", headers=bearer(issuer.mint(sub="m", roles=["admin"]))
        )
        if mode == "bare":
            assert response.status_code == 401 and response.json()["code"] == "token_missing"
        else:
            assert response.json() == {"sub": "m"}
            assert client.get("/public/admin").status_code == 401


def test_websocket_handshakes(issuer: LocalIssuer) -> None:
    # RouteGuard on a Starlette WebSocket endpoint and JWTBearer on a FastAPI one: the
    # handshake is verified before accept; a refusal is a real 401 (uvicorn has the
    # denial-response extension), as with the middleware.
    verifier = issuer.verifier()
    guard = RouteGuard(verifier)

    @guard.protect
    async def starlette_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.user.subject)
        await websocket.close()

    jwt = JWTBearer(verifier)
    app = FastAPI()

    @app.websocket("/fastapi")
    async def fastapi_ws(websocket: WebSocket, principal: Principal = Depends(jwt)) -> None:
        await websocket.accept()
        await websocket.send_text(principal.subject or "")
        await websocket.close()

    app.router.routes.append(WebSocketRoute("/starlette", starlette_ws))
    with run_uvicorn(app) as base:
        for path in ("/starlette", "/fastapi"):
            url = base.replace("http", "ws") + path
            token = issuer.mint(sub=f"ws{path}")
            with connect(url, additional_headers=bearer(token)) as ws:
                assert ws.recv() == f"ws{path}"
            with pytest.raises(InvalidStatus) as denied:
                with connect(url):
                    pass
            assert denied.value.response.status_code == 401, path
            assert denied.value.response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
            expired = issuer.mint(expired=True)
            with pytest.raises(InvalidStatus) as refused:
                with connect(url, additional_headers=bearer(expired)):
                    pass
            assert refused.value.response.status_code == 401
            assert b"token_expired" in refused.value.response.body


async def test_errors_raised_in_a_guarded_route_are_answered_without_middleware(
    issuer: LocalIssuer,
) -> None:
    # With no middleware to answer them, our errors raised inside a guarded route (a
    # requirement under the guard, a claims_as misfit) get the guard's answer, not a 500.
    import dataclasses

    @dataclasses.dataclass
    class Email:
        email: str

    verifier = issuer.verifier()
    guard = RouteGuard(verifier, realm="route")

    @guard.protect
    @require_roles("admin")
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @guard.protect
    def email(request: Request) -> JSONResponse:
        return JSONResponse({"email": request.user.claims_as(Email).email})

    jwt = JWTBearer(verifier, realm="route")
    app = FastAPI()

    @app.get("/fastapi/email")
    async def fastapi_email(principal: Principal = Depends(jwt)) -> dict[str, str]:
        return {"email": principal.claims_as(Email).email}

    app.router.routes.extend([Route("/admin", admin), Route("/email", email)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        user = await client.get("/admin", headers=bearer(issuer.mint(roles=["user"])))
        assert user.status_code == 403 and user.json()["code"] == "insufficient_role"
        assert user.headers["www-authenticate"].startswith('Bearer realm="route"')
        assert (await client.get("/admin", headers=bearer(issuer.mint(roles=["admin"])))).is_success
        for path in ("/email", "/fastapi/email"):
            ok = await client.get(path, headers=bearer(issuer.mint(email="a@x")))
            assert ok.json() == {"email": "a@x"}
            bad = await client.get(path, headers=bearer(issuer.mint(email=1)))
            assert bad.status_code == 401 and bad.json()["code"] == "claim_invalid", path
            assert bad.headers["www-authenticate"].startswith('Bearer realm="route"')


def test_flask_errors_raised_in_a_guarded_view_are_answered(issuer: LocalIssuer) -> None:
    import dataclasses

    from flask import Flask, jsonify

    from jwt_guard.flask import current_principal

    @dataclasses.dataclass
    class Email:
        email: str

    app = Flask(__name__)
    guard = RouteGuard(issuer.verifier())

    @app.get("/email")
    @guard.protect
    def email() -> Any:
        return jsonify({"email": current_principal.claims_as(Email).email})

    with run_wsgi(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/email", headers=bearer(issuer.mint(email="a@x"))).is_success
        bad = client.get("/email", headers=bearer(issuer.mint(email=None)))
        assert bad.status_code == 401 and bad.json()["code"] == "claim_invalid"


async def test_a_middleware_with_another_verifier_does_not_vouch_for_the_guard(
    issuer: LocalIssuer,
) -> None:
    # The middleware trusts tokens for the issuer's usual audience; the guard only tokens for
    # "admin-api". The middleware's principal is not reused: the guard verifies by its rules.
    admin_verifier = issuer.verifier(audience="admin-api")
    app = fastapi_app(admin_verifier)
    app.add_middleware(JWTGuardMiddleware, verifier=issuer.verifier(), exclude=["/public"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        orders_token = issuer.mint(sub="o")
        assert (await client.get("/current", headers=bearer(orders_token))).is_success
        refused = await client.get("/me", headers=bearer(orders_token))
        assert refused.status_code == 401 and refused.json()["code"] == "audience_invalid"
        admin_token = issuer.mint(sub="a", audience=[issuer.audience, "admin-api"])
        assert (await client.get("/me", headers=bearer(admin_token))).json() == {"sub": "a"}


# -- whoever answers: requirements after a per-route guard, a middleware wrapped from outside ---

RESOURCE = "https://api.example.com/orders"
METADATA = "https://api.example.com/.well-known/oauth-protected-resource/orders"


def challenge(response: httpx.Response) -> dict[str, str]:
    value = response.headers["www-authenticate"]
    return {k: v for k, v in re.findall(r'(\w+)="([^"]*)"', value)}


async def call(app: Any, path: str, token: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.example.com") as c:
        return await c.get(path, headers=bearer(token) if token else {})


def stepped_up_app(verifier: Verifier, guard: JWTBearer | None) -> FastAPI:
    app = FastAPI()
    first = [Depends(guard)] if guard is not None else []

    @app.get("/acr", dependencies=[*first, Depends(jg_fastapi.require_acr("mfa"))])
    async def acr() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/age", dependencies=[*first, Depends(jg_fastapi.require_auth_age(60))])
    async def age() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/roles", dependencies=[*first, Depends(jg_fastapi.require_roles("admin"))])
    async def roles() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/neutral", dependencies=[*first, Depends(require_roles("admin"))])
    def neutral() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/raised")
    async def raised(principal: CurrentPrincipal) -> dict[str, bool]:
        raise InsufficientRole(required=("admin",))

    return app


WEAK = {"acr": "pwd", "roles": ["user"]}
REFUSALS = [
    ("/acr", 401, "acr_not_satisfied"),
    ("/age", 401, "authentication_too_old"),  # no auth_time: the age is unknown
    ("/roles", 403, "insufficient_role"),
    ("/neutral", 403, "insufficient_role"),
]


@pytest.mark.parametrize(("path", "status", "error"), REFUSALS)
async def test_requirement_after_jwt_bearer_without_middleware(
    issuer: LocalIssuer, path: str, status: int, error: str
) -> None:
    """No middleware: the JWTBearer that verified the request answers (it was a 500)."""
    verifier = issuer.verifier(audience=RESOURCE)
    guard = JWTBearer(
        verifier, protected_resource=ProtectedResource(RESOURCE, ["https://login.example.com"])
    )
    response = await call(
        stepped_up_app(verifier, guard), path, issuer.mint(audience=RESOURCE, **WEAK)
    )
    assert response.status_code == status
    assert response.json()["code"] == error
    assert challenge(response)["resource_metadata"] == METADATA  # RFC 9728 §5.1


@pytest.mark.parametrize(("path", "status", "error"), [*REFUSALS, ("/raised", 403, "")])
async def test_middleware_wrapped_around_fastapi_from_outside(
    issuer: LocalIssuer, path: str, status: int, error: str
) -> None:
    """JWTGuardMiddleware(app): FastAPI's error middleware sits inside it and made every
    JWTGuardError a dependency or endpoint raised a 500."""
    verifier = issuer.verifier(audience=RESOURCE)
    app = JWTGuardMiddleware(
        stepped_up_app(verifier, None),
        verifier=verifier,
        protected_resource=ProtectedResource(RESOURCE, ["https://login.example.com"]),
    )
    response = await call(app, path, issuer.mint(audience=RESOURCE, **WEAK))
    assert response.status_code == status
    assert challenge(response)["resource_metadata"] == METADATA
    if error:
        assert response.json()["code"] == error


async def test_starlette_decorators_under_a_middleware_from_outside(issuer: LocalIssuer) -> None:
    @require_roles("admin")
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def raised(request: Request) -> JSONResponse:
        raise InsufficientRole(required=("admin",))

    inner = Starlette(routes=[Route("/admin", admin), Route("/raised", raised)])
    app = JWTGuardMiddleware(inner, verifier=issuer.verifier())
    for path in ("/admin", "/raised"):
        response = await call(app, path, issuer.mint(roles=["user"]))
        assert response.status_code == 403, path
        assert "error" not in challenge(response)  # a role is not a scope (issue 26)


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
async def test_route_guard_challenges_name_the_metadata(issuer: LocalIssuer, kind: str) -> None:
    """RFC 9728 §5.1 on per-route guards: their own protected_resource without a middleware,
    the middleware's answers (and its document) when one ran."""
    verifier = issuer.verifier(audience=RESOURCE)
    resource = ProtectedResource(RESOURCE, ["https://login.example.com"])
    if kind == "fastapi":
        own: Any = stepped_up_app(verifier, JWTBearer(verifier, protected_resource=resource))
        bare: Any = stepped_up_app(verifier, JWTBearer(verifier, realm="route"))
        path = "/roles"
    else:
        guard = RouteGuard(verifier, protected_resource=resource)
        plain = RouteGuard(verifier, realm="route")

        async def endpoint(request: Request) -> JSONResponse:
            return JSONResponse({})

        own = Starlette(routes=[Route("/r", guard.protect(endpoint))])
        bare = Starlette(routes=[Route("/r", plain.protect(endpoint))])
        path = "/r"
    assert challenge(await call(own, path))["resource_metadata"] == METADATA
    under = JWTGuardMiddleware(bare, verifier=verifier, protected_resource=resource, exclude=[path])
    response = await call(under, path)  # excluded: the route guard verifies, and refuses
    assert response.status_code == 401
    assert challenge(response) == {"realm": "api", "resource_metadata": METADATA}
    assert (await call(under, "/.well-known/oauth-protected-resource/orders")).status_code == 200


async def test_a_guard_for_another_api_answers_with_its_own_settings(issuer: LocalIssuer) -> None:
    """Under a middleware with another verifier (another API), the guard verifies by its own
    rules and refuses with its own settings (its resource_metadata), not the middleware's."""
    own = issuer.verifier(audience=RESOURCE)
    guard = JWTBearer(own, protected_resource=ProtectedResource(RESOURCE, []))
    app = FastAPI()

    @app.get("/orders", dependencies=[Depends(guard), Depends(jg_fastapi.require_acr("mfa"))])
    async def orders() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(JWTGuardMiddleware, verifier=issuer.verifier())  # audience api://test
    wrong_api = await call(app, "/orders", issuer.mint())  # fine for the middleware only
    assert wrong_api.status_code == 401
    assert wrong_api.json()["code"] == "audience_invalid"
    assert challenge(wrong_api)["resource_metadata"] == METADATA
    weak = await call(app, "/orders", issuer.mint(audience=["api://test", RESOURCE], acr="pwd"))
    assert weak.status_code == 401 and weak.json()["code"] == "acr_not_satisfied"
    assert challenge(weak)["resource_metadata"] == METADATA


SECRET = b"k" * 32
#: (middleware csrf, guard csrf): the middleware's check is weaker than the guard's.
WEAKER_CSRF = {
    "unbound-vs-bound": (True, CSRF(secret=SECRET)),
    "none-vs-default": (False, True),
}


def csrf_mismatch_app(framework: str, verifier: Verifier, mw_csrf: Any, guard_csrf: Any) -> Any:
    """A cookie-reading middleware and a guarded POST route with its own CSRF settings."""
    if framework == "flask":
        from flask import Flask, jsonify

        from jwt_guard.flask import current_principal

        flask = Flask(__name__)
        guard = RouteGuard(verifier, cookie="at", csrf=guard_csrf)

        @flask.post("/transfer")
        @guard.protect
        def transfer() -> Any:
            return jsonify({"sub": current_principal.subject})

        flask.wsgi_app = JWTGuardWSGIMiddleware(  # type: ignore[method-assign]
            flask.wsgi_app, verifier=verifier, cookie="at", csrf=mw_csrf
        )
        return flask
    if framework == "fastapi":
        app = FastAPI()
        bearer_guard = JWTBearer(verifier, cookie="at", csrf=guard_csrf)

        @app.post("/transfer")
        async def transfer_api(principal: Principal = Depends(bearer_guard)) -> dict[str, str]:
            return {"sub": principal.subject}

        app.add_middleware(JWTGuardMiddleware, verifier=verifier, cookie="at", csrf=mw_csrf)
        return app
    route_guard = RouteGuard(verifier, cookie="at", csrf=guard_csrf)

    @route_guard.protect
    async def transfer_star(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    return Starlette(
        routes=[Route("/transfer", transfer_star, methods=["POST"])],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, cookie="at", csrf=mw_csrf)],
    )


@pytest.mark.parametrize("framework", ["starlette", "fastapi", "flask"])
@pytest.mark.parametrize("case", sorted(WEAKER_CSRF))
def test_rfc6265_8_6_route_guard_csrf_rules_hold_behind_a_weaker_middleware(
    issuer: LocalIssuer, framework: str, case: str
) -> None:
    # A middleware principal from a cookie is reused only if the middleware's CSRF check was
    # the guard's own: else an unbound double-submit (a value planted by a sibling
    # subdomain) or no check at all would pass a route that asks for more.
    mw_csrf, guard_csrf = WEAKER_CSRF[case]
    app = csrf_mismatch_app(framework, issuer.verifier(), mw_csrf, guard_csrf)
    token = issuer.mint(sub="alice")
    if case == "unbound-vs-bound":  # a planted value, echoed
        attack = {"cookie": f"at={token}; csrf_token=evil", "x-csrf-token": "evil"}
    else:  # a plain cross-site form post
        attack = {"cookie": f"at={token}"}
    attack["origin"] = "https://evil.example"
    runner = run_wsgi if framework == "flask" else run_uvicorn
    with runner(app) as base, httpx.Client(base_url=base) as client:
        refused = client.post("/transfer", headers=attack)
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
        # The guard's own check passes a real request: the bound value, or same-origin.
        good = bound_csrf_value(token, SECRET) if isinstance(guard_csrf, CSRF) else "v"
        ok = client.post(
            "/transfer",
            headers={"cookie": f"at={token}; csrf_token={good}", "x-csrf-token": good},
        )
        assert ok.status_code == 200 and ok.json() == {"sub": "alice"}
