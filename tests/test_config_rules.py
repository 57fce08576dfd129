"""Sane configuration at construction, and claim-value rules with a validate hook (issue #14).

The rules: a verifier whose configuration can never accept a token is refused when it is built,
with a ConfigurationError naming the fix:

1. HS* with a JWKS or OIDC discovery key source (a JWKS never holds secrets; RFC 8725 §3.1);
2. HS* listed beside asymmetric algorithms for a JWKS source (those HS* can only fail);
3. static keys none of which fits any configured algorithm (an EC or OKP key with only RS*, an
   RSA key with only ES*, a secret with only asymmetric algorithms, a secret too short for the
   HS* listed, a JWK whose ``alg`` is not listed);
4. ``OIDCDiscovery(issuer)`` for another issuer than ``issuer=`` (a trailing slash...);
5. a claim-value rule for a claim that has its own option (``iss``, ``aud``, ``exp``, ``nbf``,
   ``iat``), or whose value is not a string, number, boolean or a set of them;
6. ``validate`` or ``validate_each_request`` that is not callable.

Each applies per ``TrustedIssuer`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from jwt_guard import (
    JWK,
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    InvalidSignature,
    JWKSKeys,
    JWTGuardMiddleware,
    JWTGuardWSGIMiddleware,
    MemoryDenylist,
    OIDCDiscovery,
    Principal,
    StaticKeys,
    TokenRevoked,
    TrustedIssuer,
    Verifier,
)
from jwt_guard._tools.signing import generate_key, public_jwk
from jwt_guard.testing import LocalIssuer, compact

from .conftest import AppFactory, FakeClock, assert_no_leak, bearer, challenge

SECRET = "s" * 32
JWKS = "https://idp.example/jwks.json"


def _static(alg: str) -> StaticKeys:
    return StaticKeys([public_jwk(generate_key(alg), kid="k")])


RULES: list[tuple[str, Callable[[], Any], str]] = [
    (
        "hs_with_jwks",
        lambda: Verifier(keys=JWKSKeys(JWKS), algorithms=["HS256"]),
        "StaticKeys.from_secret",
    ),
    (
        "hs_with_discovery",
        lambda: Verifier(keys=OIDCDiscovery("https://idp.example"), algorithms=["HS512"]),
        "StaticKeys.from_secret",
    ),
    (
        "hs_beside_rs_with_jwks",
        lambda: Verifier(keys=JWKSKeys(JWKS), algorithms=["RS256", "HS256"]),
        "remove ['HS256']",
    ),
    (
        "ec_key_with_only_rs",
        lambda: Verifier(keys=_static("ES256"), algorithms=["RS256", "PS256"]),
        "allow one of ['ES256']",
    ),
    (
        "okp_key_with_only_rs",
        lambda: Verifier(keys=_static("EdDSA"), algorithms=["RS256"]),
        "OKP/Ed25519",
    ),
    (
        "rsa_key_with_only_es",
        lambda: Verifier(keys=_static("RS256"), algorithms=["ES256"]),
        "the keys are ['RSA']",
    ),
    (
        "ec_curve_mismatch",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES384"]),
        "EC/P-256",
    ),
    (
        "secret_with_only_asymmetric",
        lambda: Verifier(keys=StaticKeys.from_secret(SECRET), algorithms=["RS256"]),
        "allow one of ['HS256']",
    ),
    (
        "secret_too_short_for_hs512",
        lambda: Verifier(keys=StaticKeys.from_secret(SECRET, algorithm=None), algorithms=["HS512"]),
        "no configured key can verify ['HS512']",
    ),
    (
        "jwk_bound_to_another_alg",
        lambda: Verifier(
            keys=StaticKeys([public_jwk(generate_key("RS256"), kid="k", alg="RS256")]),
            algorithms=["PS256"],
        ),
        "allow one of ['RS256']",
    ),
    (
        "discovery_for_another_issuer",
        lambda: Verifier(
            keys=OIDCDiscovery("https://idp.example"),
            issuer="https://idp.example/",
            algorithms=["RS256"],
        ),
        "exact 'iss'",
    ),
    (
        "claim_rule_for_iss",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], claims={"iss": "x"}),
        "issuer=",
    ),
    (
        "claim_rule_for_aud",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], claims={"aud": "x"}),
        "audience=",
    ),
    (
        "claim_rule_for_exp",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], claims={"exp": 1}),
        "time checks",
    ),
    (
        "claim_rule_bad_value",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], claims={"x": {"a": 1}}),
        "string, number or boolean",
    ),
    (
        "claim_rule_empty_set",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], claims={"x": set()}),
        "string, number or boolean",
    ),
    (
        "claim_rules_not_a_mapping",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], claims=["x"]),  # type: ignore[arg-type]
        "mapping",
    ),
    (
        "validate_not_callable",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], validate="yes"),  # type: ignore[arg-type]
        "callable",
    ),
    (
        "validate_each_request_not_callable",
        lambda: Verifier(keys=_static("ES256"), algorithms=["ES256"], validate_each_request=1),  # type: ignore[arg-type]
        "validate_each_request must be a callable",
    ),
    (
        "trusted_issuer_hs_with_jwks",
        lambda: Verifier(
            algorithms=["RS256"],
            issuers=[TrustedIssuer("https://a", JWKSKeys(JWKS), algorithms=["HS256"])],
        ),
        "StaticKeys.from_secret",
    ),
    (
        "trusted_issuer_claim_rule",
        lambda: TrustedIssuer("https://a", _static("ES256"), claims={"aud": "x"}),
        "audience=",
    ),
]


@pytest.mark.parametrize("build,message", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_impossible_configuration_is_refused_with_the_fix(
    build: Callable[[], Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert message in caught.value.description


def test_possible_configurations_are_accepted() -> None:
    mixed = StaticKeys(
        [public_jwk(generate_key("ES256"), kid="e"), public_jwk(generate_key("RS256"), kid="r")]
    )
    Verifier(keys=mixed, algorithms=["RS256"])  # one key fits
    Verifier(keys=JWKSKeys(JWKS), algorithms=["RS256", "ES256"])
    Verifier(keys=StaticKeys.from_secret("s" * 64, algorithm=None), algorithms=["HS512"])
    Verifier(
        keys=OIDCDiscovery("https://idp.example/"),
        issuer="https://idp.example/",
        algorithms=["RS256"],
    )
    Verifier(keys=StaticKeys([JWK.from_secret(SECRET)]), algorithms=["HS256", "RS256"])


# -- claim-value rules and validate -------------------------------------------------------------


@pytest.fixture
def rules_verifier(issuer: LocalIssuer) -> Callable[..., Verifier]:
    def make(**options: Any) -> Verifier:
        return issuer.verifier(cache_size=0, **options)

    return make


def test_a_claim_must_equal_a_value_or_be_one_of_a_set(
    issuer: LocalIssuer, rules_verifier: Callable[..., Verifier]
) -> None:
    verifier = rules_verifier(claims={"token_use": "access", "client_id": {"app-1", "app-2"}})
    assert verifier.verify(issuer.mint(token_use="access", client_id="app-1"))
    assert verifier.verify(issuer.mint(token_use="access", client_id="app-2"))
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(issuer.mint(token_use="id", client_id="app-1"))
    assert caught.value.detail == {"claim": "token_use", "expected": ["access"], "found": "id"}
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(issuer.mint(token_use="access", client_id="app-3"))
    assert caught.value.detail["expected"] == ["app-1", "app-2"]
    with pytest.raises(ClaimMissing) as missing:
        verifier.verify(issuer.mint(token_use="access"))
    assert missing.value.detail == {"claim": "client_id", "expected": ["app-1", "app-2"]}


@pytest.mark.parametrize(
    "rule,value,ok",
    [
        (True, True, True),
        (True, 1, False),  # JSON 1 is not true
        (1, True, False),
        (1, 1, True),
        ("1", 1, False),
        ("a", ["a"], False),  # a list is not the value
        ("a", {"a": 1}, False),
    ],
)
def test_claim_values_compare_with_their_json_type(
    issuer: LocalIssuer,
    rules_verifier: Callable[..., Verifier],
    rule: Any,
    value: Any,
    ok: bool,
) -> None:
    verifier = rules_verifier(claims={"flag": rule})
    token = issuer.mint(flag=value)
    if ok:
        assert verifier.verify(token)
    else:
        with pytest.raises(ClaimInvalid) as caught:
            verifier.verify(token)
        # "flag" is not a claim whose value is shown: its JSON type only.
        assert caught.value.detail["found"].startswith("<")


def test_validate_hook(issuer: LocalIssuer, rules_verifier: Callable[..., Verifier]) -> None:
    seen: list[Mapping[str, Any]] = []

    def only_staff(claims: Mapping[str, Any]) -> None:
        seen.append(claims)
        if not claims.get("email", "").endswith("@staff.example"):
            raise ClaimInvalid(detail={"claim": "email", "reason": "staff accounts only"})

    verifier = rules_verifier(validate=only_staff)
    assert verifier.verify(issuer.mint(email="a@staff.example"))
    with pytest.raises(TypeError):
        seen[0]["email"] = "x"  # type: ignore[index]  # read-only
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(issuer.mint(email="a@other.example"))
    assert caught.value.detail == {"claim": "email", "reason": "staff accounts only"}
    refusing = rules_verifier(validate=lambda claims: claims.get("level") == 3)
    assert refusing.verify(issuer.mint(level=3))
    with pytest.raises(ClaimInvalid) as caught:
        refusing.verify(issuer.mint(level=2))
    assert "returned False" in caught.value.detail["reason"]


def test_validate_runs_only_after_the_signature(
    issuer: LocalIssuer, rules_verifier: Callable[..., Verifier]
) -> None:
    calls: list[object] = []
    verifier = rules_verifier(validate=calls.append)
    forged = compact({"alg": "RS256", "kid": issuer.kid}, issuer.claims(), b"\x01" * 256)
    with pytest.raises(InvalidSignature):
        verifier.verify(forged)
    assert calls == []


def test_rules_per_trusted_issuer_add_to_the_verifiers(clock: FakeClock) -> None:
    a = LocalIssuer(issuer="https://a.example", algorithm="RS256", clock=clock)
    b = LocalIssuer(issuer="https://b.example", algorithm="RS256", clock=clock)
    verifier = Verifier(
        algorithms=["RS256"],
        audience=a.audience,
        clock=clock,
        claims={"ver": "2.0"},
        issuers=[
            TrustedIssuer(a.issuer, a.keys(), claims={"tid": "t-a"}),
            TrustedIssuer(b.issuer, b.keys(), claims={"ver": "1.0"}),  # wins over the verifier's
        ],
    )
    assert verifier.verify(a.mint(ver="2.0", tid="t-a"))
    with pytest.raises(ClaimInvalid):
        verifier.verify(a.mint(ver="2.0", tid="t-b"))
    with pytest.raises(ClaimMissing):
        verifier.verify(a.mint(tid="t-a"))
    assert verifier.verify(b.mint(ver="1.0"))
    with pytest.raises(ClaimInvalid):
        verifier.verify(b.mint(ver="2.0"))


def test_found_values_of_other_claims_are_shown_only_by_opt_in(
    rules_verifier: Callable[..., Verifier], issuer: LocalIssuer
) -> None:
    token = issuer.mint(department="sales")
    with pytest.raises(ClaimInvalid) as caught:
        rules_verifier(claims={"department": "it"}).verify(token)
    assert caught.value.detail["found"] == "<string>"
    opted_in = rules_verifier(claims={"department": "it"}, detail_claims=["department"])
    with pytest.raises(ClaimInvalid) as caught:
        opted_in.verify(token)
    assert caught.value.detail == {"claim": "department", "expected": ["it"], "found": "sales"}
    with pytest.raises(ConfigurationError, match="detail_claims"):
        rules_verifier(detail_claims="department")


@pytest.mark.parametrize(
    "hook",
    [
        lambda claims: claims["tenant"] == "x",  # KeyError: the claim is absent
        lambda claims: claims["sub"] + 1,  # TypeError: a claim of another type
        lambda claims: int(claims["sub"]),  # ValueError
        lambda claims: claims["sub"].no_such_attribute,  # AttributeError
    ],
    ids=["KeyError", "TypeError", "ValueError", "AttributeError"],
)
def test_a_validate_hook_that_trips_over_the_claims_refuses_the_token(
    issuer: LocalIssuer,
    rules_verifier: Callable[..., Verifier],
    hook: Callable[[Mapping[str, Any]], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A signed token never becomes a 500: a hook's KeyError is a 401 claim_invalid."""
    verifier = rules_verifier(validate=hook)
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(issuer.mint())
    assert "raised" in caught.value.detail["reason"]
    assert any("raised on a verified token" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
async def test_a_validate_hook_error_is_a_401_under_both_adapters(
    issuer: LocalIssuer, adapter: str
) -> None:
    verifier = issuer.verifier(validate=lambda claims: claims["tenant"] == "x")
    headers = {"Authorization": f"Bearer {issuer.mint()}"}
    if adapter == "asgi":

        async def ok(request: Any) -> PlainTextResponse:
            return PlainTextResponse("ok")

        app = JWTGuardMiddleware(Starlette(routes=[Route("/", ok)]), verifier=verifier)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/", headers=headers)
        status, challenge = response.status_code, response.headers["www-authenticate"]
    else:
        flask_app = Flask(__name__)
        flask_app.add_url_rule("/", "ok", lambda: "ok")
        wsgi = JWTGuardWSGIMiddleware(flask_app.wsgi_app, verifier=verifier)
        flask_app.wsgi_app = wsgi  # type: ignore[method-assign]
        answer = flask_app.test_client().get("/", headers=headers)
        status, challenge = answer.status_code, answer.headers["WWW-Authenticate"]
    assert status == 401
    assert 'error="invalid_token"' in challenge


# -- validate runs once per token, validate_each_request on every request (issue 22) -----------


def test_validate_and_claim_rules_run_once_per_token(issuer: LocalIssuer) -> None:
    """The documented semantics: part of verifying the token, so a cache hit skips them."""
    calls: list[object] = []
    verifier = issuer.verifier(claims={"tenant": "acme"}, validate=calls.append)
    token = issuer.mint(tenant="acme")
    for _ in range(3):
        assert verifier.verify(token)
    assert len(calls) == 1


class ActiveUsers:
    """A per-request check on changing state: the set of disabled users."""

    def __init__(self) -> None:
        self.disabled: set[str] = set()
        self.calls = 0

    def __call__(self, claims: Mapping[str, Any]) -> bool:
        self.calls += 1
        return claims["sub"] not in self.disabled


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_issue22_validate_each_request_runs_on_cache_hits(
    issuer: LocalIssuer, driver: str
) -> None:
    active = ActiveUsers()
    verifier = issuer.verifier(validate_each_request=active)
    token = issuer.mint(sub="alice")

    async def verify() -> Principal:
        return verifier.verify(token) if driver == "sync" else await verifier.averify(token)

    assert (await verify()).subject == "alice"
    assert token.encode() in verifier._cache  # from here on, every call is a cache hit
    assert (await verify()).subject == "alice"
    active.disabled.add("alice")
    with pytest.raises(ClaimInvalid) as caught:
        await verify()
    assert caught.value.detail == {"reason": "validate_each_request ActiveUsers returned False"}
    active.disabled.clear()
    assert (await verify()).subject == "alice"
    assert active.calls == 4


async def test_issue22_validate_each_request_runs_on_cache_hits_under_every_adapter(
    issuer: LocalIssuer, make_any_client: AppFactory
) -> None:
    # The ASGI middleware answers a cached token without calling the verifier (its fast path):
    # a per-request hook must turn that path off.
    active = ActiveUsers()
    client = make_any_client(issuer.verifier(validate_each_request=active))
    headers = bearer(issuer.mint(sub="alice"))
    assert (await client.get("/me", headers=headers)).status_code == 200
    assert (await client.get("/me", headers=headers)).status_code == 200
    active.disabled.add("alice")
    refused = await client.get("/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "claim_invalid"
    assert 'error="invalid_token"' in challenge(refused)
    assert_no_leak(refused, "alice", "ActiveUsers")
    active.disabled.clear()
    assert (await client.get("/me", headers=headers)).status_code == 200
    assert active.calls == 4


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_validate_each_request_runs_after_the_denylist(
    issuer: LocalIssuer, driver: str
) -> None:
    # With other after-steps (a denylist): a revoked token is refused as revoked, before the
    # hook is asked; the hook still runs on every hit of a token that is not.
    active = ActiveUsers()
    verifier = issuer.verifier(validate_each_request=active, denylist=MemoryDenylist())
    kept, revoked = issuer.mint(sub="alice"), issuer.mint(sub="bob")
    verifier.revoke(revoked)

    async def verify(token: str) -> Principal:
        return verifier.verify(token) if driver == "sync" else await verifier.averify(token)

    with pytest.raises(TokenRevoked):
        await verify(revoked)
    assert active.calls == 0
    await verify(kept)
    active.disabled.add("alice")
    with pytest.raises(ClaimInvalid):
        await verify(kept)
    assert active.calls == 2


def test_validate_each_request_per_trusted_issuer(clock: FakeClock) -> None:
    a = LocalIssuer(issuer="https://a.example", algorithm="RS256", clock=clock)
    b = LocalIssuer(issuer="https://b.example", algorithm="RS256", clock=clock)
    everyone, only_a = ActiveUsers(), ActiveUsers()
    verifier = Verifier(
        algorithms=["RS256"],
        audience=a.audience,
        clock=clock,
        validate_each_request=everyone,
        issuers=[
            TrustedIssuer(a.issuer, a.keys(), validate_each_request=only_a),
            TrustedIssuer(b.issuer, b.keys()),
        ],
    )
    from_a, from_b = a.mint(sub="carol"), b.mint(sub="carol")
    only_a.disabled.add("carol")
    with pytest.raises(ClaimInvalid):
        verifier.verify(from_a)
    assert verifier.verify(from_b).subject == "carol"
    assert verifier.verify(from_b).subject == "carol"  # a hit: asked again
    assert (everyone.calls, only_a.calls) == (3, 1)
    with pytest.raises(ConfigurationError, match="validate_each_request must be a callable"):
        TrustedIssuer(a.issuer, a.keys(), validate_each_request="yes")  # type: ignore[arg-type]


def test_a_validate_each_request_hook_that_trips_over_the_claims_refuses_the_token(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = issuer.verifier(validate_each_request=lambda claims: claims["tenant"] == "x")
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(issuer.mint())
    assert caught.value.detail["reason"].startswith("validate_each_request ")
    assert caught.value.detail["reason"].endswith(" raised KeyError")
    assert any("raised on a verified token" in r.getMessage() for r in caplog.records)


def test_without_validate_each_request_the_cached_fast_path_stays(issuer: LocalIssuer) -> None:
    assert issuer.verifier()._hit is not None
    assert issuer.verifier(validate=lambda claims: True)._hit is not None
    assert issuer.verifier(validate_each_request=lambda claims: True)._hit is None


@pytest.mark.parametrize("option", ["validate", "validate_each_request"])
def test_issue22_review_an_async_hook_is_refused_at_start_up(
    issuer: LocalIssuer, option: str
) -> None:
    # Review of issue 22: a per-request hook is where an app looks a user up, and an ASGI app
    # writes it ``async def``. Its verdict was a coroutine, never ``False``: every token passed
    # (fail open) whatever the coroutine would have said.
    async def inactive(claims: Mapping[str, Any]) -> bool:
        return False

    class AsyncCheck:
        async def __call__(self, claims: Mapping[str, Any]) -> bool:
            return False

    for hook in (inactive, AsyncCheck()):
        with pytest.raises(ConfigurationError, match="async"):
            issuer.verifier(**{option: hook})
        with pytest.raises(ConfigurationError, match="async"):
            TrustedIssuer(issuer.issuer, issuer.keys(), **{option: hook})


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_issue22_review_a_hook_returning_an_awaitable_refuses_the_token(
    issuer: LocalIssuer, driver: str
) -> None:
    # A plain callable that hands back a coroutine (a lambda around an async function) cannot
    # be told apart at start-up: its verdict, never awaited, must refuse, not pass.
    async def inactive(claims: Mapping[str, Any]) -> bool:
        return False

    verifier = issuer.verifier(validate_each_request=lambda claims: inactive(claims))
    token = issuer.mint()
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(token) if driver == "sync" else await verifier.averify(token)
    assert "awaitable" in caught.value.detail["reason"]
