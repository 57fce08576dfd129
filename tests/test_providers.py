"""Provider presets: issuers, key URLs, each IdP's documented checks, overrides (issue #14)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jwt_guard import (
    AlgorithmNotAllowed,
    AudienceInvalid,
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    JWKSKeys,
    TrustedIssuer,
    TypeInvalid,
    Verifier,
    providers,
)
from jwt_guard.testing import LocalIssuer

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_issuers_and_key_urls() -> None:
    cases: dict[TrustedIssuer, tuple[str, str]] = {
        providers.auth0("acme.eu.auth0.com", audience="api"): (
            "https://acme.eu.auth0.com/",
            "https://acme.eu.auth0.com/.well-known/jwks.json",
        ),
        providers.keycloak("https://sso.acme.io", "main", audience="api", client_id="web"): (
            "https://sso.acme.io/realms/main",
            "https://sso.acme.io/realms/main/protocol/openid-connect/certs",
        ),
        providers.entra_id(TENANT, audience="api"): (
            f"https://login.microsoftonline.com/{TENANT}/v2.0",
            f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys",
        ),
        providers.entra_id(TENANT, audience="api", version=1): (
            f"https://sts.windows.net/{TENANT}/",
            f"https://login.microsoftonline.com/{TENANT}/discovery/keys",
        ),
        providers.cognito("eu-west-1", "eu-west-1_AbC123", client_id="app"): (
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json",
        ),
        providers.okta("acme.okta.com", audience="api"): (
            "https://acme.okta.com/oauth2/default",
            "https://acme.okta.com/oauth2/default/v1/keys",
        ),
        providers.google(audience="client-id"): (
            "https://accounts.google.com",
            "https://www.googleapis.com/oauth2/v3/certs",
        ),
    }
    for trusted, (issuer, jwks_url) in cases.items():
        assert trusted.issuer == issuer
        assert isinstance(trusted.keys, JWKSKeys)
        assert trusted.keys._source_url() == jwks_url
    verifier = Verifier(algorithms=["RS256"], issuers=list(cases))
    assert len(verifier.key_sources) == 7


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: providers.auth0("evil.com/x?", audience="api"), "bare host"),
        (lambda: providers.cognito("eu-west-1", "../../x", client_id="a"), "user_pool_id"),
        (lambda: providers.cognito("eu-west-1", "eu-west-1_A", client_id=[]), "client_id"),
        (
            lambda: providers.cognito("eu-west-1", "eu-west-1_A", client_id="a", token_use="x"),
            "token_use",
        ),
        (lambda: providers.entra_id("common", audience="api"), "tenants="),
        (lambda: providers.entra_id("contoso.onmicrosoft.com", audience="api"), "GUID"),
        (lambda: providers.entra_id(TENANT, audience="api", version=3), "version"),
        (lambda: providers.keycloak("sso.acme.io", "main", audience="api"), "base_url"),
        (lambda: providers.google(audience="x", hosted_domain="a/b"), "hosted_domain"),
    ],
)
def test_bad_preset_arguments_name_the_fix(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_cognito_requires_client_id() -> None:
    with pytest.raises(TypeError):
        providers.cognito("eu-west-1", "eu-west-1_AbC123")  # type: ignore[call-arg]


# -- the documented checks, with real tokens --------------------------------------------------


def _verifier(trusted: TrustedIssuer) -> Verifier:
    return Verifier(algorithms=["RS256"], issuers=[trusted])


def _idp(issuer: LocalIssuer, iss: str) -> LocalIssuer:
    """An issuer with the provider's ``iss`` and the real clock (the presets use it)."""
    return LocalIssuer(issuer=iss, algorithm=issuer.algorithm)


POOL = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"


def test_cognito_access_tokens_of_other_app_clients_are_refused(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, POOL)
    trusted = providers.cognito(
        "eu-west-1", "eu-west-1_AbC123", client_id=["app-1", "app-2"], keys=idp.keys()
    )
    verifier = _verifier(trusted)
    access = {"token_use": "access", "scope": "orders/read", "cognito:groups": ["admin"]}
    ok = verifier.verify(idp.mint(audience=None, aud=None, client_id="app-2", **access))
    assert ok.roles == {"admin"} and ok.scopes == {"orders/read"}
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(idp.mint(aud=None, client_id="other-app", **access))
    assert caught.value.detail == {
        "claim": "client_id",
        "expected": ["app-1", "app-2"],
        "found": "other-app",
    }
    with pytest.raises(ClaimMissing):
        verifier.verify(idp.mint(aud=None, **access))
    # An ID token of the same pool is not an access token.
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(idp.mint(aud=None, client_id="app-1", token_use="id"))
    assert caught.value.detail["claim"] == "token_use"


def test_cognito_id_tokens_check_aud_and_token_use(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, POOL)
    trusted = providers.cognito(
        "eu-west-1", "eu-west-1_AbC123", client_id="app-1", token_use="id", keys=idp.keys()
    )
    verifier = _verifier(trusted)
    assert verifier.verify(idp.mint(audience="app-1", token_use="id"))
    with pytest.raises(AudienceInvalid):
        verifier.verify(idp.mint(audience="app-2", token_use="id"))
    with pytest.raises(ClaimInvalid):
        verifier.verify(idp.mint(audience="app-1", token_use="access"))


def test_entra_id_checks_the_tenant(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, f"https://login.microsoftonline.com/{TENANT}/v2.0")
    trusted = providers.entra_id(TENANT.upper(), audience="api://orders", keys=idp.keys())
    verifier = _verifier(trusted)
    principal = verifier.verify(idp.mint(audience="api://orders", tid=TENANT, scp="read write"))
    assert principal.scopes == {"read", "write"}
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(idp.mint(audience="api://orders", tid="another-tenant"))
    assert caught.value.detail["claim"] == "tid"
    with pytest.raises(ClaimMissing):
        verifier.verify(idp.mint(audience="api://orders"))


def test_keycloak_refuses_id_and_refresh_tokens(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, "https://sso.acme.io/realms/main")
    trusted = providers.keycloak(
        "https://sso.acme.io/", "main", audience="orders", client_id="web", keys=idp.keys()
    )
    verifier = _verifier(trusted)
    token = idp.mint(
        audience="orders",
        typ="Bearer",
        realm_access={"roles": ["user"]},
        resource_access={"web": {"roles": ["admin"]}},
    )
    assert verifier.verify(token).roles == {"user", "admin"}
    for typ in ("ID", "Refresh"):
        with pytest.raises(ClaimInvalid) as caught:
            verifier.verify(idp.mint(audience="orders", typ=typ))
        assert caught.value.detail == {"claim": "typ", "expected": ["Bearer"], "found": typ}


def test_okta_checks_cid_when_given(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, "https://acme.okta.com/oauth2/default")
    trusted = providers.okta(
        "acme.okta.com", audience="api://default", client_id="0oa1", keys=idp.keys()
    )
    verifier = _verifier(trusted)
    assert verifier.verify(idp.mint(audience="api://default", cid="0oa1", groups=["g"])).roles == {
        "g"
    }
    with pytest.raises(ClaimInvalid):
        verifier.verify(idp.mint(audience="api://default", cid="0oa2"))


def test_google_hosted_domain(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, "https://accounts.google.com")
    trusted = providers.google(audience="client", hosted_domain="acme.com", keys=idp.keys())
    verifier = _verifier(trusted)
    assert verifier.verify(idp.mint(audience="client", hd="acme.com"))
    with pytest.raises(ClaimMissing):
        verifier.verify(idp.mint(audience="client"))  # a consumer Google account


def test_auth0_issuer_has_its_trailing_slash(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, "https://acme.eu.auth0.com/")
    trusted = providers.auth0("acme.eu.auth0.com", audience="api", keys=idp.keys())
    assert _verifier(trusted).verify(idp.mint(audience="api", permissions=["read:x"])).roles == {
        "read:x"
    }


def test_caller_claims_and_validate_add_to_the_preset(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, POOL)

    def no_guests(claims: Any) -> bool:
        return "guests" not in claims.get("cognito:groups", [])

    trusted = providers.cognito(
        "eu-west-1",
        "eu-west-1_AbC123",
        client_id="app",
        keys=idp.keys(),
        claims={"custom:tier": {"gold", "silver"}},
        validate=no_guests,
    )
    verifier = _verifier(trusted)
    base = {"aud": None, "client_id": "app", "token_use": "access"}
    assert verifier.verify(idp.mint(**base, **{"custom:tier": "gold"}))
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(idp.mint(**base, **{"custom:tier": "bronze"}))
    # Not a claim whose value is shown: only its JSON type.
    assert caught.value.detail["found"] == "<string>"
    with pytest.raises(ClaimInvalid) as caught:
        verifier.verify(idp.mint(**base, **{"custom:tier": "gold", "cognito:groups": ["guests"]}))
    assert "no_guests" in caught.value.detail["reason"]


# -- overrides ---------------------------------------------------------------------------------


async def test_keycloak_in_docker_compose_fetches_keys_from_another_url(
    issuer: LocalIssuer,
) -> None:
    """Tokens say http://localhost:8080/realms/x; the API reaches Keycloak at another URL."""
    idp = _idp(issuer, "http://localhost:8080/realms/x")
    with idp.serve() as server:
        trusted = providers.keycloak(
            "http://localhost:8080", "x", audience="api", jwks_url=server.url
        )
        assert trusted.issuer == "http://localhost:8080/realms/x"
        verifier = _verifier(trusted)
        token = idp.mint(audience="api", typ="Bearer")
        assert (await verifier.averify(token)).issuer == "http://localhost:8080/realms/x"
        assert verifier.verify(token)
        assert server.requests["/jwks.json"] >= 1
        await verifier.aclose()
        verifier.close()


def test_jwks_url_override_keeps_the_https_rule() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        providers.keycloak(
            "http://localhost:8080", "x", audience="api", jwks_url="http://keycloak:8080/certs"
        )
    trusted = providers.keycloak(
        "http://localhost:8080",
        "x",
        audience="api",
        jwks_url="http://keycloak:8080/realms/x/protocol/openid-connect/certs",
        allow_http=True,
    )
    assert isinstance(trusted.keys, JWKSKeys)


@pytest.mark.parametrize(
    "preset",
    [
        lambda **kw: providers.auth0("a.auth0.com", audience="api", **kw),
        lambda **kw: providers.keycloak("https://k", "r", audience="api", **kw),
        lambda **kw: providers.entra_id(TENANT, audience="api", **kw),
        lambda **kw: providers.cognito("eu-west-1", "eu-west-1_A", client_id="c", **kw),
        lambda **kw: providers.okta("o.okta.com", audience="api", **kw),
        lambda **kw: providers.google(audience="api", **kw),
    ],
)
def test_every_preset_takes_keys_and_jwks_url(
    preset: Callable[..., TrustedIssuer], issuer: LocalIssuer
) -> None:
    keys = issuer.keys()
    assert preset(keys=keys).keys is keys
    assert preset(jwks_url="https://keys.example/jwks").keys._source_url() == (  # type: ignore[attr-defined]
        "https://keys.example/jwks"
    )
    with pytest.raises(ConfigurationError, match="not both"):
        preset(keys=keys, jwks_url="https://keys.example/jwks")
    with pytest.raises(ConfigurationError, match="do not apply"):
        preset(keys=keys, timeout=3)


# -- algorithms follow the provider's keys (issue 25, item 1) ------------------------------


async def test_issue25_a_preset_follows_the_provider_s_keys_and_named_algorithms_win() -> None:
    """A Keycloak realm whose keys are ES256 was refused by the preset's RS256; the keys say
    which algorithm each is for. ``Verifier(algorithms=...)`` still decides when given."""
    idp = LocalIssuer(issuer="http://localhost:8080/realms/x", algorithm="ES256")
    with idp.serve() as server:
        trusted = providers.keycloak(
            "http://localhost:8080", "x", audience="api", jwks_url=server.url
        )
        token = idp.mint(audience="api", typ="Bearer")
        verifier = Verifier(issuers=[trusted])
        assert (await verifier.averify(token)).issuer == idp.issuer
        assert verifier.verify(token)
        named = Verifier(algorithms=["RS256"], issuers=[trusted])
        with pytest.raises(AlgorithmNotAllowed):
            named.verify(token)
        await verifier.aclose()
        verifier.close()


def test_issue25_a_preset_with_keys_of_your_own_keeps_rs256(issuer: LocalIssuer) -> None:
    idp = _idp(issuer, "https://acme.eu.auth0.com/")
    verifier = Verifier(
        issuers=[providers.auth0("acme.eu.auth0.com", audience="api", keys=idp.keys())]
    )
    assert verifier.verify(idp.mint(audience="api"))


# -- the issuer's options go to the issuer (issue 25 follow-up) ------------------------------

PRESETS: dict[str, Callable[..., Any]] = {
    "auth0": lambda **kw: providers.auth0("a.auth0.com", audience="api", **kw),
    "keycloak": lambda **kw: providers.keycloak("https://k", "r", audience="api", **kw),
    "entra_id": lambda **kw: providers.entra_id(TENANT, audience="api", **kw),
    "entra_id('organizations')": lambda **kw: providers.entra_id(
        "organizations", audience="api", tenants=[TENANT], **kw
    ),
    "cognito": lambda **kw: providers.cognito("eu-west-1", "eu-west-1_A", client_id="c", **kw),
    "okta": lambda **kw: providers.okta("o.okta.com", audience="api", **kw),
    "google": lambda **kw: providers.google(audience="api", **kw),
}


def _each_request(claims: Any) -> bool:
    return True


@pytest.mark.parametrize("name", PRESETS)
def test_issue25_presets_route_issuer_options_to_the_issuer(name: str, issuer: LocalIssuer) -> None:
    """``profile=`` (and ``algorithms=``, the claim paths) went to JWKSKeys: a TypeError."""
    preset = PRESETS[name]
    options = {
        "profile": "rfc9068",
        "algorithms": ["PS256"],
        "roles_claim": "groups.admin",
        "scopes_claim": "scope",
        "validate_each_request": _each_request,
    }
    if name == "cognito":
        options.pop("profile")  # its access tokens carry no aud: RFC 9068 needs one
    made = preset(timeout=3, **options)
    for option, value in options.items():
        assert getattr(made, option) == value, option
    if isinstance(made, TrustedIssuer):
        assert isinstance(made.keys, JWKSKeys)
    # With keys of your own, the issuer's options still apply; the fetch's do not.
    keys = issuer.keys()
    assert preset(keys=keys, **options).algorithms == ["PS256"]
    with pytest.raises(ConfigurationError, match="do not apply"):
        preset(keys=keys, profile="rfc9068", timeout=3)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize(
    "option,message",
    [
        ("profil", r"does not take profil= \(did you mean profile=\?\)"),
        ("algorithm", r"did you mean algorithms=\?"),
        ("timout", r"did you mean timeout=\?"),
        ("issuer", r"issuer= \(the preset makes the issuer"),
        ("frobnicate", r"does not take frobnicate=; it takes .*profile=.*for its JWKS fetch"),
    ],
)
def test_issue25_a_preset_names_an_option_it_does_not_take(
    name: str, option: str, message: str
) -> None:
    """An unknown name was a TypeError from JWKSKeys.__init__, naming neither the preset nor
    what it takes."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        PRESETS[name](**{option: "x"})
    assert str(caught.value).startswith(f"{name.split('(')[0]}() does not take")


def test_issue25_cognito_audience_names_client_id() -> None:
    with pytest.raises(ConfigurationError, match=r"audience= \(client_id= names your app"):
        providers.cognito("eu-west-1", "eu-west-1_A", client_id="c", audience="api")


async def test_issue25_a_preset_with_profile_rfc9068_refuses_id_tokens(
    issuer: LocalIssuer,
) -> None:
    """The preset's ``profile=`` reaches the verifier: an ID token is refused, the access
    token accepted; a preset's named ``algorithms=`` win over the provider's published keys."""
    idp = LocalIssuer(issuer="https://acme.okta.com/oauth2/default", algorithm="ES256")
    with idp.serve() as server:
        trusted = providers.okta(
            "acme.okta.com", audience="api", profile="rfc9068", jwks_url=server.url
        )
        verifier = Verifier(issuers=[trusted])
        claims = {"audience": "api", "client_id": "web"}
        with pytest.raises(TypeInvalid):
            await verifier.averify(idp.mint(**claims))
        access = idp.mint(header={"typ": "at+jwt"}, **claims)
        assert (await verifier.averify(access)).subject == "user-1"
        assert verifier.verify(access).subject == "user-1"
        rs_only = providers.okta(
            "acme.okta.com", audience="api", algorithms=["RS256"], jwks_url=server.url
        )
        with pytest.raises(AlgorithmNotAllowed):
            Verifier(issuers=[rs_only]).verify(idp.mint(audience="api"))
        await verifier.aclose()
        verifier.close()
