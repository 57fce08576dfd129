"""The runnable demo: an issuer and an API guarded by jwt_guard, in one process on loopback.

The API does not share memory with the issuer for keys: its :class:`JWKSKeys` fetches the
issuer's JWKS over real HTTP, exactly as it would from an identity provider. Only the
denylist is shared (as Redis would be between instances).

    jwt-guard demo            # http://127.0.0.1:8000
"""

from __future__ import annotations

import copy
import errno
import inspect
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._core.dpop import DPoP
from ._core.dpop_replay import ReplayCache
from ._core.errors import (
    ConfigurationError,
    CSRFFailed,
    DPoPProofMissing,
    DPoPRateLimited,
    DPoPReplayUnavailable,
    InvalidDPoPProof,
    JWTGuardError,
)
from ._core.extras import MissingExtra
from ._core.keyset import KeySet
from ._core.log import refusal_text
from ._core.principal import Principal
from ._core.revocation import MemoryDenylist
from ._http.answer import Answer
from ._http.authz import require_roles
from ._http.cookies import clear_token_cookies, set_token_cookies
from ._http.extract import CSRF, check_csrf
from ._http.request import ASGIRequest
from ._http.resolve import answer_for, asgi_response, resolve
from ._sources.jwks import JWKSKeys
from ._sources.verifier import Verifier
from ._tools.demo_issuer import (
    ACCESS_TTL,
    ALGORITHM,
    REFRESH_TTL,
    SCOPES,
    DemoIssuer,
    allowed_scopes,
)
from ._tools.demo_oauth import CodeStore, Grant, OAuthError, parse_authorization_request
from ._tools.demo_page import cross_site_app, login_page, redirect_error
from .asgi import JWTGuardMiddleware

__all__ = ["DemoIssuer", "build_app", "cross_site_app", "protect_api", "run"]


class _CacheHits:
    """The key lookups the API's key source answered from its cache, for the page's keys
    panel: counted around the source :func:`protect_api` made (the page shows that function
    as a user copies it, with the public ``JWKSKeys``)."""

    def __init__(self, keys: JWKSKeys) -> None:
        self.count = 0
        ready, akeys = keys.ready, keys.akeys

        def counted_ready(kid: str | None) -> KeySet | None:
            key_set = ready(kid)
            if key_set is not None:
                self.count += 1
            return key_set

        async def counted_akeys(kid: str | None) -> KeySet:
            before = keys.stats.fetches
            key_set = await akeys(kid)
            if keys.stats.fetches == before:
                self.count += 1
            return key_set

        keys.ready = counted_ready  # type: ignore[method-assign]
        keys.akeys = counted_akeys  # type: ignore[method-assign]


#: How many refusals the page lists (the newest).
_REFUSALS_SHOWN: Final = 8

#: Paths of the issuer and of the page: the middleware lets them through unauthenticated.
PUBLIC_PATHS: Final = (
    "/",
    "/login",
    "/refresh",
    "/logout",  # checks CSRF itself, then clears the cookies even for a dead token
    "/token",
    "/authorize",
    "/health",
    "/demo/state",
    "/demo/replay-revoked",
    "/.well-known/*",
)


#: The imports of :func:`protect_api` as a user writes them: the page shows them above its
#: source, and tests/test_demo.py runs the two together against the public API.
PROTECT_API_IMPORTS: Final = """\
from collections.abc import Callable, Sequence
from typing import Any

from starlette.middleware import Middleware

from jwt_guard import (
    CSRF,
    Answer,
    DPoP,
    JWKSKeys,
    JWTGuardError,
    JWTGuardMiddleware,
    MemoryDenylist,
    Verifier,
)
"""


def protect_api(
    base_url: str,
    jwks_url: str,
    denylist: MemoryDenylist,
    clock: Callable[[], float],
    csrf: CSRF,
    public_paths: Sequence[str],
    on_error: Callable[[JWTGuardError, Answer], Answer] | None = None,
) -> tuple[Verifier, Middleware, dict[str, Any]]:
    """How the demo's API is protected.

    ``on_error`` sees each refusal and its reason (the demo's page lists them; jwt_guard's log
    says them too)."""
    keys = JWKSKeys(
        jwks_url,  # fetched over HTTP, as from an identity provider
        default_ttl=60,
        min_ttl=10,
        cooldown=2,  # short, so that a rotated key is picked up within seconds
        clock=clock,
    )
    settings: dict[str, Any] = {
        "algorithms": ["ES256"],
        "issuer": base_url,
        "audience": "demo-api",
        "typ": "at+jwt",  # RFC 9068 access tokens
    }
    verifier = Verifier(
        keys=keys,
        denylist=denylist,
        clock=clock,
        # Bearer tokens (the page's cookie) and DPoP-bound ones (API clients, RFC 9449); a
        # proof's htu is checked against the API's public URL, not the Host header.
        dpop=DPoP(external_url=base_url),
        **settings,
    )
    middleware = Middleware(
        JWTGuardMiddleware,
        verifier=verifier,
        cookie="access_token",  # besides Authorization: Bearer; unsafe methods need CSRF proof
        csrf=csrf,  # CSRF(secret=...): only the CSRF value bound to the session's token passes
        exclude=list(public_paths),  # no token needed (the issuer's endpoints, the page)
        realm="jwt_guard demo",
        on_error=on_error,
        prefetch=False,  # the keys come from this same server: it cannot fetch before it listens
    )
    return verifier, middleware, settings


def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = {**_TOKEN_HEADERS, "Cache-Control": "no-store"}
    if error.status in (429, 503):
        headers["Retry-After"] = "1"
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status,
        headers=headers,
    )


# The token endpoint answers API clients and browser apps on other origins (Swagger UI on
# another port): no cookies are involved, so any origin may read the answer.
_TOKEN_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, DPoP, X-Requested-With",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
}
_MAX_FORM: Final = 8192
_AUTHORIZE_FIELDS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (first value of each field)."""
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise OAuthError("invalid_request", "body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "not a form body") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def build_app(
    base_url: str,
    *,
    jwks_url: str | None = None,
    clock: Callable[[], float] = time.time,
    cross_site_url: str | None = None,
    token_replay: ReplayCache | None = None,
) -> Starlette:
    """The demo: issuer endpoints, the guarded API and the HTML page, in one Starlette app.

    ``cross_site_url`` is where :func:`cross_site_app` is served, for the page's cross-site
    request button. ``token_replay`` is the token endpoint's DPoP replay cache (in memory by
    default).
    """
    issuer = DemoIssuer(base_url, clock=clock)
    codes = CodeStore(clock=clock)
    denylist = MemoryDenylist(clock=clock)
    jwks_url = jwks_url or f"{base_url}/.well-known/jwks.json"
    # The CSRF value is bound to the access token by an HMAC under this key (a fresh one per
    # run: a restart logs everyone out anyway, the signing keys being fresh too).
    csrf = CSRF(secret=secrets.token_bytes(32))
    # The refusals and their reasons, newest last, for the page (the developer's view: the
    # answers to clients keep their fixed texts).
    refusals: deque[str] = deque(maxlen=_REFUSALS_SHOWN)
    refused = [0]  # how many so far, for the page to tell a new one

    def remember_refusal(exc: JWTGuardError, answer: Answer) -> Answer:
        refusals.append(refusal_text(exc))
        refused[0] += 1
        return answer

    verifier, guard, settings = protect_api(
        base_url, jwks_url, denylist, clock, csrf, PUBLIC_PATHS, on_error=remember_refusal
    )
    keys = cast(JWKSKeys, verifier.key_sources[0])  # the one protect_api made
    cache_hits = _CacheHits(keys)
    code_snippet = f"{PROTECT_API_IMPORTS}\n\n{inspect.getsource(protect_api)}"
    # Revoked tokens, kept server-side for the "call with the old token" button: the page
    # never sees a token, only a random reference to it that the logout answer carries (every
    # cookie is gone by then). Bounded.
    revoked: dict[str, str] = {}

    page_html = (Path(__file__).parent / "demo_static" / "index.html").read_text("utf-8")

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html, headers={"X-Frame-Options": "DENY"})

    # The token endpoint checks the DPoP proofs sent to it, with its own replay cache.
    token_dpop = DPoP(replay=token_replay)

    def tokens_response(
        username: str, scope: str | None = None, jkt: str | None = None, family: str | None = None
    ) -> JSONResponse:
        """Tokens for an API client. ``family``: the authorization code they descend from
        (directly or through refresh tokens), which revokes them all if it is replayed."""
        access = issuer.access_token(username, scope, jkt=jkt)
        if family is not None:
            codes.bind(family, access)
        body: dict[str, Any] = {
            "access_token": access,
            # RFC 9449 §5: "DPoP" tells the client its tokens are bound to its key.
            "token_type": "DPoP" if jkt is not None else "Bearer",
            "expires_in": ACCESS_TTL,
            "refresh_token": issuer.refresh_token(username, scope, jkt=jkt, family=family),
        }
        if scope is not None:
            body["scope"] = scope
        # RFC 6749 §5.1: token answers are never cached.
        headers = {**_TOKEN_HEADERS, "Cache-Control": "no-store", "Pragma": "no-cache"}
        return JSONResponse(body, headers=headers)

    # The cookies: the access and refresh tokens HttpOnly (page scripts, and XSS, cannot read
    # them), SameSite=Strict; the refresh token only sent to /refresh; Max-Age from each
    # token's lifetime; the CSRF cookie (readable, echoed in X-CSRF-Token) bound to the token.
    # The demo serves plain http on 127.0.0.1: it opts out of Secure there, explicitly.
    cookie_settings: dict[str, Any] = {
        "refresh_path": "/refresh",
        "samesite": "strict",
        "insecure_loopback": True,
    }

    def session_response(request: Request, username: str) -> Response:
        # The cookie login: the tokens go into cookies only, never into the page's JSON.
        response = JSONResponse(
            {"logged_in": True, "sub": username, "expires_in": ACCESS_TTL},
            headers={"Cache-Control": "no-store"},
        )
        set_token_cookies(
            response,
            issuer.access_token(username),
            refresh_token=issuer.refresh_token(username),
            refresh_max_age=REFRESH_TTL,  # an opaque token: no exp to read
            request=request,
            csrf=csrf,
            clock=clock,
            **cookie_settings,
        )
        return response

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
        return session_response(request, username)

    async def refresh(request: Request) -> Response:
        # The cookie flow's refresh; API clients use POST /token grant_type=refresh_token.
        view = ASGIRequest(request.scope).view()
        try:
            # The same check the middleware makes, bound to the (maybe expired) access token.
            check_csrf(view, csrf, token=request.cookies.get("access_token"))
        except CSRFFailed:
            return JSONResponse({"error": "csrf_failed"}, status_code=403)
        token = request.cookies.get("refresh_token")
        used = issuer.use_refresh_token(token) if token else None
        if used is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=401)
        return session_response(request, used.username)

    async def token_endpoint(request: Request) -> Response:
        """The OAuth token endpoint for API clients (RFC 6749 §3.2): tokens in the body."""
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_TOKEN_HEADERS)
        try:
            form = await _form(request)
            jkt = await token_request_key(request)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                code = form.get("code", "")
                grant = codes.redeem(
                    code,
                    client_id=form.get("client_id", ""),
                    redirect_uri=form.get("redirect_uri", ""),
                    code_verifier=form.get("code_verifier", ""),
                )
                return tokens_response(grant.username, grant.scope, jkt, family=code)
            if grant_type == "refresh_token":
                used = issuer.use_refresh_token(form.get("refresh_token", ""), jkt)
                if used is None:
                    raise OAuthError("invalid_grant", "unknown, used or bound to another key")
                return tokens_response(used.username, used.scope, jkt, family=used.family)
            if grant_type == "password":
                # Removed in OAuth 2.1; here so that curl can get a token in one line.
                username = issuer.check_password(form.get("username"), form.get("password"))
                if username is None:
                    raise OAuthError("invalid_grant", "wrong username or password")
                return tokens_response(username, None, jkt)
            raise OAuthError("unsupported_grant_type", "use authorization_code or refresh_token")
        except OAuthError as exc:
            # A replayed code (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3): every token issued with it
            # is revoked, the refresh tokens of its family first (none can buy a new one).
            if exc.revoke_family is not None:
                issuer.end_family(exc.revoke_family)
            for token in exc.revoke:
                await verifier.arevoke(token)
            return _oauth_error(exc)

    async def token_request_key(request: Request) -> str | None:
        """The thumbprint of the key of the request's DPoP proof (RFC 9449 §5), ``None``
        without one. The proof names this endpoint's public URL and no access token."""
        proofs = request.headers.getlist("dpop")
        if not proofs:
            return None
        try:
            if len(proofs) != 1:
                raise DPoPProofMissing()
            url = f"{base_url}/token"
            proof = token_dpop.check_proof(proofs[0], None, "POST", url, clock(), verifier.leeway)
            await token_dpop.arecord(proof)
        except InvalidDPoPProof as exc:
            raise OAuthError("invalid_dpop_proof", exc.description) from exc
        except (DPoPReplayUnavailable, DPoPRateLimited) as exc:
            # The replay store cannot say whether the proof is new (503), or this key holds its
            # share of it (429): refuse, but as "try again", never a 500.
            status = exc.status_code
            raise OAuthError("temporarily_unavailable", exc.description, status=status) from exc
        return proof.jkt

    async def authorize(request: Request) -> Response:
        """The authorization endpoint (RFC 6749 §4.1.1): a login form, then a one-time code."""
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            try:
                params = await _form(request)
            except OAuthError as exc:
                return _oauth_error(exc)
        try:
            auth = parse_authorization_request(params)
        except OAuthError as exc:
            return redirect_error(params, exc)
        if request.method == "GET":
            return login_page(auth)
        username = issuer.check_password(params.get("username"), params.get("password"))
        if username is None:
            return login_page(auth, "Wrong username or password.")
        allowed = allowed_scopes(username)
        requested = auth.scope.split()
        scope = " ".join(s for s in requested if s in allowed) if requested else " ".join(allowed)
        code = codes.issue(auth, Grant(username, scope))
        query = {"code": code, "iss": base_url}  # iss: RFC 9207 mix-up defence
        if auth.state:
            query["state"] = auth.state
        return RedirectResponse(f"{auth.redirect_uri}?{urlencode(query)}", status_code=303)

    async def logout(request: Request) -> Response:
        """Every cookie the demo set goes, whatever the token's state: the middleware refuses
        an expired, revoked or forged token (401), and its answer would leave the cookies in
        place. So the middleware lets /logout through and it checks here, first, what the
        middleware checks first: CSRF, bound to the (maybe dead) access token, or a same-origin
        request when there is none. A cross-site page must not log a user out (OWASP: logout
        CSRF), whatever the state of the token."""
        principal: Principal | None
        try:
            if request.cookies:
                view = ASGIRequest(request.scope).view()
                check_csrf(view, csrf, token=request.cookies.get("access_token"))
            principal = await resolve(request.scope)  # the middleware's checks, on demand
        except CSRFFailed as exc:
            return asgi_response(answer_for(request.scope, exc))  # the middleware's 403
        except JWTGuardError:
            principal = None  # expired, revoked, forged, or none: nothing left to revoke
        body: dict[str, Any] = {"logged_out": True, "revoked_jti": None}
        if principal is not None:
            await verifier.arevoke(principal)  # this token is dead everywhere from now on
            if principal.subject:
                issuer.forget_user(principal.subject)
            body["revoked_jti"] = principal.claims.get("jti")
            token = request.cookies.get("access_token")
            if token:
                if len(revoked) >= 1000:
                    revoked.pop(next(iter(revoked)))
                body["revoked_token_ref"] = ref = secrets.token_urlsafe(16)
                revoked[ref] = token
        response = JSONResponse(body)
        # Every cookie the demo set: the access, refresh and CSRF cookies.
        clear_token_cookies(response, request=request, csrf=csrf, **cookie_settings)
        return response

    async def replay_revoked(request: Request) -> JSONResponse:
        """Call the API with the token revoked at logout (kept here, never sent to the page),
        named by the reference the logout answer gave (``?ref=``)."""
        token = revoked.get(request.query_params.get("ref", ""))
        if token is None:
            return JSONResponse({"error": "log in and out first"}, status_code=409)
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.get(
                f"{base_url}/api/me", headers={"Authorization": f"Bearer {token}"}
            )
        return JSONResponse(
            {
                "request": "GET /api/me with the access token revoked at logout",
                "status": answer.status_code,
                "www_authenticate": answer.headers.get("www-authenticate"),
                "body": answer.json(),
            }
        )

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(issuer.jwks(), headers={"Cache-Control": "max-age=60"})

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": base_url,
                "jwks_uri": f"{base_url}/.well-known/jwks.json",
                "authorization_endpoint": f"{base_url}/authorize",
                "token_endpoint": f"{base_url}/token",
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "password"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "authorization_response_iss_parameter_supported": True,
                "id_token_signing_alg_values_supported": [ALGORITHM],
                # RFC 9449 §5.1: the token endpoint binds tokens to DPoP keys.
                "dpop_signing_alg_values_supported": list(token_dpop.algorithms),
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

    async def session(request: Request) -> JSONResponse:
        """The current token, decoded and verified: header and claims, never the token."""
        principal: Principal = request.user
        return JSONResponse({"header": dict(principal.header), "claims": dict(principal.claims)})

    async def state(request: Request) -> JSONResponse:
        stats = keys.stats
        return JSONResponse(
            {
                "jwks": {
                    "url": jwks_url,
                    "published_kids": issuer.published_kids(),
                    "signing_kid": issuer.kid,
                    "cached_kids": list(stats.key_ids),
                    "fetches": stats.fetches,
                    "cache_hits": cache_hits.count,
                    "unknown_kid_misses": stats.unknown_kid_misses,
                    "failures": stats.failures,
                },
                "settings": {
                    **settings,
                    "cookie": "access_token",
                    "csrf": {"cookie": csrf.cookie, "header": csrf.header, "bound": True},
                    "denylist": type(denylist).__name__,
                    "public_paths": list(PUBLIC_PATHS),
                },
                "code": code_snippet,
                "refusals": {"newest_last": list(refusals), "total": refused[0]},
                "cross_site_url": cross_site_url,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "jwks": keys.stats.key_ids})

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/login", login, methods=["POST"]),
            Route("/refresh", refresh, methods=["POST"]),
            Route("/token", token_endpoint, methods=["POST", "OPTIONS"]),
            Route("/authorize", authorize, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks),
            Route("/.well-known/openid-configuration", discovery),
            Route("/admin/rotate-keys", rotate, methods=["POST"]),
            Route("/api/me", me),
            Route("/api/admin", admin),
            Route("/demo/session", session),
            Route("/demo/state", state),
            Route("/demo/replay-revoked", replay_revoked, methods=["POST"]),
            Route("/health", health),
        ],
        middleware=[guard],
    )
    app.state.issuer = issuer
    app.state.verifier = verifier
    return app


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error when the port is taken (before any banner)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not a listening port's
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is already in use (another demo?); "
                "choose another with --port"
            ) from exc
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    return sock


def run(host: str = "127.0.0.1", port: int = 8000) -> None:  # pragma: no cover - interactive
    """Start the demo and print how to use it."""
    try:
        import uvicorn
    except ImportError as exc:  # only without the demo extra
        raise MissingExtra("jwt-guard demo", "uvicorn", "demo") from exc

    main_socket = _bind(host, port)
    cross_socket = _bind(host, 0)  # the "other site" page for the CSRF button
    port = main_socket.getsockname()[1]
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    base_url = f"http://{local}:{port}"
    cross_url = f"http://{local}:{cross_socket.getsockname()[1]}"
    app = build_app(base_url, cross_site_url=cross_url)
    other = cross_site_app(base_url)
    cross_port = cross_socket.getsockname()[1]

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        # One server, two sockets: the second serves only the cross-site page.
        server = scope.get("server")
        target = other if server and server[1] == cross_port else app
        await target(scope, receive, send)

    issuer: DemoIssuer = app.state.issuer
    token = issuer.access_token("alice")
    print(
        f"""
jwt_guard demo — an issuer and an API protected by JWTGuardMiddleware

  page        {base_url}/
  API         {base_url}/api/me   {base_url}/api/admin   {base_url}/health
  issuer      {base_url}/.well-known/openid-configuration   (authorization code + PKCE,
              client_id jwt-guard-docs for FastAPI's /docs on any loopback port)
  tokens      curl -d grant_type=password -d username=alice -d password=alice {base_url}/token

  users       alice / alice  (role admin)      bob / bob  (role user)
  refusals    each one's reason below (jwt_guard's INFO lines) and on the page

  try it (token valid for {ACCESS_TTL // 60} minutes):
    curl -H 'Authorization: Bearer {token}' {base_url}/api/me
""",
        flush=True,
    )
    # jwt_guard's reasons for refusing a request (INFO lines) in the terminal, beside
    # uvicorn's own lines: uvicorn configures only its loggers.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["formatters"]["jwt_guard"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
    }
    log_config["handlers"]["jwt_guard"] = {
        "formatter": "jwt_guard",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    log_config["loggers"]["jwt_guard"] = {
        "handlers": ["jwt_guard"],
        "level": "INFO",
        "propagate": False,
    }
    config = uvicorn.Config(dispatch, log_level="info", log_config=log_config, lifespan="off")
    uvicorn.Server(config).run(sockets=[main_socket, cross_socket])
