"""profile="fapi2": the FAPI 2.0 Security Profile's resource-server rules (issue 28, item 4).

Each rule is cited by its section of the FAPI 2.0 Security Profile (final, February 2025) and
tested through both drivers or both adapters: §5.3.4 (resource servers) and §5.4 (cryptography).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask

from jwt_guard import (
    AlgorithmNotAllowed,
    ClaimMissing,
    ConfigurationError,
    DPoP,
    DPoPBoundTokenAsBearer,
    JWTGuardMiddleware,
    JWTGuardWSGIMiddleware,
    RouteGuard,
    StaticKeys,
    TokenBindingUnsupported,
    TokenNotSenderConstrained,
    TrustedIssuer,
    TypeInvalid,
    Verifier,
)
from jwt_guard._core.profiles import resolve_profile
from jwt_guard.flask import JWTGuard
from jwt_guard.testing import LocalIssuer, dpop_proof

from .conftest import AppFactory, Drive, FakeClock, assert_no_leak, bearer, challenge

DPOP_ALGS = ["ES256"]


@pytest.fixture
def fapi(make_issuer: Callable[..., LocalIssuer]) -> LocalIssuer:
    """An authorization server signing with PS256, one of the profile's algorithms."""
    return make_issuer("PS256")


@pytest.fixture(scope="module")
def client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def fapi_verifier(idp: LocalIssuer, **options: Any) -> Verifier:
    settings: dict[str, Any] = {"profile": "fapi2", "dpop": DPoP(algorithms=DPOP_ALGS)}
    settings.update(options)
    return idp.verifier(**settings)


def dpop_headers(
    client: httpx.AsyncClient, token: str, key: Any, clock: FakeClock
) -> dict[str, str]:
    url = str(client.base_url.join("/me"))
    proof = dpop_proof(key, "GET", url, access_token=token, iat=clock.now)
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


# -- §5.3.4 item 5: only sender-constrained access tokens ----------------------------------------


async def test_fapi2_5_3_4_a_bearer_token_is_refused_through_both_adapters(
    fapi: LocalIssuer, make_client: AppFactory, client_key: Any, clock: FakeClock
) -> None:
    client = make_client(fapi_verifier(fapi), debug=True)
    plain = fapi.mint(sub="alice")
    refused = await client.get("/me", headers=bearer(plain))
    assert refused.status_code == 401
    body = refused.json()
    assert body["code"] == "token_not_sender_constrained"
    assert body["detail"]["profile"] == "fapi2"
    assert body["detail"]["cnf"] == "absent"
    assert 'error="invalid_token"' in challenge(refused)
    assert 'error_description="The token must be sender-constrained."' in challenge(refused)
    # The same request with a DPoP-bound token and its proof passes, on a cache hit too.
    bound = fapi.mint(sub="alice", dpop_key=client_key)
    for _ in range(2):
        ok = await client.get("/me", headers=dpop_headers(client, bound, client_key, clock))
        assert ok.status_code == 200 and ok.json()["sub"] == "alice"
    # The bound token sent as a Bearer token is the DPoP downgrade (RFC 9449 §7.2).
    downgraded = await client.get("/me", headers=bearer(bound))
    assert downgraded.status_code == 401
    assert downgraded.json()["code"] == "dpop_bound_token_as_bearer"


async def test_fapi2_5_3_4_the_refusal_names_no_claim_to_the_client(
    fapi: LocalIssuer, make_client: AppFactory
) -> None:
    client = make_client(fapi_verifier(fapi))
    token = fapi.mint(sub="alice-secret-subject", cnf={"jwk": {"kty": "EC"}})
    refused = await client.get("/me", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_not_sender_constrained"
    assert "detail" not in refused.json()
    assert_no_leak(refused, token, "alice-secret-subject")


@pytest.mark.parametrize(
    ("cnf", "shown"),
    [(None, "absent"), ({}, []), ({"jwk": {"kty": "EC"}}, ["jwk"]), ("jkt", "string")],
    ids=["no-cnf", "empty-cnf", "cnf-jwk-only", "cnf-not-an-object"],
)
async def test_fapi2_5_3_4_rfc7800_3_1_tokens_without_a_binding_are_refused_on_both_drivers(
    fapi: LocalIssuer, drive: Drive, cnf: Any, shown: Any
) -> None:
    verifier = fapi_verifier(fapi)
    with pytest.raises(TokenNotSenderConstrained) as caught:
        await drive.verify(verifier, fapi.mint(cnf=cnf))
    assert caught.value.detail["cnf"] == shown
    # Without the profile the same verifier takes a bearer token (RFC 9449 §7.1 allows both).
    assert await drive.verify(fapi.verifier(dpop=DPoP(algorithms=DPOP_ALGS)), fapi.mint())


async def test_fapi2_5_3_4_a_binding_this_verifier_cannot_check_is_still_refused(
    fapi: LocalIssuer, drive: Drive
) -> None:
    """An mTLS-bound token at a verifier that checks DPoP only: never accepted unchecked."""
    token = fapi.mint(cnf={"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})
    with pytest.raises(TokenBindingUnsupported):
        await drive.verify(fapi_verifier(fapi), token)


async def test_fapi2_5_3_4_dpop_bound_token_needs_its_proof_on_both_drivers(
    fapi: LocalIssuer, drive: Drive, client_key: Any
) -> None:
    with pytest.raises(DPoPBoundTokenAsBearer):
        await drive.verify(fapi_verifier(fapi), fapi.mint(dpop_key=client_key))


def test_fapi2_5_3_4_a_verifier_that_checks_no_binding_is_a_configuration_error(
    fapi: LocalIssuer,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        fapi.verifier(profile="fapi2")
    message = str(caught.value)
    assert "'fapi2' (FAPI 2.0 Security Profile §5.3.4, §5.4)" in message
    assert "dpop=DPoP(...)" in message and "mtls=True" in message


def test_fapi2_5_3_4_accepting_bound_tokens_as_bearer_is_a_configuration_error(
    fapi: LocalIssuer,
) -> None:
    with pytest.raises(ConfigurationError, match="accept_bound_tokens_as_bearer=True contradicts"):
        fapi_verifier(fapi, accept_bound_tokens_as_bearer=True)


# -- §5.3.4 items 1 and 2: tokens in the header, never in a query parameter or a form body --------


async def test_fapi2_5_3_4_a_token_in_the_query_or_a_form_body_is_not_read(
    fapi: LocalIssuer, make_client: AppFactory, client_key: Any, clock: FakeClock
) -> None:
    client = make_client(fapi_verifier(fapi))
    token = fapi.mint(dpop_key=client_key)
    proof = dpop_headers(client, token, client_key, clock)["DPoP"]
    in_query = await client.get("/me", params={"access_token": token}, headers={"DPoP": proof})
    assert in_query.status_code == 401 and in_query.json()["code"] == "token_missing"
    in_form = await client.post("/me", data={"access_token": token}, headers={"DPoP": proof})
    assert in_form.status_code == 401 and in_form.json()["code"] == "token_missing"


def _asgi(verifier: Verifier, **options: Any) -> object:
    return JWTGuardMiddleware(lambda *_: None, verifier=verifier, **options)


def _wsgi(verifier: Verifier, **options: Any) -> object:
    return JWTGuardWSGIMiddleware(lambda *_: [], verifier=verifier, **options)


def _flask(verifier: Verifier, **options: Any) -> object:
    return JWTGuard(Flask(__name__), verifier=verifier, **options)


def _route_guard(verifier: Verifier, **options: Any) -> object:
    return RouteGuard(verifier, **options)


QUERY = ({"websocket_query_param": "access_token"}, "refuses access tokens in a query parameter")
NO_HEADER = ({"header": False, "cookie": "at"}, "takes access tokens in the Authorization header")
SOURCES = [
    (_asgi, *QUERY),  # the only adapter with a query parameter (WebSocket handshakes)
    (_asgi, *NO_HEADER),
    (_wsgi, *NO_HEADER),
    (_flask, *NO_HEADER),
    (_route_guard, *NO_HEADER),
]


@pytest.mark.parametrize(
    ("adapter", "options", "said"),
    SOURCES,
    ids=["asgi-query", "asgi-no-header", "wsgi-no-header", "flask-no-header", "route-no-header"],
)
def test_fapi2_5_3_4_rfc6750_2_3_token_sources_are_checked_at_start_up(
    fapi: LocalIssuer, adapter: Callable[..., object], options: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigurationError, match=said):
        adapter(fapi_verifier(fapi), **options)
    adapter(fapi.verifier(), **options)  # without the profile: the app's choice


# -- §5.4: algorithms and keys ------------------------------------------------------------


def test_fapi2_5_4_an_algorithm_the_profile_does_not_allow_is_a_configuration_error(
    fapi: LocalIssuer,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        fapi_verifier(fapi, algorithms=["PS256", "RS256"])
    assert "algorithms ['RS256'] contradict profile 'fapi2'" in str(caught.value)
    assert "['ES256', 'Ed25519', 'EdDSA', 'PS256']" in str(caught.value)
    fapi_verifier(fapi, algorithms=["PS256"])


@pytest.mark.parametrize(
    "dpop", [DPoP(), DPoP(algorithms=["ES256", "RS256"])], ids=["default", "rs256"]
)
def test_fapi2_5_4_dpop_proof_algorithms_are_the_profiles_too(
    fapi: LocalIssuer, dpop: DPoP
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        fapi.verifier(profile="fapi2", dpop=dpop)
    assert "DPoP proof algorithms" in str(caught.value)
    assert "pass DPoP(algorithms=[" in str(caught.value)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "PS256"])
async def test_fapi2_5_4_each_allowed_algorithm_verifies(
    make_issuer: Callable[..., LocalIssuer], drive: Drive, algorithm: str, client_key: Any
) -> None:
    idp = make_issuer(algorithm)
    verifier = fapi_verifier(idp, dpop=DPoP(algorithms=DPOP_ALGS))
    proofless = idp.mint(cnf={"jkt": "x"})
    with pytest.raises(DPoPBoundTokenAsBearer):  # reached the binding step: signature fine
        await drive.verify(verifier, proofless)


async def test_fapi2_5_4_eddsa_with_an_ed448_key_is_refused_on_both_drivers(
    drive: Drive, clock: FakeClock
) -> None:
    """§5.4 item 1.2: EdDSA "using the Ed25519 subtype"; "EdDSA" takes Ed448 keys too
    (RFC 8037 §3.1), so the profile holds the key's curve."""
    private = ed448.Ed448PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    keys = StaticKeys.from_jwks({"keys": [{"kty": "OKP", "crv": "Ed448", "x": x, "kid": "k"}]})
    now = int(clock())
    claims = {"iss": "https://as", "aud": "api", "sub": "s", "iat": now, "exp": now + 60}
    claims["cnf"] = {"jkt": "x"}
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "k"})
    options: dict[str, Any] = {
        "keys": keys,
        "algorithms": ["EdDSA"],
        "issuer": "https://as",
        "audience": "api",
        "clock": clock,
        "dpop": DPoP(algorithms=DPOP_ALGS),
    }
    with pytest.raises(AlgorithmNotAllowed) as caught:
        await drive.verify(Verifier(profile="fapi2", **options), token)
    assert caught.value.detail["curves"] == ["Ed25519", "P-256"]
    assert caught.value.detail["profile"] == "fapi2"
    with pytest.raises(DPoPBoundTokenAsBearer):  # without the profile the key verifies it
        await drive.verify(Verifier(**options), token)


# -- the rest of §5.3.4 and RFC 8725 --------------------------------------------------------------


async def test_fapi2_5_3_4_expiration_is_required_on_both_drivers(
    fapi: LocalIssuer, drive: Drive, client_key: Any
) -> None:
    verifier = fapi_verifier(fapi, required_claims=())
    with pytest.raises(ClaimMissing) as caught:
        await drive.verify(verifier, fapi.mint(exp=None, dpop_key=client_key))
    assert caught.value.detail["claim"] == "exp" and caught.value.detail["profile"] == "fapi2"


@pytest.mark.parametrize("dropped", ["issuer", "audience"])
def test_fapi2_rfc8725_3_8_3_9_issuer_and_audience_are_needed(
    fapi: LocalIssuer, dropped: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"needs {dropped}="):
        fapi_verifier(fapi, **{dropped: None})


# -- composition --------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [["rfc9068", "fapi2"], "rfc9068+fapi2", "FAPI2+rfc9068"])
async def test_fapi2_composes_with_rfc9068(
    fapi: LocalIssuer, drive: Drive, client_key: Any, profile: Any
) -> None:
    verifier = fapi_verifier(fapi, profile=profile)
    (combined,) = verifier.profiles
    assert combined.typ == "at+jwt" and combined.sender_constrained and combined.header_only
    at = {"header": {"typ": "at+jwt"}, "client_id": "c"}
    with pytest.raises(TypeInvalid):  # RFC 9068 §4
        await drive.verify(verifier, fapi.mint(client_id="c", dpop_key=client_key))
    with pytest.raises(TokenNotSenderConstrained):  # FAPI 2.0 SP §5.3.4
        await drive.verify(verifier, fapi.mint(**at))
    with pytest.raises(DPoPBoundTokenAsBearer):  # both hold: the binding step is reached
        await drive.verify(verifier, fapi.mint(dpop_key=client_key, **at))


def test_profile_combinations_intersect_their_algorithms() -> None:
    fapi2 = resolve_profile("fapi2")
    both = resolve_profile(["rfc9068", "fapi2"])
    assert fapi2 is not None and both is not None
    assert both.algorithms == fapi2.algorithms and both.curves == fapi2.curves
    assert resolve_profile("rfc9068+fapi2") == both
    assert resolve_profile(["fapi2", "fapi2"]) == fapi2
    with pytest.raises(ConfigurationError, match="unknown profile 'fapi3'; did you mean 'fapi2'"):
        resolve_profile("rfc9068+fapi3")


async def test_fapi2_on_one_trusted_issuer_only(fapi: LocalIssuer, drive: Drive) -> None:
    other = LocalIssuer(issuer="https://other.example", algorithm="ES256", clock=fapi.clock)
    verifier = Verifier(
        issuers=[
            TrustedIssuer(fapi.issuer, fapi.keys(), algorithms=["PS256"], profile="fapi2"),
            TrustedIssuer(other.issuer, other.keys(), algorithms=["ES256"]),
        ],
        audience=fapi.audience,
        clock=fapi.clock,
        dpop=DPoP(algorithms=DPOP_ALGS),
    )
    with pytest.raises(TokenNotSenderConstrained):
        await drive.verify(verifier, fapi.mint())
    assert (await drive.verify(verifier, other.mint(audience=fapi.audience))).issuer == (
        "https://other.example"
    )
    with pytest.raises(ConfigurationError, match="checks no binding"):
        Verifier(
            issuers=[
                TrustedIssuer(fapi.issuer, fapi.keys(), algorithms=["PS256"], profile="fapi2")
            ],
            audience=fapi.audience,
        )
