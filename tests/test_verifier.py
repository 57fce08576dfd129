"""The verification core: configuration, claims, principal, drivers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from jwt_guard import (
    AlgorithmNotAllowed,
    AudienceInvalid,
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    IssuerInvalid,
    KeyNotFound,
    MalformedToken,
    Principal,
    StaticKeys,
    TokenExpired,
    TokenIssuedInFuture,
    TokenNotYetValid,
    TrustedIssuer,
    TypeInvalid,
    Verifier,
)
from jwt_guard.testing import LocalIssuer, forge

from .conftest import FakeClock

ALGS = ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA", "HS256"]


@pytest.mark.parametrize("alg", ALGS)
def test_verifies_each_algorithm(make_issuer: Callable[[str], LocalIssuer], alg: str) -> None:
    issuer = make_issuer(alg)
    principal = issuer.verifier().verify(issuer.mint(sub="alice"))
    assert principal.subject == "alice"
    assert principal.issuer == issuer.issuer


async def test_averify_matches_verify(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    token = issuer.mint(roles=["admin"])
    assert await verifier.averify(token) == verifier.verify(token)


# -- configuration ---------------------------------------------------------------------


def test_algorithms_are_mandatory(issuer: LocalIssuer) -> None:
    with pytest.raises(ConfigurationError, match="algorithms"):
        Verifier(keys=issuer.keys())


@pytest.mark.parametrize("none", ["none", "None", "NONE", "nOnE"])
def test_none_can_never_be_configured(issuer: LocalIssuer, none: str) -> None:
    with pytest.raises(ConfigurationError, match="none"):
        Verifier(keys=issuer.keys(), algorithms=["RS256", none])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"leeway": 301},
        {"leeway": -1},
        {"leeway": "30"},
        {"algorithms": ["RS1"]},
        {"algorithms": []},
        {"max_token_bytes": 10},
        {"max_token_age": 0},
        {"max_token_age": float("nan")},  # NaN silently disabled the check
        {"max_token_age": float("inf")},
        {"leeway": float("nan")},
        {"leeway": float("inf")},
        {"required_claims": "exp"},
        {"issuer": ""},
        {"audience": [1]},
        {"cache_size": -1},
        {"keys": "not a key source"},
        {"roles_claim": 5},
        {"scopes_claim": [""]},
        {"clock": "now"},
        {"denylist": "redis://x"},
        {"typ": ""},
    ],
)
def test_invalid_configuration_is_refused(issuer: LocalIssuer, kwargs: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"keys": issuer.keys(), "algorithms": ["RS256"]}
    settings.update(kwargs)
    with pytest.raises(ConfigurationError):
        Verifier(**settings)


def test_configuration_error_is_a_value_error(issuer: LocalIssuer) -> None:
    with pytest.raises(ValueError):
        Verifier(keys=issuer.keys(), algorithms=["RS256"], leeway=1000)


# -- algorithms --------------------------------------------------------------------------


def test_algorithm_not_configured_is_refused(make_issuer: Callable[[str], LocalIssuer]) -> None:
    es = make_issuer("ES256")
    # An ES384 key beside the ES256 one: ES256 alone would be refused at start-up (no key could
    # verify ES384).
    keys = StaticKeys([*es.keys().key_set.keys, *make_issuer("ES384").keys().key_set.keys])
    verifier = Verifier(keys=keys, algorithms=["ES384"], issuer=es.issuer, audience=es.audience)
    with pytest.raises(AlgorithmNotAllowed):
        verifier.verify(es.mint())


# -- time claims -------------------------------------------------------------------------


def test_rfc7519_4_1_4_exp_in_past_beyond_leeway(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(leeway=30, cache_size=0)
    token = issuer.mint(ttl=60)
    clock.advance(60 + 29)
    assert verifier.verify(token)
    clock.advance(1)
    with pytest.raises(TokenExpired) as info:
        verifier.verify(token)
    assert info.value.code == "token_expired"


def test_rfc7519_4_1_5_nbf_in_future(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(leeway=10)
    with pytest.raises(TokenNotYetValid):
        verifier.verify(issuer.mint(nbf=int(clock.now) + 11))
    assert verifier.verify(issuer.mint(nbf=int(clock.now) + 10))


def test_iat_in_future(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(leeway=0)
    with pytest.raises(TokenIssuedInFuture):
        verifier.verify(issuer.mint(iat=int(clock.now) + 5))


def test_max_token_age(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(max_token_age=60, leeway=0, cache_size=0)
    token = issuer.mint(ttl=3600)
    clock.advance(61)
    with pytest.raises(TokenExpired) as info:
        verifier.verify(token)
    assert info.value.code == "token_too_old"
    with pytest.raises(ClaimMissing):
        verifier.verify(issuer.mint(iat=None))


@pytest.mark.parametrize(
    "value",
    ["1800000000", True, False, None, [1], {"a": 1}, -5, 10**20, 2**63, 1.5e300],
)
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_time_claims_must_be_sane_numbers(issuer: LocalIssuer, claim: str, value: Any) -> None:
    claims = issuer.claims()
    claims[claim] = value
    with pytest.raises(ClaimInvalid):
        issuer.verifier().verify(issuer.mint(claims))


@pytest.mark.parametrize("literal", [b"1e400", b"-1e400", b"1" + b"0" * 400 + b".0"])
def test_time_claims_overflowing_to_infinity_are_invalid(
    issuer: LocalIssuer, literal: bytes
) -> None:
    from jwt_guard.testing import forge

    payload = b'{"iss":"https://issuer.test","aud":"api://test","exp":' + literal + b"}"
    token = forge({"alg": "RS256", "kid": issuer.kid}, payload, issuer.private_key, "RS256")
    with pytest.raises(ClaimInvalid):
        issuer.verifier().verify(token)


def test_exp_required_by_default(issuer: LocalIssuer) -> None:
    with pytest.raises(ClaimMissing):
        issuer.verifier().verify(issuer.mint(exp=None))


def test_required_claims(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(required_claims=("exp", "sub", "tenant"))
    with pytest.raises(ClaimMissing):
        verifier.verify(issuer.mint())
    assert verifier.verify(issuer.mint(tenant="t1"))


# -- iss / aud / typ ---------------------------------------------------------------------


def test_issuer_compared_exactly(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    for bad in ("https://issuer.tes", "https://issuer.test/", "https://issuer.test.evil", "x"):
        with pytest.raises(IssuerInvalid):
            verifier.verify(issuer.mint(issuer=bad))
    with pytest.raises(ClaimMissing):
        verifier.verify(issuer.mint(iss=None))
    with pytest.raises(ClaimInvalid):
        verifier.verify(issuer.mint(iss=["https://issuer.test"]))


def test_issuer_list(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(issuer=["https://other", issuer.issuer])
    assert verifier.verify(issuer.mint())


def test_audience_string_or_array(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(audience=["api://a", "api://b"])
    assert verifier.verify(issuer.mint(audience="api://b"))
    assert verifier.verify(issuer.mint(audience=["x", "api://a"]))
    with pytest.raises(AudienceInvalid):
        verifier.verify(issuer.mint(audience=["x", "y"]))
    with pytest.raises(AudienceInvalid):
        verifier.verify(issuer.mint(audience="api://a/extra"))
    with pytest.raises(ClaimMissing):
        verifier.verify(issuer.mint(aud=None))
    for wrong in ([], [1], 5, {"a": "api://a"}):
        with pytest.raises(ClaimInvalid):
            verifier.verify(issuer.mint(aud=wrong))


def test_rfc7519_4_1_3_aud_present_but_no_audience_configured(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(audience=None)
    with pytest.raises(AudienceInvalid):
        verifier.verify(issuer.mint())
    assert verifier.verify(issuer.mint(aud=None))


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_rfc9068_4_typ(issuer: LocalIssuer, typ: str) -> None:
    verifier = issuer.verifier(typ="application/at+jwt")
    assert verifier.verify(issuer.mint(header={"typ": typ}))


@pytest.mark.parametrize("typ", ["JWT", "id+jwt", None, 5])
def test_rfc8725_3_11_typ_mismatch(issuer: LocalIssuer, typ: Any) -> None:
    verifier = issuer.verifier(typ="at+jwt")
    with pytest.raises(TypeInvalid):
        verifier.verify(issuer.mint(header={"typ": typ} if typ is not None else {"typ": None}))


# -- principal -------------------------------------------------------------------------


def test_principal_contents(issuer: LocalIssuer) -> None:
    token = issuer.mint(sub="alice", roles=["admin", "user"], scopes=["read", "write"])
    p = issuer.verifier().verify(token)
    assert p.subject == "alice" and p.identity == "alice" and p.is_authenticated
    assert p.roles == {"admin", "user"} and p.scopes == {"read", "write"}
    assert p.has_roles("admin") and not p.has_roles("admin", "root")
    assert p.has_scopes("read", "write") and not p.has_scopes("delete")
    assert p.audience == (issuer.audience,)
    assert p.token_id == p.claims["jti"]
    assert p.expires_at == p.claims["exp"]
    assert p.header["kid"] == issuer.kid
    with pytest.raises(TypeError):
        p.claims["sub"] = "mallory"  # type: ignore[index]
    with pytest.raises(AttributeError):
        p.subject = "mallory"  # type: ignore[misc]
    assert token not in repr(p) and "alice" in repr(p)


def test_scp_string_or_list(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    assert verifier.verify(issuer.mint(scp="a b")).scopes == {"a", "b"}
    assert verifier.verify(issuer.mint(scp=["a", "c"], scope="b")).scopes == {"a", "b", "c"}


def test_role_string_is_one_role_not_substring(issuer: LocalIssuer) -> None:
    p = issuer.verifier().verify(issuer.mint(roles="superadmin"))
    assert p.roles == {"superadmin"}
    assert not p.has_roles("admin")


def test_nested_and_dotted_role_claims(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(
        roles_claim=[
            "realm_access.roles",
            "https://example.com/roles",
            "resource_access.my.client.roles",
        ]
    )
    p = verifier.verify(
        issuer.mint(
            realm_access={"roles": ["kc-admin"]},
            resource_access={"my.client": {"roles": ["client-role"]}},
            **{"https://example.com/roles": ["auth0-role"]},
        )
    )
    assert p.roles == {"kc-admin", "auth0-role", "client-role"}


@pytest.mark.parametrize("roles", [5, [1, 2], {"a": 1}, ["ok", None]])
def test_roles_of_wrong_type_are_invalid(issuer: LocalIssuer, roles: Any) -> None:
    with pytest.raises(ClaimInvalid):
        issuer.verifier().verify(issuer.mint(roles=roles))


@pytest.mark.parametrize("claim,value", [("sub", 5), ("jti", ["a"]), ("scope", 5)])
def test_string_claims_of_wrong_type(issuer: LocalIssuer, claim: str, value: Any) -> None:
    with pytest.raises(ClaimInvalid):
        issuer.verifier().verify(issuer.mint(**{claim: value}))


# -- multiple issuers ----------------------------------------------------------------------


def test_multi_issuer_routes_by_configured_issuer(clock: FakeClock) -> None:
    a = LocalIssuer(issuer="https://a.test", audience="api-a", algorithm="ES256", clock=clock)
    b = LocalIssuer(issuer="https://b.test", audience="api-b", algorithm="EdDSA", clock=clock)
    verifier = Verifier(
        algorithms=["ES256"],
        issuers=[
            TrustedIssuer(a.issuer, a.keys(), audience="api-a"),
            TrustedIssuer(b.issuer, b.keys(), audience="api-b", algorithms=["EdDSA"]),
        ],
        clock=clock,
    )
    assert verifier.verify(a.mint()).issuer == "https://a.test"
    assert verifier.verify(b.mint()).issuer == "https://b.test"
    # b's token claiming to be from a: a's keys do not hold b's key.
    with pytest.raises(AlgorithmNotAllowed):
        verifier.verify(b.mint(issuer="https://a.test", audience="api-a"))
    with pytest.raises(IssuerInvalid):
        verifier.verify(a.mint(issuer="https://c.test"))
    with pytest.raises(ClaimMissing):
        verifier.verify(a.mint(iss=None))
    with pytest.raises(AudienceInvalid):
        verifier.verify(a.mint(audience="api-b"))


def test_multi_issuer_configuration_errors(issuer: LocalIssuer) -> None:
    t = TrustedIssuer(issuer.issuer, issuer.keys())
    with pytest.raises(ConfigurationError):
        Verifier(algorithms=["RS256"], issuers=[t, t])
    with pytest.raises(ConfigurationError):
        Verifier(algorithms=["RS256"], issuers=[t], keys=issuer.keys())
    with pytest.raises(ConfigurationError):
        TrustedIssuer("", issuer.keys())


# -- key rotation with static keys ------------------------------------------------------------


def test_kid_unknown_is_key_not_found(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    with pytest.raises(KeyNotFound):
        verifier.verify(issuer.mint(header={"kid": "unknown"}))


def test_rfc7515_4_1_4_kid_null_is_malformed(issuer: LocalIssuer) -> None:
    """``"kid": null`` is not "no kid": RFC 7515 §4.1.4 makes it a string when present."""
    token = forge({"alg": "RS256", "kid": None}, issuer.claims(), issuer.private_key, "RS256")
    with pytest.raises(MalformedToken):
        issuer.verifier().verify(token)


def test_rfc7517_4_5_jwk_kid_null_is_refused(issuer: LocalIssuer) -> None:
    jwk = dict(issuer.jwks["keys"][0], kid=None)
    with pytest.raises(ConfigurationError):
        StaticKeys([jwk])


def test_kidless_token_is_tried_against_fitting_keys(clock: FakeClock) -> None:
    iss = LocalIssuer(algorithm="ES256", clock=clock)
    first = iss.kid
    iss.rotate()
    verifier = iss.verifier()
    assert verifier.verify(iss.mint(header={"kid": None}))
    assert verifier.verify(iss.mint(header={"kid": None}, kid=first))


def test_hmac_verifier(clock: FakeClock) -> None:
    verifier = Verifier(keys=StaticKeys.from_secret("s" * 32), algorithms=["HS256"], clock=clock)
    import jwt

    token = jwt.encode({"exp": clock.now + 60, "sub": "x"}, b"s" * 32, algorithm="HS256")
    assert verifier.verify(token).subject == "x"


async def test_concurrent_averify(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    tokens = [issuer.mint(sub=f"u{i}") for i in range(20)]
    principals = await asyncio.gather(*(verifier.averify(t) for t in tokens))
    assert [p.subject for p in principals] == [f"u{i}" for i in range(20)]


def test_principal_is_a_starlette_user(issuer: LocalIssuer) -> None:
    from starlette.authentication import BaseUser

    p: Principal = issuer.verifier().verify(issuer.mint(preferred_username="Alice A."))
    for name in ("is_authenticated", "display_name", "identity"):
        assert hasattr(p, name) and hasattr(BaseUser, name)
    assert p.display_name == "Alice A."
