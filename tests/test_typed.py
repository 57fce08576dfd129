"""Typed claims: ``Principal.claims_as`` for pydantic models and dataclasses, and the FastAPI
dependency that hands the typed model to a route."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any, Literal

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import Answer, ClaimInvalid, JWTGuardError, JWTGuardMiddleware, Principal
from jwt_guard.fastapi import JWTBearer, claims_as
from jwt_guard.testing import LocalIssuer

from .conftest import bearer
from .servers import run_wsgi


class UserModel(BaseModel):
    sub: str
    email: str
    groups: list[str] = Field(default_factory=list, alias="cognito:groups")
    age: int | None = None


@dataclasses.dataclass(frozen=True)
class Address:
    country: str


@dataclasses.dataclass(frozen=True)
class UserData:
    sub: str
    email: str
    groups: tuple[str, ...] = dataclasses.field(default=(), metadata={"claim": "cognito:groups"})
    age: int | None = None
    score: float = 0.0
    tier: Literal["free", "pro"] = "free"
    address: Address | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def principal(**claims: Any) -> Principal:
    return Principal(claims=claims, header={"alg": "ES256"})


def test_pydantic_model() -> None:
    user = principal(sub="a", email="a@x", **{"cognito:groups": ["g"]}, other=1)
    typed = user.claims_as(UserModel)
    assert typed == UserModel(sub="a", email="a@x", **{"cognito:groups": ["g"]})


def test_pydantic_failure_names_the_field_not_the_value() -> None:
    with pytest.raises(ClaimInvalid) as caught:
        principal(sub="a", email=["secret@x"]).claims_as(UserModel)
    error = caught.value
    assert (error.code, error.status_code) == ("claim_invalid", 401)
    assert error.detail == {
        "model": "UserModel",
        "field": "email",
        "reason": "string_type",
        "errors": 1,
    }
    assert "secret" not in json.dumps(error.detail)
    with pytest.raises(ClaimInvalid) as missing:
        principal(sub="a").claims_as(UserModel)
    assert missing.value.detail["reason"] == "missing"


def test_dataclass() -> None:
    claims = {
        "sub": "a",
        "email": "a@x",
        "cognito:groups": ["g1", "g2"],
        "age": 41,
        "score": 3,  # a JSON number without a fraction is a float too
        "tier": "pro",
        "address": {"country": "FR"},
        "extra": {"k": [1]},
        "ignored": True,
    }
    assert principal(**claims).claims_as(UserData) == UserData(
        sub="a",
        email="a@x",
        groups=("g1", "g2"),
        age=41,
        score=3.0,
        tier="pro",
        address=Address("FR"),
        extra={"k": [1]},
    )
    assert principal(sub="b", email="b@x").claims_as(UserData) == UserData(sub="b", email="b@x")


@pytest.mark.parametrize(
    ("claims", "field", "reason"),
    [
        ({"email": "a@x"}, "sub", "missing"),
        ({"sub": 1, "email": "a@x"}, "sub", "type"),
        ({"sub": "a", "email": "a@x", "age": True}, "age", "type"),  # true is not a number
        ({"sub": "a", "email": "a@x", "age": 1.5}, "age", "type"),
        ({"sub": "a", "email": "a@x", "cognito:groups": "g"}, "cognito:groups", "type"),
        ({"sub": "a", "email": "a@x", "cognito:groups": ["g", 2]}, "cognito:groups", "type"),
        ({"sub": "a", "email": "a@x", "tier": "gold"}, "tier", "value"),
        ({"sub": "a", "email": "a@x", "address": {}}, "address.country", "missing"),
        ({"sub": "a", "email": "a@x", "address": "FR"}, "address", "type"),
        ({"sub": "a", "email": "a@x", "extra": []}, "extra", "type"),
    ],
)
def test_dataclass_failures(claims: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ClaimInvalid) as caught:
        principal(**claims).claims_as(UserData)
    assert caught.value.detail["field"] == field
    assert caught.value.detail["reason"] == reason


@dataclasses.dataclass(frozen=True)
class Sets:
    groups: set[Any] = dataclasses.field(default_factory=set)
    ratio: float = 0.0


@pytest.mark.parametrize(
    ("claims", "field", "reason"),
    [
        ({"groups": [{"a": 1}]}, "groups", "unhashable"),  # a set of JSON objects
        ({"groups": [[1]]}, "groups", "unhashable"),
        ({"ratio": 10**400}, "ratio", "range"),  # beyond the float range
    ],
)
def test_claims_that_do_not_fit_python_types_are_claim_invalid(
    claims: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ClaimInvalid) as caught:
        principal(**claims).claims_as(Sets)
    assert caught.value.detail["field"] == field
    assert caught.value.detail["reason"] == reason
    assert principal(groups=["a", "a"], ratio=2).claims_as(Sets) == Sets({"a"}, 2.0)


async def test_unfitting_claims_are_a_401_through_asgi_and_wsgi(issuer: LocalIssuer) -> None:
    tokens = [issuer.mint(groups=[{"a": 1}]), issuer.mint(ratio=10**400)]

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"n": len(request.user.claims_as(Sets).groups)})

    app = Starlette(
        routes=[Route("/me", me)],
        middleware=[Middleware(JWTGuardMiddleware, verifier=issuer.verifier())],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for token in tokens:
            bad = await client.get("/me", headers=bearer(token))
            assert (bad.status_code, bad.json()["code"]) == (401, "claim_invalid")

    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard, current_principal

    flask_app = Flask(__name__)
    JWTGuard(flask_app, verifier=issuer.verifier())

    @flask_app.get("/me")
    def flask_me() -> Any:
        return jsonify({"n": len(current_principal.claims_as(Sets).groups)})

    with run_wsgi(flask_app) as base, httpx.Client(base_url=base) as client:
        for token in tokens:
            bad = client.get("/me", headers=bearer(token))
            assert (bad.status_code, bad.json()["code"]) == (401, "claim_invalid")


def test_not_a_model() -> None:
    with pytest.raises(TypeError):
        principal(sub="a").claims_as(dict)


def test_dataclasses_need_no_pydantic() -> None:
    # pydantic is optional: with it impossible to import, dataclasses still work.
    code = """
import sys, dataclasses
sys.modules["pydantic"] = None
from jwt_guard import Principal

@dataclasses.dataclass
class U:
    sub: str

print(Principal(claims={"sub": "a"}, header={}).claims_as(U))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "U(sub='a')"


def fastapi_app(issuer: LocalIssuer, *, middleware: bool) -> FastAPI:
    app = FastAPI()
    verifier = issuer.verifier()
    reasons: list[dict[str, Any]] = []

    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        reasons.append(exc.detail)
        return answer

    app.state.reasons = reasons
    if middleware:
        app.add_middleware(JWTGuardMiddleware, verifier=verifier, on_error=on_error)
        model_dependency = claims_as(UserModel)
        data_dependency = claims_as(UserData)
    else:
        guard = JWTBearer(verifier, on_error=on_error)
        model_dependency = claims_as(UserModel, guard)
        data_dependency = claims_as(UserData, guard)

    @app.get("/model")
    async def model(user: UserModel = Depends(model_dependency)) -> dict[str, Any]:
        return {"type": type(user).__name__, "email": user.email, "groups": user.groups}

    @app.get("/data")
    def data(user: UserData = Depends(data_dependency)) -> dict[str, Any]:
        return {"type": type(user).__name__, "email": user.email}

    return app


@pytest.mark.parametrize("middleware", [False, True], ids=["guard", "middleware"])
async def test_fastapi_hands_the_typed_model(issuer: LocalIssuer, middleware: bool) -> None:
    app = fastapi_app(issuer, middleware=middleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        token = issuer.mint(email="a@x", **{"cognito:groups": ["g"]})
        model = await client.get("/model", headers=bearer(token))
        assert model.json() == {"type": "UserModel", "email": "a@x", "groups": ["g"]}
        data = await client.get("/data", headers=bearer(token))
        assert data.json() == {"type": "UserData", "email": "a@x"}
        bad = issuer.mint(email=7)
        for path in ("/model", "/data"):
            response = await client.get(path, headers=bearer(bad))
            assert response.status_code == 401
            assert response.json()["code"] == "claim_invalid"
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert app.state.reasons[-1]["field"] == "email"
        assert (await client.get("/model")).status_code == 401


async def test_starlette_and_flask_answer_claim_invalid(issuer: LocalIssuer) -> None:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"email": request.user.claims_as(UserData).email})

    app = Starlette(
        routes=[Route("/me", me)],
        middleware=[Middleware(JWTGuardMiddleware, verifier=issuer.verifier())],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        ok = await client.get("/me", headers=bearer(issuer.mint(email="a@x")))
        assert ok.json() == {"email": "a@x"}
        bad = await client.get("/me", headers=bearer(issuer.mint(email=None)))
        assert (bad.status_code, bad.json()["code"]) == (401, "claim_invalid")

    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard, current_principal

    flask_app = Flask(__name__)
    JWTGuard(flask_app, verifier=issuer.verifier())

    @flask_app.get("/me")
    def flask_me() -> Any:
        return jsonify({"email": current_principal.claims_as(UserModel).email})

    with run_wsgi(flask_app) as base, httpx.Client(base_url=base) as client:
        ok = client.get("/me", headers=bearer(issuer.mint(email="a@x")))
        assert ok.json() == {"email": "a@x"}
        bad = client.get("/me", headers=bearer(issuer.mint(email=None)))
        assert (bad.status_code, bad.json()["code"]) == (401, "claim_invalid")
