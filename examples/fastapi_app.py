"""A FastAPI API protected by jwt_guard; /docs logs in at the identity provider.

An app factory: ``create_app()`` reads its settings from the environment when it is called,
never at import, so a test imports this module and calls ``create_app(verifier)`` with a
verifier of its own (see docs/guides/testing.md). Against the demo issuer
(``jwt-guard demo``, see "Running the examples" in docs/guides/demo.md)::

    JWT_GUARD_ISSUER=http://127.0.0.1:8000 JWT_GUARD_AUDIENCE=demo-api \
    JWT_GUARD_DISCOVERY_URL=http://127.0.0.1:8000 DOCS_CLIENT_ID=jwt-guard-docs \
    uvicorn --factory examples.fastapi_app:create_app --port 8001

With ``DOCS_CLIENT_ID`` set (this example's own variable: a name under ``JWT_GUARD_`` would be
refused as an unknown jwt_guard setting), /docs has an OAuth2 login (authorization code with
PKCE, endpoints and scopes from the issuer's discovery document, read when /docs first asks
for them; the authorization request names this API's audience); without it, /docs offers to
paste a token.
"""

from __future__ import annotations

import logging
import os

from fastapi import APIRouter, Depends, FastAPI

from jwt_guard import JWTGuardMiddleware, Verifier
from jwt_guard.fastapi import CurrentPrincipal, OAuth2Login, require_roles, require_scopes

# jwt_guard says why it refuses a request in INFO lines (logger "jwt_guard"); uvicorn and
# `flask run` configure only their own loggers, so the app configures the rest.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

router = APIRouter()


@router.get("/api/me")
async def me(principal: CurrentPrincipal) -> dict[str, object]:
    return {
        "sub": principal.subject,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
    }


@router.get("/api/admin", dependencies=[Depends(require_roles("admin"))])
async def admin(principal: CurrentPrincipal) -> dict[str, str]:
    return {"message": f"hello admin {principal.identity}"}


@router.get("/api/orders", dependencies=[Depends(require_scopes("orders:read"))])
async def orders(principal: CurrentPrincipal) -> dict[str, object]:
    return {"orders": [], "for": principal.subject}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(verifier: Verifier | None = None) -> FastAPI:
    """The app, trusting ``verifier`` (default: ``Verifier.from_env()``, the ``JWT_GUARD_*``
    variables)."""
    app = FastAPI(title="jwt_guard example")
    app.add_middleware(
        JWTGuardMiddleware,
        verifier=verifier or Verifier.from_env(),
        # /docs/* : Swagger UI's files and its OAuth2 redirect page.
        exclude=["/health", "/docs", "/docs/*", "/openapi.json"],
    )
    app.include_router(router)
    if client_id := os.environ.get("DOCS_CLIENT_ID"):
        issuer = os.environ.get("JWT_GUARD_DISCOVERY_URL") or os.environ["JWT_GUARD_ISSUER"]
        # Ticked in /docs' Authorize dialog: the scopes this API's routes ask for.
        scopes = ["profile", "orders:read"]
        login = OAuth2Login.from_discovery(
            issuer, client_id=client_id, default_scopes=scopes, audience_param="audience"
        )
        login.install(app)
    return app
