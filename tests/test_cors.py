"""CORS with the middleware: preflights pass through to the app, and a real cross-origin
``fetch`` in headless Chromium from one uvicorn origin to another, with ``CORSMiddleware``
outside and inside ``JWTGuardMiddleware``."""

from __future__ import annotations

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


async def test_asgi_preflight_reaches_the_app(issuer: LocalIssuer) -> None:
    seen: list[str] = []

    async def me(request: Request) -> JSONResponse:
        seen.append(request.method)
        return JSONResponse(
            {"anonymous": not request.user.is_authenticated},
            headers={"Access-Control-Allow-Origin": PREFLIGHT["Origin"]},
        )

    app = Starlette(
        routes=[Route("/me", me, methods=["GET", "OPTIONS"])],
        middleware=[Middleware(JWTGuardMiddleware, verifier=issuer.verifier())],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        preflight = await client.options("/me", headers=PREFLIGHT)
        assert preflight.json() == {"anonymous": True}
        # A plain OPTIONS (not a preflight) still needs a token.
        assert (await client.options("/me")).status_code == 401
    assert seen == ["OPTIONS"]


def test_wsgi_preflight_reaches_the_app(issuer: LocalIssuer) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("204 No Content", [("Access-Control-Allow-Origin", "http://127.0.0.1:1")])
        return [b""]

    wrapped = JWTGuardWSGIMiddleware(app, verifier=issuer.verifier())
    with run_wsgi(wrapped) as base, httpx.Client(base_url=base) as client:
        assert client.options("/me", headers=PREFLIGHT).status_code == 204
        assert client.options("/me").status_code == 401


#: Requests that look like a preflight to a lax check but are not one (Fetch §4.8: a
#: CORS-preflight request has an ``Origin`` and ``Access-Control-Request-Method``; a method
#: override would make a framework run another method).
NOT_PREFLIGHTS = {
    "no-origin": ("/admin", {"Access-Control-Request-Method": "DELETE"}),
    "override-header": ("/admin", {**PREFLIGHT, "X-HTTP-Method-Override": "DELETE"}),
    "override-query": ("/admin?_method=DELETE", PREFLIGHT),
}


def anonymous_options_app(adapter: str, verifier: Verifier, ran: list[str]) -> Any:
    """A route that handles OPTIONS itself (and a catch-all mount under ASGI), answering
    without CORS headers: app code a preflight must not turn into an anonymous answer."""
    if adapter == "wsgi":
        from flask import Flask

        flask = Flask(__name__)

        @flask.route("/admin", methods=["POST", "OPTIONS"])
        def admin() -> str:
            ran.append("admin")
            return "purged"

        flask.wsgi_app = JWTGuardWSGIMiddleware(  # type: ignore[method-assign]
            flask.wsgi_app, verifier=verifier
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
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier)],
    )


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
@pytest.mark.parametrize("case", sorted(NOT_PREFLIGHTS))
def test_fetch_4_8_cors_preflight_needs_origin_and_no_method_override(
    issuer: LocalIssuer, adapter: str, case: str
) -> None:
    ran: list[str] = []
    app = anonymous_options_app(adapter, issuer.verifier(), ran)
    path, headers = NOT_PREFLIGHTS[case]
    runner = run_uvicorn if adapter == "asgi" else run_wsgi
    with runner(app) as base, httpx.Client(base_url=base) as client:
        refused = client.options(path, headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "token_missing"
    assert ran == []  # not a preflight: refused before any app code


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_fetch_4_8_cors_preflight_passes_only_a_cors_answer(
    issuer: LocalIssuer, adapter: str
) -> None:
    # A real preflight reaches the app without a token, but an answer that is no CORS
    # answer (no Access-Control-Allow-Origin) is replaced by our 401: a route handling
    # OPTIONS, or a catch-all mount, cannot answer anonymously.
    ran: list[str] = []
    app = anonymous_options_app(adapter, issuer.verifier(), ran)
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
