"""The cookie flow in a real headless Chromium (Debian's /usr/bin/chromium, no downloads)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from jwt_guard.demo import build_app, cross_site_app

from .conftest import FakeClock
from .redis_server import free_port
from .servers import run_uvicorn

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def attack_page(target: str) -> str:
    return (
        f'<form id="f" method="POST" action="{target}/logout"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )


@pytest.fixture
def page(tmp_path: Any) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = "chromium is not installed: `bash scripts/test-env.sh` installs it as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context()
        yield context.new_page()
        context.close()
        browser.close()


def wait_status(page: Any, prefix: str) -> None:
    page.wait_for_function(f"document.getElementById('status').textContent.startsWith({prefix!r})")


def wait_output(page: Any, text: str) -> None:
    page.wait_for_function(f"document.getElementById('output').textContent.includes({text!r})")


def jwks_row(page: Any, name: str) -> str:
    return page.text_content(f'#jwks-table tr[data-name="{name}"] td:last-child') or ""


def test_cookie_flow_in_chromium(page: Any) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base), port=port):
        page.goto(base + "/")
        page.fill("#username", "alice")
        page.fill("#password", "alice")
        page.click("#login-button")
        wait_status(page, "200")
        shown = page.text_content("#output") or ""
        assert '"sub": "alice"' in shown

        # The access token is HttpOnly: the page's script cannot read it.
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["access_token"]["httpOnly"] is True
        assert cookies["access_token"]["sameSite"] == "Strict"
        document_cookie = page.evaluate("document.cookie")
        assert "access_token" not in document_cookie
        assert cookies["access_token"]["value"] not in document_cookie
        assert "csrf_token=" in document_cookie

        # A page on a sibling origin (same site, so SameSite cookies still flow) posts a form
        # to /logout: the cookie rides along, the CSRF header cannot, and it is refused.
        attacker_port = free_port()
        attacker = Starlette(routes=[Route("/", lambda r: HTMLResponse(attack_page(base)))])
        with run_uvicorn(attacker, port=attacker_port):
            page.goto(f"http://127.0.0.1:{attacker_port}/")
            page.wait_for_url(base + "/logout")
            body = page.text_content("body") or ""
            assert "csrf_failed" in body
        page.goto(base + "/")
        page.click("#me-button")
        wait_status(page, "200")

        page.click("#admin-button")
        wait_output(page, "Welcome")

        # Logging out (with the CSRF header) clears every cookie the demo set (issue 25: a
        # demo_session cookie stayed) and makes /api/me answer 401.
        page.click("#logout-button")
        wait_output(page, "logged_out")
        assert page.context.cookies() == []
        page.click("#me-button")
        wait_status(page, "401")
        # The hint follows the answer: no claim that the token was verified.
        explain = page.text_content("#explain") or ""
        assert "No valid token (token_missing)" in explain and "verified" not in explain


def test_issue25_logout_with_an_expired_token_clears_the_cookies_in_chromium(page: Any) -> None:
    # The middleware refused an expired token's logout (401) and the cookies stayed.
    clock = FakeClock(time.time())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base, clock=clock), port=port):
        page.goto(base + "/")
        page.fill("#username", "bob")
        page.fill("#password", "bob")
        page.click("#login-button")
        wait_status(page, "200")
        assert {c["name"] for c in page.context.cookies()} >= {"access_token", "csrf_token"}
        clock.advance(420)  # the access token has expired (300 s and the leeway)
        page.click("#logout-button")
        wait_output(page, "logged_out")
        assert "nothing to revoke" in (page.text_content("#explain") or "")
        assert page.context.cookies() == []


def test_demo_page_rotation_needs_the_admin_role(page: Any) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base), port=port):
        page.goto(base + "/")
        page.fill("#username", "bob")
        page.fill("#password", "bob")
        page.click("#login-button")
        wait_status(page, "200")
        page.wait_for_function(
            "document.getElementById('token-claims').textContent.includes('bob')"
        )
        kid = jwks_row(page, "signing kid")
        page.click("#rotate-button")
        wait_output(page, "insufficient_role")
        assert (page.text_content("#status") or "").startswith("403")
        explain = page.text_content("#explain") or ""
        assert "needs the role admin" in explain and "new key" not in explain
        # Issue 25: the page shows the server's reason (the answer keeps its fixed text).
        page.wait_for_function(
            "document.getElementById('reason').textContent.includes('insufficient_role (403)')"
        )
        reason = page.text_content("#reason") or ""
        assert "'admin'" in reason and "'user'" in reason
        assert "'admin'" not in (page.text_content("#output") or "")
        assert "refused insufficient_role (403)" in (page.text_content("#refusals") or "")
        assert jwks_row(page, "signing kid") == kid
        assert "," not in jwks_row(page, "published kids")  # nothing rotated


def test_demo_page_walk_every_button(page: Any, tmp_path: Any) -> None:
    clock = FakeClock(time.time())
    port, cross_port = free_port(), free_port()
    base, cross = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{cross_port}"
    app = build_app(base, clock=clock, cross_site_url=cross)
    with run_uvicorn(app, port=port), run_uvicorn(cross_site_app(base), port=cross_port):
        page.goto(base + "/")
        # Before login: the settings and the code that protects the API are on the page.
        page.wait_for_function("document.getElementById('code').textContent.includes('def ')")
        code = page.text_content("#code") or ""
        assert "from jwt_guard import (" in code and "JWKSKeys(" in code  # what a user copies
        assert "Counting" not in code and "jwt_guard._" not in code
        assert '"ES256"' in (page.text_content("#settings") or "")
        assert "not logged in" in (page.text_content("#token-header") or "")
        assert "no refusal yet" in (page.text_content("#refusals") or "")

        page.fill("#username", "alice")
        page.fill("#password", "alice")
        page.click("#login-button")
        wait_status(page, "200")
        page.wait_for_function(
            "document.getElementById('token-claims').textContent.includes('alice')"
        )
        access = {c["name"]: c for c in page.context.cookies()}["access_token"]["value"]
        claims = page.text_content("#token-claims") or ""
        assert '"jti"' in claims and '"aud": "demo-api"' in claims
        assert '"kid"' in (page.text_content("#token-header") or "")
        first_jti = json_field(claims, "jti")
        # The claims are shown before the page asks for the JWKS panel: wait for the panel of
        # this load (under load the first read could see the one from before the login).
        page.wait_for_function(
            "document.querySelector('#jwks-table tr[data-name=\"JWKS fetches\"]')"
            ".lastChild.textContent === '1'"
        )

        page.click("#me-button")
        wait_output(page, '"roles"')
        page.wait_for_function(
            "document.querySelector('#jwks-table tr[data-name=\"key lookups from the cache\"]')"
            ".lastChild.textContent !== '0'"
        )

        page.click("#refresh-button")
        wait_status(page, "200")
        page.wait_for_function(
            f"!document.getElementById('token-claims').textContent.includes({first_jti!r})"
        )

        # Key rotation: the issuer publishes two keys; the API learns the new one on the
        # first token that uses it (after the 2 s unknown-kid cooldown, moved on by hand).
        old_kid = jwks_row(page, "signing kid")
        page.click("#rotate-button")
        wait_output(page, '"kid"')
        assert "signs with a new key" in (page.text_content("#explain") or "")
        page.wait_for_function(
            "document.querySelector('#jwks-table tr[data-name=\"published kids\"]')"
            ".lastChild.textContent.includes(',')"
        )
        new_kid = jwks_row(page, "signing kid")
        assert new_kid != old_kid
        clock.advance(3)
        page.click("#refresh-button")
        wait_status(page, "200")
        page.wait_for_function(
            f"document.getElementById('token-header').textContent.includes({new_kid!r})"
        )
        page.wait_for_function(
            "document.querySelector('#jwks-table tr[data-name=\"JWKS fetches\"]')"
            ".lastChild.textContent === '2'"
        )
        assert new_kid in jwks_row(page, "kids cached by the API")
        # The new kid was fetched, not refused: the refusals-inside-the-cooldown row stays 0.
        assert jwks_row(page, "unknown kids refused without a fetch (cooldown)") == "0"

        # The cross-site request: a form on another origin posts to /logout; refused.
        page.click("#csrf-button")
        wait_output(page, "csrf_failed")
        page.click("#me-button")
        wait_status(page, "200")  # still logged in

        page.click("#logout-button")
        wait_output(page, "logged_out")
        page.wait_for_function(
            "document.getElementById('token-header').textContent.includes('not logged in')"
        )
        assert page.context.cookies() == []
        page.click("#replay-button")
        wait_output(page, "token_revoked")
        assert '"status": 401' in (page.text_content("#output") or "")
        page.wait_for_function(
            "document.getElementById('reason').textContent.includes('token_revoked (401)')"
        )

        # Never a token in the page, its script's reach or its text.
        assert access not in page.content()
        shot = Path(os.environ.get("JWT_GUARD_SCREENSHOT", str(tmp_path / "demo.png")))
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        for selector in (
            "#actions",
            "#token-panel",
            "#jwks-panel",
            "#settings-panel",
            "#replay-button",
            "#csrf-button",
            "#rotate-button",
            "#refresh-button",
        ):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0, selector
        for text in ("Call with the old token", "Rotate signing key", "token_revoked"):
            assert page.get_by_text(text).first.is_visible(), text


def json_field(text: str, name: str) -> str:
    start = text.index(f'"{name}": "') + len(name) + 5
    return text[start : text.index('"', start)]


def test_docs_login_against_the_demo_in_chromium(
    page: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The demo issuer and the FastAPI example, each under a real uvicorn; /docs logs in with
    # the authorization-code flow (PKCE) in a popup and calls a protected route.
    import importlib
    import sys

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base), port=port):
        for name, value in {
            "JWT_GUARD_ISSUER": base,
            "JWT_GUARD_AUDIENCE": "demo-api",
            "JWT_GUARD_DISCOVERY_URL": base,
            "DOCS_CLIENT_ID": "jwt-guard-docs",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delitem(sys.modules, "examples.fastapi_app", raising=False)
        example = importlib.import_module("examples.fastapi_app")
        api_port = free_port()
        with run_uvicorn(example.create_app(), port=api_port) as api:
            external: list[str] = []
            page.on(
                "request",
                lambda r: external.append(r.url) if "127.0.0.1" not in r.url else None,
            )
            page.goto(api + "/docs")
            page.click("button.authorize")
            oauth = page.locator(".auth-container", has_text="authorizationCode")
            assert oauth.locator('input[data-name="clientId"]').input_value() == "jwt-guard-docs"
            # default_scopes: the example ticks what its routes need (GET /api/orders: orders:read)
            assert oauth.locator('input[data-value="profile"]').is_checked()
            assert oauth.locator('input[data-value="orders:read"]').is_checked()
            assert not oauth.locator('input[data-value="orders:write"]').is_checked()
            with page.expect_popup() as popup_info:
                oauth.locator("button.authorize").click()
            popup = popup_info.value
            popup.wait_for_selector("#username")
            assert popup.url.startswith(base + "/authorize?")
            assert "code_challenge_method=S256" in popup.url
            # audience_param="audience": the API's audience rides on the authorization request
            # (issue 25, item 6: without it, Auth0-like servers issue an opaque token).
            assert "audience=demo-api" in popup.url.split("?", 1)[1].split("&")
            popup.fill("#username", "alice")
            popup.fill("#password", "alice")
            popup.click("#authorize-login")
            # Swagger UI now holds a token: the dialog offers to log out.
            oauth.locator("button", has_text="Logout").wait_for()
            oauth.locator("button.btn-done").click()

            operation = page.locator('.opblock[id$="orders_api_orders_get"]')
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for()
            assert (status.text_content() or "").strip().startswith("200")
            body = operation.locator(".live-responses-table tbody .response-col_description").first
            assert '"for": "alice"' in (body.text_content() or "")
            page.screenshot(
                path=os.environ.get("JWT_GUARD_DOCS_SCREENSHOT", str(tmp_path / "docs.png")),
                full_page=True,
            )
            assert external == []  # Swagger UI's files came from the API itself
