"""RFC 9396 authorization details: the claim checked at verification, the requirement on every
adapter (issue 28, item 4). The route ``/payments`` of ``tests/apps.py`` needs the scope
``payments`` and a ``payment_initiation`` entry with the action ``initiate`` at
``https://bank.example/payments``."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import (
    ClaimInvalid,
    ConfigurationError,
    InsufficientAuthorizationDetails,
    JWTGuardMiddleware,
    Principal,
    RouteGuard,
    require_authorization_details,
)
from jwt_guard import fastapi as jwt_fastapi
from jwt_guard._core.authorization_details import DetailsNeed
from jwt_guard.testing import LocalIssuer

from .conftest import AppFactory, Drive, assert_no_leak, bearer, challenge

PAYMENT: dict[str, Any] = {
    "type": "payment_initiation",
    "actions": ["initiate", "status"],
    "locations": ["https://bank.example/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorAccount": {"iban": "DE02100100109307118603"},
}
ACCOUNTS: dict[str, Any] = {"type": "account_information", "actions": ["read"]}
#: A FastAPI dependency, at module level: the route's annotations are read from here.
NEEDS_PAYMENT = jwt_fastapi.require_authorization_details("payment_initiation", actions="initiate")


# -- the requirement through both adapters (RFC 9396 §2, RFC 6750 §3.1) ---------------------


async def test_rfc9396_an_entry_of_the_type_with_the_values_passes_both_adapters(
    issuer: LocalIssuer, make_client: AppFactory
) -> None:
    client = make_client()
    token = issuer.mint(scopes=["payments"], authorization_details=[ACCOUNTS, PAYMENT])
    for _ in range(2):  # the second from the verified-token cache
        ok = await client.get("/payments", headers=bearer(token))
        assert ok.status_code == 200
        assert ok.json() == {"details": [ACCOUNTS, PAYMENT]}  # the app reads the parsed entries


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        (None, "no entry of type 'payment_initiation'"),
        ([ACCOUNTS], "no entry of type 'payment_initiation'"),
        ([{**PAYMENT, "actions": ["status"]}], "grants every value needed"),
        ([{**PAYMENT, "locations": ["https://bank.example/other"]}], "grants every value needed"),
        (
            # The values come from one entry: an action in one and the location in another do
            # not add up to a grant of both (RFC 9396 §2: an entry is one authorization).
            [
                {"type": "payment_initiation", "actions": ["initiate"]},
                {"type": "payment_initiation", "locations": ["https://bank.example/payments"]},
            ],
            "grants every value needed",
        ),
    ],
    ids=["no-claim", "other-type", "no-action", "other-location", "split-over-entries"],
)
async def test_rfc9396_rfc6750_3_1_a_missing_entry_is_a_403_like_a_scope_failure(
    issuer: LocalIssuer, make_client: AppFactory, details: Any, reason: str
) -> None:
    client = make_client(debug=True)
    token = issuer.mint(scopes=["payments"], authorization_details=details)
    refused = await client.get("/payments", headers=bearer(token))
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "insufficient_authorization_details"
    assert body["error"] == "insufficient_scope"
    assert body["error_description"] == "The token lacks the required authorization details."
    assert body["detail"]["type"] == "payment_initiation"  # names the missing type
    assert reason in body["detail"]["reason"]
    # RFC 6750 §3.1 insufficient_scope; the route's scopes named so a client asking again
    # keeps them (RFC 9396 defines no resource-server error).
    assert challenge(refused) == (
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="The token lacks the required authorization details.", '
        'scope="payments"'
    )


async def test_rfc9396_the_refusal_echoes_no_claim_without_debug(
    issuer: LocalIssuer, make_client: AppFactory
) -> None:
    client = make_client()
    other = {**PAYMENT, "actions": ["status"]}
    token = issuer.mint(scopes=["payments"], authorization_details=[other])
    refused = await client.get("/payments", headers=bearer(token))
    assert refused.status_code == 403 and "detail" not in refused.json()
    assert_no_leak(refused, token, "DE02100100109307118603", "123.50", "bank.example")


async def test_the_scope_is_checked_with_the_details(
    issuer: LocalIssuer, make_client: AppFactory
) -> None:
    client = make_client()
    refused = await client.get(
        "/payments", headers=bearer(issuer.mint(authorization_details=[PAYMENT]))
    )
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"


# -- the claim's shape, checked when the token is verified (RFC 9396 §2, §2.2, §9.1) ------

MALFORMED = [
    ({"type": "payment_initiation"}, "must be a JSON array of objects"),
    ("payment_initiation", "must be a JSON array of objects"),
    ([["payment_initiation"]], "each entry must be a JSON object"),
    ([{"actions": ["initiate"]}], "needs a non-empty 'type' string"),
    ([{"type": ""}], "needs a non-empty 'type' string"),
    ([{"type": 7}], "needs a non-empty 'type' string"),
    ([{"type": "t", "actions": "initiate"}], "'actions' must be an array of strings"),
    ([{"type": "t", "locations": [1]}], "'locations' must be an array of strings"),
    ([{"type": "t", "datatypes": {"a": 1}}], "'datatypes' must be an array of strings"),
    ([{"type": "t", "privileges": None}], "'privileges' must be an array of strings"),
    ([{"type": "t", "identifier": ["x"]}], "'identifier' must be a string"),
]


@pytest.mark.parametrize(("details", "reason"), MALFORMED, ids=[str(i) for i in range(11)])
async def test_rfc9396_2_a_malformed_claim_is_claim_invalid_on_both_drivers(
    issuer: LocalIssuer, drive: Drive, details: Any, reason: str
) -> None:
    with pytest.raises(ClaimInvalid) as caught:
        await drive.verify(issuer.verifier(), issuer.mint(authorization_details=details))
    assert caught.value.detail["claim"] == "authorization_details"
    assert reason in caught.value.detail["reason"]


@pytest.mark.parametrize(("details", "reason"), MALFORMED[:4], ids=[str(i) for i in range(4)])
async def test_rfc9396_9_1_a_malformed_claim_is_a_401_not_a_500_through_both_adapters(
    issuer: LocalIssuer, make_client: AppFactory, details: Any, reason: str
) -> None:
    client = make_client()
    token = issuer.mint(scopes=["payments"], authorization_details=details)
    for path in ("/payments", "/me"):  # on every route: the token is what is wrong
        refused = await client.get(path, headers=bearer(token))
        assert refused.status_code == 401
        assert refused.json()["code"] == "claim_invalid"
        assert 'error="invalid_token"' in challenge(refused)


async def test_principal_authorization_details_is_read_only(
    issuer: LocalIssuer, drive: Drive
) -> None:
    principal = await drive.verify(issuer.verifier(), issuer.mint(authorization_details=[PAYMENT]))
    (entry,) = principal.authorization_details
    assert entry == PAYMENT and entry["type"] == "payment_initiation"
    with pytest.raises(TypeError):
        entry["actions"].append("refund")  # type: ignore[index]
    assert (await drive.verify(issuer.verifier(), issuer.mint())).authorization_details == ()


# -- the other paths: FastAPI dependency, per route, configuration -------------------------


async def test_fastapi_dependency(issuer: LocalIssuer) -> None:
    app = FastAPI()
    app.add_middleware(JWTGuardMiddleware, verifier=issuer.verifier())

    @app.get("/pay", dependencies=[Depends(jwt_fastapi.require_scopes("payments"))])
    async def pay(principal: Annotated[Principal, Depends(NEEDS_PAYMENT)]) -> dict[str, Any]:
        return {"types": [e["type"] for e in principal.authorization_details]}

    @app.get(
        "/sync-pay", dependencies=[Depends(require_authorization_details("payment_initiation"))]
    )
    def sync_pay() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        good = issuer.mint(scopes=["payments"], authorization_details=[PAYMENT])
        ok = await client.get("/pay", headers=bearer(good))
        assert ok.status_code == 200 and ok.json() == {"types": ["payment_initiation"]}
        assert (await client.get("/sync-pay", headers=bearer(good))).status_code == 200
        bad = issuer.mint(scopes=["payments"], authorization_details=[ACCOUNTS])
        for path in ("/pay", "/sync-pay"):
            refused = await client.get(path, headers=bearer(bad))
            assert refused.status_code == 403
            assert refused.json()["code"] == "insufficient_authorization_details"
        refused = await client.get("/pay", headers=bearer(bad))
        assert 'scope="payments"' in challenge(refused)  # the route's dependencies' scopes


async def test_per_route_under_a_route_guard(issuer: LocalIssuer) -> None:
    guard = RouteGuard(issuer.verifier())

    @guard.protect
    @require_authorization_details("account_information", actions=["read"])
    async def accounts(request: Request) -> JSONResponse:
        return JSONResponse({"n": len(request.user.authorization_details)})

    app = Starlette(routes=[Route("/accounts", accounts)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ok = await client.get(
            "/accounts", headers=bearer(issuer.mint(authorization_details=[ACCOUNTS]))
        )
        assert ok.status_code == 200 and ok.json() == {"n": 1}
        refused = await client.get(
            "/accounts", headers=bearer(issuer.mint(authorization_details=[PAYMENT]))
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "insufficient_authorization_details"
        assert (await client.get("/accounts")).status_code == 401


def test_identifier_and_the_other_common_fields() -> None:
    need = DetailsNeed.of("t", identifier="acct-1", datatypes=["balance"], privileges="admin")
    entry = {
        "type": "t",
        "identifier": "acct-1",
        "datatypes": ["balance", "x"],
        "privileges": ["admin"],
    }
    assert need.grants(entry)
    assert not need.grants({**entry, "identifier": "acct-2"})
    assert not need.grants({**entry, "privileges": []})
    assert need.missing([entry]) is None
    assert need.missing([]) == {
        "type": "t",
        "present_types": [],
        "fields": {"datatypes": ["balance"], "privileges": ["admin"]},
        "identifier": "acct-1",
        "reason": "no entry of type 't'",
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "said"),
    [
        (("",), {}, "needs a type"),
        ((None,), {}, "needs a type"),
        (("t",), {"actions": [""]}, "actions must be a non-empty string"),
        (("t",), {"actions": [1]}, "actions must be a non-empty string"),
        (("t",), {"identifier": ""}, "identifier must be a string"),
    ],
)
def test_requirements_are_checked_at_start_up(
    args: tuple[Any, ...], kwargs: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigurationError, match=said):
        require_authorization_details(*args, **kwargs)
    with pytest.raises(ConfigurationError, match=said):
        jwt_fastapi.require_authorization_details(*args, **kwargs)


def test_an_unknown_field_names_the_common_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown field 'instructedAmount'"):
        DetailsNeed.of("t", instructedAmount="1")


def test_the_error_is_a_forbidden() -> None:
    exc = InsufficientAuthorizationDetails(required=["payments"])
    assert exc.status_code == 403 and exc.error == "insufficient_scope"
    assert repr(require_authorization_details("t", actions="a", identifier="i")) == (
        "require_authorization_details('t', actions=['a'], identifier='i')"
    )
