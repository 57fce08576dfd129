"""The same small protected app for every adapter, so one behaviour suite runs against all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import (
    ConfigurationError,
    Forbidden,
    InsufficientRole,
    JWTGuardError,
    JWTGuardMiddleware,
    JWTGuardWSGIMiddleware,
    Principal,
    Verifier,
    require_acr,
    require_auth_age,
    require_authorization_details,
    require_roles,
    require_scopes,
)

#: Errors the app itself raises in a view (``/raise/<name>``), with the app's own words.
RAISED: dict[str, Callable[[], JWTGuardError]] = {
    "role-fr": lambda: InsufficientRole("Réservé aux administrateurs"),
    "quoted": lambda: Forbidden('Needs the "admin" role'),
    "control": lambda: Forbidden("line\r\nX-Injected: 1"),
    "config": lambda: ConfigurationError("redis://internal-host:6379/0 is an async client"),
}

#: The step-up routes' requirements (RFC 9470), the same on every adapter.
STRONG_ACR = ("urn:example:mfa", "phr")
RECENT_SECONDS = 300
#: The payments route's requirement (RFC 9396), under a scope, the same on every adapter.
PAYMENTS = require_authorization_details(
    "payment_initiation", actions="initiate", locations=["https://bank.example/payments"]
)


def describe(user: object) -> dict[str, Any]:
    if isinstance(user, Principal):
        return {
            "sub": user.subject,
            "roles": sorted(user.roles),
            "scopes": sorted(user.scopes),
        }
    return {"sub": None}


def starlette_app(verifier: Verifier, **options: Any) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse(describe(request.user))

    @require_roles("admin")
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"admin": True})

    @require_scopes("read", "write")
    def scoped(request: Request) -> JSONResponse:  # a sync endpoint
        return JSONResponse({"scoped": True})

    @require_roles("admin", "auditor", any_of=True)
    async def any_role(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "anonymous": not request.user.is_authenticated})

    async def raise_(request: Request) -> JSONResponse:
        raise RAISED[request.path_params["name"]]()

    @require_acr(*STRONG_ACR)
    async def strong(request: Request) -> JSONResponse:
        return JSONResponse({"acr": request.user.acr})

    @require_auth_age(RECENT_SECONDS)
    def recent(request: Request) -> JSONResponse:  # a sync endpoint
        return JSONResponse({"auth_time": request.user.auth_time})

    @require_scopes("payments")
    @PAYMENTS
    async def payments(request: Request) -> JSONResponse:
        return JSONResponse({"details": list(request.user.authorization_details)})

    return Starlette(
        routes=[
            Route("/me", me, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/admin", admin),
            Route("/scoped", scoped),
            Route("/any-role", any_role),
            Route("/health", health),
            Route("/public/info", health),
            Route("/raise/{name}", raise_),
            Route("/strong", strong),
            Route("/recent", recent),
            Route("/payments", payments),
        ],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, **options)],
    )


def flask_app(verifier: Verifier, *, extension: bool = True, **options: Any) -> Any:
    """The Flask app under the Flask extension, or (``extension=False``) under the plain WSGI
    middleware, with the framework-neutral ``jwt_guard.require_roles``."""
    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard, current_principal, get_principal

    app = Flask(__name__)
    if extension:
        JWTGuard(app, verifier=verifier, **options)
    else:
        app.wsgi_app = JWTGuardWSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, verifier=verifier, **options
        )

    @app.route("/me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def me() -> Any:
        return jsonify(describe(current_principal or None))

    @app.get("/admin")
    @require_roles("admin")
    def admin() -> Any:
        return jsonify({"admin": True})

    @app.get("/scoped")
    @require_scopes("read", "write")
    def scoped() -> Any:
        return jsonify({"scoped": True})

    @app.get("/any-role")
    @require_roles("admin", "auditor", any_of=True)
    def any_role() -> Any:
        return jsonify({"ok": True})

    @app.get("/health")
    @app.get("/public/info")
    def health() -> Any:
        return jsonify({"ok": True, "anonymous": get_principal() is None})

    @app.get("/raise/<name>")
    def raise_(name: str) -> Any:
        raise RAISED[name]()

    @app.get("/strong")
    @require_acr(*STRONG_ACR)
    def strong() -> Any:
        return jsonify({"acr": current_principal.acr})

    @app.get("/recent")
    @require_auth_age(RECENT_SECONDS)
    def recent() -> Any:
        return jsonify({"auth_time": current_principal.auth_time})

    @app.get("/payments")
    @require_scopes("payments")
    @PAYMENTS
    def payments() -> Any:
        return jsonify({"details": list(current_principal.authorization_details)})

    return app
