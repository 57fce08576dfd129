"""A requirement written above the route decorator (issue 25, item 5).

    @require_roles("admin")      # wraps a copy no route serves
    @app.get("/admin")           # registers the bare view
    def admin(): ...

served the view unprotected: a user without the role got 200. Now it is a ConfigurationError
naming the view and the right order: at the decoration when a middleware already guards the
app, when the middleware is installed after the routes, at ASGI lifespan start-up, and at the
latest before the first request reaches the app, which is refused until then (fail closed).
"""

from __future__ import annotations

import functools
import inspect
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from flask import Blueprint, Flask, jsonify
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from jwt_guard import (
    ConfigurationError,
    JWTGuardMiddleware,
    RouteGuard,
    Verifier,
    require_acr,
    require_auth_age,
)
from jwt_guard.flask import JWTGuard, require_roles, require_scopes
from jwt_guard.testing import LocalIssuer
from jwt_guard.wsgi import JWTGuardWSGIMiddleware

ORDER = "put the route decorator on top"


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
def verifier(issuer: LocalIssuer) -> Verifier:
    return issuer.verifier()


#: Each decorator that guards a view, made for a verifier, and how the error writes it.
DECORATORS: dict[str, tuple[Callable[[Verifier], Any], str]] = {
    "require_roles": (lambda v: require_roles("admin"), "@require_roles('admin')"),
    "require_scopes": (
        lambda v: require_scopes("a", "b", any_of=True),
        "@require_scopes('a', 'b', any_of=True)",
    ),
    "require_acr": (lambda v: require_acr("mfa"), "@require_acr('mfa')"),
    "require_auth_age": (lambda v: require_auth_age(300), "@require_auth_age(300)"),
    "RouteGuard.protect": (
        lambda v: RouteGuard(v).protect(roles=["admin"]),
        "@guard.protect(roles=['admin'])",
    ),
    "RouteGuard.protect bare": (lambda v: RouteGuard(v).protect, "@guard.protect"),
}


@pytest.fixture(params=list(DECORATORS))
def decorator(request: pytest.FixtureRequest, verifier: Verifier) -> tuple[Any, str]:
    make, written = DECORATORS[request.param]
    return make(verifier), written


#: The two ways jwt_guard guards a Flask app.
FLASK_ADAPTERS: dict[str, Callable[[Flask, Verifier], None]] = {
    "extension": lambda app, v: JWTGuard(app, verifier=v) and None,
    "wsgi middleware": lambda app, v: setattr(
        app, "wsgi_app", JWTGuardWSGIMiddleware(app.wsgi_app, verifier=v)
    ),
}


@pytest.fixture(params=list(FLASK_ADAPTERS))
def guard_flask(request: pytest.FixtureRequest) -> Callable[[Flask, Verifier], None]:
    return FLASK_ADAPTERS[request.param]


def test_issue25_5_flask_decorator_above_route_stops_the_import(
    guard_flask: Callable[[Flask, Verifier], None],
    verifier: Verifier,
    decorator: tuple[Any, str],
) -> None:
    requirement, written = decorator
    app = Flask(__name__)
    guard_flask(app, verifier)
    with pytest.raises(ConfigurationError) as info:

        @requirement
        @app.get("/admin")
        def admin() -> Any:
            return jsonify(ok=True)

    message = str(info.value)
    assert "the view 'admin' (/admin) serves admin() unprotected" in message
    assert f"{written} was written above the route decorator" in message
    assert f"{ORDER} (@app.get(...)/@app.route(...), then {written}, then def admin)" in message


def test_issue25_5_flask_routes_before_the_guard_stop_it(
    guard_flask: Callable[[Flask, Verifier], None],
    verifier: Verifier,
    decorator: tuple[Any, str],
) -> None:
    requirement, written = decorator
    app = Flask(__name__)

    @requirement
    @app.get("/admin")
    def admin() -> Any:
        return jsonify(ok=True)

    with pytest.raises(ConfigurationError) as info:
        guard_flask(app, verifier)
    assert f"the view 'admin' (/admin) serves admin() unprotected: {written}" in str(info.value)


def test_issue25_5_flask_blueprint_is_refused_until_fixed(
    guard_flask: Callable[[Flask, Verifier], None],
    verifier: Verifier,
    issuer: LocalIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A blueprint's routes reach the app at register_blueprint, after the decorators ran:
    the first request finds the bare view, and no request reaches the app (fail closed)."""
    app = Flask(__name__)
    guard_flask(app, verifier)
    ran: list[str] = []
    admin_bp = Blueprint("admin", __name__)

    @require_roles("admin")
    @admin_bp.get("/admin")
    def admin() -> Any:
        ran.append("admin")
        return jsonify(ok=True)

    @app.get("/health")
    def health() -> Any:
        ran.append("health")
        return jsonify(ok=True)

    app.register_blueprint(admin_bp)
    client = app.test_client()
    user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
    for _ in range(2):
        with caplog.at_level(logging.ERROR, "jwt_guard"):
            response = client.get("/admin", headers=user)
        assert response.status_code == 500
        assert response.json is not None and response.json["code"] == "server_error"
        assert client.get("/health", headers=user).status_code == 500
    assert ran == []
    assert "the view 'admin.admin' (/admin) serves admin() unprotected" in caplog.text


def test_flask_right_order_and_stacked_requirements_pass(
    guard_flask: Callable[[Flask, Verifier], None], verifier: Verifier, issuer: LocalIssuer
) -> None:
    app = Flask(__name__)
    guard_flask(app, verifier)

    @app.get("/admin")
    @require_roles("admin")
    @require_scopes("orders:read")
    def admin() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    admin_token = issuer.mint(roles=["admin"], scope="orders:read")
    assert client.get("/admin", headers={"Authorization": f"Bearer {admin_token}"}).json == {
        "ok": True
    }
    user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
    assert client.get("/admin", headers=user).status_code == 403


def fastapi_trap(verifier: Verifier, requirement: Any, ran: list[str]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(JWTGuardMiddleware, verifier=verifier, exclude=["/health"])

    @requirement
    @app.get("/admin")
    async def admin(request: Request) -> dict[str, bool]:
        ran.append("admin")
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        ran.append("health")
        return {"ok": True}

    return app


async def test_issue25_5_fastapi_decorator_above_route_is_refused(
    verifier: Verifier,
    issuer: LocalIssuer,
    decorator: tuple[Any, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """app.add_middleware builds the middleware at the first request (or lifespan): that
    request finds the bare route and every request is refused, a public one included."""
    requirement, written = decorator
    ran: list[str] = []
    app = fastapi_trap(verifier, requirement, ran)
    user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.ERROR, "jwt_guard"):
            assert (await client.get("/admin", headers=user)).status_code == 500
            assert (await client.get("/health")).status_code == 500
    assert ran == []
    assert f"the route '/admin' serves admin() unprotected: {written}" in caplog.text
    assert f"{ORDER} (@app.get(...), then {written}, then def admin)" in caplog.text


async def test_issue25_5_fastapi_lifespan_start_up_fails(
    verifier: Verifier, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a server with lifespan (uvicorn), the app does not start at all."""
    sent = await run_lifespan(fastapi_trap(verifier, require_roles("admin"), []))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "the route '/admin' serves admin() unprotected" in sent[0]["message"]


def test_issue25_5_uvicorn_refuses_to_start(tmp_path: Path, issuer: LocalIssuer) -> None:
    """A real uvicorn process exits at start-up with the reason, instead of serving."""
    (tmp_path / "trapped.py").write_text(
        textwrap.dedent(
            f"""
            from fastapi import FastAPI, Request
            from jwt_guard import JWKSKeys, JWTGuardMiddleware, Verifier, require_roles

            app = FastAPI()
            verifier = Verifier(keys=JWKSKeys("https://idp.example.com/jwks"),
                                algorithms=["ES256"], issuer={issuer.issuer!r})
            app.add_middleware(JWTGuardMiddleware, verifier=verifier, prefetch=False)

            @require_roles("admin")
            @app.get("/admin")
            async def admin(request: Request):
                return {{"ok": True}}
            """
        )
    )
    argv = [sys.executable, "-m", "uvicorn", "trapped:app", "--port", "0", "--lifespan", "auto"]
    result = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "the route '/admin' serves admin() unprotected" in result.stderr
    assert "Application startup failed" in result.stderr


def test_issue25_5_asgi_middleware_around_the_app(verifier: Verifier) -> None:
    """JWTGuardMiddleware(app) from outside: routes before it stop it; routes after it stop
    at their decoration."""
    app = FastAPI()

    @require_roles("admin")
    @app.get("/early")
    async def early(request: Request) -> dict[str, bool]:
        return {"ok": True}

    with pytest.raises(ConfigurationError, match="the route '/early' serves early"):
        JWTGuardMiddleware(app, verifier=verifier)

    other = FastAPI()
    JWTGuardMiddleware(other, verifier=verifier)
    with pytest.raises(ConfigurationError, match="the route '/late' serves late"):

        @require_roles("admin")
        @other.get("/late")
        async def late(request: Request) -> dict[str, bool]:
            return {"ok": True}


async def test_fastapi_mounted_router_trap_is_found(
    verifier: Verifier, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi import APIRouter
    from starlette.routing import Mount

    inner = FastAPI()

    @require_roles("admin")
    @inner.get("/admin")
    async def admin(request: Request) -> dict[str, bool]:
        return {"ok": True}

    router = APIRouter()

    @require_roles("admin")
    @router.get("/reports")
    async def reports(request: Request) -> dict[str, bool]:
        return {"ok": True}

    app = FastAPI(routes=[Mount("/v1", app=inner)])
    app.include_router(router, prefix="/api")
    app.add_middleware(JWTGuardMiddleware, verifier=verifier)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.ERROR, "jwt_guard"):
            assert (await client.get("/v1/admin")).status_code == 500
    assert "the route '/v1/admin' serves admin()" in caplog.text
    assert "the route '/api/reports' serves reports()" in caplog.text


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    """Any functools.wraps decorator (a logger, a rate limiter, a cache)."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            return await func(*args, **kwargs)

        return awrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def test_issue25_5_flask_requirement_above_a_wraps_decorator_above_route(
    guard_flask: Callable[[Flask, Verifier], None],
    verifier: Verifier,
    decorator: tuple[Any, str],
) -> None:
    """Review 25b F1: a functools.wraps decorator between the requirement and the route hid
    the trap (only the exact function the requirement wrapped was noted)."""
    requirement, written = decorator
    app = Flask(__name__)
    guard_flask(app, verifier)
    with pytest.raises(ConfigurationError) as info:

        @requirement
        @logged
        @logged
        @app.get("/admin")
        def admin() -> Any:
            return jsonify(ok=True)

    assert f"the view 'admin' (/admin) serves admin() unprotected: {written}" in str(info.value)

    other = Flask(__name__)  # routes first, the guard after them

    @requirement
    @logged
    @other.get("/admin")
    def admin2() -> Any:
        return jsonify(ok=True)

    with pytest.raises(ConfigurationError, match=r"serves admin2\(\) unprotected"):
        guard_flask(other, verifier)


def test_flask_wraps_decorator_in_the_right_order_passes(
    guard_flask: Callable[[Flask, Verifier], None], verifier: Verifier, issuer: LocalIssuer
) -> None:
    app = Flask(__name__)
    guard_flask(app, verifier)

    @app.get("/admin")
    @logged
    @require_roles("admin")
    @logged
    def admin() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
    assert client.get("/admin", headers=user).status_code == 403
    admin_token = {"Authorization": f"Bearer {issuer.mint(roles=['admin'])}"}
    assert client.get("/admin", headers=admin_token).status_code == 200


async def test_issue25_5_fastapi_requirement_above_a_wraps_decorator_above_route(
    verifier: Verifier,
    issuer: LocalIssuer,
    decorator: tuple[Any, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review 25b F1 under add_middleware (refused at the first request) and with the
    middleware around the app (refused at the decoration)."""
    requirement, written = decorator
    ran: list[str] = []
    app = fastapi_trap(verifier, lambda view: requirement(logged(view)), ran)
    user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.ERROR, "jwt_guard"):
            assert (await client.get("/admin", headers=user)).status_code == 500
    assert ran == []
    assert f"the route '/admin' serves admin() unprotected: {written}" in caplog.text

    outside = FastAPI()
    JWTGuardMiddleware(outside, verifier=verifier)
    with pytest.raises(ConfigurationError, match=r"the route '/late' serves late\(\)"):

        @requirement
        @logged
        @outside.get("/late")
        async def late(request: Request) -> dict[str, bool]:
            return {"ok": True}


#: The two ways JWTGuardMiddleware guards a Starlette/FastAPI app: inside it, around it.
def _add_middleware(app: FastAPI, verifier: Verifier) -> Any:
    app.add_middleware(JWTGuardMiddleware, verifier=verifier)
    return app


ASGI_ADAPTERS: dict[str, Callable[[FastAPI, Verifier], Any]] = {
    "add_middleware": _add_middleware,
    "around the app": lambda app, v: JWTGuardMiddleware(app, verifier=v),
}


@pytest.fixture(params=list(ASGI_ADAPTERS))
def guard_asgi(request: pytest.FixtureRequest) -> Callable[[FastAPI, Verifier], Any]:
    return ASGI_ADAPTERS[request.param]


async def run_lifespan(app: Any) -> list[dict[str, Any]]:
    """A server's lifespan: start-up, then (when it started) shut-down; what the app sent."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


def including_at_start_up(router: APIRouter) -> FastAPI:
    """An app that includes ``router`` in its own lifespan start-up (a plugin, a router
    chosen from settings)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.include_router(router)
        yield

    return FastAPI(lifespan=lifespan)


async def get_as_user(app: Any, issuer: LocalIssuer, path: str) -> httpx.Response:
    """GET ``path`` with a token of a user without the admin role."""
    user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers=user)


async def test_issue25_5_router_included_at_lifespan_start_up_is_checked(
    guard_asgi: Callable[[FastAPI, Verifier], Any],
    verifier: Verifier,
    issuer: LocalIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review 25b F2: the check ran at lifespan start-up before the app's own start-up code;
    a router included there (plugins, routers chosen from settings) was never checked."""
    router = APIRouter()
    served: list[str] = []

    @require_roles("admin")
    @router.get("/admin")
    async def admin(request: Request) -> dict[str, bool]:
        served.append("admin")
        return {"ok": True}

    guarded = guard_asgi(including_at_start_up(router), verifier)
    sent = await run_lifespan(guarded)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "the route '/admin' serves admin() unprotected" in sent[0]["message"]
    # A server that served on anyway: requests are still refused (fail closed).
    with caplog.at_level(logging.ERROR, "jwt_guard"):
        assert (await get_as_user(guarded, issuer, "/admin")).status_code == 500
    assert served == []


async def test_router_included_at_lifespan_in_the_right_order_starts(
    guard_asgi: Callable[[FastAPI, Verifier], Any], verifier: Verifier, issuer: LocalIssuer
) -> None:
    router = APIRouter()

    @router.get("/admin")
    @require_roles("admin")
    async def admin(request: Request) -> dict[str, bool]:
        return {"ok": True}

    guarded = guard_asgi(including_at_start_up(router), verifier)
    sent = await run_lifespan(guarded)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert (await get_as_user(guarded, issuer, "/admin")).status_code == 403


async def test_issue25_5_mounted_app_behind_a_middleware_is_checked(
    guard_asgi: Callable[[FastAPI, Verifier], Any],
    verifier: Verifier,
    issuer: LocalIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review 25b F3: Mount("/v1", app=GZipMiddleware(inner)) -- the mount's routes are the
    wrapper's (none): the inner app's trap was not seen."""
    inner = FastAPI()
    served: list[str] = []

    @require_roles("admin")
    @inner.get("/admin")
    async def admin(request: Request) -> dict[str, bool]:
        served.append("admin")
        return {"ok": True}

    app = FastAPI(routes=[Mount("/v1", app=GZipMiddleware(inner))])
    try:
        guarded = guard_asgi(app, verifier)
    except ConfigurationError as exc:  # around the app: refused at once
        message = str(exc)
    else:
        user = {"Authorization": f"Bearer {issuer.mint(roles=['user'])}"}
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with caplog.at_level(logging.ERROR, "jwt_guard"):
                assert (await client.get("/v1/admin", headers=user)).status_code == 500
        message = caplog.text
    assert served == []
    assert "the route '/v1/admin' serves admin() unprotected" in message


def test_issue25_5_flask_app_mounted_by_a_dispatcher_is_checked(
    guard_flask: Callable[[Flask, Verifier], None], verifier: Verifier, issuer: LocalIssuer
) -> None:
    """Review 25b F3, WSGI: werkzeug's DispatcherMiddleware keeps its mounted apps in
    .mounts, which the check did not follow."""
    app = Flask(__name__)
    v1 = Flask("v1")

    @require_roles("admin")
    @v1.get("/admin")
    def admin() -> Any:
        return jsonify(ok=True)

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/v1": v1})  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError, match=r"the view 'admin' \(/admin\) serves admin\(\)"):
        guard_flask(app, verifier)


def test_flask_app_mounted_by_a_dispatcher_is_checked_at_its_decoration(
    guard_flask: Callable[[Flask, Verifier], None], verifier: Verifier
) -> None:
    app = Flask(__name__)
    v1 = Flask("v1")
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/v1": v1})  # type: ignore[method-assign]
    guard_flask(app, verifier)
    with pytest.raises(ConfigurationError, match=r"serves late\(\) unprotected"):

        @require_roles("admin")
        @v1.get("/late")
        def late() -> Any:
            return jsonify(ok=True)
