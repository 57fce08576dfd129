"""A FastAPI API protected by jwt_guard (the OpenAPI docs at /docs show the Authorize button).

    JWT_GUARD_ISSUER=https://issuer.example JWT_GUARD_AUDIENCE=orders-api \
    JWT_GUARD_JWKS_URL=https://issuer.example/.well-known/jwks.json \
    uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from jwt_guard import JWTGuardMiddleware, Verifier
from jwt_guard.fastapi import CurrentPrincipal, require_roles

app = FastAPI(title="jwt_guard example")
app.add_middleware(
    JWTGuardMiddleware,
    verifier=Verifier.from_env(),
    exclude=["/health", "/docs", "/openapi.json"],
)


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


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
