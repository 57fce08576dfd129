"""FastAPI integration: dependencies, OpenAPI security scheme, error answers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from jwt_guard import (
    ConfigurationError,
    JWTGuardMiddleware,
    Principal,
    require_roles,
    require_scopes,
)
from jwt_guard import fastapi as jg_fastapi
from jwt_guard.fastapi import CurrentPrincipal, OptionalPrincipal
from jwt_guard.testing import LocalIssuer


def make_app(issuer: LocalIssuer, optional: bool = False) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        JWTGuardMiddleware,
        verifier=issuer.verifier(),
        optional=optional,
        exclude=["/docs", "/openapi.json"],
    )

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, object]:
        return {"sub": principal.subject, "roles": sorted(principal.roles)}

    @app.get("/maybe")
    async def maybe(principal: OptionalPrincipal) -> dict[str, object]:
        return {"sub": principal.subject if principal else None}

    @app.get("/admin", dependencies=[Depends(require_roles("admin"))])
    async def admin() -> dict[str, bool]:
        return {"admin": True}

    @app.get("/orders", dependencies=[Depends(require_scopes("orders:read"))])
    def orders() -> dict[str, bool]:
        return {"orders": True}

    return app


@pytest.fixture
async def client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(issuer))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_current_principal(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    response = await client.get("/me", headers=auth(issuer.mint(sub="al", roles=["x"])))
    assert response.json() == {"sub": "al", "roles": ["x"]}


async def test_role_dependency(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    ok = await client.get("/admin", headers=auth(issuer.mint(roles=["admin"])))
    denied = await client.get("/admin", headers=auth(issuer.mint(roles=["user"])))
    assert (ok.status_code, denied.status_code) == (200, 403)
    assert denied.json()["code"] == "insufficient_role"
    assert denied.headers["www-authenticate"] == 'Bearer realm="api"'  # no scope (issue 26)


async def test_scope_dependency_on_sync_route(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    ok = await client.get("/orders", headers=auth(issuer.mint(scopes=["orders:read"])))
    denied = await client.get("/orders", headers=auth(issuer.mint(scopes=["orders:write"])))
    assert (ok.status_code, denied.status_code) == (200, 403)


async def test_optional_and_anonymous(issuer: LocalIssuer) -> None:
    transport = httpx.ASGITransport(app=make_app(issuer, optional=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/maybe")).json() == {"sub": None}
        me = await c.get("/me")
        assert me.status_code == 401 and me.json()["code"] == "token_missing"
        admin = await c.get("/admin")
        assert admin.status_code == 401  # not 403


async def test_openapi_declares_bearer_scheme_and_locks(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token (JWT) in the Authorization header.",
    }
    for path in ("/me", "/admin"):
        assert spec["paths"][path]["get"]["security"] == [{"HTTPBearer": []}]
    # A scope requirement declares its scopes in the operation's security (OpenAPI 3.1 §4.8.30).
    assert spec["paths"]["/orders"]["get"]["security"] == [{"HTTPBearer": ["orders:read"]}]
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_async_fastapi_variants(issuer: LocalIssuer) -> None:
    import inspect

    from jwt_guard import fastapi as jg_fastapi

    dependency = jg_fastapi.require_roles("admin")
    # What FastAPI asks to await a dependency on the loop (asyncio's on 3.11, which reads the
    # marker of a function made before Python 3.12's inspect.markcoroutinefunction).
    if sys.version_info >= (3, 12):
        assert inspect.iscoroutinefunction(dependency)
    else:
        assert asyncio.iscoroutinefunction(dependency)
    app = FastAPI()
    app.add_middleware(JWTGuardMiddleware, verifier=issuer.verifier(), optional=True)

    @app.get("/admin")
    async def admin(principal: Principal = Depends(dependency)) -> dict[str, object]:
        return {"sub": principal.subject}

    @app.get("/write", dependencies=[Depends(jg_fastapi.require_scopes("w", "x", any_of=True))])
    async def write() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        ok = await c.get("/admin", headers=auth(issuer.mint(sub="a", roles=["admin"])))
        assert ok.json() == {"sub": "a"}
        no = await c.get("/admin", headers=auth(issuer.mint(roles=["user"])))
        assert no.status_code == 403 and no.json()["code"] == "insufficient_role"
        assert (await c.get("/admin")).status_code == 401
        assert (await c.get("/write", headers=auth(issuer.mint(scopes=["x"])))).status_code == 200
        assert (await c.get("/write", headers=auth(issuer.mint(scopes=["y"])))).status_code == 403
        spec = (await c.get("/openapi.json")).json()
        assert spec["paths"]["/admin"]["get"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize(
    "make,written",
    [
        (lambda: jg_fastapi.require_roles("admin"), "require_roles('admin')"),
        (lambda: jg_fastapi.require_scopes("a", any_of=True), "require_scopes('a', any_of=True)"),
        (lambda: jg_fastapi.require_acr("mfa"), "require_acr('mfa')"),
        (lambda: jg_fastapi.require_auth_age(60), "require_auth_age(60)"),
    ],
)
@pytest.mark.parametrize("above", [True, False], ids=["above_route", "below_route"])
def test_issue25_a_fastapi_dependency_used_as_a_decorator_names_the_right_form(
    make: Any, written: str, above: bool
) -> None:
    """``@require_roles("admin")`` (jwt_guard.fastapi's, a dependency) over ``async def``
    returned an unawaited coroutine: above the route decorator the route served the view
    unprotected, below it the route served the coroutine. Refused at the decoration."""
    router = APIRouter()
    with pytest.raises(ConfigurationError) as caught:
        if above:

            @make()
            @router.get("/admin")
            async def admin() -> dict[str, bool]:
                return {"ok": True}

        else:

            @router.get("/admin")
            @make()
            async def admin() -> dict[str, bool]:
                return {"ok": True}

    message = str(caught.value)
    assert f"jwt_guard.fastapi.{written} is a FastAPI dependency, not a decorator" in message
    assert f"dependencies=[Depends({written})]" in message
    assert f"Annotated[Principal, Depends({written})]" in message
    assert "applied to def admin" in message
