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
from starlette.routing import Route

from jwt_guard import JWTGuardMiddleware, JWTGuardWSGIMiddleware, Verifier
from jwt_guard.testing import LocalIssuer

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
        return JSONResponse({"anonymous": not request.user.is_authenticated})

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


@pytest.fixture
def origins(issuer: LocalIssuer) -> Iterator[dict[str, str]]:
    """The page's origin and an API origin per middleware order: three uvicorn servers on
    127.0.0.1, each on its own port (so each is its own origin)."""

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>spa</title><p>single-page app</p>")

    with ExitStack() as stack:
        page_origin = stack.enter_context(run_uvicorn(Starlette(routes=[Route("/", home)])))
        urls = {"page": page_origin}
        for order in ("cors-outside", "cors-inside"):
            app = api(issuer.verifier(), page_origin, order)
            urls[order] = stack.enter_context(run_uvicorn(app))
        yield urls


@pytest.mark.parametrize("order", ["cors-outside", "cors-inside"])
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
    if order == "cors-outside":
        # CORSMiddleware wraps our answers too: the page reads the 401 and its challenge.
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
