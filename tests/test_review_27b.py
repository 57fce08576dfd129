# ruff: noqa: F811 - the fixtures of tests/test_introspection.py and test_shared_cache.py, imported
"""Review R27B of issue 27 (opaque tokens, RFC 7662; RFC 9701 answers; the shared store): a
regression test per finding, named after it and the RFC section (notes/reviews/r27b.md); each
failed before its fix."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from jwt_guard import (
    ClaimMissing,
    ConfigurationError,
    DPoP,
    Introspection,
    IntrospectionUnavailable,
    InvalidToken,
    MemoryDenylist,
    RedisCache,
    TokenInactive,
    TokenRevoked,
    Verifier,
)
from jwt_guard.testing import JWKSServer, LocalIssuer

from .conftest import Drive, FakeClock
from .redis_server import RedisProcess
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
from .test_introspection_jwt import ISSUER as SIGNING_ISSUER
from .test_introspection_jwt import SECRET, authorization_server, close  # noqa: F401 - fixtures
from .test_introspection_jwt import answer as signed_answer
from .test_introspection_jwt import verifier_for as signed_verifier_for
from .test_shared_cache import (  # noqa: F401 - fixtures
    AS_ISSUER,
    Caches,
    answer,
    caches,
    idp,
    introspecting,
    introspection,
    prefix,
    raw_client,
    redis_process,
    worker,
)

#: One integrity key for the cluster, as the docs say ("the same on every instance"). Entries
#: a test writes itself go through a RedisCache with it: a writer holding the key (another
#: version of the app, a key holder), so they reach the reader's parser and checks.
INTEGRITY = "k" * 32


@contextlib.contextmanager
def writer(redis_process: RedisProcess, caches: Caches) -> Iterator[RedisCache]:
    """A RedisCache holding the cluster's integrity key, writing what a test puts in Redis."""
    cache = RedisCache(redis_process.url, prefix=caches.prefix, integrity_key=INTEGRITY)
    try:
        yield cache
    finally:
        cache.close()


# -- R27B-6: a refresh token passes when the answer has no token_type ---------------------------


@pytest.mark.parametrize(
    "marks",
    [
        # oidc-provider 8 (lib/actions/introspection.js): "token_type: token.kind !==
        # 'RefreshToken' ? token.tokenType : undefined": the member is left out for a refresh
        # token and only for one; token_type_hint=access_token falls back to refresh tokens.
        pytest.param({"token_type": None, "scope": "openid offline_access"}, id="oidc-provider"),
        # Servers that echo the token's own claims say it in "typ" (Keycloak: "Refresh").
        pytest.param({"token_type": None, "typ": "Refresh"}, id="typ-Refresh"),
        # Ory Hydra / fosite and AWS Cognito say it in "token_use".
        pytest.param({"token_type": None, "token_use": "refresh_token"}, id="token_use"),
    ],
)
async def test_r27b_6_rfc7662_2_2_a_refresh_token_without_token_type_is_not_an_access_token(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, marks: dict[str, Any],
) -> None:  # fmt: skip
    # check_token_type returned when token_type was absent (RFC 7662 §2.2: OPTIONAL); the
    # project's own reference server leaves it out exactly for refresh tokens, so a client's
    # long-lived refresh token (RFC 6749 §1.5, never for a resource server) was an access token
    # at a verifier without audience=.
    server.tokens[OPAQUE] = active(clock, aud=None, **marks)
    verifier = verifier_for(make_endpoint(server.url), clock, audience=None)
    with pytest.raises(InvalidToken) as caught:
        await run(verifier, OPAQUE)
    assert caught.value.code in ("claim_missing", "claim_invalid")


@pytest.mark.parametrize(
    "marks",
    [
        pytest.param({"token_type": "bearer"}, id="RFC 6750 Bearer"),
        pytest.param({"token_type": None, "typ": "Bearer"}, id="Keycloak typ"),
        pytest.param({"token_type": None, "token_use": "access_token"}, id="Hydra token_use"),
    ],
)
async def test_r27b_6_rfc7662_2_2_an_answer_that_names_an_access_token_passes(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, marks: dict[str, Any],
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock, **marks)
    assert (await run(verifier_for(make_endpoint(server.url), clock), OPAQUE)).subject == "alice"


async def test_r27b_6_rfc7662_2_2_untyped_answers_only_by_the_loudly_named_opt_out(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock, token_type=None)
    server.tokens["refresh"] = active(clock, token_type=None, typ="Refresh")
    with pytest.raises(ClaimMissing) as caught:
        await run(verifier_for(make_endpoint(server.url), clock), OPAQUE)
    assert caught.value.detail["claim"] == "token_type"
    assert "untyped_answers_are_access_tokens=True" in caught.value.detail["reason"]
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        endpoint = make_endpoint(server.url, untyped_answers_are_access_tokens=True)
    assert "untyped_answers_are_access_tokens=True" in caplog.text  # said at start-up
    verifier = verifier_for(endpoint, clock)
    assert (await run(verifier, OPAQUE)).subject == "alice"
    with pytest.raises(InvalidToken):  # a refresh token said so is refused all the same
        await run(verifier, "refresh")


# -- R27B-3: token_type DPoP without cnf.jkt passes as a bearer token ---------------------------


async def test_r27b_3_rfc9449_6_2_token_type_dpop_without_cnf_jkt_is_not_a_bearer_token(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # RFC 9449 §6.2: a DPoP-bound token's answer says token_type "DPoP" and gives the key in
    # cnf.jkt. An answer that says DPoP and leaves cnf out (a server bug, a proxy that strips
    # members) names a sender-constrained token whose key is unknown here: taken without a
    # proof, a stolen DPoP token was a bearer token.
    server.tokens[OPAQUE] = active(clock, token_type="DPoP")
    verifier = verifier_for(make_endpoint(server.url), clock, dpop=DPoP())
    with pytest.raises(InvalidToken) as caught:
        await run(verifier, OPAQUE)
    assert caught.value.detail["claim"] == "cnf"


# -- R27B-1: the shared store was named by the endpoint and the token only ----------------------


class PerClientServer(IntrospectionServer):
    """An endpoint that answers each protected resource for itself (RFC 7662 §2.2: "the
    authorization server MAY respond differently to different protected resources making the
    same request"; §4: it determines whether the token can be used at the resource asking)."""

    def __init__(self) -> None:
        self.by_client: dict[str, dict[str, dict[str, Any]]] = {}
        super().__init__()

    def jwks_document(self) -> Mapping[str, Any]:
        fields = self._form.fields
        client = fields.get("client_id", "")
        authorization = fields.get("authorization", "")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client = urllib.parse.unquote_plus(decoded.partition(":")[0])
        token = fields.get("token", "")
        return self.by_client.get(client, {}).get(token, {"active": False})


def without_aud(response: dict[str, Any]) -> dict[str, Any]:
    """A response without aud (RFC 7662 §2.2: optional; the server decides per resource)."""
    return {name: value for name, value in response.items() if name != "aud"}


@pytest.fixture
def per_client() -> Iterator[PerClientServer]:
    with PerClientServer() as endpoint:
        yield endpoint


def resource_server(
    url: str, client_id: str, cache: RedisCache, clock: FakeClock, **options: Any
) -> Verifier:
    """One protected resource of the deployment (its own client id at the server) sharing
    the cluster's Redis, introspecting at the server's one endpoint; no audience= (the
    server's answers carry no aud)."""
    endpoint = Introspection(
        url, client_id=client_id, client_secret="s3cret", shared_cache=cache, clock=clock,
        **options,
    )  # fmt: skip
    return Verifier(introspection=endpoint, issuer=AS_ISSUER, clock=clock)


async def test_r27b_1_rfc7662_2_2_one_clients_shared_answer_is_not_another_clients(
    per_client: PerClientServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    # The server answers "active" to the orders API and "inactive" to the billing API (the
    # token was not issued for billing: RFC 7662 §4). Both share the cluster's Redis: billing
    # read orders' answer and accepted a token its authorization server refuses it.
    per_client.by_client["orders-api"] = {OPAQUE: without_aud(answer(clock))}
    orders = resource_server(per_client.url, "orders-api", caches(integrity_key=INTEGRITY), clock)
    billing = resource_server(per_client.url, "billing-api", caches(integrity_key=INTEGRITY), clock)
    assert (await drive.verify(orders, OPAQUE)).subject == "alice"
    with pytest.raises(TokenInactive):
        await drive.verify(billing, OPAQUE)
    assert per_client.count == 2  # each resource server asked for itself
    again = resource_server(per_client.url, "orders-api", caches(integrity_key=INTEGRITY), clock)
    assert (await drive.verify(again, OPAQUE)).subject == "alice"
    assert per_client.count == 2  # and a second worker of one resource still shares


async def test_r27b_1_rfc7662_2_2_one_clients_refusal_is_not_another_clients(
    per_client: PerClientServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    # The reverse: billing's "inactive" refused a good token at orders for the negative TTL.
    per_client.by_client["orders-api"] = {OPAQUE: without_aud(answer(clock))}
    orders = resource_server(per_client.url, "orders-api", caches(integrity_key=INTEGRITY), clock)
    billing = resource_server(per_client.url, "billing-api", caches(integrity_key=INTEGRITY), clock)
    with pytest.raises(TokenInactive):
        await drive.verify(billing, OPAQUE)
    assert (await drive.verify(orders, OPAQUE)).subject == "alice"


# -- R27B-2: jwt_response=True took an unsigned answer from the shared store -------------------


async def test_r27b_2_rfc9701_5_a_signed_answers_reader_never_takes_an_unsigned_shared_one(
    server: IntrospectionServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    # Worker A introspects without jwt_response and stores the plain answer; worker B asks for
    # signed answers and took A's from the store. The endpoint here answers plain JSON only,
    # so B asking it itself is a 503 (no downgrade).
    server.tokens[OPAQUE] = without_aud(answer(clock))
    plain = resource_server(server.url, "rs", caches(integrity_key=INTEGRITY), clock)
    assert (await drive.verify(plain, OPAQUE)).subject == "alice"
    keys = LocalIssuer(issuer=AS_ISSUER, algorithm="ES256", clock=clock).keys()
    signed = resource_server(
        server.url, "rs", caches(integrity_key=INTEGRITY), clock,
        jwt_response=True, response_keys=keys,
    )  # fmt: skip
    with pytest.raises(IntrospectionUnavailable):
        await drive.verify(signed, OPAQUE)


def signed_worker(
    issuer: LocalIssuer, handle: Callable[[httpx.Request], httpx.Response], cache: RedisCache,
    drive: Drive,
) -> Verifier:  # fmt: skip
    """A worker asking for signed answers (RFC 9701) through ``handle``, on the shared store."""
    transport = httpx.MockTransport(handle)
    client: Any = (
        httpx.Client(transport=transport)
        if drive.mode == "sync"
        else httpx.AsyncClient(transport=transport)
    )
    endpoint = Introspection(
        issuer.introspection_endpoint, client_id="rs", client_secret=SECRET, jwt_response=True,
        client=client, shared_cache=cache,
    )  # fmt: skip
    return Verifier(
        introspection=endpoint, keys=issuer.keys(), algorithms=["ES256"],
        issuer=SIGNING_ISSUER, audience="api",
    )  # fmt: skip


async def test_r27b_2_rfc9701_5_a_shared_signed_answer_is_kept_signed_and_verified_on_read(
    authorization_server: LocalIssuer, caches: Caches, drive: Drive,
    close: Callable[[Verifier], None], redis_process: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # The store kept only token_introspection, so an answer that came through Redis was no
    # longer "provably the server's own". It keeps the JWT as signed, and each reader verifies
    # it again: one not signed by the issuer, or signed for a call long ago, is a miss.
    issuer = authorization_server
    kit = issuer.introspection_transport()
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return kit.handle_request(request)

    token = issuer.opaque_token(sub="alice")
    workers = [signed_worker(issuer, handle, caches(integrity_key=INTEGRITY), drive) for _ in "ab"]
    for verifier in workers:
        close(verifier)
        assert (await drive.verify(verifier, token)).subject == "alice"
    assert len(calls) == 1  # the second worker verified the first one's signed answer
    with raw_client(redis_process.url) as client:
        (name,) = client.keys(caches.prefix + "jwt_guard:introspection:*")
        stored = client.get(name)
    assert b'"jwt": "' in stored and b'"response"' not in stored  # the JWT as signed
    name = name.decode().removeprefix(caches.prefix)
    now = int(issuer.clock())
    inner = {"active": True, "sub": "mallory", "aud": "api", "iss": SIGNING_ISSUER,
             "token_type": "Bearer"}  # fmt: skip
    claims = {"iss": SIGNING_ISSUER, "aud": "rs", "iat": now, "token_introspection": inner}
    typ = {"typ": "token-introspection+jwt", "kid": "as-1"}
    forger = LocalIssuer(issuer=SIGNING_ISSUER, algorithm="ES256", kid="as-1")
    forged = {
        "another key": forger.mint(claims, header=typ),
        "a month old": issuer.mint({**claims, "iat": now - 30 * 86400}, header=typ),
    }
    for case, jwt in forged.items():
        with writer(redis_process, caches) as cache:
            cache.set(name, json.dumps({"until": now + 60, "jwt": jwt}).encode(), 60)
        reader = signed_worker(issuer, handle, caches(integrity_key=INTEGRITY), drive)
        close(reader)
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            assert (await drive.verify(reader, token)).subject == "alice", case
        assert "unreadable" in caplog.text, case
    assert len(calls) == 3  # each forged entry a miss: the endpoint asked


# -- R27B-4: a signed answer of any age was taken (RFC 9701 iat had no freshness bound) ---------


async def test_r27b_4_rfc9701_5_an_old_signed_answer_is_not_taken_for_a_fresh_one(
    authorization_server: LocalIssuer, drive: Drive, close: Callable[[Verifier], None]
) -> None:
    # The answer names no token and iat was bounded only from the future: a signed "active:
    # true, sub: mallory" kept from last month by a party between the resource server and the
    # endpoint answered for any token, for ever. The answer is made for this call: its iat is
    # within the call's deadline and the leeway of now.
    issuer = authorization_server
    month_ago = int(issuer.clock()) - 30 * 86400
    verifier = signed_verifier_for(
        issuer, httpx.MockTransport(signed_answer(issuer, iat=month_ago)), drive
    )
    close(verifier)
    try:
        with pytest.raises(IntrospectionUnavailable) as caught:
            await drive.verify(verifier, "any-token-at-all")
        assert "older than the call" in caught.value.detail["reason"]
    finally:
        await verifier.aclose()


async def test_r27b_4_rfc9701_5_a_signed_answer_within_the_deadline_and_leeway_passes(
    authorization_server: LocalIssuer, drive: Drive, close: Callable[[Verifier], None]
) -> None:
    issuer = authorization_server
    a_little_ago = int(issuer.clock()) - 20  # within the default timeout (3 s) + leeway (60 s)
    verifier = signed_verifier_for(
        issuer, httpx.MockTransport(signed_answer(issuer, iat=a_little_ago)), drive
    )
    close(verifier)
    try:
        assert (await drive.verify(verifier, "any-token-at-all")).subject == "mallory"
    finally:
        await verifier.aclose()


# -- R27B-7: a huge integer in a shared entry was a 500 (introspection), a 503 (JWKS) ----------

#: A JSON integer json.loads reads (under the 4300-digit limit) that float() cannot: OverflowError,
#: which is no ValueError, so the "garbage is a miss" handlers let it through.
HUGE = "1" + "0" * 400


def duplicate_active(clock: FakeClock) -> bytes:
    """An entry whose answer says "active" twice: json.loads took the last (true), another
    reader the first; the endpoint's answers are read strictly (R27-12), the store's were not
    (review R27B, noticed)."""
    response = json.dumps(answer(clock, sub="mallory"))
    return b'{"until": %d, "response": {"active": false, %s}' % (
        int(clock()) + 60,
        response.removeprefix("{").encode(),
    )


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(lambda _: b'{"until": ' + HUGE.encode() + b', "response": {}}', id="huge"),
        pytest.param(duplicate_active, id="rfc8259_4_active_twice"),
    ],
)
async def test_r27b_7_an_unreadable_shared_introspection_entry_is_a_miss_never_a_500(
    introspection: IntrospectionServer, caches: Caches, clock: FakeClock, drive: Drive,
    redis_process: RedisProcess, caplog: pytest.LogCaptureFixture,
    garbage: Callable[[FakeClock], bytes],
) -> None:  # fmt: skip
    introspection.tokens[OPAQUE] = answer(clock)
    one = introspecting(introspection.url, caches(integrity_key=INTEGRITY), clock)
    await drive.verify(one, OPAQUE)
    with raw_client(redis_process.url) as client:
        (name,) = client.keys(caches.prefix + "*")
    with writer(redis_process, caches) as cache:
        cache.set(name.decode().removeprefix(caches.prefix), garbage(clock), 60)
    two = introspecting(introspection.url, caches(integrity_key=INTEGRITY), clock)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        assert (await drive.verify(two, OPAQUE)).subject == "alice"
    assert "unreadable" in caplog.text
    assert introspection.count == 2


@pytest.fixture
def jwks_server(idp: LocalIssuer) -> Iterator[JWKSServer]:
    with JWKSServer(lambda: idp.jwks) as served:
        yield served


async def test_r27b_7_an_unreadable_shared_key_set_entry_is_a_miss_never_a_500(
    idp: LocalIssuer, jwks_server: JWKSServer, caches: Caches, clock: FakeClock, drive: Drive,
    redis_process: RedisProcess, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # JWKSState._shared_copy's math.isfinite(fetched_at) raised OverflowError (not in its
    # except list): every refresh of every worker failed while the entry lived.
    one, source = worker(idp, jwks_server.url, caches(integrity_key=INTEGRITY), clock)
    entry = '{"fetched_at": ' + HUGE + ', "ttl": 600, "document": "{}"}'
    with writer(redis_process, caches) as cache:
        cache.set(source._shared_key, entry.encode(), 60)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        assert (await drive.verify(one, idp.mint())).subject
    assert jwks_server.count == 1


# -- R27B-5: credentials in the endpoint's URL silently replaced the configured client auth ----


@pytest.mark.parametrize("where", ["url", "discovery"])
def test_r27b_5_rfc6749_2_3_user_info_in_the_url_never_replaces_the_client_auth(
    where: str,
) -> None:
    # httpx turns https://user:password@host/... into a Basic header that overwrote the one
    # client_secret_basic made, or added a second method to client_secret_post's form (RFC
    # 6749 §2.3: "MUST NOT use more than one authentication method in each request"); and a
    # secret in a URL. Refused at start-up, the URL (it holds a secret) never shown.
    url = "https://someone:hunter2@as.example/introspect"
    options: dict[str, Any] = {where: url, "client_id": "rs", "client_secret": "s3cret"}
    with pytest.raises(ConfigurationError) as caught:
        Introspection(**options)
    assert "client_secret=" in str(caught.value) and "hunter2" not in str(caught.value)


async def test_r27b_5_rfc6749_2_3_a_discovered_endpoint_with_user_info_is_no_endpoint(
    drive: Drive,
) -> None:
    metadata = {
        "issuer": "https://as.example",
        "introspection_endpoint": "https://someone:hunter2@as.example/introspect",
    }
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = httpx.ByteStream(json.dumps(metadata).encode())  # unread, as a server's
        return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=body)

    transport = httpx.MockTransport(handle)
    client: Any = (
        httpx.Client(transport=transport)
        if drive.mode == "sync"
        else httpx.AsyncClient(transport=transport)
    )
    endpoint = Introspection(
        discovery="https://as.example", client_id="rs", client_secret="s3cret", client=client
    )
    verifier = Verifier(introspection=endpoint)
    try:
        with pytest.raises(IntrospectionUnavailable) as caught:
            await drive.verify(verifier, OPAQUE)
        assert "introspection_endpoint" in caught.value.detail["reason"]
        assert all(request.method == "GET" for request in calls)  # never POSTed the token
    finally:
        await verifier.aclose()
        if isinstance(client, httpx.Client):
            client.close()


def test_r27b_5_the_cli_refuses_user_info_in_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_cli import run as cli

    monkeypatch.setenv("RS_SECRET", "s")
    code, _, err = cli(
        "introspect", "--client-id", "rs", "--client-secret-env", "RS_SECRET",
        "--url", "https://someone:hunter2@as.example/i", "--", "opaque",
    )  # fmt: skip
    assert code == 2 and "client_secret=" in err and "hunter2" not in err, err


# -- R27B-8: Verifier.close/aclose left the Introspection's shared RedisCache open -------------


async def test_r27b_8_closing_the_verifier_closes_the_introspection_shared_cache(
    introspection: IntrospectionServer, clock: FakeClock, drive: Drive,
    redis_process: RedisProcess, prefix: str,
) -> None:  # fmt: skip
    # JWKSKeys(shared_cache=...) closes its RedisCache with the key source; Introspection
    # never did: after Verifier.aclose() at lifespan shutdown the cache's redis.asyncio client
    # for the loop stayed open (ResourceWarning "unclosed Connection"), and Verifier.close()
    # left the sync client.
    introspection.tokens[OPAQUE] = answer(clock)
    cache = RedisCache(redis_process.url, prefix=prefix, integrity_key=INTEGRITY)
    verifier = introspecting(introspection.url, cache, clock)
    try:
        await drive.verify(verifier, OPAQUE)
        if drive.mode == "async":
            await verifier.aclose()
        else:
            verifier.close()
        assert cache._conn._async_by_loop == {} and cache._conn._sync is None
    finally:
        await cache.aclose()
        cache.close()


# -- R27B noticed: denylist= required a jti that opaque tokens' answers often lack --------------


async def test_r27b_rfc7662_2_2_a_denylist_checks_an_introspected_token_without_jti_by_subject(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # oidc-provider leaves jti out of an opaque token's answer (the token is its own id), and
    # RFC 7662 §2.2 makes it optional; the jti the denylist asks of JWTs refused every opaque
    # token (401 claim_missing), without a word at start-up. The server answers the token's
    # own revocation (active: false); the denylist checks its subject, and its jti if any.
    server.tokens[OPAQUE] = active(clock)
    server.tokens["with-jti"] = active(clock, sub="bob", jti="t-1")
    denylist = MemoryDenylist(clock=clock)
    verifier = verifier_for(make_endpoint(server.url), clock, denylist=denylist)
    principal = await run(verifier, OPAQUE)
    assert principal.subject == "alice"
    with pytest.raises(ClaimMissing) as caught:  # no jti: say what revokes it
        verifier.revoke(principal)
    assert "RFC 7009" in caught.value.detail["reason"]
    verifier.revoke_subject("alice", issued_before=clock() + 1)
    verifier.clear_cache()
    with pytest.raises(TokenRevoked):
        await run(verifier, OPAQUE)
    verifier.revoke(await run(verifier, "with-jti"))
    with pytest.raises(TokenRevoked):
        await run(verifier, "with-jti")


def test_r27b_a_jti_the_verifier_requires_itself_is_still_required_of_an_answer(
    server: IntrospectionServer, clock: FakeClock
) -> None:
    server.tokens[OPAQUE] = active(clock)
    endpoint = Introspection(server.url, client_id="rs", client_secret="s3cret", clock=clock)
    verifier = verifier_for(
        endpoint, clock, denylist=MemoryDenylist(clock=clock), required_claims=["jti"]
    )
    try:
        with pytest.raises(ClaimMissing):
            verifier.verify(OPAQUE)
    finally:
        verifier.close()


# -- R27B noticed: the test kit's endpoint answered Bearer for a DPoP-bound token ---------------


def test_r27b_rfc9449_6_2_the_kit_answers_token_type_dpop_for_a_dpop_bound_token() -> None:
    # RFC 9449 §6.2 (and oidc-provider): a DPoP-bound token's answer says token_type DPoP; the
    # kit said Bearer for every token, and a claim named "active" overwrote the answer's own.
    issuer = LocalIssuer()
    bound = issuer.opaque_token(dpop_key=ec.generate_private_key(ec.SECP256R1()))
    answer = issuer.introspect(bound)
    assert answer["token_type"] == "DPoP" and "jkt" in answer["cnf"]
    assert issuer.introspect(issuer.opaque_token())["token_type"] == "Bearer"
    assert issuer.introspect(issuer.opaque_token(active=False))["active"] is True
