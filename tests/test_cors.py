"""CORS with the middleware: preflights pass through to the app, and a real cross-origin
``fetch`` in headless Chromium from one uvicorn origin to another, with ``CORSMiddleware``
outside and inside ``JWTGuardMiddleware``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route

from jwt_guard import JWTGuardMiddleware, JWTGuardWSGIMiddleware, Verifier
from jwt_guard.testing import LocalIssuer

from .conftest import bearer
from .servers import run_uvicorn, run_wsgi
from .test_browser import page  # noqa: F401  (the headless Chromium fixture)

PREFLIGHT = {
    "Origin": "http://127.0.0.1:1",
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


def api(verifier: Verifier, origin: str, order: str) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    cors = Middleware(
        CORSMiddleware,
        allow_origins=[origin],
        allow_methods=["GET", "POST"],
        allow_headers=["authorization"],
        expose_headers=["www-authenticate"],  # so the page can read the challenge
    )
    guard = Middleware(JWTGuardMiddleware, verifier=verifier)
    # Starlette: the first in the list is the outermost.
    middleware = [cors, guard] if order == "cors-outside" else [guard, cors]
    return Starlette(routes=[Route("/api/me", me)], middleware=middleware)


#: What a handler that ran for a preflight would leak.
SECRET = "s3cret-body"


class Stamp:
    """An inner ASGI middleware that stamps ``Access-Control-Allow-Origin`` on every answer
    (as a lax CORS layer might), and records each request it sees: app code too."""

    def __init__(self, app: Any, ran: list[str]) -> None:
        self.app = app
        self.ran = ran

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.ran.append("stamp")

        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"access-control-allow-origin", b"*")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)


def flask_cors_app(verifier: Verifier, ran: list[str], *, catch_all: bool = False) -> Any:
    """Flask with the extension and flask-cors, and a view that declares OPTIONS (at
    ``/admin``, or for every path)."""
    from flask import Flask, jsonify
    from flask_cors import CORS

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    JWTGuard(app, verifier=verifier)
    CORS(app)
    rule = "/<path:path>" if catch_all else "/admin"

    @app.route(rule, methods=["GET", "POST", "OPTIONS"])
    def handler(**path: str) -> Any:
        ran.append("view")
        return jsonify({"secret": SECRET})

    return app


def options_route_app(verifier: Verifier, ran: list[str], framework: str) -> Any:
    """A Starlette or FastAPI route that declares OPTIONS, under the guard alone."""
    if framework == "fastapi":
        from fastapi import FastAPI

        fastapi = FastAPI()

        @fastapi.options("/admin")
        async def options() -> dict[str, str]:
            ran.append("route")
            return {"secret": SECRET}

        fastapi.add_middleware(JWTGuardMiddleware, verifier=verifier)
        return fastapi

    async def handler(request: Request) -> JSONResponse:
        ran.append("route")
        return JSONResponse({"secret": SECRET})

    return Starlette(
        routes=[Route("/admin", handler, methods=["GET", "POST", "OPTIONS"])],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier)],
    )


def stamped_app(verifier: Verifier, ran: list[str]) -> Starlette:
    """An inner middleware stamping the header on every answer, over a catch-all mount."""

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        ran.append("mount")
        await JSONResponse({"secret": SECRET})(scope, receive, send)

    return Starlette(
        routes=[Mount("/", app=inner)],
        middleware=[
            Middleware(JWTGuardMiddleware, verifier=verifier),
            Middleware(Stamp, ran=ran),
        ],
    )


def stamped_wsgi(verifier: Verifier, ran: list[str]) -> JWTGuardWSGIMiddleware:
    """A plain WSGI app that answers everything with the header, under the WSGI middleware."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append("app")
        start_response("200 OK", [("Access-Control-Allow-Origin", "*")])
        return [f'{{"secret": "{SECRET}"}}'.encode()]

    return JWTGuardWSGIMiddleware(app, verifier=verifier)


#: Apps where a preflight used to run code without a token: (server, path, make app).
ANONYMOUS_HANDLERS: dict[str, tuple[str, str, Any]] = {
    "flask-view": ("wsgi", "/admin", flask_cors_app),
    "flask-catch-all": ("wsgi", "/any/path", lambda v, r: flask_cors_app(v, r, catch_all=True)),
    "starlette-route": ("asgi", "/admin", lambda v, r: options_route_app(v, r, "starlette")),
    "fastapi-route": ("asgi", "/admin", lambda v, r: options_route_app(v, r, "fastapi")),
    "stamping-middleware": ("asgi", "/any/path", stamped_app),
    "stamping-wsgi-app": ("wsgi", "/any/path", stamped_wsgi),
}


@pytest.mark.parametrize("case", sorted(ANONYMOUS_HANDLERS))
def test_issue22_cors_preflight_runs_no_handler_anonymously(issuer: LocalIssuer, case: str) -> None:
    # A preflight carries no token, so no handler runs for it and no handler's body leaves,
    # even where a CORS layer (flask-cors) or any middleware stamps
    # Access-Control-Allow-Origin on every answer: the guard cannot tell that stamp from a
    # CORS answer, so it never passes the preflight to such code.
    ran: list[str] = []
    server, path, make = ANONYMOUS_HANDLERS[case]
    runner = run_uvicorn if server == "asgi" else run_wsgi
    with runner(make(issuer.verifier(), ran)) as base, httpx.Client(base_url=base) as client:
        refused = client.options(path, headers=PREFLIGHT)
        assert refused.status_code == 401 and refused.json()["code"] == "token_missing"
        assert SECRET not in refused.text
        assert ran == []  # no side effect: no handler, no middleware of the app ran
        # With a token the same OPTIONS request is the app's (the recorder works).
        authorized = client.options(path, headers=bearer(issuer.mint()))
        assert authorized.status_code == 200 and ran


def cors_inside(verifier: Verifier, ran: list[str], framework: str) -> Any:
    """CORSMiddleware directly inside the guard, over a route that declares OPTIONS."""
    cors: dict[str, Any] = {"allow_origins": [PREFLIGHT["Origin"]], "allow_headers": ["*"]}
    if framework == "fastapi":
        from fastapi import FastAPI

        fastapi = FastAPI()

        @fastapi.api_route("/admin", methods=["GET", "OPTIONS"])
        async def admin() -> dict[str, str]:
            ran.append("route")
            return {"secret": SECRET}

        fastapi.add_middleware(CORSMiddleware, **cors)
        fastapi.add_middleware(JWTGuardMiddleware, verifier=verifier)  # last added: outer
        return fastapi

    async def handler(request: Request) -> JSONResponse:
        ran.append("route")
        return JSONResponse({"secret": SECRET})

    return Starlette(
        routes=[Route("/admin", handler, methods=["GET", "OPTIONS"])],
        middleware=[
            Middleware(JWTGuardMiddleware, verifier=verifier),
            Middleware(CORSMiddleware, **cors),
        ],
    )


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
async def test_cors_middleware_directly_inside_answers_the_preflight(
    issuer: LocalIssuer, framework: str
) -> None:
    # The one layer a preflight reaches without a token: it answers the preflight itself.
    ran: list[str] = []
    app = cors_inside(issuer.verifier(), ran, framework)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        preflight = await client.options("/admin", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]
        assert SECRET not in preflight.text
        # A plain OPTIONS (not a preflight) still needs a token.
        assert (await client.options("/admin")).status_code == 401
    assert ran == []


def test_flask_automatic_options_answers_the_preflight(issuer: LocalIssuer) -> None:
    # Flask's own OPTIONS answer (no view runs, no before_request hook of the app either),
    # with flask-cors's headers on it: also for a catch-all route that leaves OPTIONS to Flask.
    from flask import Flask
    from flask_cors import CORS

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    ran: list[str] = []
    app.before_request(lambda: ran.append("hook"))
    JWTGuard(app, verifier=issuer.verifier())
    CORS(app, origins=[PREFLIGHT["Origin"]], allow_headers=["authorization"])

    @app.route("/api/me", methods=["GET", "POST"])
    def me() -> str:
        ran.append("me")
        return SECRET

    @app.get("/files/<path:path>")
    def files(path: str) -> str:
        ran.append("files")
        return SECRET

    with run_wsgi(app) as base, httpx.Client(base_url=base) as client:
        for path in ("/api/me", "/files/a/b"):
            preflight = client.options(path, headers=PREFLIGHT)
            assert preflight.status_code == 200, path
            assert preflight.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]
            assert "authorization" in preflight.headers["access-control-allow-headers"]
            assert SECRET not in preflight.text
        # No route: the 401 of any request without a token.
        assert client.options("/nowhere", headers=PREFLIGHT).status_code == 401
        # An Origin flask-cors does not allow: no CORS answer, so our 401.
        other = client.options("/api/me", headers={**PREFLIGHT, "Origin": "http://evil.example"})
        assert other.status_code == 401
    assert ran == []


def test_flask_preflight_without_a_cors_layer_is_refused(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    # Flask's automatic answer without flask-cors is no CORS answer: 401, and the log says so.
    from flask import Flask

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    JWTGuard(app, verifier=issuer.verifier())
    app.add_url_rule("/api/me", view_func=lambda: SECRET)
    with (
        caplog.at_level(logging.WARNING, logger="jwt_guard"),
        run_wsgi(app) as base,
        httpx.Client(base_url=base) as client,
    ):
        assert client.options("/api/me", headers=PREFLIGHT).status_code == 401
    assert any("no Access-Control-Allow-Origin" in r.getMessage() for r in caplog.records)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("case", ["flask-view", "starlette-route", "stamping-wsgi-app"])
def test_a_refused_preflight_says_why_once(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    # Silence is a bug: a preflight that worked before and now gets 401 (the browser shows
    # only a CORS failure) is logged once, with the fix.
    server, path, make = ANONYMOUS_HANDLERS[case]
    runner = run_uvicorn if server == "asgi" else run_wsgi
    with (
        caplog.at_level(logging.WARNING, logger="jwt_guard"),
        runner(make(issuer.verifier(), [])) as base,
        httpx.Client(base_url=base) as client,
    ):
        for _ in range(3):
            assert client.options(path, headers=PREFLIGHT).status_code == 401
    said = [m for m in warnings(caplog) if "CORS preflight was answered 401" in m]
    assert len(said) == 1
    fix = {
        "flask-view": "drop OPTIONS from its methods",
        "starlette-route": "add Starlette's CORSMiddleware outside JWTGuardMiddleware",
        "stamping-wsgi-app": "put one outside it",
    }[case]
    assert fix in said[0] and ("'/admin' (handler)" in said[0]) == (case == "flask-view")


def test_cors_middleware_deeper_inside_warns_at_start_up(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    # Not directly inside, CORSMiddleware would answer preflights only after other code ran:
    # they get 401, and start-up says how to order the middleware.
    from starlette.middleware.gzip import GZipMiddleware

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({})

    cors = Middleware(CORSMiddleware, allow_origins=["*"])
    guard = Middleware(JWTGuardMiddleware, verifier=issuer.verifier())
    deeper = Starlette(
        routes=[Route("/me", me)], middleware=[guard, Middleware(GZipMiddleware), cors]
    )
    # A Starlette app wrapped from outside, with CORSMiddleware in its own list: known once
    # its middleware is final, at lifespan start-up.
    wrapped = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)], middleware=[cors]), verifier=issuer.verifier()
    )
    for app in (deeper, wrapped):
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="jwt_guard"),
            run_uvicorn(app) as base,
        ):
            said = warnings(caplog)
            assert len(said) == 1 and said[0].startswith("CORSMiddleware is inside")
            assert "add CORSMiddleware outside JWTGuardMiddleware" in said[0]
            assert httpx.options(base + "/me", headers=PREFLIGHT).status_code == 401
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        for app in (
            cors_inside(issuer.verifier(), [], "starlette"),
            api(issuer.verifier(), "http://127.0.0.1:1", "cors-outside"),
        ):
            with run_uvicorn(app):
                pass
    assert warnings(caplog) == []  # the two orders that work


#: Requests that look like a preflight to a lax check but are not one (Fetch §4.8: a
#: CORS-preflight request has an ``Origin`` and ``Access-Control-Request-Method``; a method
#: override would make a framework run another method, however its name is encoded).
NOT_PREFLIGHTS = {
    "no-origin": ("/admin", {"Access-Control-Request-Method": "DELETE"}),
    "override-header": ("/admin", {**PREFLIGHT, "X-HTTP-Method-Override": "DELETE"}),
    "override-x-http-method": ("/admin", {**PREFLIGHT, "X-HTTP-Method": "DELETE"}),
    "override-x-method-override": ("/admin", {**PREFLIGHT, "X-Method-Override": "DELETE"}),
    "override-query": ("/admin?_method=DELETE", PREFLIGHT),
    "override-query-encoded": ("/admin?%5Fmethod=DELETE", PREFLIGHT),
}


def anonymous_options_app(adapter: str, verifier: Verifier, ran: list[str]) -> Any:
    """Under ``unsafe_preflight_to_app``: a route that handles OPTIONS itself (and a catch-all
    mount under ASGI), answering without CORS headers."""
    if adapter == "wsgi":
        from flask import Flask

        flask = Flask(__name__)

        @flask.route("/admin", methods=["POST", "OPTIONS"])
        def admin() -> str:
            ran.append("admin")
            return "purged"

        flask.wsgi_app = JWTGuardWSGIMiddleware(  # type: ignore[method-assign]
            flask.wsgi_app, verifier=verifier, unsafe_preflight_to_app=True
        )
        return flask

    async def admin_asgi(request: Request) -> JSONResponse:
        ran.append("admin")
        return JSONResponse({"purged": True})

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        ran.append("mount")
        await JSONResponse({"proxied": True})(scope, receive, send)

    return Starlette(
        routes=[
            Route("/admin", admin_asgi, methods=["POST", "OPTIONS"]),
            Mount("/proxy", app=inner),
        ],
        middleware=[
            Middleware(JWTGuardMiddleware, verifier=verifier, unsafe_preflight_to_app=True)
        ],
    )


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
@pytest.mark.parametrize("case", sorted(NOT_PREFLIGHTS))
def test_fetch_4_8_cors_preflight_needs_origin_and_no_method_override(
    issuer: LocalIssuer, adapter: str, case: str
) -> None:
    # Even where preflights reach the app (the unsafe option), these are not preflights.
    ran: list[str] = []
    app = anonymous_options_app(adapter, issuer.verifier(), ran)
    path, headers = NOT_PREFLIGHTS[case]
    runner = run_uvicorn if adapter == "asgi" else run_wsgi
    with runner(app) as base, httpx.Client(base_url=base) as client:
        refused = client.options(path, headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "token_missing"
    assert ran == []  # not a preflight: refused before any app code


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_unsafe_preflight_to_app_passes_only_a_cors_answer(
    issuer: LocalIssuer, adapter: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The old behaviour, by its loud name (and a start-up warning): a real preflight reaches
    # the app without a token, but an answer that is no CORS answer (no
    # Access-Control-Allow-Origin) is replaced by our 401 and its body dropped.
    ran: list[str] = []
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        app = anonymous_options_app(adapter, issuer.verifier(), ran)
        if adapter == "asgi":
            app.build_middleware_stack()
    assert any("unsafe_preflight_to_app=True" in m for m in warnings(caplog))
    paths = ["/admin", "/proxy/x"] if adapter == "asgi" else ["/admin"]
    runner = run_uvicorn if adapter == "asgi" else run_wsgi
    with runner(app) as base, httpx.Client(base_url=base) as client:
        for path in paths:
            refused = client.options(path, headers=PREFLIGHT)
            assert refused.status_code == 401, path
            assert refused.json()["code"] == "token_missing"
            assert b"purged" not in refused.content and b"proxied" not in refused.content
            # An ordinary OPTIONS request with a token gets the app's answer.
            assert client.options(path, headers=bearer(issuer.mint())).status_code == 200
    assert ran  # the app did run without a token: what the option's name says


FETCH = """async ([url, token]) => {
    try {
        const headers = token ? {Authorization: "Bearer " + token} : {};
        const response = await fetch(url, {headers});
        return {status: response.status, body: await response.json(),
                challenge: response.headers.get("www-authenticate")};
    } catch (error) {
        return {error: error.name};
    }
}"""


def flask_api(verifier: Verifier, origin: str) -> Any:
    from flask import Flask, jsonify
    from flask_cors import CORS

    from jwt_guard.flask import JWTGuard, current_principal

    app = Flask(__name__)
    JWTGuard(app, verifier=verifier)
    CORS(
        app, origins=[origin], allow_headers=["authorization"], expose_headers=["www-authenticate"]
    )

    @app.get("/api/me")
    def me() -> Any:
        return jsonify({"sub": current_principal.subject})

    return app


def test_flask_cors_headers_on_our_answers(issuer: LocalIssuer) -> None:
    # The Flask extension answers a rejection inside Flask, so flask-cors's after_request
    # hook puts its headers on our 401 too; the answer itself is unchanged.
    origin = "http://127.0.0.1:1"
    with (
        run_wsgi(flask_api(issuer.verifier(), origin)) as base,
        httpx.Client(base_url=base, headers={"Origin": origin}) as client,
    ):
        preflight = client.options("/api/me", headers=PREFLIGHT)
        assert preflight.headers["access-control-allow-origin"] == origin
        refused = client.get("/api/me", headers=bearer(issuer.mint(expired=True)))
        assert refused.status_code == 401 and refused.json()["code"] == "token_expired"
        assert refused.headers["access-control-allow-origin"] == origin
        assert refused.headers["cache-control"] == "no-store"
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        ok = client.get("/api/me", headers=bearer(issuer.mint(sub="zoe")))
        assert ok.json() == {"sub": "zoe"}


@pytest.fixture
def origins(issuer: LocalIssuer) -> Iterator[dict[str, str]]:
    """The page's origin and an API origin per middleware order (and a Flask API with
    flask-cors): servers on 127.0.0.1, each on its own port (so each is its own origin)."""

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>spa</title><p>single-page app</p>")

    with ExitStack() as stack:
        page_origin = stack.enter_context(run_uvicorn(Starlette(routes=[Route("/", home)])))
        urls = {"page": page_origin}
        for order in ("cors-outside", "cors-inside"):
            app = api(issuer.verifier(), page_origin, order)
            urls[order] = stack.enter_context(run_uvicorn(app))
        urls["flask-cors"] = stack.enter_context(
            run_wsgi(flask_api(issuer.verifier(), page_origin))
        )
        yield urls


@pytest.mark.parametrize("order", ["cors-outside", "cors-inside", "flask-cors"])
def test_cross_origin_fetch_in_chromium(
    page: Any,  # noqa: F811
    origins: dict[str, str],
    issuer: LocalIssuer,
    order: str,
) -> None:
    page.goto(origins["page"] + "/")
    url = origins[order] + "/api/me"
    token = issuer.mint(sub="alice")

    # The Authorization header makes the browser send a preflight first (without it): in
    # both orders it reaches CORSMiddleware instead of getting a 401.
    ok = page.evaluate(FETCH, [url, token])
    assert ok == {"status": 200, "body": {"sub": "alice"}, "challenge": None}

    refused = page.evaluate(FETCH, [url, issuer.mint(expired=True)])
    missing = page.evaluate(FETCH, [url, None])
    if order != "cors-inside":
        # CORSMiddleware wraps our answers too (flask-cors adds its headers to the Flask
        # extension's answers): the page reads the 401 and its challenge.
        assert refused["status"] == 401
        assert refused["body"]["code"] == "token_expired"
        assert 'error="invalid_token"' in refused["challenge"]
        assert missing["status"] == 401 and missing["body"]["code"] == "token_missing"
    else:
        # Our 401 is sent before CORSMiddleware runs: no CORS headers, so the browser hides
        # it (a TypeError in fetch). This is why the README says to add CORSMiddleware last
        # (outermost).
        assert refused == {"error": "TypeError"}
        assert missing == {"error": "TypeError"}


def test_flask_rejection_runs_no_app_code(issuer: LocalIssuer) -> None:
    # The rejection is raised by the first before_request hook: the app's own hooks (even
    # those registered before the extension) and views never run for a refused request.
    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    ran: list[str] = []
    app.before_request(lambda: ran.append("hook"))
    JWTGuard(app, verifier=issuer.verifier())

    @app.get("/api/me")
    def me() -> Any:
        ran.append("view")
        return jsonify({})

    with run_wsgi(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/api/me").status_code == 401
        assert client.get("/nowhere").status_code == 401  # routing comes after us, as before
        assert ran == []
        assert client.get("/api/me", headers=bearer(issuer.mint())).status_code == 200
        assert ran == ["hook", "view"]


def test_issue22_flask_rejection_runs_no_url_value_preprocessor(issuer: LocalIssuer) -> None:
    # Review of issue 22: Flask runs the url_value_preprocessors (the app's and a
    # blueprint's) before any before_request hook, so they ran for a request without a
    # token and for a preflight. They are the app's code: the refusal comes before them now.
    from flask import Blueprint, Flask, jsonify
    from flask_cors import CORS

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    ran: list[str] = []
    app.url_value_preprocessor(lambda endpoint, values: ran.append("app-preprocessor"))
    JWTGuard(app, verifier=issuer.verifier())
    CORS(app, origins=[PREFLIGHT["Origin"]], allow_headers=["authorization"])
    blueprint = Blueprint("bp", __name__, url_prefix="/bp")
    blueprint.url_value_preprocessor(lambda endpoint, values: ran.append("bp-preprocessor"))

    @blueprint.get("/<name>")
    def named(name: str) -> Any:
        ran.append("view")
        return jsonify({})

    app.register_blueprint(blueprint)
    with run_wsgi(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/bp/alice").status_code == 401
        preflight = client.options("/bp/alice", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]
        assert ran == []
        assert client.get("/bp/alice", headers=bearer(issuer.mint())).status_code == 200
        assert ran == ["app-preprocessor", "bp-preprocessor", "view"]
