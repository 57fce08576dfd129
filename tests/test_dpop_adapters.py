"""DPoP (RFC 9449) through both drivers and both adapters, with real requests.

The adapter tests run once on the ASGI middleware (Starlette, ``httpx.ASGITransport``) and once
on the WSGI middleware (Flask on a real wsgiref server); the verifier tests on ``verify`` and
``averify``; replay across instances on a real redis-server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from jwt_guard import (
    ConfigurationError,
    DPoP,
    DPoPBoundTokenAsBearer,
    DPoPNonces,
    DPoPProofReplayed,
    DPoPRateLimited,
    DPoPReplayUnavailable,
    JWTGuardMiddleware,
    MemoryDenylist,
    MemoryReplayCache,
    Principal,
    RedisReplayCache,
    ReplayCache,
    TokenBindingUnsupported,
    TokenRevoked,
    Verifier,
)
from jwt_guard.fastapi import JWTBearer
from jwt_guard.testing import LocalIssuer, dpop_proof

from .apps import flask_app, starlette_app
from .conftest import AppFactory, FakeClock, assert_no_leak, bearer, challenge
from .forking import in_child
from .redis_server import redis_server
from .servers import run_uvicorn, run_wsgi
from .test_dpop import BROKEN_PROOFS

ALGS = 'algs="ES256 EdDSA Ed25519 PS256 RS256"'


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def url_of(client: httpx.AsyncClient, path: str) -> str:
    return str(client.base_url.join(path))


def dpop_headers(
    client: httpx.AsyncClient,
    token: str,
    client_key: Any,
    clock: FakeClock,
    *,
    method: str = "GET",
    path: str = "/me",
    **changes: Any,
) -> dict[str, str]:
    """``Authorization: DPoP`` and a fresh proof for this request (``changes`` break it)."""
    options: dict[str, Any] = {"access_token": token, "iat": clock.now}
    if "iat_offset" in changes:
        changes["iat"] = clock.now + changes.pop("iat_offset")
    options.update(changes)
    signer = options.pop("key", client_key)
    proof = dpop_proof(
        signer, options.pop("method", method), options.pop("url", url_of(client, path)), **options
    )
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


@pytest.fixture
def dpop_verifier(issuer: LocalIssuer) -> Callable[..., Verifier]:
    def make(**options: Any) -> Verifier:
        return issuer.verifier(dpop=DPoP(**options))

    return make


# -- the happy path and the cache ----------------------------------------------------------------


async def test_bound_token_with_fresh_proofs_every_request(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    verifier = dpop_verifier()
    client = make_client(verifier)
    token = issuer.mint(sub="alice", dpop_key=key)
    for _ in range(3):  # the token comes from the verified-token cache after the first request
        response = await client.get("/me", headers=dpop_headers(client, token, key, clock))
        assert response.status_code == 200 and response.json()["sub"] == "alice"
    response = await client.post(
        "/me?page=2", headers=dpop_headers(client, token, key, clock, method="POST", path="/me")
    )
    assert response.status_code == 200  # htu ignores the query (RFC 9449 §4.3 (9))


async def test_proof_made_by_joserfc_passes_both_adapters(
    make_client: AppFactory, dpop_verifier: Callable[..., Verifier], issuer: LocalIssuer
) -> None:
    from joserfc import jws
    from joserfc.jwk import ECKey

    client = make_client(dpop_verifier())
    their_key = ECKey.generate_key("P-256")
    token = issuer.mint(cnf={"jkt": their_key.thumbprint()})
    digest = hashlib.sha256(token.encode("ascii")).digest()  # ath, computed here, not by us
    ath = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    claims = {"jti": "joserfc-1", "htm": "GET", "htu": url_of(client, "/me"), "ath": ath}
    claims["iat"] = int(issuer.clock())
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": their_key.as_dict(private=False)}
    proof = jws.serialize_compact(header, json.dumps(claims), their_key)
    response = await client.get("/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 200


# -- each rule, failing then passing, through both adapters ----------------------------------------


@pytest.mark.parametrize(("name", "changes"), BROKEN_PROOFS, ids=[n for n, _ in BROKEN_PROOFS])
async def test_rfc9449_4_3_each_rule_through_the_adapter(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
    name: str,
    changes: dict[str, Any],
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    headers = dpop_headers(client, token, key, clock, **changes)
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "dpop_proof_invalid"
    assert response.json()["error"] == "invalid_dpop_proof"
    assert challenge(response) == (
        'DPoP realm="api", error="invalid_dpop_proof", '
        f'error_description="The DPoP proof is invalid.", {ALGS}, Bearer realm="api"'
    )
    # Nothing from the proof or the token is echoed (RFC 9449 answers, our own rule).
    proof = headers["DPoP"]
    assert_no_leak(response, token, proof, proof.split(".")[0], proof.split(".")[1])
    good = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert good.status_code == 200


@pytest.mark.parametrize("proofs", [[], ["one", "two"], [""]])
async def test_rfc9449_4_3_1_exactly_one_dpop_header(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
    proofs: list[str],
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    good = dpop_headers(client, token, key, clock)
    headers = [("Authorization", f"DPoP {token}")]
    headers += [("DPoP", good["DPoP"] if p == "one" else p) for p in proofs]
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "dpop_proof_missing"
    assert challenge(response).startswith('DPoP realm="api", error="invalid_dpop_proof"')
    assert (await client.get("/me", headers=good)).status_code == 200


async def test_rfc9449_11_1_a_proof_is_accepted_once(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    headers = dpop_headers(client, token, key, clock)
    assert (await client.get("/me", headers=headers)).status_code == 200
    replayed = await client.get("/me", headers=headers)
    assert replayed.status_code == 401 and replayed.json()["code"] == "dpop_proof_replayed"
    fresh = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert fresh.status_code == 200


@pytest.fixture(params=["memory", "redis"])
async def flood_cache(
    request: pytest.FixtureRequest, redis_url: str, clock: FakeClock
) -> AsyncIterator[ReplayCache]:
    """A replay cache where a client key's share is 1 proof: in memory (1 of 10), in Redis."""
    if request.param == "memory":
        yield MemoryReplayCache(max_entries=10, clock=clock)
        return
    cache = RedisReplayCache(redis_url, prefix=f"t{abs(hash(request.node.nodeid))}:", per_key=1)
    yield cache
    cache.close()
    await cache.aclose()


async def test_issue22_dpop_replay_flood_one_key_cannot_lock_out_others(
    make_client: AppFactory,
    flood_cache: ReplayCache,
    issuer: LocalIssuer,
    key: Any,
    other_key: Any,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One holder of one bound token floods: today's main filled the process-wide memory cache,
    # then answered every DPoP request of every client 503 and logged an ERROR line for each
    # (and a Redis one grew until Redis's maxmemory refused every write).
    client = make_client(issuer.verifier(dpop=DPoP(replay=flood_cache)))
    flood = issuer.mint(sub="mallory", dpop_key=key)
    with caplog.at_level(logging.INFO, logger="jwt_guard"):
        answers = [
            await client.get("/me", headers=dpop_headers(client, flood, key, clock))
            for _ in range(30)
        ]
    assert [a.status_code for a in answers] == [200] + [429] * 29
    refused = answers[-1]
    assert refused.json()["code"] == "dpop_rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 121  # when its share frees up
    assert "www-authenticate" not in refused.headers  # the credentials were fine
    assert_no_leak(refused, flood)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    lines = [r for r in caplog.records if getattr(r, "jwt_guard_code", None) == "dpop_rate_limited"]
    assert len(lines) <= 10  # the rejection log's limit a minute, as for every code
    # Everyone else goes on.
    victim = issuer.mint(sub="alice", dpop_key=other_key)
    answer = await client.get("/me", headers=dpop_headers(client, victim, other_key, clock))
    assert answer.status_code == 200 and answer.json()["sub"] == "alice"


async def test_rfc9449_6_proof_key_must_be_the_bound_key(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    other_key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    stolen = await client.get("/me", headers=dpop_headers(client, token, other_key, clock))
    assert stolen.status_code == 401 and stolen.json()["code"] == "dpop_key_mismatch"
    assert challenge(stolen) == (
        'DPoP realm="api", error="invalid_token", '
        f'error_description="Invalid DPoP key binding.", {ALGS}, Bearer realm="api"'
    )
    unbound = issuer.mint()  # a Bearer token sent with the DPoP scheme is bound to no key
    response = await client.get("/me", headers=dpop_headers(client, unbound, key, clock))
    assert response.status_code == 401 and response.json()["code"] == "dpop_key_mismatch"
    ok = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert ok.status_code == 200


async def test_rfc9449_7_2_bound_token_as_bearer_is_refused(
    make_client: AppFactory, dpop_verifier: Callable[..., Verifier], issuer: LocalIssuer, key: Any
) -> None:
    client = make_client(dpop_verifier())
    bound = issuer.mint(dpop_key=key)
    response = await client.get("/me", headers=bearer(bound))
    assert response.status_code == 401
    assert response.json()["code"] == "dpop_bound_token_as_bearer"
    # The client used Bearer, so the error is in the Bearer challenge; DPoP is offered.
    assert challenge(response) == (
        'Bearer realm="api", error="invalid_token", error_description="A DPoP-bound token must '
        f'be sent with the DPoP scheme.", DPoP realm="api", {ALGS}'
    )
    assert (await client.get("/me", headers=bearer(issuer.mint()))).status_code == 200


async def test_required_dpop_refuses_bearer_tokens(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier(required=True))
    response = await client.get("/me", headers=bearer(issuer.mint()))
    assert response.status_code == 401 and response.json()["code"] == "dpop_proof_missing"
    assert challenge(response) == (
        'DPoP realm="api", error="invalid_dpop_proof", '
        f'error_description="A single DPoP proof is required.", {ALGS}'
    )
    anonymous = await client.get("/me")
    assert challenge(anonymous) == f'DPoP realm="api", {ALGS}'
    token = issuer.mint(dpop_key=key)
    ok = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert ok.status_code == 200


async def test_no_credentials_challenges_both_schemes(
    make_client: AppFactory, dpop_verifier: Callable[..., Verifier]
) -> None:
    response = await make_client(dpop_verifier()).get("/me")
    assert response.status_code == 401 and response.json()["code"] == "token_missing"
    assert challenge(response) == f'Bearer realm="api", DPoP realm="api", {ALGS}'


async def test_rfc9449_7_2_bearer_and_dpop_credentials_together_are_a_bad_request(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    headers = dpop_headers(client, token, key, clock)
    both = [
        ("Authorization", f"Bearer {token}"),
        ("Authorization", headers["Authorization"]),
        ("DPoP", headers["DPoP"]),
    ]
    response = await client.get("/me", headers=both)
    assert response.status_code == 400 and response.json()["code"] == "multiple_tokens"


async def test_without_dpop_the_dpop_scheme_is_not_ours(
    make_client: AppFactory, issuer: LocalIssuer, key: Any, clock: FakeClock
) -> None:
    client = make_client(issuer.verifier())
    token = issuer.mint(dpop_key=key)
    response = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert response.status_code == 401 and response.json()["code"] == "token_missing"
    assert challenge(response) == 'Bearer realm="api"'  # no DPoP offered


async def test_rfc9449_9_nonce_round_trip(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier(nonce=DPoPNonces("s" * 32, lifetime=60)))
    token = issuer.mint(dpop_key=key)
    first = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert first.status_code == 401 and first.json()["code"] == "dpop_nonce_required"
    assert challenge(first).startswith('DPoP realm="api", error="use_dpop_nonce"')
    nonce = first.headers["dpop-nonce"]
    second = await client.get("/me", headers=dpop_headers(client, token, key, clock, nonce=nonce))
    assert second.status_code == 200
    assert second.headers["dpop-nonce"] == nonce  # §8.2: the current nonce, on success too
    clock.advance(100)  # stale now (lifetime + leeway): a new nonce comes with the refusal
    token = issuer.mint(dpop_key=key)
    stale = await client.get("/me", headers=dpop_headers(client, token, key, clock, nonce=nonce))
    assert stale.status_code == 401 and stale.headers["dpop-nonce"] != nonce
    fresh = stale.headers["dpop-nonce"]
    again = await client.get("/me", headers=dpop_headers(client, token, key, clock, nonce=fresh))
    assert again.status_code == 200


async def test_external_url_is_what_htu_must_name(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier(external_url="https://api.example/v1"))
    token = issuer.mint(dpop_key=key)
    local = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert local.status_code == 401 and local.json()["code"] == "dpop_proof_invalid"
    public = dpop_headers(client, token, key, clock, url="https://API.example:443/v1/me")
    assert (await client.get("/me", headers=public)).status_code == 200


async def test_token_errors_are_answered_in_the_dpop_challenge(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier())
    expired = issuer.mint(dpop_key=key, expired=True)
    response = await client.get("/me", headers=dpop_headers(client, expired, key, clock))
    assert response.status_code == 401 and response.json()["code"] == "token_expired"
    assert challenge(response).startswith('DPoP realm="api", error="invalid_token"')
    assert challenge(response).endswith(f'{ALGS}, Bearer realm="api"')


# -- the two drivers ------------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def run_verify(request: pytest.FixtureRequest) -> Callable[..., Awaitable[Principal]]:
    async def call(verifier: Verifier, token: str, **kwargs: Any) -> Principal:
        if request.param == "sync":
            return verifier.verify(token, **kwargs)
        return await verifier.averify(token, **kwargs)

    return call


URL = "https://api.example/orders"


async def test_both_drivers_check_proof_downgrade_and_replay(
    run_verify: Callable[..., Awaitable[Principal]],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    verifier = issuer.verifier(dpop=DPoP())
    token = issuer.mint(sub="bob", dpop_key=key)
    proof = dpop_proof(key, "GET", URL, access_token=token, iat=clock.now)
    principal = await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)
    assert principal.subject == "bob"
    with pytest.raises(DPoPProofReplayed):
        await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)
    with pytest.raises(DPoPBoundTokenAsBearer):
        await run_verify(verifier, token)
    with pytest.raises(ConfigurationError):  # a proof is never ignored silently
        unbound = issuer.mint(sub="bob")  # (a bound one is refused there anyway)
        await run_verify(issuer.verifier(), unbound, dpop_proof=proof, method="GET", url=URL)


async def test_issue22_dpop_replay_flood_both_drivers(
    run_verify: Callable[..., Awaitable[Principal]],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    verifier = issuer.verifier(dpop=DPoP(replay=MemoryReplayCache(max_entries=4, clock=clock)))

    async def request(client_key: Any, token: str) -> Principal:
        proof = dpop_proof(client_key, "GET", URL, access_token=token, iat=clock.now)
        return await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)

    token = issuer.mint(sub="mallory", dpop_key=key)
    await request(key, token)
    with pytest.raises(DPoPRateLimited) as info:  # its share: 1 of 4
        await request(key, token)
    assert info.value.status_code == 429 and info.value.retry_after >= 1
    # Many keys, each with a token the issuer bound to it, fill the cache: it drops the
    # oldest entry and goes on accepting fresh proofs.
    for n in range(8):
        clock.advance(2)
        client_key = ec.generate_private_key(ec.SECP256R1())
        assert (await request(client_key, issuer.mint(sub=f"c{n}", dpop_key=client_key))).subject
    assert len(verifier.dpop.replay_cache) == 4  # type: ignore[union-attr, arg-type]


async def test_denylist_still_applies_and_a_revoked_token_burns_no_jti(
    run_verify: Callable[..., Awaitable[Principal]],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    verifier = issuer.verifier(dpop=DPoP(), denylist=MemoryDenylist(clock=clock))
    token = issuer.mint(dpop_key=key)
    verifier.revoke(token)  # no proof needed to end a bound token
    proof = dpop_proof(key, "GET", URL, access_token=token, iat=clock.now)
    with pytest.raises(TokenRevoked):
        await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)
    assert len(verifier.dpop.replay_cache) == 0  # type: ignore[union-attr, arg-type]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def test_replay_across_two_instances_on_redis(
    run_verify: Callable[..., Awaitable[Principal]],
    redis_url: str,
    key: Any,
    request: pytest.FixtureRequest,
) -> None:
    idp = LocalIssuer()  # real clock: the keys expire in real Redis
    prefix = f"t{abs(hash(request.node.nodeid))}:"
    one = idp.verifier(dpop=DPoP(replay=RedisReplayCache(redis_url, prefix=prefix)))
    two = idp.verifier(dpop=DPoP(replay=RedisReplayCache(redis_url, prefix=prefix)))
    token = idp.mint(dpop_key=key)
    proof = dpop_proof(key, "GET", URL, access_token=token)
    await run_verify(one, token, dpop_proof=proof, method="GET", url=URL)
    with pytest.raises(DPoPProofReplayed):
        await run_verify(two, token, dpop_proof=proof, method="GET", url=URL)
    fresh = dpop_proof(key, "GET", URL, access_token=token)
    assert await run_verify(two, token, dpop_proof=fresh, method="GET", url=URL)
    await close_replay(one, two)


async def close_replay(*verifiers: Verifier) -> None:
    for verifier in verifiers:
        assert verifier.dpop is not None and isinstance(verifier.dpop.replay, RedisReplayCache)
        verifier.dpop.replay.close()
        await verifier.dpop.replay.aclose()


async def test_replay_across_an_asgi_and_a_wsgi_instance_on_redis(
    redis_url: str, key: Any, request: pytest.FixtureRequest
) -> None:
    idp = LocalIssuer()
    prefix = f"t{abs(hash(request.node.nodeid))}:"

    token = idp.mint(dpop_key=key)
    # Both instances stand behind one public URL (a load balancer): the ASGI one sees it as
    # its own, the WSGI one is reached over plain http on loopback and told with external_url.
    public = "https://api.example"
    asgi_verifier = idp.verifier(dpop=DPoP(replay=RedisReplayCache(redis_url, prefix=prefix)))
    wsgi_verifier = idp.verifier(
        dpop=DPoP(replay=RedisReplayCache(redis_url, prefix=prefix), external_url=public)
    )
    proof = dpop_proof(key, "GET", f"{public}/me", access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    transport = httpx.ASGITransport(app=starlette_app(asgi_verifier))
    async with httpx.AsyncClient(transport=transport, base_url=public) as asgi:
        assert (await asgi.get("/me", headers=headers)).status_code == 200
    with run_wsgi(flask_app(wsgi_verifier)) as behind_proxy:
        async with httpx.AsyncClient(base_url=behind_proxy) as wsgi:
            replay = await wsgi.get("/me", headers=headers)
            fresh = dpop_proof(key, "GET", f"{public}/me", access_token=token)
            ok = await wsgi.get("/me", headers={**headers, "DPoP": fresh})
    assert replay.status_code == 401 and replay.json()["code"] == "dpop_proof_replayed"
    assert ok.status_code == 200
    await close_replay(asgi_verifier, wsgi_verifier)


# -- WebSocket handshakes (a GET; htu may name ws/wss or http/https) -----------------------------


def test_websocket_handshake_with_dpop(issuer: LocalIssuer, key: Any, clock: FakeClock) -> None:
    async def who(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.scope["user"].identity)
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/ws", who)],
        middleware=[Middleware(JWTGuardMiddleware, verifier=issuer.verifier(dpop=DPoP()))],
    )
    token = issuer.mint(sub="ws-user", dpop_key=key)
    with run_uvicorn(app) as base:
        ws_url = base.replace("http", "ws") + "/ws"
        for htu in (ws_url, base + "/ws"):
            proof = dpop_proof(key, "GET", htu, access_token=token, iat=clock.now)
            headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
            with connect(ws_url, additional_headers=headers) as ws:
                assert ws.recv() == "ws-user"
        with pytest.raises(InvalidStatus) as denied:
            with connect(ws_url, additional_headers={"Authorization": f"DPoP {token}"}):
                pass
        assert denied.value.response.status_code == 401
        assert denied.value.response.headers["WWW-Authenticate"].startswith("DPoP ")


# -- after a fork (gunicorn's pre-fork workers) ---------------------------------------------------


def test_memory_replay_cache_after_fork_while_its_lock_is_held(
    issuer: LocalIssuer, key: Any, clock: FakeClock
) -> None:
    """A thread was recording a proof (holding the lock) at the moment of the fork: the
    child's copy of the lock would stay held for ever unless it is renewed after the fork.
    (The forking thread holds it here: tests fork with no other thread running.)"""
    verifier = issuer.verifier(dpop=DPoP())
    cache = verifier.dpop.replay_cache  # type: ignore[union-attr]
    assert isinstance(cache, MemoryReplayCache)
    token = issuer.mint(dpop_key=key)

    def child() -> bool:
        proof = dpop_proof(key, "GET", URL, access_token=token, iat=clock.now)
        verifier.verify(token, dpop_proof=proof, method="GET", url=URL)
        try:
            verifier.verify(token, dpop_proof=proof, method="GET", url=URL)
        except DPoPProofReplayed:
            return True
        return False

    assert in_child(child, holding=cache._lock)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_replay_cache_after_fork(
    redis_url: str, key: Any, mode: str, request: pytest.FixtureRequest
) -> None:
    """Parent and child record proofs at the same time after a fork, each on its own
    connection (the shared connection handling renews the clients in the child)."""
    idp = LocalIssuer()
    prefix = f"t{abs(hash(request.node.nodeid))}:"
    verifier = idp.verifier(dpop=DPoP(replay=RedisReplayCache(redis_url, prefix=prefix)))
    token = idp.mint(dpop_key=key)

    def rounds(loop: asyncio.AbstractEventLoop | None) -> bool:
        for _ in range(100):
            proof = dpop_proof(key, "GET", URL, access_token=token)
            for expect_replay in (False, True):
                try:
                    if loop is not None:
                        loop.run_until_complete(
                            verifier.averify(token, dpop_proof=proof, method="GET", url=URL)
                        )
                    else:
                        verifier.verify(token, dpop_proof=proof, method="GET", url=URL)
                except DPoPProofReplayed:
                    if not expect_replay:
                        return False
                else:
                    if expect_replay:
                        return False
        return True

    parent_loop = asyncio.new_event_loop() if mode == "async" else None
    try:
        assert rounds(parent_loop)  # the parent's pool now holds a connection
        outcome: list[bool] = []
        child_ok = in_child(
            lambda: rounds(asyncio.new_event_loop() if mode == "async" else None),
            meanwhile=lambda: outcome.append(rounds(parent_loop)),
        )
        assert child_ok and outcome == [True]
    finally:
        if parent_loop is not None:
            parent_loop.run_until_complete(verifier.aclose())
            parent_loop.close()
        verifier.close()


# -- per-route guards (no middleware) share the middleware's steps, DPoP included ------------------


async def test_fastapi_jwtbearer_with_dpop(issuer: LocalIssuer, key: Any, clock: FakeClock) -> None:
    guard = JWTBearer(issuer.verifier(dpop=DPoP()))
    app = FastAPI()

    # A default, not Annotated: FastAPI cannot resolve a local name in a string annotation.
    @app.get("/me")
    async def me(principal: Principal = Depends(guard)) -> dict[str, Any]:
        return {"sub": principal.subject}

    token = issuer.mint(sub="carol", dpop_key=key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ok = await client.get("/me", headers=dpop_headers(client, token, key, clock))
        assert ok.status_code == 200 and ok.json() == {"sub": "carol"}
        downgrade = await client.get("/me", headers=bearer(token))
        assert downgrade.status_code == 401
        assert downgrade.json()["code"] == "dpop_bound_token_as_bearer"
        broken = await client.get("/me", headers=dpop_headers(client, token, key, clock, jti=""))
        assert broken.json()["code"] == "dpop_proof_invalid"
        assert challenge(broken).startswith('DPoP realm="api", error="invalid_dpop_proof"')


async def test_flask_routeguard_with_dpop(issuer: LocalIssuer, key: Any, clock: FakeClock) -> None:
    from flask import Flask, jsonify

    from jwt_guard import RouteGuard

    guard = RouteGuard(issuer.verifier(dpop=DPoP()))
    app = Flask(__name__)

    @app.get("/me")
    @guard.protect()
    def me() -> Any:
        return jsonify({"ok": True})

    token = issuer.mint(dpop_key=key)
    with run_wsgi(app) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            ok = await client.get("/me", headers=dpop_headers(client, token, key, clock))
            assert ok.status_code == 200
            replayed = await client.get("/me", headers=dpop_headers(client, token, key, clock))
            assert replayed.status_code == 200  # a new proof each time
            no_proof = await client.get("/me", headers={"Authorization": f"DPoP {token}"})
            assert no_proof.json()["code"] == "dpop_proof_missing"


# -- the request URL each adapter builds for the htu check -----------------------------------------


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        # Werkzeug and gunicorn keep the path as received (REQUEST_URI / RAW_URI).
        (
            {"REQUEST_URI": "/a%20b/me?x=1", "PATH_INFO": "/a b/me", "HTTP_HOST": "api.example"},
            "http://api.example/a%20b/me",
        ),
        # wsgiref does not: the path is encoded again from SCRIPT_NAME + PATH_INFO (latin-1).
        (
            {"SCRIPT_NAME": "/v1", "PATH_INFO": "/caf\xc3\xa9", "HTTP_HOST": "api.example:8443"},
            "http://api.example:8443/v1/caf%C3%A9",
        ),
        # An absolute-form request target is not a path: rebuilt from PATH_INFO.
        (
            {"REQUEST_URI": "http://evil.example/x", "PATH_INFO": "/x", "HTTP_HOST": "api.example"},
            "http://api.example/x",
        ),
        # No Host header (HTTP/1.0): the server's name and port.
        (
            {"PATH_INFO": "/x", "SERVER_NAME": "10.0.0.1", "SERVER_PORT": "8080"},
            "http://10.0.0.1:8080/x",
        ),
    ],
)
def test_wsgi_request_url_for_htu(issuer: LocalIssuer, environ: dict[str, str], url: str) -> None:
    from jwt_guard._http.guard import Guard
    from jwt_guard._http.request import WSGIRequest

    guard = Guard(verifier=issuer.verifier(dpop=DPoP()))
    full = {"REQUEST_METHOD": "PUT", "wsgi.url_scheme": "http", "HTTP_DPOP": "p.r.f", **environ}
    assert guard.dpop_request(WSGIRequest(full)) == ("p.r.f", "PUT", url)


@pytest.mark.parametrize(
    ("scope", "url"),
    [
        ({"raw_path": b"/a%20b/me", "path": "/a b/me"}, "https://api.example/a%20b/me"),
        ({"path": "/caf\u00e9"}, "https://api.example/caf%C3%A9"),  # no raw_path given
    ],
)
def test_asgi_request_url_for_htu(issuer: LocalIssuer, scope: dict[str, Any], url: str) -> None:
    from jwt_guard._http.guard import Guard
    from jwt_guard._http.request import ASGIRequest

    guard = Guard(verifier=issuer.verifier(dpop=DPoP()))
    headers = [(b"host", b"api.example"), (b"dpop", b"p.r.f")]
    full = {"type": "http", "method": "GET", "scheme": "https", "headers": headers, **scope}
    assert guard.dpop_request(ASGIRequest(full)) == ("p.r.f", "GET", url)


# -- tokens bound by a method the verifier cannot check (RFC 7800 §3.1, RFC 9449 §7.2) -----------


async def test_rfc9449_7_2_bound_token_refused_by_a_verifier_without_dpop(
    run_verify: Callable[..., Awaitable[Principal]], issuer: LocalIssuer, key: Any
) -> None:
    verifier = issuer.verifier()  # no dpop=: the binding cannot be checked
    token = issuer.mint(sub="bob", dpop_key=key)
    for _ in range(2):  # refused at fresh verification, so never cached either
        with pytest.raises(DPoPBoundTokenAsBearer):
            await run_verify(verifier, token)
    assert (await run_verify(verifier, issuer.mint(sub="bob"))).subject == "bob"
    opted_out = issuer.verifier(accept_bound_tokens_as_bearer=True)
    assert (await run_verify(opted_out, token)).subject == "bob"


@pytest.mark.parametrize(
    "cnf", [{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, {"kid": "k1"}]
)
async def test_rfc7800_3_1_unknown_confirmation_method_is_refused(
    run_verify: Callable[..., Awaitable[Principal]],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
    cnf: Any,
) -> None:
    from jwt_guard._core.dpop import jwk_thumbprint
    from jwt_guard.testing import dpop_jwk

    # mTLS (RFC 8705 §3.1) or a key id: the binding cannot be checked here, DPoP or not.
    for verifier in (issuer.verifier(), issuer.verifier(dpop=DPoP())):
        with pytest.raises(TokenBindingUnsupported):
            await run_verify(verifier, issuer.mint(cnf=cnf))
    # Both bindings: the DPoP one passes, the other is still unchecked.
    token = issuer.mint(cnf={**cnf, "jkt": jwk_thumbprint(dpop_jwk(key))})
    request = {"method": "GET", "url": URL}
    proof = dpop_proof(key, "GET", URL, access_token=token, iat=clock.now)
    with pytest.raises(TokenBindingUnsupported):
        await run_verify(issuer.verifier(dpop=DPoP()), token, dpop_proof=proof, **request)
    # The loud opt-out: a proxy in front checks the certificate binding.
    opted_out = issuer.verifier(dpop=DPoP(), accept_bound_tokens_as_bearer=True)
    await run_verify(opted_out, token, dpop_proof=proof, **request)
    await run_verify(opted_out, issuer.mint(cnf=cnf))


# -- the request URL: a bad Host, and pinning the host (RFC 9449 §4.3 (9)) -----------------------


async def test_rfc9449_4_3_9_bad_host_header_does_not_pass_any_htu(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    for htu in ("/admin", "/me", "urn:x"):
        headers = {**dpop_headers(client, token, key, clock, url=htu), "Host": "x:99999"}
        response = await client.get("/me", headers=headers)
        assert response.status_code == 400 and response.json()["code"] == "request_url_invalid"
        assert challenge(response).startswith('DPoP realm="api", error="invalid_request"')
        assert_no_leak(response, token, headers["DPoP"])


async def test_rfc9449_4_3_9_host_header_is_trusted_unless_allowed_hosts_pin_it(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = issuer.mint(dpop_key=key)
    evil = "http://evil.example/me"
    # (Starlette builds its middleware at the first request: the warning comes by then.)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        trusting = make_client(dpop_verifier())
        # The documented default: the URL is the one the client's Host header names.
        headers = {**dpop_headers(trusting, token, key, clock, url=evil), "Host": "evil.example"}
        assert (await trusting.get("/me", headers=headers)).status_code == 200
    assert "trusts the request's Host header" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        pinned = make_client(dpop_verifier(allowed_hosts=["api.example"]))
        headers = {**dpop_headers(pinned, token, key, clock, url=evil), "Host": "evil.example"}
        refused = await pinned.get("/me", headers=headers)
    assert "trusts the request's Host header" not in caplog.text
    assert refused.status_code == 400 and refused.json()["code"] == "host_not_allowed"
    good = "http://api.example/me"
    headers = {**dpop_headers(pinned, token, key, clock, url=good), "Host": "api.example"}
    assert (await pinned.get("/me", headers=headers)).status_code == 200


# -- errors raised in the route answer in the scheme the client used (RFC 9449 §7.1) -------------


async def test_rfc9449_7_1_route_errors_use_the_dpop_challenge(
    make_any_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    client = make_any_client(dpop_verifier())
    token = issuer.mint(dpop_key=key, scope="read")
    response = await client.get(
        "/scoped", headers=dpop_headers(client, token, key, clock, path="/scoped")
    )
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert challenge(response).startswith('DPoP realm="api", error="insufficient_scope"')
    # The same route with a Bearer token keeps the Bearer challenge.
    plain = issuer.mint(scope="read")
    response = await client.get("/scoped", headers=bearer(plain))
    assert response.status_code == 403
    assert challenge(response).startswith('Bearer realm="api", error="insufficient_scope"')


async def test_rfc9449_7_1_fastapi_jwtbearer_scope_errors_use_the_dpop_challenge(
    issuer: LocalIssuer, key: Any, clock: FakeClock
) -> None:
    from fastapi import Security

    guard = JWTBearer(issuer.verifier(dpop=DPoP()))
    app = FastAPI()

    @app.get("/write")
    async def write(principal: Principal = Security(guard, scopes=["write"])) -> dict[str, Any]:
        return {}

    token = issuer.mint(dpop_key=key, scope="read")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(
            "/write", headers=dpop_headers(client, token, key, clock, path="/write")
        )
    assert response.status_code == 403
    assert challenge(response).startswith('DPoP realm="api", error="insufficient_scope"')


# -- method overrides (RFC 9449 §4.3 (8): htm is the method the app acts on) ----------------------


@pytest.mark.parametrize(
    ("path", "override"),
    [("/me", {"X-HTTP-Method-Override": "DELETE"}), ("/me?_method=delete", {})],
)
async def test_rfc9449_4_3_8_a_method_override_must_not_change_the_method(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
    path: str,
    override: dict[str, str],
) -> None:
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    headers = {**dpop_headers(client, token, key, clock, method="POST"), **override}
    refused = await client.post(path, headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "dpop_proof_invalid"
    same = {**dpop_headers(client, token, key, clock, method="POST"), "X-HTTP-Method": "post"}
    assert (await client.post("/me", headers=same)).status_code == 200


@pytest.mark.parametrize("name", ["%5Fmethod", "_%6Dethod"])
async def test_issue22_encoded_override_parameter_meets_the_htm_check(
    make_client: AppFactory,
    dpop_verifier: Callable[..., Verifier],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
    name: str,
) -> None:
    # RFC 9449 §4.3 (8): the parameter as the app decodes it names the method it acts on.
    client = make_client(dpop_verifier())
    token = issuer.mint(dpop_key=key)
    headers = dpop_headers(client, token, key, clock, method="POST")  # htu has no query
    refused = await client.post(f"/me?{name}=DELETE", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "dpop_proof_invalid"
    fresh = dpop_headers(client, token, key, clock, method="POST")
    assert (await client.post(f"/me?{name}s=DELETE", headers=fresh)).status_code == 200


def test_rfc9449_8_websocket_accept_carries_the_dpop_nonce(
    issuer: LocalIssuer, key: Any, clock: FakeClock
) -> None:
    async def who(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    nonces = DPoPNonces("w" * 32)
    verifier = issuer.verifier(dpop=DPoP(nonce=nonces))
    app = Starlette(
        routes=[WebSocketRoute("/ws", who)],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier)],
    )
    token = issuer.mint(dpop_key=key)
    with run_uvicorn(app) as base:
        ws_url = base.replace("http", "ws") + "/ws"
        nonce = nonces.issue(clock.now)
        proof = dpop_proof(key, "GET", ws_url, access_token=token, iat=clock.now, nonce=nonce)
        with connect(
            ws_url, additional_headers={"Authorization": f"DPoP {token}", "DPoP": proof}
        ) as ws:
            assert ws.response is not None
            assert ws.response.headers["DPoP-Nonce"] == nonces.issue(clock.now)


async def test_issue22_review_429_retry_after_is_this_refusals_not_the_first_ones(
    make_client: AppFactory, issuer: LocalIssuer, key: Any, clock: FakeClock
) -> None:
    # Review of issue 22: the adapters keep one ready answer per kind of refusal, and a 429's
    # Retry-After was not part of what made it differ, so every later 429 repeated the first
    # one's delay (120 s) however soon the key's share freed up.
    cache = MemoryReplayCache(max_entries=10, per_key=1, clock=clock)
    client = make_client(issuer.verifier(dpop=DPoP(replay=cache)))
    token = issuer.mint(dpop_key=key)
    assert (await client.get("/me", headers=dpop_headers(client, token, key, clock))).is_success
    first = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    clock.advance(100)
    later = await client.get("/me", headers=dpop_headers(client, token, key, clock))
    assert first.status_code == later.status_code == 429
    assert int(later.headers["retry-after"]) == int(first.headers["retry-after"]) - 100


async def test_issue22_review_rfc9449_11_1_no_replay_at_the_last_accepted_second_without_leeway(
    run_verify: Callable[..., Awaitable[Principal]],
    issuer: LocalIssuer,
    key: Any,
    clock: FakeClock,
) -> None:
    # Review of issue 22: with leeway=0 a proof is accepted up to iat + max_age inclusive, but
    # its entry expired at exactly that instant (until <= now is gone): replayed then, accepted.
    verifier = issuer.verifier(dpop=DPoP(replay=MemoryReplayCache(clock=clock)), leeway=0)
    token = issuer.mint(sub="bob", dpop_key=key, ttl=3600)
    proof = dpop_proof(key, "GET", URL, access_token=token, iat=clock.now)
    await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)
    clock.advance(60)  # DEFAULT_MAX_AGE: the proof's last accepted instant
    with pytest.raises(DPoPProofReplayed):
        await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)


class _SlowDenylist(MemoryDenylist):
    """A denylist that takes ``delay`` seconds of the clock to answer (a Redis under load, an
    event loop lagging behind a flood)."""

    def __init__(self, clock: FakeClock, delay: float) -> None:
        super().__init__(clock=clock)
        self.fake_clock, self.delay = clock, delay

    def check(self, keys: Any, issued_at: object) -> None:
        self.fake_clock.advance(self.delay)
        super().check(keys, issued_at)

    async def acheck(self, keys: Any, issued_at: object) -> None:
        self.fake_clock.advance(self.delay)
        await super().acheck(keys, issued_at)


async def test_issue22_review_rfc9449_11_1_a_slow_step_before_the_record_lets_no_dropped_proof_back(
    run_verify: Callable[..., Awaitable[Principal]],
    issuer: LocalIssuer,
    key: Any,
    other_key: Any,
    clock: FakeClock,
) -> None:
    # Review of issue 22: the replay entry's ttl was reckoned when the proof was checked, its
    # ``until`` when it was recorded, after the denylist. A full cache refuses a dropped proof's
    # replay by comparing untils (one second of rounding allowed): a replay whose denylist
    # check took 2 s got an ``until`` 2 s later than the dropped entry's, and passed.
    cache = MemoryReplayCache(max_entries=2, per_key=1, clock=clock)
    denylist = _SlowDenylist(clock, 0.0)
    verifier = issuer.verifier(dpop=DPoP(replay=cache), denylist=denylist)
    victim = issuer.mint(sub="alice", dpop_key=key)
    captured = dpop_proof(key, "GET", URL, access_token=victim, iat=clock.now)
    await run_verify(verifier, victim, dpop_proof=captured, method="GET", url=URL)
    for i in range(2):  # two other keys fill the cache: the captured proof's entry is dropped
        signer = ec.generate_private_key(ec.SECP256R1())
        token = issuer.mint(sub=f"user{i}", dpop_key=signer)
        proof = dpop_proof(signer, "GET", URL, access_token=token, iat=clock.now)
        await run_verify(verifier, token, dpop_proof=proof, method="GET", url=URL)
    clock.advance(10)
    denylist.delay = 2.0
    with pytest.raises((DPoPProofReplayed, DPoPReplayUnavailable)):
        await run_verify(verifier, victim, dpop_proof=captured, method="GET", url=URL)
