"""The demo's HTML besides the page (``demo_static/index.html``): the issuer's login form
and its refusal, and the page on another origin that tries a cross-site request.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .demo_oauth import AuthorizationRequest, OAuthError

__all__ = ["cross_site_app", "login_page", "redirect_error"]


def login_page(request: AuthorizationRequest, error: str = "") -> HTMLResponse:
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
        for name, value in {
            "response_type": "code",
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "scope": request.scope,
            "state": request.state,
            "code_challenge": request.code_challenge,
            "code_challenge_method": "S256",
        }.items()
    )
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Log in — jwt_guard demo issuer</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto}}
input,button{{display:block;font-size:1rem;margin:.4rem 0;padding:.3rem .6rem}}
.error{{color:#b00}}</style></head><body>
<h1>jwt_guard demo issuer</h1>
<p><b>{html.escape(request.client_id)}</b> asks for: <code>{html.escape(request.scope)}</code></p>
{message}<form method="post" action="/authorize">{fields}
<input name="username" id="username" placeholder="username" autocomplete="username">
<input name="password" id="password" type="password" placeholder="password">
<button type="submit" id="authorize-login">Log in</button></form>
<p>alice / alice (admin) · bob / bob (user)</p></body></html>""",
        status_code=401 if error else 200,
        # The login form must not be framed by another site (clickjacking).
        headers={"X-Frame-Options": "DENY", "Cache-Control": "no-store"},
    )


def redirect_error(request_params: Mapping[str, str], error: OAuthError) -> Response:
    if not error.redirect:
        return HTMLResponse(
            f"<h1>Authorization refused</h1><p>{html.escape(error.description)}</p>",
            status_code=400,
        )
    query = {"error": error.error, "error_description": error.description}
    if request_params.get("state"):
        query["state"] = request_params["state"]
    return RedirectResponse(f"{request_params['redirect_uri']}?{urlencode(query)}", status_code=303)


def cross_site_app(target: str) -> Starlette:
    """A page on another origin of the same site that posts a form to ``{target}/logout``.

    The browser sends the SameSite=Strict cookies along (same site: only the port differs),
    but it cannot add the X-CSRF-Token header, and the Origin is not the API's: refused.
    """

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><title>another origin</title><p>A page on another origin posts a "
            f"form to {html.escape(target)}/logout …</p>"
            f'<form id="f" method="POST" action="{html.escape(target)}/logout"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )

    return Starlette(routes=[Route("/", page)])
