"""The runnable demo: an issuer and an API guarded by jwt_guard, in one process on loopback.

The API does not share memory with the issuer for keys: its :class:`JWKSKeys` fetches the
issuer's JWKS over real HTTP, exactly as it would from an identity provider. Only the
denylist is shared (as Redis would be between instances).

    jwt-guard demo            # http://127.0.0.1:8000
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ._authz import require_roles
from ._denylist import MemoryDenylist
from ._errors import CSRFFailed
from ._extract import CSRF, check_csrf
from ._jwks import JWKSKeys
from ._principal import Principal
from ._signing import PrivateKey, encode, generate_key, public_jwk
from ._verifier import Verifier
from .asgi import JWTGuardMiddleware
from .asgi import _view as request_view

__all__ = ["DemoIssuer", "build_app", "run"]

#: Demo users: name -> (password, roles). Printed at start: this is a demo, not a user store.
USERS: Final = {"alice": ("alice", ("admin",)), "bob": ("bob", ("user",))}
ACCESS_TTL: Final = 300
REFRESH_TTL: Final = 3600
AUDIENCE: Final = "demo-api"
ALGORITHM: Final = "ES256"


class DemoIssuer:
    """A tiny token issuer: signing keys with rotation, access and refresh tokens."""

    def __init__(self, issuer: str, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.clock = clock
        self._lock = threading.Lock()
        # kid -> (key, retire_at): a replaced key stays published until its tokens expire.
        self._keys: dict[str, tuple[PrivateKey, float]] = {}
        self._current = ""
        self._refresh: dict[str, tuple[str, float]] = {}
        self.rotate()

    @property
    def kid(self) -> str:
        return self._current

    def rotate(self) -> str:
        with self._lock:
            now = self.clock()
            if self._current:
                key, _ = self._keys[self._current]
                self._keys[self._current] = (key, now + ACCESS_TTL + 60)
            self._current = f"demo-{uuid.uuid4().hex[:8]}"
            self._keys[self._current] = (generate_key(ALGORITHM), float("inf"))
            self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            return self._current

    def jwks(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "keys": [
                public_jwk(key, kid=kid, alg=ALGORITHM)
                for kid, (key, retire) in self._keys.items()
                if retire > now
            ]
        }

    def access_token(self, username: str) -> str:
        now = int(self.clock())
        roles = list(USERS[username][1])
        claims = {
            "iss": self.issuer,
            "sub": username,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ACCESS_TTL,
            "jti": uuid.uuid4().hex,
            "roles": roles,
            "scope": "profile orders:read" + (" orders:write" if "admin" in roles else ""),
            "preferred_username": username.title(),
        }
        key = self._keys[self._current][0]
        # RFC 9068 §2.1: access tokens are typed "at+jwt".
        return encode(claims, key, ALGORITHM, header={"typ": "at+jwt", "kid": self._current})

    def refresh_token(self, username: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh[token] = (username, self.clock() + REFRESH_TTL)
        return token

    def use_refresh_token(self, token: str) -> str | None:
        """The user of a refresh token, which is used up (rotation)."""
        with self._lock:
            entry = self._refresh.pop(token, None)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def forget_user(self, username: str) -> None:
        with self._lock:
            self._refresh = {t: v for t, v in self._refresh.items() if v[0] != username}

    def check_password(self, username: object, password: object) -> str | None:
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        expected = USERS.get(username, ("\x00invalid", ()))[0]
        ok = hmac.compare_digest(password.encode(), expected.encode())
        return username if ok and username in USERS else None


def _session_response(issuer: DemoIssuer, username: str) -> JSONResponse:
    access = issuer.access_token(username)
    refresh = issuer.refresh_token(username)
    response = JSONResponse(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "refresh_token": refresh,
        },
        headers={"Cache-Control": "no-store"},
    )
    # The access token lives in an HttpOnly cookie: page scripts (and XSS) cannot read it.
    response.set_cookie(
        "access_token", access, max_age=ACCESS_TTL, httponly=True, samesite="strict", path="/"
    )
    response.set_cookie(
        "refresh_token",
        refresh,
        max_age=REFRESH_TTL,
        httponly=True,
        samesite="strict",
        path="/refresh",
    )
    # Double-submit CSRF token: readable by the page, echoed in X-CSRF-Token.
    response.set_cookie(
        "csrf_token", secrets.token_urlsafe(24), max_age=REFRESH_TTL, samesite="strict", path="/"
    )
    return response


def _clear_session(response: Response) -> Response:
    response.delete_cookie("access_token", path="/")
    response.delete_cookie("refresh_token", path="/refresh")
    response.delete_cookie("csrf_token", path="/")
    return response


def build_app(
    base_url: str, *, jwks_url: str | None = None, clock: Callable[[], float] = time.time
) -> Starlette:
    """The demo: issuer endpoints, the guarded API and the HTML page, in one Starlette app."""
    issuer = DemoIssuer(base_url, clock=clock)
    denylist = MemoryDenylist(clock=clock)
    keys = JWKSKeys(
        jwks_url or f"{base_url}/.well-known/jwks.json",
        default_ttl=60,
        min_ttl=10,
        cooldown=2,  # short, so a rotated key is picked up within seconds in the demo
        clock=clock,
    )
    verifier = Verifier(
        keys=keys,
        algorithms=[ALGORITHM],
        issuer=base_url,
        audience=AUDIENCE,
        typ="at+jwt",
        denylist=denylist,
        clock=clock,
    )
    csrf = CSRF()

    page_html = (Path(__file__).parent / "demo_static" / "index.html").read_text("utf-8")

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html)

    async def login(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        username = issuer.check_password(body.get("username"), body.get("password"))
        if username is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=401)
        return _session_response(issuer, username)

    async def refresh(request: Request) -> Response:
        token: object = None
        try:
            body = await request.json()
            token = body.get("refresh_token") if isinstance(body, dict) else None
        except ValueError:
            token = None
        if token is None:
            token = request.cookies.get("refresh_token")
            # The same view the middleware builds for its own CSRF check.
            view = request_view(request.scope, [], request.headers.getlist("cookie"))
            try:
                check_csrf(view, csrf)
            except CSRFFailed:
                return JSONResponse({"error": "csrf_failed"}, status_code=403)
        username = issuer.use_refresh_token(token) if isinstance(token, str) else None
        if username is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=401)
        return _session_response(issuer, username)

    async def logout(request: Request) -> Response:
        principal: Principal = request.user
        await verifier.arevoke(principal)  # this token is dead everywhere from now on
        if principal.subject:
            issuer.forget_user(principal.subject)
        return _clear_session(JSONResponse({"logged_out": True}))

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(issuer.jwks(), headers={"Cache-Control": "max-age=60"})

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": base_url,
                "jwks_uri": f"{base_url}/.well-known/jwks.json",
                "token_endpoint": f"{base_url}/login",
                "id_token_signing_alg_values_supported": [ALGORITHM],
            }
        )

    @require_roles("admin")
    async def rotate(request: Request) -> JSONResponse:
        return JSONResponse({"kid": issuer.rotate()})

    async def me(request: Request) -> JSONResponse:
        principal: Principal = request.user
        return JSONResponse(
            {
                "sub": principal.subject,
                "name": principal.display_name,
                "roles": sorted(principal.roles),
                "scopes": sorted(principal.scopes),
                "expires_at": principal.expires_at,
                "kid": principal.header.get("kid"),
            }
        )

    @require_roles("admin")
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"message": f"Welcome, administrator {request.user.display_name}."})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "jwks": keys.stats.key_ids})

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/login", login, methods=["POST"]),
            Route("/refresh", refresh, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks),
            Route("/.well-known/openid-configuration", discovery),
            Route("/admin/rotate-keys", rotate, methods=["POST"]),
            Route("/api/me", me),
            Route("/api/admin", admin),
            Route("/health", health),
        ],
        middleware=[
            Middleware(
                JWTGuardMiddleware,
                verifier=verifier,
                cookie="access_token",
                exclude=["/", "/login", "/refresh", "/health", "/.well-known/*"],
                realm="jwt_guard demo",
                # The API fetches keys from this same server: it cannot before it listens.
                prefetch=False,
            )
        ],
    )
    app.state.issuer = issuer
    app.state.verifier = verifier
    return app


def run(host: str = "127.0.0.1", port: int = 8000) -> None:  # pragma: no cover - interactive
    """Start the demo and print how to use it."""
    import uvicorn

    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    base_url = f"http://{local}:{port}"
    app = build_app(base_url)
    issuer: DemoIssuer = app.state.issuer
    token = issuer.access_token("alice")
    print(
        f"""
jwt_guard demo — an issuer and an API protected by JWTGuardMiddleware

  page        {base_url}/
  login       POST {base_url}/login   {{"username": "alice", "password": "alice"}}
  API         {base_url}/api/me   {base_url}/api/admin   {base_url}/health
  JWKS        {base_url}/.well-known/jwks.json   (the API fetches it over HTTP)

  users       alice / alice  (role admin)      bob / bob  (role user)

  try it (token valid for {ACCESS_TTL // 60} minutes):
    curl -H 'Authorization: Bearer {token}' {base_url}/api/me
""",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
