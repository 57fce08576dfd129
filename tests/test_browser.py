"""The cookie flow in a real headless Chromium (Debian's /usr/bin/chromium, no downloads)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from jwt_guard.demo import build_app

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
        message = "chromium is not installed: `bash scripts/test-deps.sh` installs it as root"
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


def test_cookie_flow_in_chromium(page: Any) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base), port=port):
        page.goto(base + "/")
        page.fill("#username", "alice")
        page.fill("#password", "alice")
        page.click("#login-button")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('200')")
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
        page.wait_for_function("document.getElementById('status').textContent.startsWith('200')")

        page.click("#admin-button")
        page.wait_for_function("document.getElementById('output').textContent.includes('Welcome')")

        # Logging out (with the CSRF header) makes /api/me answer 401.
        page.click("#logout-button")
        page.wait_for_function(
            "document.getElementById('output').textContent.includes('logged_out')"
        )
        page.click("#me-button")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('401')")
        assert "access_token" not in {c["name"] for c in page.context.cookies()}

        page.screenshot(path=os.environ.get("JWT_GUARD_SCREENSHOT", "/tmp/jwt_guard_demo.png"))
