"""The test kit our users get: LocalIssuer, JWKSServer and the pytest plugin's fixture."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from jwt_guard import (
    AlgorithmNotAllowed,
    AudienceInvalid,
    CriticalHeaderUnsupported,
    JWKSKeys,
    JWTGuardError,
    KeyNotFound,
    KeySourceUnavailable,
    MalformedToken,
    OIDCDiscovery,
    TokenExpired,
    Verifier,
)
from jwt_guard._core.parse import b64url_decode
from jwt_guard.testing import LocalIssuer, reset_fetch_timers

from .apps import starlette_app
from .conftest import Drive, FakeClock


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
        assert discovery == {"issuer": jwt_issuer.issuer, "jwks_uri": server.url}
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
        assert discovery == {"issuer": server.base_url, "jwks_uri": server.url}
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
