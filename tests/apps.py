"""The same small protected app for every adapter, so one behaviour suite runs against all."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import JWTGuardMiddleware, Principal, Verifier, require_roles, require_scopes


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

    return Starlette(
        routes=[
            Route("/me", me, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/admin", admin),
            Route("/scoped", scoped),
            Route("/any-role", any_role),
            Route("/health", health),
            Route("/public/info", health),
        ],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, **options)],
    )


def flask_app(verifier: Verifier, **options: Any) -> Any:
    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard, current_principal, get_principal

    app = Flask(__name__)
    JWTGuard(app, verifier=verifier, **options)

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

    return app
