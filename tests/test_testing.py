"""The test kit our users get: LocalIssuer, JWKSServer and the pytest plugin's fixture."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from jwt_guard import (
    AlgorithmNotAllowed,
    AudienceInvalid,
    CriticalHeaderUnsupported,
    Introspection,
    JWKSKeys,
    JWTGuardError,
    KeyNotFound,
    KeySourceUnavailable,
    MalformedToken,
    OIDCDiscovery,
    TokenExpired,
    TokenInactive,
    Verifier,
)
from jwt_guard._core.dpop import jwk_thumbprint
from jwt_guard._core.parse import b64url_decode
from jwt_guard._tools.introspection_endpoint import CLIENT_ASSERTION_TYPE
from jwt_guard._tools.signing import generate_key
from jwt_guard.testing import JWKSServer, LocalIssuer, dpop_jwk, reset_fetch_timers

from .apps import starlette_app
from .conftest import Drive, FakeClock


def introspection_members(server: JWKSServer) -> dict[str, Any]:
    """The discovery members a served LocalIssuer adds for its introspection endpoint."""
    return {
        "introspection_endpoint": server.introspection_url,
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
    }


def test_jwt_issuer_fixture_comes_from_the_plugin(jwt_issuer: LocalIssuer) -> None:
    assert isinstance(jwt_issuer, LocalIssuer)
    verifier = jwt_issuer.verifier()
    principal = verifier.verify(jwt_issuer.mint(sub="tester", roles=["admin"]))
    assert principal.subject == "tester" and principal.has_roles("admin")


def test_overrides(jwt_issuer: LocalIssuer) -> None:
    verifier = jwt_issuer.verifier()
    with pytest.raises(TokenExpired):
        verifier.verify(jwt_issuer.mint(expired=True))
    with pytest.raises(AudienceInvalid):
        verifier.verify(jwt_issuer.mint(audience="someone-else"))
    p = verifier.verify(jwt_issuer.mint(scopes=["a", "b"], tenant="t1"))
    assert p.scopes == {"a", "b"} and p.claims["tenant"] == "t1"
    assert "exp" not in jwt_issuer.claims(exp=None)


async def test_serve_gives_a_real_jwks_endpoint(jwt_issuer: LocalIssuer) -> None:
    with jwt_issuer.serve() as server:
        source = JWKSKeys(server.url)
        app = starlette_app(jwt_issuer.verifier(keys=source))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            token = jwt_issuer.mint()
            response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert server.count == 1
        discovery = httpx.get(server.base_url + "/.well-known/openid-configuration").json()
        assert discovery == {
            "issuer": jwt_issuer.issuer,
            "jwks_uri": server.url,
            **introspection_members(server),
        }
        await source.aclose()


def test_rotation_keeps_old_keys_published(jwt_issuer: LocalIssuer) -> None:
    first = jwt_issuer.kid
    second = jwt_issuer.rotate()
    kids = [k["kid"] for k in jwt_issuer.jwks["keys"]]
    assert kids == [first, second]
    jwt_issuer.rotate(keep_old=False)
    assert len(jwt_issuer.jwks["keys"]) == 1


# The header a test asks for is the header it gets, also where PyJWT would check or rewrite
# a member (it refuses a non-string kid, turns b64 into a detached payload and adds crit,
# drops "b64": true and a falsy typ, signs with the alg its header names). The verifier's
# answer is then about that header, as before PyJWT made the tokens.
MINT_HEADERS: list[tuple[dict[str, Any], type[JWTGuardError] | None]] = [
    ({"kid": 123}, MalformedToken),
    ({"kid": ["a"]}, MalformedToken),
    ({"b64": False}, CriticalHeaderUnsupported),
    ({"b64": True}, None),
    ({"typ": ""}, None),
    ({"alg": "none"}, AlgorithmNotAllowed),
    ({"typ": "at+jwt", "cty": "JWT", "x5c": ["AAAA"]}, None),
    ({"crit": ["exp"], "exp": 1}, CriticalHeaderUnsupported),
]


@pytest.mark.parametrize("alg", ["ES256", "HS256"])
@pytest.mark.parametrize(("header", "refusal"), MINT_HEADERS)
def test_mint_writes_exactly_the_header_asked_for(
    alg: str, header: dict[str, Any], refusal: type[JWTGuardError] | None
) -> None:
    issuer = LocalIssuer(algorithm=alg, kid="k1")
    token = issuer.mint(sub="h", header=header)
    h64, p64, sig = token.split(".")
    assert json.loads(b64url_decode(h64)) == {"alg": alg, "typ": "JWT", "kid": "k1", **header}
    assert json.loads(b64url_decode(p64))["sub"] == "h"  # never a detached payload
    assert sig
    if refusal is None:
        assert issuer.verifier().verify(token).subject == "h"
    else:
        with pytest.raises(refusal):
            issuer.verifier().verify(token)


# -- issue 25 item 9: a production-shaped test ----------------------------------------------


async def test_serve_as_issuer_makes_the_served_url_the_issuer(
    jwt_issuer: LocalIssuer, drive: Drive
) -> None:
    """Issue 25 item 9: serve() could not make the tokens' issuer the URL it serves, so an app
    configured by discovery, as in production, could not trust a LocalIssuer."""
    configured = jwt_issuer.issuer
    with jwt_issuer.serve(as_issuer=True) as server:
        assert jwt_issuer.issuer == server.base_url == server.issuer
        discovery = httpx.get(server.base_url + "/.well-known/openid-configuration").json()
        assert discovery == {
            "issuer": server.base_url,
            "jwks_uri": server.url,
            **introspection_members(server),
        }
        verifier = Verifier(
            keys=OIDCDiscovery(server.base_url),  # loopback http needs no allow_http
            algorithms=[jwt_issuer.algorithm],
            audience=jwt_issuer.audience,
        )
        try:
            token = jwt_issuer.mint(sub="alice")
            assert (await drive.verify(verifier, token)).issuer == server.base_url
            assert jwt_issuer.verifier().verify(token).issuer == server.base_url
        finally:
            await verifier.aclose()
            verifier.close()
    assert jwt_issuer.issuer == configured  # the block's end gives the issuer back
    with jwt_issuer.serve() as server:  # the default keeps the configured issuer
        assert jwt_issuer.issuer == configured == server.issuer


async def test_reset_fetch_timers_a_rotation_without_sleeping_out_the_cooldown(
    jwt_issuer: LocalIssuer, drive: Drive
) -> None:
    """A key the provider rotated to, inside the 30 s refetch cooldown: refused (the limit
    that keeps made-up kids from hammering the provider); after reset_fetch_timers, fetched."""
    with jwt_issuer.serve() as server:
        verifier = jwt_issuer.verifier(keys=JWKSKeys(server.url))
        try:
            assert await drive.verify(verifier, jwt_issuer.mint())
            jwt_issuer.rotate(keep_old=False)
            rotated = jwt_issuer.mint()
            with pytest.raises(KeyNotFound):
                await drive.verify(verifier, rotated)
            assert server.count == 1  # the cooldown held
            reset_fetch_timers(verifier)
            assert await drive.verify(verifier, rotated)
            assert server.count == 2
        finally:
            await verifier.aclose()
            verifier.close()


async def test_reset_fetch_timers_a_provider_back_from_an_outage(
    jwt_issuer: LocalIssuer, drive: Drive
) -> None:
    clock = FakeClock()  # frozen: the backoff is certainly still running without the reset
    with jwt_issuer.serve() as server:
        source = JWKSKeys(server.url, clock=clock)
        verifier = jwt_issuer.verifier(keys=source)
        try:
            server.status = 503
            with pytest.raises(KeySourceUnavailable):
                await drive.verify(verifier, jwt_issuer.mint())
            server.status = 200
            with pytest.raises(KeySourceUnavailable):  # no new attempt inside the backoff
                await drive.verify(verifier, jwt_issuer.mint())
            assert server.count == 1
            reset_fetch_timers(source)  # a key source works as well as its verifier
            assert await drive.verify(verifier, jwt_issuer.mint())
            assert server.count == 2
            stats = source.stats
            assert stats.failures == 1 and stats.fetches >= 1  # the counters stay
        finally:
            await verifier.aclose()
            verifier.close()


def test_reset_fetch_timers_takes_a_verifier_or_a_key_source(jwt_issuer: LocalIssuer) -> None:
    reset_fetch_timers(jwt_issuer.verifier())  # static keys: nothing to reset
    reset_fetch_timers(jwt_issuer.keys())
    with pytest.raises(TypeError, match="a Verifier or a key source"):
        reset_fetch_timers("https://issuer.test/jwks.json")


# -- issue 27: the introspection endpoint (RFC 7662) -------------------------------------------

SECRET = "a-client-secret-for-tests"


class Endpoint:
    """The issuer's introspection endpoint, in-process (its httpx transport) or served on
    loopback, called by a sync or an async httpx client: every test below runs on all four."""

    def __init__(self, issuer: LocalIssuer, url: str, transport: Any, mode: str) -> None:
        self.issuer, self.url, self.transport, self.mode = issuer, url, transport, mode

    async def post(
        self,
        data: Mapping[str, str] | str | None,
        *,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> httpx.Response:
        content = data if isinstance(data, str) else None
        form = None if isinstance(data, str) else data
        kwargs: dict[str, Any] = {"auth": auth, "headers": dict(headers or {})}
        if method == "POST":
            kwargs.update(data=form, content=content)
            if content is not None:
                kwargs["headers"].setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.mode == "sync":
            with httpx.Client(transport=self.transport) as client:
                return client.request(method, self.url, **kwargs)
        async with httpx.AsyncClient(transport=self.transport) as aclient:
            return await aclient.request(method, self.url, **kwargs)

    def assertion(self, key: Any, client_id: str = "rs-jwt", **claims: Any) -> dict[str, str]:
        """A private_key_jwt client authentication (RFC 7523 §2.2, §3)."""
        now = int(self.issuer.clock())
        payload = {
            "iss": client_id,
            "sub": client_id,
            "aud": self.url,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return {
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": pyjwt.encode(payload, key, algorithm="ES256"),
        }


@pytest.fixture(scope="session")
def client_key() -> Any:
    return generate_key("ES256")


@pytest.fixture(params=["in-process-sync", "in-process-async", "served-sync", "served-async"])
def endpoint(
    request: pytest.FixtureRequest, issuer: LocalIssuer, client_key: Any
) -> Iterator[Endpoint]:
    place, mode = request.param.rsplit("-", 1)
    issuer.register_client("rs-basic", client_secret=SECRET)
    issuer.register_client("rs-post", client_secret=SECRET, auth_method="client_secret_post")
    issuer.register_client("rs-jwt", public_key=client_key)
    if place == "in-process":
        yield Endpoint(
            issuer, issuer.introspection_endpoint, issuer.introspection_transport(), mode
        )
        return
    with issuer.serve() as server:
        yield Endpoint(issuer, server.introspection_url, None, mode)


@pytest.fixture
def issuer(make_issuer: Callable[..., LocalIssuer]) -> LocalIssuer:
    """A new LocalIssuer per test here: its clients and tokens are the test's own."""
    return LocalIssuer(algorithm="ES256", kid="kit-1", clock=make_issuer().clock)


async def test_rfc7662_2_2_an_opaque_token_introspected_by_each_client_authentication(
    endpoint: Endpoint, client_key: Any
) -> None:
    token = endpoint.issuer.opaque_token(sub="alice", scopes=["notes:read"], client_id="app")
    assert token.count(".") == 0 and len(token) >= 43  # 256 random bits, no claims in it
    answers = [
        await endpoint.post({"token": token}, auth=("rs-basic", SECRET)),
        await endpoint.post({"token": token, "client_id": "rs-post", "client_secret": SECRET}),
        await endpoint.post({"token": token, **endpoint.assertion(client_key)}),
    ]
    for response in answers:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["active"] is True and body["token_type"] == "Bearer"
        assert body["sub"] == "alice" and body["scope"] == "notes:read"
        assert body["client_id"] == "app"
        assert body["iss"] == endpoint.issuer.issuer and body["aud"] == endpoint.issuer.audience
        assert body["exp"] > body["iat"]
        assert body == endpoint.issuer.introspect(token)
    assert endpoint.issuer.introspection_requests == 3


@pytest.mark.parametrize(
    "case",
    [
        "no credentials",
        "wrong secret",
        "unknown client",
        "post credentials of a basic client",
        "basic credentials of a post client",
        "assertion of another key",
        "assertion for another audience",
        "assertion expired",
        "assertion replayed",
        "assertion naming another client_id",
        "assertion without jti",
        "basic header not base64",
    ],
)
async def test_rfc7662_2_3_a_client_that_does_not_authenticate_is_answered_401(
    endpoint: Endpoint, client_key: Any, case: str
) -> None:
    token = endpoint.issuer.opaque_token()
    form: dict[str, str] = {"token": token}
    auth: tuple[str, str] | None = None
    headers: dict[str, str] = {}
    if case == "wrong secret":
        auth = ("rs-basic", SECRET + "x")
    elif case == "unknown client":
        auth = ("nobody", SECRET)
    elif case == "post credentials of a basic client":
        form.update(client_id="rs-basic", client_secret=SECRET)
    elif case == "basic credentials of a post client":
        auth = ("rs-post", SECRET)
    elif case == "assertion of another key":
        form.update(endpoint.assertion(generate_key("ES256")))
    elif case == "assertion for another audience":
        form.update(endpoint.assertion(client_key, aud="https://elsewhere.test/introspect"))
    elif case == "assertion expired":
        form.update(endpoint.assertion(client_key, exp=int(endpoint.issuer.clock()) - 60))
    elif case == "assertion replayed":
        first = endpoint.assertion(client_key)
        assert (await endpoint.post({**form, **first})).status_code == 200
        form.update(first)
    elif case == "assertion naming another client_id":
        form.update(endpoint.assertion(client_key), client_id="rs-basic")
    elif case == "assertion without jti":
        form.update(endpoint.assertion(client_key, jti=None))
    elif case == "basic header not base64":
        headers["Authorization"] = "Basic !!!"
    response = await endpoint.post(form, auth=auth, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}  # RFC 6749 §5.2
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert token not in response.text


async def test_rfc7523_3_the_kit_forgets_a_jti_once_its_assertion_expired(
    endpoint: Endpoint, client_key: Any, clock: FakeClock
) -> None:
    """The kit's endpoint remembered every client-assertion jti for ever (review R27, noticed):
    a long test session or a soak test grew it without bound. A jti is kept while its
    assertion could still pass (exp + leeway), so a replay is refused all that time."""
    token = endpoint.issuer.opaque_token()
    seen = endpoint.issuer._introspection._assertions
    replayed = endpoint.assertion(client_key)
    for form in (replayed, endpoint.assertion(client_key), endpoint.assertion(client_key)):
        assert (await endpoint.post({"token": token, **form})).status_code == 200
    assert len(seen) == 3
    clock.advance(60 + 29)  # still within exp + leeway: the replay is still refused
    assert (await endpoint.post({"token": token, **replayed})).status_code == 401
    clock.advance(2)
    assert (
        await endpoint.post({"token": token, **endpoint.assertion(client_key)})
    ).status_code == 200
    assert len(seen) == 1


@pytest.mark.parametrize(
    "case", ["two client authentications", "no token", "a parameter twice", "not a form", "GET"]
)
async def test_rfc7662_2_1_a_malformed_request_is_refused(endpoint: Endpoint, case: str) -> None:
    token = endpoint.issuer.opaque_token()
    basic = ("rs-basic", SECRET)
    if case == "two client authentications":  # RFC 6749 §2.3: one method per request
        form = {"token": token, "client_id": "rs-post", "client_secret": SECRET}
        response = await endpoint.post(form, auth=basic)
    elif case == "no token":
        response = await endpoint.post({"token_type_hint": "access_token"}, auth=basic)
    elif case == "a parameter twice":  # RFC 6749 §3.2
        response = await endpoint.post(f"token={token}&token=other", auth=basic)
    elif case == "not a form":
        response = await endpoint.post(
            json.dumps({"token": token}), auth=basic, headers={"Content-Type": "application/json"}
        )
    else:
        response = await endpoint.post(None, auth=basic, method="GET")
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        return
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request"}


async def test_rfc7662_2_2_an_inactive_token_says_active_false_and_nothing_else(
    endpoint: Endpoint, clock: FakeClock
) -> None:
    issuer = endpoint.issuer
    revoked = issuer.opaque_token(sub="gone")
    issuer.revoke(revoked)
    expiring = issuer.opaque_token(ttl=60)
    early = issuer.opaque_token(nbf=int(clock()) + 120)
    signed_elsewhere = LocalIssuer(algorithm="ES256", kid="kit-1").mint()
    revoked_jwt = issuer.mint()
    issuer.revoke(revoked_jwt)
    clock.advance(61)
    for token in ["no-such-token", revoked, expiring, early, signed_elsewhere, revoked_jwt]:
        response = await endpoint.post({"token": token}, auth=("rs-basic", SECRET))
        assert response.status_code == 200
        assert response.json() == {"active": False}
    clock.advance(60)
    response = await endpoint.post({"token": early}, auth=("rs-basic", SECRET))
    assert response.json()["active"] is True  # its nbf has come


async def test_a_jwt_of_the_issuer_is_introspected_too(endpoint: Endpoint) -> None:
    token = endpoint.issuer.mint(sub="bob", roles=["admin"])
    body = (await endpoint.post({"token": token}, auth=("rs-basic", SECRET))).json()
    assert body["active"] is True and body["sub"] == "bob" and body["roles"] == ["admin"]


async def test_a_dpop_bound_opaque_token_says_its_key_thumbprint(endpoint: Endpoint) -> None:
    dpop_key = generate_key("ES256")
    token = endpoint.issuer.opaque_token(dpop_key=dpop_key)
    body = (await endpoint.post({"token": token}, auth=("rs-basic", SECRET))).json()
    # RFC 9449 §6.2: the introspection response carries cnf.jkt
    assert body["cnf"] == {"jkt": jwk_thumbprint(dpop_jwk(dpop_key))}


@pytest.mark.parametrize(
    "accept",
    [
        "application/token-introspection+jwt",
        "application/json;q=0.5, application/token-introspection+jwt",
    ],
)
async def test_rfc9701_5_a_jwt_response_signed_by_the_issuer_when_asked(
    endpoint: Endpoint, client_key: Any, accept: str
) -> None:
    issuer = endpoint.issuer
    token = issuer.opaque_token(sub="carol", scopes=["a"])
    form = {"token": token, **endpoint.assertion(client_key)}
    response = await endpoint.post(form, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/token-introspection+jwt"
    signed = response.text
    header = pyjwt.get_unverified_header(signed)
    assert header["typ"] == "token-introspection+jwt" and header["kid"] == issuer.kid
    key = pyjwt.PyJWK(issuer.jwks["keys"][-1]).key  # verified with the issuer's JWKS
    claims = pyjwt.decode(
        signed, key, algorithms=["ES256"], audience="rs-jwt", options={"verify_iat": False}
    )
    assert claims["iss"] == issuer.issuer and isinstance(claims["iat"], int)
    assert "sub" not in claims and "exp" not in claims  # RFC 9701 §5, token confusion
    assert claims["token_introspection"] == issuer.introspect(token)
    issuer.revoke(token)
    again = await endpoint.post(
        {"token": token}, auth=("rs-basic", SECRET), headers={"Accept": accept}
    )
    inactive = pyjwt.decode(
        again.text, key, algorithms=["ES256"], audience="rs-basic", options={"verify_iat": False}
    )
    assert inactive["token_introspection"] == {"active": False}


async def test_rfc9701_json_unless_the_jwt_is_asked_for(endpoint: Endpoint) -> None:
    token = endpoint.issuer.opaque_token()
    for accept in ["application/json", "application/token-introspection+jwt;q=0", "*/*"]:
        response = await endpoint.post(
            {"token": token}, auth=("rs-basic", SECRET), headers={"Accept": accept}
        )
        assert response.headers["content-type"] == "application/json"
        assert response.json()["active"] is True


def test_register_client_refuses_what_cannot_authenticate(issuer: LocalIssuer) -> None:
    key = generate_key("ES256")
    for kwargs, message in [
        ({}, "client_secret_basic takes client_secret="),
        ({"client_secret": ""}, "client_secret_basic takes client_secret="),
        ({"client_secret": "s", "auth_method": "none"}, "auth_method must be one of"),
        ({"auth_method": "private_key_jwt"}, "private_key_jwt takes public_key="),
        ({"public_key": key, "client_secret": "s"}, "private_key_jwt takes public_key="),
        ({"public_key": b"secret", "auth_method": "private_key_jwt"}, "an RSA, EC or OKP key"),
        ({"public_key": {"kty": "oct", "k": "c2VjcmV0"}}, "an RSA, EC or OKP key"),
        ({"public_key": key, "auth_method": "client_secret_post"}, "takes client_secret="),
    ]:
        with pytest.raises(ValueError, match=message):
            issuer.register_client("c", **kwargs)
    with pytest.raises(ValueError, match="client_id"):
        issuer.register_client("", client_secret="s")


async def test_served_discovery_names_the_introspection_endpoint(issuer: LocalIssuer) -> None:
    with issuer.serve(as_issuer=True) as server:
        document = httpx.get(server.base_url + "/.well-known/openid-configuration").json()
        assert document["introspection_endpoint"] == server.introspection_url
        assert server.introspection_url == issuer.introspection_endpoint


@pytest.mark.parametrize("fault", ["status", "delay", "garbage", "silence"])
async def test_faults_on_introspection_leave_the_keys_served(
    issuer: LocalIssuer, fault: str
) -> None:
    """The authorization server down, slow or broken at its introspection endpoint while its
    JWKS answers: the fault switches of the JWKS, played at the introspection endpoint."""
    issuer.register_client("rs-basic", client_secret=SECRET)
    token = issuer.opaque_token()
    with issuer.serve() as server:
        server.faults_on = "introspection"
        if fault == "status":
            server.status, server.body = 503, b"down"
        elif fault == "delay":
            server.delay = 30
        else:
            server.fault = fault
        assert httpx.get(server.url).json() == issuer.jwks  # the keys: no fault
        if fault == "status":
            response = httpx.post(
                server.introspection_url, data={"token": token}, auth=("rs-basic", SECRET)
            )
            assert response.status_code == 503 and response.content == b"down"
        elif fault == "garbage":
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.post(server.introspection_url, data={"token": token})
        else:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(server.introspection_url, data={"token": token}, timeout=0.3)
        server.faults_on = "jwks"  # back to the JWKS endpoint: introspection answers again
        server.status, server.body, server.delay, server.fault = 200, None, 0.0, None
        response = httpx.post(
            server.introspection_url, data={"token": token}, auth=("rs-basic", SECRET)
        )
        assert response.json()["active"] is True
        with pytest.raises(ValueError, match="faults_on must be one of"):
            server.faults_on = "token"


def test_a_jwks_server_without_introspection_says_so() -> None:
    with JWKSServer({"keys": []}) as server:
        with pytest.raises(ValueError, match="no introspection endpoint"):
            server.faults_on = "introspection"
        with pytest.raises(ValueError, match="no introspection endpoint"):
            _ = server.introspection_url
        document = httpx.get(server.base_url + "/.well-known/openid-configuration").json()
        assert "introspection_endpoint" not in document


@pytest.mark.parametrize("place", ["in-process", "served"])
async def test_jwt_guards_introspection_against_the_kit_on_both_drivers(
    issuer: LocalIssuer, drive: Drive, place: str
) -> None:
    """The kit's endpoint as jwt_guard.Introspection meets it: in-process through the
    transport (its body read as a stream, as the bounded reader does), or served and found by
    discovery."""
    issuer.register_client("rs-basic", client_secret=SECRET)
    with contextlib.ExitStack() as stack:
        if place == "in-process":
            transport = issuer.introspection_transport()
            client: Any = (
                httpx.Client(transport=transport)
                if drive.mode == "sync"
                else httpx.AsyncClient(transport=transport)
            )
            endpoint = Introspection(
                issuer.introspection_endpoint,
                client_id="rs-basic",
                client_secret=SECRET,
                client=client,
            )
        else:
            server = stack.enter_context(issuer.serve(as_issuer=True))
            client = None
            endpoint = Introspection(
                discovery=server.base_url, client_id="rs-basic", client_secret=SECRET
            )
        verifier = Verifier(
            issuer=issuer.issuer,
            audience=issuer.audience,
            introspection=endpoint,
            clock=issuer.clock,
        )
        token = issuer.opaque_token(sub="dana", scopes=["notes:read"])  # iss: the issuer now
        try:
            principal = await drive.verify(verifier, token)
            assert principal.subject == "dana" and principal.scopes == {"notes:read"}
            issuer.revoke(token)
            verifier.clear_cache()
            with pytest.raises(TokenInactive):
                await drive.verify(verifier, token)
        finally:
            await verifier.aclose()
            verifier.close()
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            elif client is not None:
                client.close()


def test_a_subclass_answering_posts_at_the_jwks_path_reads_its_own_body() -> None:
    """A JWKSServer subclass that reads a POST's body itself and answers it with the JWKS
    path's faults (tests/servers.py's IntrospectionServer does) is not made to wait for a
    second read of the body: only the kit's introspection endpoint reads it in _respond."""

    class EchoServer(JWKSServer):
        def start(self) -> EchoServer:
            super().start()
            assert self._server is not None
            outer = self

            def do_post(handler: BaseHTTPRequestHandler) -> None:
                length = int(handler.headers.get("Content-Length") or 0)
                outer.body = handler.rfile.read(length)
                handler.path = "/jwks.json"
                outer._respond(handler)

            self._server.RequestHandlerClass.do_POST = do_post  # type: ignore[attr-defined]
            return self

    with EchoServer({"keys": []}) as server:
        response = httpx.post(server.url, content=b"form=1", timeout=5)
        assert response.status_code == 200 and response.content == b"form=1"
