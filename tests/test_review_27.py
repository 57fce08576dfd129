# ruff: noqa: F811 - the fixtures of tests/test_introspection.py, imported
"""Review R27 of issue 27 (opaque tokens, RFC 7662): the findings fixed, each test named after
one (R27-5 is a check that passed from the start: odd members are never a 500)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from jwt_guard import Introspection, IntrospectionUnavailable, MalformedToken

from .conftest import FakeClock
from .servers import IntrospectionServer
from .test_introspection import (  # noqa: F401 - fixtures
    OPAQUE,
    Run,
    active,
    make_endpoint,
    run,
    server,
    verifier_for,
)

# -- R27-1: a token that is no token68 is sent to the endpoint, or breaks the call (503) ----------


async def test_r27_1_non_ascii_opaque_token_is_401_malformed_not_503(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # The ASGI scope hands the header's bytes as they are (latin-1 is legal in a header):
    # ClientAuth.request() does token.decode("ascii") inside the call, the UnicodeDecodeError
    # is "unexpected error" -> IntrospectionUnavailable (503 + a WARNING), on every request.
    verifier = verifier_for(make_endpoint(server.url), clock)
    with pytest.raises(MalformedToken):
        if run.mode == "sync":
            await asyncio.to_thread(verifier.verify, b"2YotnFZFEjr1zCsicMWpAA\xff")
        else:
            await verifier.averify(b"2YotnFZFEjr1zCsicMWpAA\xff")
    assert server.count == 0


async def test_r27_1_token_outside_rfc6750_b64token_is_never_sent_to_the_endpoint(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # RFC 6750 §2.1 b64token: a cookie or a WebSocket query parameter can carry anything;
    # a str with a non-ASCII character becomes '?' (token_bytes) and is introspected as
    # another token ("abcé" and "abcè" share one cache entry, "abc?").
    verifier = verifier_for(make_endpoint(server.url), clock)
    for token in ("abc\u00e9def", "abc def", 'abc"def', "abc,def"):
        with pytest.raises(MalformedToken):
            await run(verifier, token)
    assert server.count == 0


# -- R27-5: odd members of an active response are 401s, never 500s -------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": "soon"},
        {"exp": 10**400},
        {"nbf": -(10**400)},
        {"iat": -(10**400)},
        {"exp": True},
        {"iat": [1]},
        {"nbf": {"a": 1}},
        {"scope": ["notes:read"]},
        {"scope": 7},
        {"sub": 42},
        {"aud": [None]},
        {"cnf": "x"},
        {"cnf": {"x5t#S256": "abc"}},
    ],
)
async def test_r27_5_odd_response_members_are_never_a_500(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, claims: dict[str, Any],
) -> None:  # fmt: skip
    from jwt_guard import JWTGuardError

    server.tokens[OPAQUE] = active(clock, **claims)
    verifier = verifier_for(make_endpoint(server.url), clock)
    with contextlib.suppress(JWTGuardError):
        await run(verifier, OPAQUE)


# -- R27-6: one Introspection given to two verifiers: the second skips its own rules -------------


async def test_r27_6_one_endpoint_two_verifiers_each_checks_its_own_audience(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # Steps._admit judges the response with the rules of the verifier that made the call and
    # caches the *judged principal* in source.cache (keyed by the token's hash only); a second
    # verifier sharing the Introspection object (a stricter per-route verifier, another API's
    # audience) is answered from that cache without its audience/issuer/claim rules.
    from jwt_guard import AudienceInvalid

    server.tokens[OPAQUE] = active(clock, aud="orders-api")
    endpoint = make_endpoint(server.url)
    orders = verifier_for(endpoint, clock, audience="orders-api")
    billing = verifier_for(endpoint, clock, audience="billing-api")
    assert (await run(orders, OPAQUE)).subject == "alice"
    with pytest.raises(AudienceInvalid):
        await run(billing, OPAQUE)


async def test_r27_6_one_endpoint_two_verifiers_a_refusal_at_one_is_not_the_others(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # The reverse: billing's refusal (AudienceInvalid, cached for the negative TTL) must not
    # refuse the token at orders, whose audience it names. The endpoint is asked once per
    # judge; the shared answer is the response, the judgement is each verifier's.
    from jwt_guard import AudienceInvalid

    server.tokens[OPAQUE] = active(clock, aud="orders-api")
    endpoint = make_endpoint(server.url)
    orders = verifier_for(endpoint, clock, audience="orders-api")
    billing = verifier_for(endpoint, clock, audience="billing-api")
    with pytest.raises(AudienceInvalid):
        await run(billing, OPAQUE)
    assert (await run(orders, OPAQUE)).subject == "alice"
    with pytest.raises(AudienceInvalid):
        await run(billing, OPAQUE)  # its own cached refusal
    assert server.count == 2


# -- R27-7: sync single flight: a thread that missed the cache just before the leader stored -----


async def test_r27_7_sync_single_flight_rechecks_the_cache_before_a_new_call(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], clock: FakeClock
) -> None:
    # Thread B's cache lookup (Drivers._introspection_lookup) misses; thread A's call then
    # completes, stores its answer and leaves _calls; B enters Introspection.introspect,
    # finds no call in flight and makes a second one (the async driver has no await between
    # the two, the sync one has no lock across them). Played here in that order, one thread.
    server.tokens[OPAQUE] = active(clock)
    endpoint = make_endpoint(server.url, _sync=True)
    verifier = verifier_for(endpoint, clock)
    policy = verifier._opaque
    assert policy is not None
    key = verifier._introspection_key(OPAQUE.encode(), policy)
    assert endpoint.cache.get(key) is None  # B: a miss
    await asyncio.to_thread(verifier.verify, OPAQUE)  # A: the call, stored
    await asyncio.to_thread(
        endpoint.introspect, OPAQUE.encode(), key, lambda r: verifier._admit(policy, key, r)
    )  # B goes on
    assert server.count == 1


# -- R27-10: a refresh token the server reports active is taken as an access token --------------


@pytest.mark.parametrize(
    "token_type", ["refresh_token", "urn:ietf:params:oauth:token-type:id_token"]
)
async def test_r27_10_rfc7662_2_2_token_type_not_an_access_token_is_refused(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, token_type: str,
) -> None:  # fmt: skip
    # token_type_hint=access_token is only a hint (RFC 7662 §2.1: the server "MAY ... extend
    # its search across all of its supported token types"); servers answer active:true for a
    # refresh token (Keycloak, Okta, oidc-provider: token_type tells). A refresh token -- long
    # lived, kept by the client, never meant for a resource server (RFC 6749 §1.5) -- must not
    # pass as an access token. Only Bearer/DPoP (RFC 6750, RFC 9449 §6.2) or absent should.
    from jwt_guard import InvalidToken

    server.tokens[OPAQUE] = active(clock, token_type=token_type)
    verifier = verifier_for(make_endpoint(server.url), clock)
    with pytest.raises(InvalidToken):
        await run(verifier, OPAQUE)


async def test_r27_1_asgi_non_ascii_bearer_token_is_401_not_503(
    server: IntrospectionServer, clock: FakeClock
) -> None:
    # The same defect through the ASGI middleware's fast path: _header_token passes any byte
    # but space, tab and comma, and a latin-1 byte in the header makes the answer a 503.
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from jwt_guard.asgi import JWTGuardMiddleware

    endpoint = Introspection(server.url, client_id="rs", client_secret="s3cret", clock=clock)
    verifier = verifier_for(endpoint, clock)
    app = JWTGuardMiddleware(
        Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))]),
        verifier=verifier,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        response = await client.get("/", headers={"Authorization": b"Bearer abc\xffdef"})
    await endpoint.aclose()
    assert response.status_code in (400, 401)
    assert server.count == 0


# -- R27-11: issuer= and Introspection(discovery=another issuer): silent ------------------------


def test_r27_11_issuer_and_introspection_discovery_of_another_issuer_is_refused() -> None:
    # The endpoint is found through b's metadata (its issuer checked against b), but a
    # response without iss is filled in as a's (Steps._admit, "the endpoint configured for
    # this one issuer speaks for it"): b's tokens become a's principals. Silence is a bug.
    from jwt_guard import ConfigurationError, TrustedIssuer, Verifier

    def endpoint() -> Introspection:
        return Introspection(discovery="https://b.example", client_id="rs", client_secret="x")

    with pytest.raises(ConfigurationError):
        Verifier(issuer="https://a.example", introspection=endpoint())
    with pytest.raises(ConfigurationError):
        Verifier(
            issuers=[TrustedIssuer("https://a.example", None, introspection=endpoint())],
            algorithms=["RS256"],
        )


# -- R27-12: the response is parsed by plain json.loads, not the project's strict decoder --------


@pytest.mark.parametrize(
    "body",
    [
        # a duplicate member: json.loads takes the last; another reader the first
        b'{"active": false, "active": true, "sub": "mallory", "aud": "api", '
        b'"iss": "https://as.example"}',
        # NaN is not JSON (RFC 8259 §6): json.loads takes it, and NaN is never past
        b'{"active": true, "sub": "mallory", "aud": "api", "iss": "https://as.example", '
        b'"exp": NaN}',
    ],
)
async def test_r27_12_response_with_duplicate_members_or_nan_is_no_answer(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, body: bytes,
) -> None:  # fmt: skip
    # _core.parse refuses duplicate names and NaN/Infinity in a token (one reading of the
    # bytes, whoever else reads them); read_response uses json.loads, which takes the last of
    # two "active" members and NaN/Infinity as exp (NaN: never expired by any comparison).
    server.body = body
    verifier = verifier_for(make_endpoint(server.url), clock)
    with pytest.raises(IntrospectionUnavailable):
        await run(verifier, OPAQUE)
