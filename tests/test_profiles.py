"""Profiles (``_core.profiles``): RFC 9068 as one switch, on every path (issue 25, item 8)."""

from __future__ import annotations

from typing import Any

import pytest

from jwt_guard import (
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    InvalidToken,
    OIDCDiscovery,
    TenantIssuer,
    TrustedIssuer,
    TypeInvalid,
    Verifier,
)
from jwt_guard._core.profiles import PROFILES, Profile, resolve_profile
from jwt_guard.testing import LocalIssuer

from .conftest import AppFactory, Drive, bearer

CLIENT = "orders-spa"  # the client id a provider puts in an ID token's "aud"
RFC9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")


def access_token(idp: LocalIssuer, **overrides: Any) -> str:
    """An RFC 9068 access token: typ at+jwt, the claims of its §2.2."""
    header = {"typ": overrides.pop("typ", "at+jwt")}
    return idp.mint(header=header, **{"client_id": CLIENT, **overrides})


def id_token(issuer: LocalIssuer, **claims: Any) -> str:
    """An OpenID Connect ID token as a real provider signs it (OIDC Core §2): typ JWT, the
    client id as audience, nonce and at_hash, signed by the same keys as its access tokens."""
    return issuer.mint(
        header={"typ": "JWT"},
        audience=CLIENT,
        azp=CLIENT,
        nonce="n-0S6_WzA2Mj",
        at_hash="77QmUPtjPfzWtF2AnpK9RQ",
        auth_time=int(issuer.clock()) - 5,
        jti=None,
        **claims,
    )


# -- the finding: an ID token accepted as an access token -----------------------------------


async def test_rfc9068_4_rfc8725_3_11_id_token_with_the_client_id_as_audience_is_refused(
    issuer: LocalIssuer, drive: Drive
) -> None:
    """A provider's ID token, whose ``aud`` is the client id, was accepted as an access token
    by an API that took the client id as its audience and did not require ``typ``."""
    token = id_token(issuer)
    loose = issuer.verifier(audience=CLIENT)
    assert (await drive.verify(loose, token)).subject == "user-1"  # the finding, without it
    strict = issuer.verifier(audience=CLIENT, profile="rfc9068")
    with pytest.raises(TypeInvalid) as caught:
        await drive.verify(strict, token)
    detail = caught.value.detail
    assert caught.value.code == "type_invalid"
    assert detail["typ"] == "JWT" and detail["expected"] == "at+jwt"
    assert detail["profile"] == "rfc9068"
    assert detail["id_token_claims"] == ["at_hash", "nonce"]
    assert "send the access token" in detail["hint"]
    # The same API accepts the access token issued alongside.
    assert (await drive.verify(strict, access_token(issuer, audience=CLIENT))).subject


async def test_rfc9068_4_id_token_refused_through_both_adapters(
    issuer: LocalIssuer, make_client: AppFactory
) -> None:
    client = make_client(issuer.verifier(profile="rfc9068"), debug=True)
    refused = await client.get("/me", headers=bearer(id_token(issuer)))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert refused.json()["code"] == "type_invalid"
    assert refused.json()["detail"]["id_token_claims"] == ["at_hash", "nonce"]
    accepted = await client.get("/me", headers=bearer(access_token(issuer)))
    assert accepted.status_code == 200


# -- RFC 9068 §4: typ ----------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
async def test_rfc9068_4_typ_at_jwt_accepted(issuer: LocalIssuer, drive: Drive, typ: str) -> None:
    verifier = issuer.verifier(profile="rfc9068")
    assert (await drive.verify(verifier, access_token(issuer, typ=typ))).subject == "user-1"


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id+jwt", "at+jwt+x", None])
async def test_rfc9068_4_other_typ_refused(
    issuer: LocalIssuer, drive: Drive, typ: str | None
) -> None:
    verifier = issuer.verifier(profile="rfc9068")
    with pytest.raises(TypeInvalid) as caught:
        await drive.verify(verifier, access_token(issuer, typ=typ))
    assert caught.value.detail == {"typ": typ, "expected": "at+jwt", "profile": "rfc9068"}


# -- RFC 9068 §2.2: required claims --------------------------------------------------------


@pytest.mark.parametrize("claim", RFC9068_CLAIMS)
async def test_rfc9068_2_2_each_required_claim(
    issuer: LocalIssuer, drive: Drive, claim: str
) -> None:
    verifier = issuer.verifier(profile="rfc9068")
    with pytest.raises(ClaimMissing) as caught:
        await drive.verify(verifier, access_token(issuer, **{claim: None}))
    detail = caught.value.detail
    assert detail["claim"] == claim and detail["profile"] == "rfc9068"
    assert set(RFC9068_CLAIMS) <= set(detail["required"])


@pytest.mark.parametrize("claim", ["client_id", "sub", "jti"])
async def test_rfc9068_2_2_a_required_claim_that_is_null_is_missing(
    issuer: LocalIssuer, drive: Drive, claim: str
) -> None:
    """``"client_id": null`` names no client: a required claim needs a value."""
    claims = {**issuer.claims(client_id=CLIENT), claim: None}
    verifier = issuer.verifier(profile="rfc9068")
    with pytest.raises(ClaimMissing) as caught:
        await drive.verify(verifier, issuer.mint(claims, header={"typ": "at+jwt"}))
    assert caught.value.detail["claim"] == claim and caught.value.detail["found"] is None


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("client_id", ["a", "b"]),
        ("client_id", {}),
        ("client_id", 7),
        ("client_id", ""),
        ("sub", ""),
        ("jti", ""),
    ],
)
async def test_rfc9068_2_2_client_id_must_be_a_non_empty_string(
    issuer: LocalIssuer, drive: Drive, claim: str, value: Any
) -> None:
    """Review 25b F5: RFC 9068 §2.2 (client_id per RFC 8693 §4.3, sub and jti per RFC 7519):
    only the presence was checked; a list, an object, a number or "" passed."""
    verifier = issuer.verifier(profile="rfc9068")
    with pytest.raises(ClaimInvalid) as caught:
        await drive.verify(verifier, access_token(issuer, **{claim: value}))
    detail = caught.value.detail
    assert detail["claim"] == claim and detail["profile"] == "rfc9068"
    assert detail["reason"] == "must be a non-empty string"
    assert repr(value) not in str(detail) or value == ""


async def test_without_the_profile_an_empty_client_id_is_the_apps_business(
    issuer: LocalIssuer, drive: Drive
) -> None:
    assert (await drive.verify(issuer.verifier(), issuer.mint(client_id=""))).subject


def test_a_required_claim_that_is_null_is_missing_without_a_profile_too(
    issuer: LocalIssuer,
) -> None:
    verifier = issuer.verifier(required_claims=["exp", "tenant"])
    with pytest.raises(ClaimMissing) as caught:
        verifier.verify(issuer.mint({**issuer.claims(), "tenant": None}))
    assert caught.value.detail == {"claim": "tenant", "required": ["exp", "tenant"], "found": None}


async def test_without_the_profile_client_id_is_not_required(issuer: LocalIssuer) -> None:
    assert issuer.verifier(typ="at+jwt").verify(access_token(issuer, client_id=None))


async def test_a_claim_the_profile_does_not_require_has_no_profile_in_its_detail(
    issuer: LocalIssuer,
) -> None:
    verifier = issuer.verifier(profile="rfc9068", required_claims=["exp", "tenant"])
    with pytest.raises(ClaimMissing) as caught:
        verifier.verify(access_token(issuer))
    assert caught.value.detail["claim"] == "tenant" and "profile" not in caught.value.detail


# -- one switch: options it sets, options that contradict it --------------------------------


def test_profile_and_the_same_typ_agree(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(profile=["rfc9068"], typ="application/at+jwt")
    assert verifier.verify(access_token(issuer))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"typ": "JWT"}, "typ='jwt' contradicts profile 'rfc9068'"),
        ({"denylist": None, "allow_tokens_without_jti": True}, "allow_tokens_without_jti=True"),
        ({"audience": None}, "needs audience="),
        ({"issuer": None}, "needs issuer="),
    ],
)
def test_an_explicit_weaker_option_is_a_configuration_error(
    issuer: LocalIssuer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        issuer.verifier(profile="rfc9068", **options)
    assert "RFC 9068" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("rfc9086", "'rfc9068'"),
        ("RFC-9068", "'rfc9068'"),
        ("9068", "'rfc9068'"),
        ("fapi", "'fapi2'"),
        ("oauth", None),
    ],
)
def test_unknown_profile_names_did_you_mean(
    issuer: LocalIssuer, name: str, suggestion: str | None
) -> None:
    with pytest.raises(ConfigurationError, match="unknown profile") as caught:
        issuer.verifier(profile=name)
    message = str(caught.value)
    assert "known profiles: fapi2, rfc9068" in message
    if suggestion is None:
        assert "did you mean" not in message
    else:
        assert f"did you mean {suggestion}?" in message


@pytest.mark.parametrize("value", [[], "", ["rfc9068", 5], b"rfc9068", 9068])
def test_profile_must_be_names(issuer: LocalIssuer, value: Any) -> None:
    with pytest.raises(ConfigurationError):
        issuer.verifier(profile=value)


def test_profile_names_are_case_insensitive_and_a_repeat_asks_nothing_more() -> None:
    assert resolve_profile(["RFC9068", " rfc9068 "]) == PROFILES["rfc9068"]
    assert resolve_profile(None) is None


def test_profiles_compose_and_a_contradiction_is_a_configuration_error() -> None:
    """How issue 28's next profile joins: its demands add to RFC 9068's; a typ it cannot
    share is refused at start-up."""
    rfc9068 = PROFILES["rfc9068"]
    other = Profile("other", "Other §1", required_claims=("cnf", "sub"), needs_audience=True)
    both = rfc9068 + other
    assert both.name == "rfc9068+other" and both.typ == "at+jwt"
    assert both.required_claims == (*RFC9068_CLAIMS, "cnf")
    assert both.needs_issuer and both.needs_audience
    with pytest.raises(ConfigurationError, match="cannot both hold"):
        rfc9068 + Profile("jwt", "x", typ="jwt")


# -- every way in: TrustedIssuer, discovery, from_env, Flask config ------------------------


async def test_trusted_issuer_profile_applies_to_that_issuer_only(
    make_issuer: Any, drive: Drive
) -> None:
    strict, loose = make_issuer("RS256"), make_issuer("ES256")
    verifier = Verifier(
        algorithms=["RS256", "ES256"],
        audience=strict.audience,
        issuers=[
            TrustedIssuer(strict.issuer + "/strict", strict.keys(), profile="rfc9068"),
            TrustedIssuer(strict.issuer + "/loose", loose.keys()),
        ],
        clock=strict.clock,
    )
    plain = {"header": {"typ": "JWT"}}
    ok = await drive.verify(verifier, loose.mint(issuer=strict.issuer + "/loose", **plain))
    assert ok.subject == "user-1"
    with pytest.raises(TypeInvalid) as caught:
        await drive.verify(verifier, strict.mint(issuer=strict.issuer + "/strict", **plain))
    assert caught.value.detail["profile"] == "rfc9068"
    at = access_token(strict, issuer=strict.issuer + "/strict")
    assert (await drive.verify(verifier, at)).issuer == strict.issuer + "/strict"


def test_trusted_issuer_profile_adds_to_the_verifiers(issuer: LocalIssuer) -> None:
    trusted = TrustedIssuer(issuer.issuer, issuer.keys(), audience=None, profile="rfc9068")
    with pytest.raises(ConfigurationError, match="needs audience="):
        Verifier(algorithms=[issuer.algorithm], issuers=[trusted])
    with pytest.raises(ConfigurationError, match="unknown profile"):
        TrustedIssuer(issuer.issuer, issuer.keys(), profile="rfc9069")
    both = Verifier(
        algorithms=[issuer.algorithm],
        audience=issuer.audience,
        profile="rfc9068",
        issuers=[TrustedIssuer(issuer.issuer, issuer.keys(), profile="rfc9068")],
        clock=issuer.clock,
    )
    assert both.verify(access_token(issuer))


async def test_the_discovered_issuer_is_the_issuer_the_profile_needs(
    issuer: LocalIssuer,
) -> None:
    with issuer.serve() as server:
        server.issuer = server.base_url
        source = OIDCDiscovery(server.base_url, allow_http=True)
        verifier = issuer.verifier(keys=source, issuer=None, profile="rfc9068")
        try:
            token = access_token(issuer, issuer=server.base_url)
            assert (await verifier.averify(token)).issuer == server.base_url
            assert verifier.verify(token).issuer == server.base_url
            with pytest.raises(TypeInvalid):
                await verifier.averify(issuer.mint(issuer=server.base_url, client_id=CLIENT))
        finally:
            await verifier.aclose()
            verifier.close()


def test_from_env_profile(monkeypatch: pytest.MonkeyPatch, issuer: LocalIssuer) -> None:
    monkeypatch.setenv("X_ISSUER", issuer.issuer)
    monkeypatch.setenv("X_AUDIENCE", issuer.audience)
    monkeypatch.setenv("X_JWKS_URL", "https://idp.example/jwks")
    monkeypatch.setenv("X_ALGORITHMS", issuer.algorithm)
    monkeypatch.setenv("X_PROFILE", "rfc9068")
    verifier = Verifier.from_env("X_", keys=issuer.keys(), clock=issuer.clock)
    assert verifier.verify(access_token(issuer))
    with pytest.raises(TypeInvalid):
        verifier.verify(issuer.mint(client_id=CLIENT))
    monkeypatch.setenv("X_PROFILE", "rfc9086")
    monkeypatch.setenv("X_LEEWAY", "soon")
    with pytest.raises(ConfigurationError) as caught:
        Verifier.from_env("X_")
    message = str(caught.value)  # reported with the other problems, in one error
    assert "X_PROFILE: unknown profile 'rfc9086'; did you mean 'rfc9068'?" in message
    assert "X_LEEWAY must be" in message


def test_flask_config_profile(issuer: LocalIssuer) -> None:
    from flask import Flask

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    app.config.update(
        JWT_GUARD_ISSUER=issuer.issuer,
        JWT_GUARD_AUDIENCE=issuer.audience,
        JWT_GUARD_JWKS_URL="https://idp.example/jwks",
        JWT_GUARD_ALGORITHMS=issuer.algorithm,
        JWT_GUARD_PROFILE=["rfc9068"],
    )
    guard = JWTGuard(app)
    assert guard.middleware is not None  # its verifier built from the config
    with pytest.raises(InvalidToken) as caught:  # refused before any key is fetched
        guard.middleware.verifier.verify(issuer.mint(client_id=CLIENT))
    assert caught.value.code == "type_invalid"


async def test_tenant_issuer_profile_applies_to_every_tenant(
    issuer: LocalIssuer, drive: Drive
) -> None:
    template = "https://login.example/{tid}/v2.0"
    with pytest.raises(ConfigurationError, match="did you mean 'rfc9068'"):
        TenantIssuer(template, lambda tid: issuer.keys(), tenants=["t1"], profile="rfc9086")
    verifier = Verifier(
        algorithms=[issuer.algorithm],
        audience=issuer.audience,
        issuers=[
            TenantIssuer(template, lambda tid: issuer.keys(), tenants=["t1"], profile="rfc9068")
        ],
        clock=issuer.clock,
    )
    tenant_issuer = template.format(tid="t1")
    with pytest.raises(TypeInvalid) as caught:
        await drive.verify(verifier, id_token(issuer, iss=tenant_issuer))
    assert caught.value.detail["profile"] == "rfc9068"
    accepted = await drive.verify(verifier, access_token(issuer, issuer=tenant_issuer))
    assert accepted.issuer == tenant_issuer
