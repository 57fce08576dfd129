"""A FastAPI API protected by jwt_guard; /docs logs in at the identity provider.

Against the demo issuer (``jwt-guard demo``, see the README's "Running the examples")::

    JWT_GUARD_ISSUER=http://127.0.0.1:8000 JWT_GUARD_AUDIENCE=demo-api \
    JWT_GUARD_DISCOVERY_URL=http://127.0.0.1:8000 JWT_GUARD_DOCS_CLIENT_ID=jwt-guard-docs \
    uvicorn examples.fastapi_app:app --port 8001

With ``JWT_GUARD_DOCS_CLIENT_ID`` set, /docs has an OAuth2 login (authorization code with
PKCE, endpoints and scopes from the issuer's discovery document, read when /docs first asks
for them; the authorization request names this API's audience); without it, /docs offers to
paste a token.
"""

from __future__ import annotations

import logging
import os

from fastapi import Depends, FastAPI

from jwt_guard import JWTGuardMiddleware, Verifier
from jwt_guard.fastapi import CurrentPrincipal, OAuth2Login, require_roles, require_scopes

# jwt_guard says why it refuses a request in INFO lines (logger "jwt_guard"); uvicorn and
# `flask run` configure only their own loggers, so the app configures the rest.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

app = FastAPI(title="jwt_guard example")
app.add_middleware(
    JWTGuardMiddleware,
    # JWT_GUARD_DOCS_CLIENT_ID is this example's own (below), not a jwt_guard setting.
    verifier=Verifier.from_env(ignore_unknown=["JWT_GUARD_DOCS_*"]),
    # /docs/* : Swagger UI's files and its OAuth2 redirect page.
    exclude=["/health", "/docs", "/docs/*", "/openapi.json"],
)
if client_id := os.environ.get("JWT_GUARD_DOCS_CLIENT_ID"):
    issuer = os.environ.get("JWT_GUARD_DISCOVERY_URL") or os.environ["JWT_GUARD_ISSUER"]
    # Ticked in /docs' Authorize dialog: the scopes this API's routes ask for.
    scopes = ["profile", "orders:read"]
    login = OAuth2Login.from_discovery(
        issuer, client_id=client_id, default_scopes=scopes, audience_param="audience"
    )
    login.install(app)


@app.get("/api/me")
async def me(principal: CurrentPrincipal) -> dict[str, object]:
    return {
        "sub": principal.subject,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
    }


@app.get("/api/admin", dependencies=[Depends(require_roles("admin"))])
async def admin(principal: CurrentPrincipal) -> dict[str, str]:
    return {"message": f"hello admin {principal.identity}"}


@app.get("/api/orders", dependencies=[Depends(require_scopes("orders:read"))])
async def orders(principal: CurrentPrincipal) -> dict[str, object]:
    return {"orders": [], "for": principal.subject}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
