"""The demo end to end under a real uvicorn server: the API fetches the JWKS over HTTP."""

from __future__ import annotations

import ast
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from jwt_guard import CSRF, MemoryDenylist, Principal
from jwt_guard._tools.demo_issuer import ACCESS_TTL, ALGORITHM, AUDIENCE
from jwt_guard._tools.demo_oauth import s256
from jwt_guard.demo import build_app

from .conftest import FakeClock
from .manual import manual
from .redis_server import free_port
from .servers import run_uvicorn

ROOT = Path(__file__).resolve().parent.parent
DOCS_CLIENT = "jwt-guard-docs"


@pytest.fixture
def demo() -> Iterator[tuple[str, FakeClock]]:
    clock = FakeClock(time.time())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base, clock=clock), port=port) as url:
        assert url == base
        yield base, clock


def password_grant(base: str, user: str) -> httpx.Response:
    return httpx.post(
        f"{base}/token", data={"grant_type": "password", "username": user, "password": user}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_cookie_login_never_puts_tokens_in_the_body(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    with httpx.Client(base_url=base) as browser:
        response = browser.post("/login", json={"username": "alice", "password": "alice"})
        assert response.status_code == 200
        assert response.json() == {"logged_in": True, "sub": "alice", "expires_in": 300}
        access = browser.cookies["access_token"]
        assert access not in response.text and "token" not in response.json()
        cookies = {c.name: c for c in browser.cookies.jar}
        assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
        assert cookies["access_token"].has_nonstandard_attr("HttpOnly")
        assert "samesite=strict" in response.headers.get_list("set-cookie")[0].lower()
        # The page's panels: the decoded token and the JWKS state, never the token.
        session = browser.get("/demo/session")
        assert session.json()["claims"]["sub"] == "alice"
        assert session.json()["header"]["typ"] == "at+jwt"
        state = browser.get("/demo/state").json()
        for body in (session.text, state):
            assert access not in str(body)
        assert state["jwks"]["fetches"] == 1 and state["jwks"]["cached_kids"]
        assert state["settings"]["algorithms"] == ["ES256"]
        assert "def protect_api(" in state["code"] and "JWTGuardMiddleware" in state["code"]
        browser.get("/api/me")
        assert browser.get("/demo/state").json()["jwks"]["cache_hits"] >= 1


async def test_issue25_the_code_panel_runs_as_a_user_copies_it(
    demo: tuple[str, FakeClock],
) -> None:
    # The panel showed a demo-only CountingJWKS subclass: copied, it failed. What it shows is
    # run here as a copy runs: alone in a module, with its own imports (public modules only),
    # protecting an app of its own against the demo's issuer, keys over HTTP.
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    base, clock = demo
    code = httpx.get(f"{base}/demo/state").json()["code"]
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jwt_guard"):
            assert not any(part.startswith("_") for part in (node.module or "").split("."))
    assert "Counting" not in code and "demo_issuer" not in code
    namespace: dict[str, Any] = {"__name__": "copied_from_the_panel"}
    exec(compile(code, "panel.py", "exec"), namespace)  # noqa: S102 - the panel's code
    refusals: list[str] = []

    def on_error(exc: Any, answer: Any) -> Any:
        refusals.append(exc.code)
        return answer

    verifier, middleware, settings = namespace["protect_api"](
        base,
        f"{base}/.well-known/jwks.json",
        MemoryDenylist(clock=clock),
        clock,
        CSRF(secret=secrets.token_bytes(32)),
        ["/health"],
        on_error=on_error,
    )
    assert settings["algorithms"] == [ALGORITHM] and settings["audience"] == AUDIENCE

    async def me(request: Request) -> JSONResponse:
        principal: Principal = request.user
        return JSONResponse({"sub": principal.subject})

    app = Starlette(routes=[Route("/api/me", me)], middleware=[middleware])
    token = password_grant(base, "alice").json()["access_token"]
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            ok = await client.get("/api/me", headers=bearer(token))
            assert ok.status_code == 200 and ok.json() == {"sub": "alice"}
            assert (await client.get("/api/me")).status_code == 401
    finally:
        await verifier.aclose()
    assert verifier.key_sources[0].stats.fetches == 1  # the keys came over HTTP
    assert refusals == ["token_missing"]


def test_issue25_logout_clears_every_cookie_the_demo_sets(demo: tuple[str, FakeClock]) -> None:
    # A demo_session cookie stayed after logout.
    base, _ = demo
    with httpx.Client(base_url=base) as browser:
        login = browser.post("/login", json={"username": "bob", "password": "bob"})
        set_at_login = {c.split("=", 1)[0] for c in login.headers.get_list("set-cookie")}
        out = browser.post("/logout", headers={"X-CSRF-Token": browser.cookies["csrf_token"]})
        assert out.status_code == 200
        cleared = {c.split("=", 1)[0] for c in out.headers.get_list("set-cookie")}
        assert set_at_login <= cleared
        assert list(browser.cookies.jar) == []


def _cookie_names(response: httpx.Response) -> set[str]:
    return {c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")}


@pytest.mark.parametrize("state", ["expired", "revoked", "forged"])
def test_issue25_logout_with_a_dead_token_still_clears_every_cookie(
    demo: tuple[str, FakeClock], state: str
) -> None:
    """Logout with an expired or revoked token was refused 401 by the middleware, and the
    demo's cookies stayed in the browser."""
    base, clock = demo
    with httpx.Client(base_url=base) as browser:
        login = browser.post("/login", json={"username": "bob", "password": "bob"})
        token = browser.cookies["access_token"]
        headers = {"X-CSRF-Token": browser.cookies["csrf_token"]}
        if state == "expired":
            clock.advance(ACCESS_TTL + 120)
        elif state == "revoked":  # by an API client's logout with the same token
            assert httpx.post(f"{base}/logout", headers=bearer(token)).status_code == 200
        else:  # a token nobody signed: only a same-origin request passes the CSRF check
            browser.cookies.set("access_token", token[:-4] + "AAAA", domain="127.0.0.1")
            headers = {"Origin": base}
        assert browser.get("/api/me").status_code == 401
        out = browser.post("/logout", headers=headers)
        assert out.status_code == 200, out.text
        assert out.json() == {"logged_out": True, "revoked_jti": None}
        assert _cookie_names(login) <= _cookie_names(out)
        assert list(browser.cookies.jar) == []


def test_issue25_logout_of_a_dead_token_still_needs_csrf_proof(
    demo: tuple[str, FakeClock],
) -> None:
    """OWASP logout CSRF: /logout passes the middleware to clear a dead token's cookies, and
    checks CSRF first itself: a cross-site request (another Origin, no X-CSRF-Token) is
    refused as the middleware refuses it, and the cookies stay."""
    base, clock = demo
    with httpx.Client(base_url=base) as browser:
        browser.post("/login", json={"username": "bob", "password": "bob"})
        clock.advance(ACCESS_TTL + 120)
        for headers in ({"Origin": "http://127.0.0.1:1"}, {}):
            cross = browser.post("/logout", headers=headers)
            assert cross.status_code == 403 and cross.json()["code"] == "csrf_failed"
            assert _cookie_names(cross) == set()
        assert {"access_token", "csrf_token"} <= set(browser.cookies.keys())
        assert (
            httpx.get(f"{base}/demo/state")
            .json()["refusals"]["newest_last"][-1]
            .startswith("refused csrf_failed (403)")
        )


def test_issue25_the_page_lists_each_refusal_with_its_reason(demo: tuple[str, FakeClock]) -> None:
    # The reasons are for the developer (the page); the client's answer keeps its fixed text.
    base, _ = demo
    before = httpx.get(f"{base}/demo/state").json()["refusals"]
    assert before == {"newest_last": [], "total": 0}
    bob = password_grant(base, "bob").json()["access_token"]
    denied = httpx.get(f"{base}/api/admin", headers=bearer(bob))
    assert denied.status_code == 403 and "'admin'" not in denied.text
    missing = httpx.get(f"{base}/api/me")
    assert missing.status_code == 401
    refusals = httpx.get(f"{base}/demo/state").json()["refusals"]
    assert refusals["total"] == 2
    denied_line, missing_line = refusals["newest_last"]
    # As the getting started page's demo shows it (there across two lines).
    assert denied_line == (
        "refused insufficient_role (403): required=['admin'] mode='all' present=['user'] "
        "missing=['admin']"
    )
    readme = " ".join(manual().split())
    assert f"`{denied_line}` for bob on `/api/admin`" in readme
    assert missing_line.startswith("refused token_missing (401)")
    assert bob not in str(refusals)


def test_token_endpoint_me_admin_logout_revokes(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    response = password_grant(base, "alice")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    token = response.json()["access_token"]
    me = httpx.get(f"{base}/api/me", headers=bearer(token)).json()
    assert me["sub"] == "alice" and me["roles"] == ["admin"]
    assert "orders:write" in me["scopes"]
    assert httpx.get(f"{base}/api/admin", headers=bearer(token)).status_code == 200
    bob = password_grant(base, "bob").json()["access_token"]
    assert httpx.get(f"{base}/api/admin", headers=bearer(bob)).status_code == 403
    assert "orders:write" not in httpx.get(f"{base}/api/me", headers=bearer(bob)).json()["scopes"]
    assert httpx.post(f"{base}/logout", headers=bearer(token)).status_code == 200
    revoked = httpx.get(f"{base}/api/me", headers=bearer(token))
    assert revoked.status_code == 401 and revoked.json()["code"] == "token_revoked"
    assert httpx.get(f"{base}/health").json()["status"] == "ok"


def test_wrong_password_and_bad_bodies(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    bad = httpx.post(f"{base}/login", json={"username": "alice", "password": "bob"})
    assert bad.status_code == 401
    assert httpx.post(f"{base}/login", content=b"[1").status_code == 400
    assert httpx.post(f"{base}/login", json=["x"]).status_code == 400
    wrong = httpx.post(
        f"{base}/token", data={"grant_type": "password", "username": "alice", "password": "x"}
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    other = httpx.post(f"{base}/token", data={"grant_type": "client_credentials"})
    assert other.json()["error"] == "unsupported_grant_type"
    huge = httpx.post(f"{base}/token", content=b"a=" + b"x" * 10000)
    assert huge.status_code == 400
    garbage = httpx.post(f"{base}/token", content=b"\xff\xfe=\x00")
    assert garbage.status_code == 400


def test_refresh_rotates_refresh_tokens(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    refresh = password_grant(base, "bob").json()["refresh_token"]
    grant = {"grant_type": "refresh_token", "refresh_token": refresh}
    first = httpx.post(f"{base}/token", data=grant)
    assert first.status_code == 200 and first.json()["access_token"]
    reused = httpx.post(f"{base}/token", data=grant)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_cookie_refresh_needs_csrf_proof(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    with httpx.Client(base_url=base) as browser:
        browser.post("/login", json={"username": "bob", "password": "bob"})
        before = browser.get("/demo/session").json()["claims"]["jti"]
        cross = browser.post("/refresh", headers={"Origin": "http://127.0.0.1:1"})
        assert cross.status_code == 403 and cross.json()["error"] == "csrf_failed"
        ok = browser.post("/refresh", headers={"X-CSRF-Token": browser.cookies["csrf_token"]})
        assert ok.status_code == 200 and "access_token" not in ok.json()
        assert browser.get("/demo/session").json()["claims"]["jti"] != before


def test_demo_cookies_come_from_set_token_cookies_with_a_bound_csrf_value(
    demo: tuple[str, FakeClock],
) -> None:
    base, _ = demo
    with httpx.Client(base_url=base) as alice, httpx.Client(base_url=base) as bob:
        login = alice.post("/login", json={"username": "alice", "password": "alice"})
        bob.post("/login", json={"username": "bob", "password": "bob"})
        set_cookies = {c.split("=", 1)[0]: c.lower() for c in login.headers.get_list("set-cookie")}
        # The token's own lifetime (300 s), floored: the cookie never outlives the token.
        assert re.search(r"max-age=(299|300);", set_cookies["access_token"])
        assert "path=/refresh" in set_cookies["refresh_token"]
        assert "httponly" not in set_cookies["csrf_token"]
        assert "secure" not in set_cookies["access_token"]  # insecure_loopback=True: 127.0.0.1
        # Bob's CSRF value, planted in Alice's browser and echoed: refused (bound to the token).
        planted = bob.cookies["csrf_token"]
        alice.cookies.delete("csrf_token")
        alice.cookies.set("csrf_token", planted)
        refused = alice.post("/logout", headers={"X-CSRF-Token": planted})
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
        assert bob.post("/logout", headers={"X-CSRF-Token": planted}).status_code == 200
        assert bob.cookies.get("csrf_token") is None  # cleared by clear_token_cookies


def test_logout_then_the_old_token_is_refused_as_revoked(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    with httpx.Client(base_url=base) as browser:
        assert browser.post("/demo/replay-revoked").status_code == 409
        browser.post("/login", json={"username": "alice", "password": "alice"})
        old = browser.cookies["access_token"]
        out = browser.post("/logout", headers={"X-CSRF-Token": browser.cookies["csrf_token"]})
        assert out.status_code == 200 and "access_token" not in browser.cookies
        assert browser.get("/api/me").json()["code"] == "token_missing"
        ref = out.json()["revoked_token_ref"]
        assert old not in out.text and ref not in old
        assert browser.post("/demo/replay-revoked", params={"ref": "other"}).status_code == 409
        replay = browser.post("/demo/replay-revoked", params={"ref": ref})
        body = replay.json()
        assert body["status"] == 401 and body["body"]["code"] == "token_revoked"
        assert 'error="invalid_token"' in body["www_authenticate"]
        assert old not in replay.text


def test_rotate_keys_and_first_token_after_rotation_passes(
    demo: tuple[str, FakeClock],
) -> None:
    base, clock = demo
    old = password_grant(base, "alice").json()["access_token"]
    first_kid = httpx.get(f"{base}/api/me", headers=bearer(old)).json()["kid"]
    bob = password_grant(base, "bob").json()["access_token"]
    denied = httpx.post(f"{base}/admin/rotate-keys", headers=bearer(bob))
    assert denied.status_code == 403
    rotated = httpx.post(f"{base}/admin/rotate-keys", headers=bearer(old))
    assert rotated.status_code == 200
    new_kid = rotated.json()["kid"]
    assert new_kid != first_kid
    jwks = httpx.get(f"{base}/.well-known/jwks.json").json()
    assert {k["kid"] for k in jwks["keys"]} == {first_kid, new_kid}  # old key kept
    clock.advance(3)  # past the demo's 2 s unknown-kid cooldown
    fresh = password_grant(base, "alice").json()["access_token"]
    me = httpx.get(f"{base}/api/me", headers=bearer(fresh))
    assert me.status_code == 200 and me.json()["kid"] == new_kid
    assert httpx.get(f"{base}/api/me", headers=bearer(old)).status_code == 200
    state = httpx.get(f"{base}/demo/state").json()["jwks"]
    assert state["fetches"] == 2 and set(state["cached_kids"]) == {first_kid, new_kid}


def test_discovery_document(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    doc = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert doc["issuer"] == base and doc["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert doc["authorization_endpoint"] == f"{base}/authorize"
    assert doc["token_endpoint"] == f"{base}/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "orders:read" in doc["scopes_supported"]


# -- the authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636) --------------------------

REDIRECT = "http://127.0.0.1:5555/docs/oauth2-redirect"


def authorize_params(verifier: str, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": DOCS_CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "profile orders:write",
        "state": "st-1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return params


def get_code(base: str, verifier: str, user: str = "alice", **overrides: str) -> dict[str, str]:
    params = authorize_params(verifier, **overrides)
    page = httpx.get(f"{base}/authorize", params=params)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    answer = httpx.post(f"{base}/authorize", data={**params, "username": user, "password": user})
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == params["redirect_uri"]
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def exchange(base: str, code: str, verifier: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": DOCS_CLIENT,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    form.update(overrides)
    return httpx.post(f"{base}/token", data=form, headers={"Origin": "http://127.0.0.1:5555"})


def test_authorization_code_with_pkce(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    verifier = secrets.token_urlsafe(48)
    answer = get_code(base, verifier, "bob")
    assert answer["state"] == "st-1" and answer["iss"] == base  # RFC 9207
    tokens = exchange(base, answer["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["access-control-allow-origin"] == "*"
    assert tokens.json()["scope"] == "profile"  # bob may not have orders:write
    me = httpx.get(f"{base}/api/me", headers=bearer(tokens.json()["access_token"])).json()
    assert me["sub"] == "bob" and me["scopes"] == ["profile"]
    preflight = httpx.options(f"{base}/token", headers={"Origin": "http://127.0.0.1:5555"})
    assert (
        preflight.status_code == 204 and "POST" in preflight.headers["access-control-allow-methods"]
    )


def test_rfc7636_wrong_code_verifier_is_refused(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    verifier = secrets.token_urlsafe(48)
    code = get_code(base, verifier)["code"]
    wrong = exchange(base, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # The failed attempt used the code up.
    assert exchange(base, code, verifier).json()["error"] == "invalid_grant"


def test_rfc6749_4_1_2_a_code_works_once_and_a_replay_revokes(
    demo: tuple[str, FakeClock],
) -> None:
    base, _ = demo
    verifier = secrets.token_urlsafe(48)
    code = get_code(base, verifier)["code"]
    token = exchange(base, code, verifier).json()["access_token"]
    assert httpx.get(f"{base}/api/me", headers=bearer(token)).status_code == 200
    replay = exchange(base, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert httpx.get(f"{base}/api/me", headers=bearer(token)).json()["code"] == "token_revoked"


@pytest.mark.parametrize("refreshed", [False, True])
def test_rfc6749_4_1_2_a_replayed_code_revokes_the_refresh_token_and_what_it_refreshed(
    demo: tuple[str, FakeClock], refreshed: bool
) -> None:
    # RFC 6749 §4.1.2, OAuth 2.1 §4.1.3: every token issued with the code, the refresh token
    # included, and (issue 22) every token refreshed from it.
    base, _ = demo
    verifier = secrets.token_urlsafe(48)
    code = get_code(base, verifier)["code"]
    tokens = exchange(base, code, verifier).json()
    access, refresh = [tokens["access_token"]], tokens["refresh_token"]
    if refreshed:
        grant = {"grant_type": "refresh_token", "refresh_token": refresh}
        renewed = httpx.post(f"{base}/token", data=grant).json()
        access.append(renewed["access_token"])
        refresh = renewed["refresh_token"]
    assert all(httpx.get(f"{base}/api/me", headers=bearer(a)).status_code == 200 for a in access)
    assert exchange(base, code, verifier).json()["error"] == "invalid_grant"
    for token in access:
        assert httpx.get(f"{base}/api/me", headers=bearer(token)).json()["code"] == "token_revoked"
    grant = {"grant_type": "refresh_token", "refresh_token": refresh}
    after = httpx.post(f"{base}/token", data=grant)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_rfc6749_4_1_3_code_bound_to_client_and_redirect_uri(
    demo: tuple[str, FakeClock],
) -> None:
    base, clock = demo
    verifier = secrets.token_urlsafe(48)
    code = get_code(base, verifier)["code"]
    other = exchange(
        base, code, verifier, redirect_uri="http://127.0.0.1:6666/docs/oauth2-redirect"
    )
    assert other.json()["error"] == "invalid_grant"
    late = get_code(base, verifier)["code"]
    clock.advance(61)
    assert exchange(base, late, verifier).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/docs/oauth2-redirect",
        "http://127.0.0.1:5555/elsewhere",
        "http://127.0.0.1:5555/docs/oauth2-redirect?x=1",
        "http://user@127.0.0.1:5555/docs/oauth2-redirect",
        "http://127.0.0.1.evil.example/docs/oauth2-redirect",
        "http://127.0.0.1:99999/docs/oauth2-redirect",
    ],
)
def test_rfc6749_4_1_2_1_unregistered_redirect_uri_is_never_followed(
    demo: tuple[str, FakeClock], redirect_uri: str
) -> None:
    base, _ = demo
    params = authorize_params(secrets.token_urlsafe(48), redirect_uri=redirect_uri)
    for answer in (
        httpx.get(f"{base}/authorize", params=params),
        httpx.post(f"{base}/authorize", data={**params, "username": "a", "password": "a"}),
    ):
        assert answer.status_code == 400 and "location" not in answer.headers


@pytest.mark.parametrize(
    "overrides",
    [{"code_challenge_method": "plain"}, {"code_challenge": "short"}, {"response_type": "token"}],
)
def test_rfc7636_s256_pkce_is_required(
    demo: tuple[str, FakeClock], overrides: dict[str, str]
) -> None:
    base, _ = demo
    params = authorize_params(secrets.token_urlsafe(48), **overrides)
    answer = httpx.get(f"{base}/authorize", params=params)
    assert answer.status_code == 303
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"][0] in ("invalid_request", "unsupported_response_type")
    assert query["state"] == ["st-1"]


def test_authorize_wrong_password_shows_the_form_again(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    params = authorize_params(secrets.token_urlsafe(48))
    answer = httpx.post(f"{base}/authorize", data={**params, "username": "bob", "password": "x"})
    assert answer.status_code == 401 and "Wrong username or password" in answer.text
    assert "location" not in answer.headers


def test_port_in_use_is_reported_before_the_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "jwt_guard", "demo", "--port", str(port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert "curl" not in result.stdout and "Bearer" not in result.stdout  # no banner


@contextmanager
def demo_command() -> Iterator[tuple[str, dict[str, str]]]:
    """``python -m jwt_guard demo`` on a free port: its base URL, and after the block its
    output (``stdout``, ``stderr``)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jwt_guard", "demo", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "demo did not start"
            time.sleep(0.1)
        yield base, output
    finally:
        proc.terminate()
        output["stdout"], output["stderr"] = proc.communicate(timeout=30)


def test_jwt_guard_demo_command_serves_the_page_and_the_other_origin() -> None:
    # What `bash scripts/demo.sh` runs: one uvicorn, two sockets (the page, and the other
    # origin for the cross-site button).
    with demo_command() as (base, output):
        state = httpx.get(f"{base}/demo/state").json()
        other = httpx.get(state["cross_site_url"] + "/")
        assert other.status_code == 200 and f'action="{base}/logout"' in other.text
        assert "jwt_guard demo" in httpx.get(f"{base}/").text
        assert password_grant(base, "bob").status_code == 200
    assert "curl -H 'Authorization: Bearer " in output["stdout"]


def test_issue25_demo_command_starts_without_warnings_and_logs_each_reason() -> None:
    # The demo printed a DPoP Host-header warning at start (its settings now pin the URL), and
    # its refusals said nothing in the terminal (it now shows jwt_guard's lines).
    with demo_command() as (base, output):
        bob = password_grant(base, "bob").json()["access_token"]
        assert httpx.get(f"{base}/api/me", headers=bearer(bob)).status_code == 200
        assert httpx.get(f"{base}/api/admin", headers=bearer(bob)).status_code == 403
    err = output["stderr"]
    assert "WARNING" not in err, err
    refused = [line for line in err.splitlines() if "jwt_guard: refused" in line]
    assert len(refused) == 1, err
    assert refused[0].startswith("INFO:") and "insufficient_role (403)" in refused[0]
    assert bob not in err


# -- DPoP (RFC 9449): API clients get tokens bound to their key from POST /token --------------


def test_token_endpoint_binds_tokens_to_the_dpop_key(demo: tuple[str, FakeClock]) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from jwt_guard._core.dpop import jwk_thumbprint
    from jwt_guard._core.parse import parse_compact
    from jwt_guard.testing import dpop_jwk, dpop_proof

    base, clock = demo
    key = ec.generate_private_key(ec.SECP256R1())
    form = {"grant_type": "password", "username": "bob", "password": "bob"}

    def proof_for_token() -> dict[str, str]:
        return {"DPoP": dpop_proof(key, "POST", f"{base}/token", iat=clock.now)}

    headers = proof_for_token()
    issued = httpx.post(f"{base}/token", data=form, headers=headers)
    assert issued.status_code == 200 and issued.json()["token_type"] == "DPoP"
    token = issued.json()["access_token"]
    assert parse_compact(token).payload["cnf"] == {"jkt": jwk_thumbprint(dpop_jwk(key))}
    # The proof was used up, and a proof for another URL is refused (RFC 6749 §5.2 answers).
    again = httpx.post(f"{base}/token", data=form, headers=headers)
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof"
    elsewhere = {"DPoP": dpop_proof(key, "POST", f"{base}/login", iat=clock.now)}
    refused = httpx.post(f"{base}/token", data=form, headers=elsewhere)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
    # The API: the bound token with a fresh proof; never as Bearer.
    me = dpop_proof(key, "GET", f"{base}/api/me", access_token=token, iat=clock.now)
    ok = httpx.get(f"{base}/api/me", headers={"Authorization": f"DPoP {token}", "DPoP": me})
    assert ok.status_code == 200 and ok.json()["sub"] == "bob"
    downgrade = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert downgrade.json()["code"] == "dpop_bound_token_as_bearer"
    # RFC 9449 §5: the refresh token is bound too: it needs a proof of the same key.
    refresh = {"grant_type": "refresh_token", "refresh_token": issued.json()["refresh_token"]}
    stolen = httpx.post(f"{base}/token", data=refresh)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    renewed = httpx.post(f"{base}/token", data=refresh, headers=proof_for_token())
    assert renewed.status_code == 200 and renewed.json()["token_type"] == "DPoP"
    # Without a DPoP header, /token hands out Bearer tokens, as before.
    assert httpx.post(f"{base}/token", data=form).json()["token_type"] == "Bearer"
    discovery = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert "ES256" in discovery["dpop_signing_alg_values_supported"]


async def test_token_endpoint_replay_store_down_is_a_503_not_a_500() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from jwt_guard import MemoryReplayCache
    from jwt_guard.testing import dpop_proof

    # A full memory cache cannot tell a proof as old as the one it dropped from a replay of
    # that one: it refuses (fail closed); a key beyond its share is asked to slow down.
    clock = FakeClock(time.time())
    base = "http://127.0.0.1:9"  # loopback: the demo's URLs may be http (never connected to)
    app = build_app(base, clock=clock, token_replay=MemoryReplayCache(1, clock=clock))
    key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    form = {"grant_type": "password", "username": "bob", "password": "bob"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        # other's proof takes key's place; key's next one, made in the same second, expires no
        # later than the dropped one: for all the cache still knows, it could be its replay.
        for signer, status in ((key, 200), (key, 429), (other, 200), (key, 503)):
            proof = dpop_proof(signer, "POST", f"{base}/token", iat=clock.now)
            answer = await client.post("/token", data=form, headers={"DPoP": proof})
            assert answer.status_code == status, answer.text
            if status != 200:
                assert answer.json()["error"] == "temporarily_unavailable"
                assert answer.headers["Retry-After"] == "1"
