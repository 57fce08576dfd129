"""Cookie helpers: attributes on Starlette and Flask responses, Max-Age from ``exp``, and the
CSRF value bound to the token (a value from another session fails) under ASGI and WSGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jwt_guard import (
    CSRF,
    ConfigurationError,
    JWTGuardMiddleware,
    Verifier,
    bound_csrf_value,
    clear_token_cookies,
    set_token_cookies,
)
from jwt_guard.testing import LocalIssuer

from .servers import run_wsgi

SECRET = b"k" * 32


def cookies_of(headers: list[str]) -> dict[str, dict[str, Any]]:
    """Each Set-Cookie as {name: {value, attribute: value-or-True}} (lower-case attributes)."""
    parsed: dict[str, dict[str, Any]] = {}
    for header in headers:
        name, _, rest = header.partition("=")
        value, *attributes = rest.split(";")
        entry: dict[str, Any] = {"value": value.strip('"')}
        for attribute in attributes:
            key, sep, val = attribute.strip().partition("=")
            entry[key.lower()] = val if sep else True
        parsed[name] = entry
        assert SimpleCookie(header)  # well-formed for a cookie parser too
    return parsed


def starlette_cookies(url: str, **options: Any) -> dict[str, dict[str, Any]]:
    request = Request({"type": "http", "method": "POST", "headers": [], **_url_scope(url)})
    response = Response()
    set_token_cookies(response, options.pop("access"), request=request, **options)
    return cookies_of([v.decode() for k, v in response.raw_headers if k == b"set-cookie"])


def _url_scope(url: str) -> dict[str, Any]:
    parsed = httpx.URL(url)
    return {
        "scheme": parsed.scheme,
        "server": (parsed.host, parsed.port or 443),
        "path": "/",
        "query_string": b"",
        "headers": [(b"host", parsed.netloc)],
    }


def flask_cookies(url: str, **options: Any) -> dict[str, dict[str, Any]]:
    from flask import Flask

    app = Flask(__name__)
    with app.test_request_context(base_url=url):  # the current Flask request is the default
        response = app.make_response("")
        set_token_cookies(response, options.pop("access"), **options)
        return cookies_of(response.headers.getlist("Set-Cookie"))


MAKERS: dict[str, Callable[..., dict[str, dict[str, Any]]]] = {
    "starlette": starlette_cookies,
    "flask": flask_cookies,
}


@pytest.mark.parametrize("framework", MAKERS)
def test_attributes(framework: str, issuer: LocalIssuer) -> None:
    access = issuer.mint(ttl=900)
    refresh = issuer.mint(ttl=86400)
    made = MAKERS[framework](
        "https://api.example.com",
        access=access,
        refresh_token=refresh,
        refresh_path="/auth/refresh",
        clock=issuer.clock,
    )
    assert set(made) == {"access_token", "refresh_token", "csrf_token"}
    access_cookie = made["access_token"]
    assert access_cookie["value"] == access
    assert access_cookie["httponly"] is True and access_cookie["secure"] is True
    assert access_cookie["samesite"].lower() == "lax" and access_cookie["path"] == "/"
    assert access_cookie["max-age"] == "900"  # from the token's exp
    assert made["refresh_token"]["max-age"] == "86400"
    assert made["refresh_token"]["path"] == "/auth/refresh"
    assert made["refresh_token"]["httponly"] is True
    csrf_cookie = made["csrf_token"]
    assert "httponly" not in csrf_cookie  # the page must read it
    assert csrf_cookie["secure"] is True and csrf_cookie["max-age"] == "900"
    assert len(csrf_cookie["value"]) >= 32


LOOPBACK_HTTP = ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]


@pytest.mark.parametrize("framework", MAKERS)
@pytest.mark.parametrize("url", [*LOOPBACK_HTTP, "http://api.example.com", "https://127.0.0.1"])
def test_rfc6265_4_1_2_5_secure_by_default_behind_a_reverse_proxy(
    framework: str, url: str, issuer: LocalIssuer
) -> None:
    # nginx `proxy_pass http://127.0.0.1:8000`: the app sees plain http on loopback while the
    # browser is on https; the cookies stay Secure unless the app opts out.
    made = MAKERS[framework](url, access=issuer.mint())
    assert all("secure" in cookie for cookie in made.values())
    # secure=None meant "decide from the request" before: it is Secure now too.
    made = MAKERS[framework](url, access=issuer.mint(), secure=None)
    assert all("secure" in cookie for cookie in made.values())
    assert all(
        "secure" not in c
        for c in MAKERS[framework](url, access=issuer.mint(), secure=False).values()
    )


@pytest.mark.parametrize("framework", MAKERS)
@pytest.mark.parametrize(
    ("url", "secure"),
    [
        *((url, False) for url in LOOPBACK_HTTP),
        ("http://api.example.com", True),  # plain http elsewhere: Secure all the same
        ("https://127.0.0.1", True),
    ],
)
def test_insecure_loopback_drops_secure_only_on_loopback_http(
    framework: str, url: str, secure: bool, issuer: LocalIssuer
) -> None:
    made = MAKERS[framework](url, access=issuer.mint(), insecure_loopback=True)
    assert all(("secure" in cookie) is secure for cookie in made.values())


@pytest.mark.parametrize("framework", MAKERS)
def test_bound_csrf_value(framework: str, issuer: LocalIssuer) -> None:
    access = issuer.mint()
    made = MAKERS[framework](
        "https://api.example.com", access=access, csrf=CSRF(secret=SECRET), samesite="strict"
    )
    assert made["csrf_token"]["value"] == bound_csrf_value(access, SECRET)
    assert made["access_token"]["samesite"].lower() == "strict"
    # A session cookie for an opaque token without a Max-Age given.
    opaque = MAKERS[framework]("https://a.example", access="opaque-token")
    assert "max-age" not in opaque["access_token"]


def test_clear(issuer: LocalIssuer) -> None:
    response = Response()
    clear_token_cookies(response, secure=True, refresh_path="/auth/refresh")
    made = cookies_of([v.decode() for k, v in response.raw_headers if k == b"set-cookie"])
    assert set(made) == {"access_token", "refresh_token", "csrf_token"}
    assert all(cookie["max-age"] == "0" and cookie["value"] == "" for cookie in made.values())
    assert made["refresh_token"]["path"] == "/auth/refresh"


def test_configuration_errors(issuer: LocalIssuer) -> None:
    with pytest.raises(ConfigurationError):
        CSRF(secret=b"short")
    assert "kkkk" not in repr(CSRF(secret=SECRET))
    with pytest.raises(ConfigurationError):
        set_token_cookies(Response(), issuer.mint(), samesite="none", secure=False)
    with pytest.raises(ConfigurationError):
        set_token_cookies(Response(), issuer.mint(), samesite="sometimes")


# -- the CSRF check with binding, through both adapters ----------------------------------------


def asgi_app(verifier: Verifier, csrf: CSRF) -> Starlette:
    async def login(request: Request) -> Response:
        response = JSONResponse({"ok": True})
        set_token_cookies(
            response,
            request.query_params["token"],
            request=request,
            csrf=csrf,
            insecure_loopback=True,  # served on http://127.0.0.1
        )
        return response

    async def transfer(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    return Starlette(
        routes=[Route("/login", login), Route("/transfer", transfer, methods=["POST"])],
        middleware=[
            Middleware(
                JWTGuardMiddleware,
                verifier=verifier,
                cookie="access_token",
                csrf=csrf,
                exclude=["/login"],
            )
        ],
    )


def wsgi_app(verifier: Verifier, csrf: CSRF) -> Any:
    from flask import Flask, jsonify, request

    from jwt_guard.flask import JWTGuard, current_principal

    app = Flask(__name__)
    JWTGuard(app, verifier=verifier, cookie="access_token", csrf=csrf, exclude=["/login"])

    @app.get("/login")
    def login() -> Any:
        response = jsonify({"ok": True})
        set_token_cookies(response, request.args["token"], csrf=csrf, insecure_loopback=True)
        return response

    @app.post("/transfer")
    def transfer() -> Any:
        return jsonify({"sub": current_principal.subject})

    return app


@pytest.fixture(params=["asgi", "wsgi"])
async def browser_like(
    request: pytest.FixtureRequest, issuer: LocalIssuer
) -> AsyncIterator[Callable[[CSRF], httpx.AsyncClient]]:
    """A client per session (its own cookie jar), on the ASGI or the WSGI adapter."""
    clients: list[httpx.AsyncClient] = []
    servers = []

    def make(csrf: CSRF) -> httpx.AsyncClient:
        verifier = issuer.verifier()
        if request.param == "asgi":
            transport = httpx.ASGITransport(app=asgi_app(verifier, csrf))
            client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
        else:
            server = run_wsgi(wsgi_app(verifier, csrf))
            servers.append(server)
            client = httpx.AsyncClient(base_url=server.__enter__())
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for server in servers:
        server.__exit__(None, None, None)


async def sessions(
    make: Callable[[CSRF], httpx.AsyncClient], issuer: LocalIssuer, csrf: CSRF
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Two logged-in sessions on one app: the victim's and the attacker's."""
    victim = make(csrf)
    attacker = httpx.AsyncClient(transport=victim._transport, base_url=victim.base_url)
    for client, sub in ((victim, "victim"), (attacker, "attacker")):
        response = await client.get("/login", params={"token": issuer.mint(sub=sub)})
        assert response.status_code == 200
    return victim, attacker


async def test_bound_csrf_value_passes(
    browser_like: Callable[[CSRF], httpx.AsyncClient], issuer: LocalIssuer
) -> None:
    victim, attacker = await sessions(browser_like, issuer, CSRF(secret=SECRET))
    echoed = victim.cookies["csrf_token"]
    ok = await victim.post("/transfer", headers={"X-CSRF-Token": echoed})
    assert ok.json() == {"sub": "victim"}
    missing = await victim.post("/transfer")
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"
    await attacker.aclose()


async def test_rfc6265_8_6_csrf_value_from_another_session_fails(
    browser_like: Callable[[CSRF], httpx.AsyncClient], issuer: LocalIssuer
) -> None:
    # RFC 6265 §8.6 (weak integrity): a sibling subdomain can plant a csrf_token cookie in the
    # victim's browser. The attacker plants its own session's value and sends it in the header
    # too: with binding on, only the value bound to the victim's own token passes.
    victim, attacker = await sessions(browser_like, issuer, CSRF(secret=SECRET))
    planted = attacker.cookies["csrf_token"]
    victim.cookies.delete("csrf_token")  # the planted cookie is the only one sent
    victim.cookies.set("csrf_token", planted)
    refused = await victim.post("/transfer", headers={"X-CSRF-Token": planted})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    forged = await victim.post("/transfer", headers={"X-CSRF-Token": "anything"})
    assert forged.status_code == 403
    await attacker.aclose()


async def test_unbound_csrf_accepts_any_echoed_value(
    browser_like: Callable[[CSRF], httpx.AsyncClient], issuer: LocalIssuer
) -> None:
    # Why binding matters: without a secret, the double-submit check only compares the cookie
    # with the header, so a planted pair passes.
    victim, attacker = await sessions(browser_like, issuer, CSRF())
    planted = attacker.cookies["csrf_token"]
    victim.cookies.delete("csrf_token")  # the planted cookie is the only one sent
    victim.cookies.set("csrf_token", planted)
    passed = await victim.post("/transfer", headers={"X-CSRF-Token": planted})
    assert passed.json() == {"sub": "victim"}
    await attacker.aclose()
