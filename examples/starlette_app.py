"""A Starlette API protected by jwt_guard.

An app factory: ``create_app()`` reads its settings from the environment when it is called,
never at import; a test calls ``create_app(verifier)``::

    JWT_GUARD_ISSUER=https://issuer.example JWT_GUARD_AUDIENCE=orders-api \
    JWT_GUARD_JWKS_URL=https://issuer.example/.well-known/jwks.json \
    uvicorn --factory examples.starlette_app:create_app
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import JWTGuardMiddleware, Principal, Verifier, require_roles

# jwt_guard says why it refuses a request in INFO lines (logger "jwt_guard"); uvicorn and
# `flask run` configure only their own loggers, so the app configures the rest.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


async def me(request: Request) -> JSONResponse:
    user: Principal = request.user
    return JSONResponse(
        {"sub": user.subject, "roles": sorted(user.roles), "scopes": sorted(user.scopes)}
    )


@require_roles("admin")
async def admin(request: Request) -> JSONResponse:
    return JSONResponse({"message": f"hello admin {request.user.identity}"})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


ROUTES = [
    Route("/api/me", me),
    Route("/api/admin", admin),
    Route("/health", health),
]


def create_app(verifier: Verifier | None = None) -> Starlette:
    """The app, trusting ``verifier`` (default: ``Verifier.from_env()``, the ``JWT_GUARD_*``
    variables)."""
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                JWTGuardMiddleware,
                verifier=verifier or Verifier.from_env(),
                cookie="access_token",
                exclude=["/health"],
            )
        ],
    )
