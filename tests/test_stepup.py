"""RFC 9470 step-up authentication (``require_acr``, ``require_auth_age``) through both
adapters, as FastAPI dependencies, and the ``acr`` / ``auth_time`` claim rules."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from jwt_guard import (
    ConfigurationError,
    JWTGuardMiddleware,
    Principal,
    ProtectedResource,
    require_acr,
    require_auth_age,
)
from jwt_guard import fastapi as jg_fastapi
from jwt_guard.testing import LocalIssuer

from .apps import RECENT_SECONDS, STRONG_ACR
from .conftest import AppFactory, FakeClock, assert_no_leak, bearer, challenge


def params(response: httpx.Response) -> dict[str, str]:
    """The auth-params of a Bearer challenge (quoted or not)."""
    value = challenge(response)
    assert value.startswith("Bearer ")
    return {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value)}


# -- require_acr ---------------------------------------------------------------------------------


async def test_acr_listed_passes(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client()
    for acr in STRONG_ACR:
        response = await client.get("/strong", headers=bearer(issuer.mint(acr=acr)))
        assert response.status_code == 200 and response.json() == {"acr": acr}


@pytest.mark.parametrize("acr", ["pwd", "URN:EXAMPLE:MFA", "urn:example:mfa2", None])
async def test_rfc9470_3_weaker_acr_is_401_insufficient_user_authentication(
    make_client: AppFactory, issuer: LocalIssuer, acr: str | None
) -> None:
    token = issuer.mint(acr=acr, sub="secret-subject")
    response = await make_client().get("/strong", headers=bearer(token))
    assert response.status_code == 401
    assert params(response) == {
        "realm": "api",
        "error": "insufficient_user_authentication",
        "error_description": "A different authentication level is required.",
        "acr_values": "urn:example:mfa phr",  # in the route's order of preference
    }
    assert response.json()["code"] == "acr_not_satisfied"
    assert response.headers["cache-control"] == "no-store"
    assert_no_leak(response, token, "secret-subject")


async def test_step_up_without_token_is_plain_401(make_client: AppFactory) -> None:
    for path in ("/strong", "/recent"):
        response = await make_client(optional=True).get(path)
        assert response.status_code == 401 and "error=" not in challenge(response)
        assert response.json()["code"] == "token_missing"


# -- require_auth_age ----------------------------------------------------------------------------


async def test_recent_login_passes(
    make_client: AppFactory, issuer: LocalIssuer, clock: FakeClock
) -> None:
    auth_time = int(clock()) - RECENT_SECONDS + 5
    response = await make_client().get("/recent", headers=bearer(issuer.mint(auth_time=auth_time)))
    assert response.status_code == 200 and response.json() == {"auth_time": auth_time}


async def test_rfc9470_3_old_login_is_401_with_max_age(
    make_client: AppFactory, issuer: LocalIssuer, clock: FakeClock
) -> None:
    client = make_client()
    token = issuer.mint(auth_time=int(clock()) - 60, ttl=3600)
    assert (await client.get("/recent", headers=bearer(token))).status_code == 200
    # The same token (a cache hit) a while later: the login behind it is now too old. The
    # verifier's clock judges it, leeway (30 s) included.
    clock.advance(RECENT_SECONDS + 60 - 30 + 1)
    response = await client.get("/recent", headers=bearer(token))
    assert response.status_code == 401
    assert params(response) == {
        "realm": "api",
        "error": "insufficient_user_authentication",
        "error_description": "More recent authentication is required.",
        "max_age": str(RECENT_SECONDS),
    }
    assert 'max_age="300"' in challenge(response)
    assert response.json()["code"] == "authentication_too_old"


async def test_login_age_unknown_is_401_with_max_age(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    response = await make_client().get("/recent", headers=bearer(issuer.mint()))
    assert response.status_code == 401
    assert params(response)["max_age"] == str(RECENT_SECONDS)


async def test_step_up_challenge_points_to_metadata(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    resource = "https://api.example.com"
    client = make_client(
        issuer.verifier(audience=resource),
        protected_resource=ProtectedResource(resource, ["https://login.example.com"]),
    )
    response = await client.get("/strong", headers=bearer(issuer.mint(audience=resource)))
    assert params(response)["resource_metadata"] == (
        "https://api.example.com/.well-known/oauth-protected-resource"
    )
    assert params(response)["acr_values"] == "urn:example:mfa phr"


# -- acr and auth_time are validated claims ------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"acr": 2},
        {"acr": ["mfa"]},
        {"auth_time": "1800000000"},
        {"auth_time": True},
        {"auth_time": -1},
        {"auth_time": 1e300},
    ],
)
async def test_acr_and_auth_time_types_are_checked(
    make_client: AppFactory, issuer: LocalIssuer, claims: dict[str, object]
) -> None:
    response = await make_client().get("/me", headers=bearer(issuer.mint(**claims)))
    assert response.status_code == 401
    assert response.json()["code"] == "claim_invalid"
    assert 'error="invalid_token"' in challenge(response)


async def test_auth_time_in_the_future_is_refused(
    make_client: AppFactory, issuer: LocalIssuer, clock: FakeClock
) -> None:
    client = make_client()
    future = await client.get("/me", headers=bearer(issuer.mint(auth_time=int(clock()) + 31)))
    assert future.status_code == 401 and future.json()["code"] == "auth_time_in_future"
    within_leeway = await client.get(
        "/me", headers=bearer(issuer.mint(auth_time=int(clock()) + 29))
    )
    assert within_leeway.status_code == 200


def test_principal_exposes_acr_and_auth_time(issuer: LocalIssuer, clock: FakeClock) -> None:
    principal = issuer.verifier().verify(issuer.mint(acr="phr", auth_time=int(clock()) - 5))
    assert (principal.acr, principal.auth_time) == ("phr", int(clock()) - 5)
    plain = issuer.verifier().verify(issuer.mint())
    assert (plain.acr, plain.auth_time) == (None, None)


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: require_acr(),
        lambda: require_acr(""),
        lambda: require_acr("two words"),
        lambda: require_acr('q"uote'),
        lambda: require_auth_age(-1),
        lambda: require_auth_age(1.5),
        lambda: require_auth_age(True),
        lambda: jg_fastapi.require_acr(),
        lambda: jg_fastapi.require_auth_age(-5),
    ],
)
def test_invalid_requirements_are_refused(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


def test_repr() -> None:
    assert repr(require_acr("mfa", "phr")) == "require_acr('mfa', 'phr')"
    assert repr(require_auth_age(60)) == "require_auth_age(60)"


# -- FastAPI dependencies ------------------------------------------------------------------------


StrongLogin = Annotated[Principal, Depends(jg_fastapi.require_acr("mfa"))]


@pytest.fixture
async def fastapi_client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.add_middleware(JWTGuardMiddleware, verifier=issuer.verifier())

    @app.get("/strong")
    async def strong(principal: StrongLogin) -> dict[str, str | None]:
        return {"acr": principal.acr}

    @app.get("/recent", dependencies=[Depends(jg_fastapi.require_auth_age(60))])
    async def recent() -> dict[str, bool]:
        return {"ok": True}

    # The plain requirement objects are FastAPI dependencies too.
    @app.get("/both", dependencies=[Depends(require_acr("mfa")), Depends(require_auth_age(60))])
    def both() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_fastapi_step_up_dependencies(
    fastapi_client: httpx.AsyncClient, issuer: LocalIssuer, clock: FakeClock
) -> None:
    fresh = int(clock()) - 10
    ok = await fastapi_client.get("/strong", headers=bearer(issuer.mint(acr="mfa")))
    assert ok.status_code == 200 and ok.json() == {"acr": "mfa"}
    weak = await fastapi_client.get("/strong", headers=bearer(issuer.mint(acr="pwd")))
    assert weak.status_code == 401 and params(weak)["acr_values"] == "mfa"
    recent = await fastapi_client.get("/recent", headers=bearer(issuer.mint(auth_time=fresh)))
    assert recent.status_code == 200
    old = await fastapi_client.get("/recent", headers=bearer(issuer.mint(auth_time=fresh - 100)))
    assert old.status_code == 401 and params(old)["max_age"] == "60"
    both = await fastapi_client.get(
        "/both", headers=bearer(issuer.mint(acr="mfa", auth_time=fresh))
    )
    assert both.status_code == 200
    stale = await fastapi_client.get(
        "/both", headers=bearer(issuer.mint(acr="mfa", auth_time=fresh - 100))
    )
    assert stale.status_code == 401 and params(stale)["max_age"] == "60"


async def test_fastapi_openapi_lists_step_up_routes_as_secured(
    fastapi_client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    response = await fastapi_client.get("/openapi.json", headers=bearer(issuer.mint()))
    operation = response.json()["paths"]["/strong"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}]
