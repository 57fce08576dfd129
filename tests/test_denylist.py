"""Revocation against a real redis-server (and in memory)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from jwt_guard import (
    ClaimMissing,
    ConfigurationError,
    DenylistUnavailable,
    JWKSKeys,
    JWTGuardError,
    MemoryDenylist,
    RedisDenylist,
    TokenRevoked,
    Verifier,
)
from jwt_guard.testing import JWKSServer, LocalIssuer, forge

from .apps import starlette_app
from .conftest import FakeClock
from .forking import in_child
from .redis_server import RedisProcess, free_port, redis_server
from .servers import run_uvicorn

if TYPE_CHECKING:
    from jwt_guard import RevocationKeys


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"t{abs(hash(request.node.nodeid))}:"


def test_memory_denylist_revokes_until_expiry(issuer: LocalIssuer, clock: FakeClock) -> None:
    denylist = MemoryDenylist(clock=clock)
    verifier = issuer.verifier(denylist=denylist)
    token = issuer.mint(ttl=60)
    other = issuer.mint(ttl=60)
    verifier.verify(token)  # cached now: revocation must still apply
    verifier.revoke(token)
    with pytest.raises(TokenRevoked) as info:
        verifier.verify(token)
    assert info.value.code == "token_revoked" and info.value.status_code == 401
    assert verifier.verify(other)
    assert len(denylist) == 1
    clock.advance(60 + 30 + 60 + 1)  # past exp + leeway + clock margin: expired by itself
    denylist.add_token("jti:y", clock.now + 10)  # writing purges nothing yet (not full)
    assert denylist._lookup(next(iter(denylist._entries)), clock.now) is None


def test_memory_denylist_is_bounded(clock: FakeClock) -> None:
    denylist = MemoryDenylist(max_entries=2, clock=clock)
    denylist.add_token("jti:a", clock.now + 10)
    denylist.add_token("jti:b", clock.now + 100)
    with pytest.raises(DenylistUnavailable):
        denylist.add_token("jti:c", clock.now + 100)
    clock.advance(11)  # "a" expired: room again
    denylist.add_token("jti:c", clock.now + 100)
    assert len(denylist) == 2


def test_tokens_without_jti_rejected_when_denylist_configured(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist())
    with pytest.raises(ClaimMissing):
        verifier.verify(issuer.mint(jti=None))
    relaxed = issuer.verifier(denylist=MemoryDenylist(), allow_tokens_without_jti=True)
    assert relaxed.verify(issuer.mint(jti=None))


@pytest.mark.parametrize("drive", ["sync", "async"])
async def test_issue25_a_jti_missing_for_the_denylist_says_so(
    issuer: LocalIssuer, drive: str
) -> None:
    """Issue 25, item 3 (the same trap): ``claim_missing claim='jti' required=['exp', 'jti']``
    pointed at the token, while jti is in no required_claims= the app wrote: the denylist
    adds it."""
    verifier = issuer.verifier(denylist=MemoryDenylist())
    token = issuer.mint(jti=None)
    with pytest.raises(ClaimMissing) as caught:
        if drive == "sync":
            verifier.verify(token)
        else:
            await verifier.averify(token)
    assert caught.value.detail["claim"] == "jti"
    assert caught.value.detail["reason"].startswith("denylist= needs it to revoke one token")
    assert "allow_tokens_without_jti=True" in caught.value.detail["reason"]
    # Asked for by name, it is the app's own rule: no word of the denylist.
    named = issuer.verifier(required_claims=["exp", "jti"])
    with pytest.raises(ClaimMissing) as plain:
        named.verify(token)
    assert "reason" not in plain.value.detail


def test_revoke_subject_rejects_older_tokens(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist(clock=clock))
    old = issuer.mint(sub="mallory")
    other_user = issuer.mint(sub="alice")
    clock.advance(5)
    verifier.revoke_subject("mallory")
    with pytest.raises(TokenRevoked):
        verifier.verify(old)
    assert verifier.verify(other_user)
    clock.advance(1)
    assert verifier.verify(issuer.mint(sub="mallory"))  # logged in again afterwards


def test_denylist_checked_only_after_signature(issuer: LocalIssuer) -> None:
    class CountingDenylist(MemoryDenylist):
        checks = 0

        def check(self, keys: RevocationKeys, issued_at: object) -> None:
            type(self).checks += 1
            super().check(keys, issued_at)

    denylist = CountingDenylist()
    verifier = issuer.verifier(denylist=denylist)
    forged = forge({"alg": "HS256", "kid": issuer.kid}, issuer.claims(), b"k" * 32, "HS256")
    unsigned = issuer.mint()[:-10] + "A" * 10
    for token in (forged, unsigned):
        with pytest.raises(JWTGuardError):
            verifier.verify(token)
    assert CountingDenylist.checks == 0
    verifier.verify(issuer.mint())
    assert CountingDenylist.checks == 1


def test_revocation_needs_a_denylist(issuer: LocalIssuer) -> None:
    with pytest.raises(ConfigurationError):
        issuer.verifier().revoke(issuer.mint())


# -- Redis -------------------------------------------------------------------------------


def real_clock_issuer() -> LocalIssuer:
    return LocalIssuer(algorithm="ES256")


def test_two_instances_share_revocations(redis_url: str, prefix: str) -> None:
    idp = real_clock_issuer()
    one = idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix))
    two = idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix))
    token = idp.mint(ttl=60)
    assert two.verify(token)  # cached in instance two
    one.revoke(token)
    with pytest.raises(TokenRevoked):
        two.verify(token)


async def test_two_asgi_apps_share_revocations(redis_url: str, prefix: str) -> None:
    idp = real_clock_issuer()
    apps = [
        starlette_app(idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix)))
        for _ in range(2)
    ]
    token = idp.mint(ttl=60)
    headers = {"Authorization": f"Bearer {token}"}
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t") for a in apps
    ]
    try:
        assert (await clients[1].get("/me", headers=headers)).status_code == 200
        verifier = apps[0].user_middleware[0].kwargs["verifier"]
        await verifier.arevoke(token)
        response = await clients[1].get("/me", headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "token_revoked"
    finally:
        for c in clients:
            await c.aclose()
        for a in apps:
            await a.user_middleware[0].kwargs["verifier"].denylist.aclose()


def test_entries_expire_with_the_token(redis_url: str, prefix: str) -> None:
    import redis

    idp = real_clock_issuer()
    verifier = idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix), leeway=5)
    verifier.revoke(idp.mint(ttl=100))
    client = redis.Redis.from_url(redis_url)
    keys = client.keys(prefix + "*")
    assert len(keys) == 1
    ttl = client.ttl(keys[0])
    assert 100 + 5 <= ttl <= 100 + 5 + 60 + 1  # exp + leeway + the clock margin
    client.close()


async def test_revoke_subject_async_across_instances(redis_url: str, prefix: str) -> None:
    idp = real_clock_issuer()
    one = idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix))
    two = idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix))
    token = idp.mint(sub="banned", iat=int(time.time()) - 10)
    assert await two.averify(token)
    await one.arevoke_subject("banned")
    with pytest.raises(TokenRevoked):
        await two.averify(token)
    with pytest.raises(TokenRevoked):
        two.verify(token)
    assert await two.averify(idp.mint(sub="someone-else"))
    for v in (one, two):
        assert v.denylist is not None
        await v.denylist.aclose()  # type: ignore[attr-defined]


def _sync_outcome(verifier: Verifier, token: str) -> object:
    try:
        return verifier.verify(token)
    except DenylistUnavailable as exc:
        return exc


@contextlib.contextmanager
def _silent_listener() -> Iterator[int]:
    """A TCP listener that accepts and never answers: a hung Redis. Yields its port; at the
    end every connection it accepted is closed and its thread has ended."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # shut down: the test is over
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, name="silent-redis")
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone would not)
        thread.join()
        sock.close()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize("mode", ["refused", "hung"])
async def test_redis_down_fails_closed_with_503(mode: str) -> None:
    idp = real_clock_issuer()
    with contextlib.ExitStack() as stack:
        if mode == "refused":
            url = f"redis://127.0.0.1:{free_port()}/0"
        else:
            url = f"redis://127.0.0.1:{stack.enter_context(_silent_listener())}/0"
        await _down_fails_closed(idp, url)


async def _down_fails_closed(idp: LocalIssuer, url: str) -> None:
    denylist = RedisDenylist(url, timeout=0.3)
    verifier = idp.verifier(denylist=denylist, cache_size=0)
    # A hung Redis must end in our error, not in the test's own timeout (a liveness guard,
    # not a speed assertion: the denylist's 0.3 s timeout is what answers).
    with pytest.raises(DenylistUnavailable) as info:
        await asyncio.wait_for(verifier.averify(idp.mint()), 10)
    sync = await asyncio.wait_for(asyncio.to_thread(_sync_outcome, verifier, idp.mint()), 10)
    assert isinstance(sync, DenylistUnavailable)
    assert info.value.status_code == 503
    app = starlette_app(verifier)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/me", headers={"Authorization": f"Bearer {idp.mint()}"})
    assert response.status_code == 503 and response.json()["code"] == "denylist_unavailable"
    assert "retry-after" in response.headers
    with pytest.raises(DenylistUnavailable):
        verifier.revoke(idp.mint())  # writes never fail open
    await denylist.aclose()
    denylist.close()


async def test_fail_open_lets_requests_through_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp = real_clock_issuer()
    denylist = RedisDenylist(f"redis://127.0.0.1:{free_port()}/0", fail_open=True, timeout=0.3)
    verifier = idp.verifier(denylist=denylist)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        assert await verifier.averify(idp.mint())
        assert verifier.verify(idp.mint())
    assert sum("fail_open" in r.getMessage() for r in caplog.records) == 2
    await denylist.aclose()


@pytest.mark.parametrize("bad", ["http://x", 5, None])
def test_redis_configuration_errors(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        RedisDenylist(bad)


def test_verifier_unaffected_without_denylist(issuer: LocalIssuer) -> None:
    verifier: Verifier = issuer.verifier()
    assert verifier.denylist is None
    assert verifier.verify(issuer.mint(jti=None))


def test_revoke_kills_cached_tokens_in_memory_path(tmp_path: Path, issuer: LocalIssuer) -> None:
    denylist = MemoryDenylist()
    verifier = issuer.verifier(denylist=denylist)
    token = issuer.mint()
    principal = verifier.verify(token)
    verifier.revoke(principal)
    with pytest.raises(TokenRevoked):
        verifier.verify(token)


async def test_later_subject_revocation_with_earlier_cutoff_does_not_weaken(
    redis_url: str, prefix: str
) -> None:
    idp = real_clock_issuer()
    denylist = RedisDenylist(redis_url, prefix=prefix)
    verifier = idp.verifier(denylist=denylist)
    now = int(time.time())
    token = idp.mint(sub="eve", iat=now - 5)
    verifier.revoke_subject("eve", issued_before=now)
    await verifier.arevoke_subject("eve", issued_before=now - 3600, ttl=10)
    with pytest.raises(TokenRevoked):
        verifier.verify(token)
    import redis

    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys(prefix + "*")
    assert client.ttl(key) == -1  # kept for ever (no max_token_age), not shortened by ttl=10
    client.close()
    await denylist.aclose()
    denylist.close()


# -- a Redis restart under load (item 28) ------------------------------------------------------


def _load(verifier: Verifier, tokens: list[str], loop: asyncio.AbstractEventLoop | None) -> int:
    """How many of ``len(tokens)`` concurrent checks failed with 503: on ``loop`` through the
    async driver, or in as many threads through the sync driver."""
    if loop is not None:

        async def one(token: str) -> int:
            try:
                await verifier.averify(token)
            except DenylistUnavailable:
                return 1
            return 0

        async def all_of() -> int:
            return sum(await asyncio.gather(*(one(t) for t in tokens)))

        return loop.run_until_complete(all_of())
    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        outcomes = pool.map(lambda t: _sync_outcome(verifier, t), tokens)
        return sum(isinstance(r, DenylistUnavailable) for r in outcomes)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_restart_under_load_gives_no_late_503(tmp_path: Path, mode: str) -> None:
    """Pooled connections die with a restart; each used to fail once as traffic rose again
    (2, then 5 extra 503s). A dead connection's idempotent read is retried once on a fresh
    one. The load is bounded: at most 40 concurrent checks."""
    server = RedisProcess(tmp_path)
    server.start()
    # One loop for the whole test, as a server has: its pool outlives the restart.
    loop = asyncio.new_event_loop() if mode == "async" else None
    idp = real_clock_issuer()
    # A timeout no loaded machine reaches: a late 503 here is a dead connection, never a
    # slow one (the default 0.5 s was reached under load).
    denylist = RedisDenylist(server.url, timeout=30)
    verifier = idp.verifier(denylist=denylist)
    tokens = [idp.mint(ttl=600) for _ in range(40)]
    try:
        assert _load(verifier, tokens[:20], loop) == 0  # the pool holds ~20 connections
        server.restart()
        failures = [_load(verifier, tokens[:n], loop) for n in (1, 2, 5, 10, 20, 40)]
        assert failures == [0] * 6
        server.restart()
        if loop is not None:  # writes are idempotent too, and retried the same way
            loop.run_until_complete(verifier.arevoke(tokens[0]))
        else:
            verifier.revoke(tokens[0])
        with pytest.raises(TokenRevoked):
            verifier.verify(tokens[0])
    finally:
        if loop is not None:
            loop.run_until_complete(denylist.aclose())
            loop.close()
        denylist.close()
        server.stop()


# -- fork safety -------------------------------------------------------------------------------


def test_memory_denylist_after_fork_while_its_lock_is_held(issuer: LocalIssuer) -> None:
    """A thread was revoking (holding the lock) at the moment of the fork: the child's copy of
    the lock stays held for ever unless it is renewed after the fork. (The forking thread holds
    it here: tests fork with no other thread running, see tests/forking.py.)"""
    denylist = MemoryDenylist()
    verifier = issuer.verifier(denylist=denylist)
    token = issuer.mint()

    def child() -> bool:
        verifier.revoke(token)
        try:
            verifier.verify(token)
        except TokenRevoked:
            return True
        return False

    assert in_child(child, holding=denylist._lock)
    assert verifier.verify(token)  # the child's revocation is the child's (one process)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_denylist_after_fork(redis_url: str, prefix: str, mode: str) -> None:
    """Parent and child check at the same time after a fork: each on its own connection,
    each reading its own answers (a shared pooled socket would interleave replies)."""
    idp = real_clock_issuer()
    denylist = RedisDenylist(redis_url, prefix=prefix)
    verifier = idp.verifier(denylist=denylist, cache_size=0)
    revoked, live = idp.mint(ttl=600), idp.mint(ttl=600)
    verifier.revoke(revoked)
    parent_loop = asyncio.new_event_loop() if mode == "async" else None

    def rounds(loop: asyncio.AbstractEventLoop | None) -> bool:
        for _ in range(200):
            try:
                if loop is not None:
                    loop.run_until_complete(verifier.averify(revoked))
                else:
                    verifier.verify(revoked)
            except TokenRevoked:
                pass
            else:
                return False
            if loop is not None:
                loop.run_until_complete(verifier.averify(live))
            else:
                verifier.verify(live)
        return True

    def child() -> bool:
        # The child runs its own loop (the parent's shares its epoll descriptor).
        loop = asyncio.new_event_loop() if mode == "async" else None
        return rounds(loop)

    try:
        assert rounds(parent_loop)  # the parent's pool now holds a connection
        outcome: list[bool] = []
        child_ok = in_child(child, meanwhile=lambda: outcome.append(rounds(parent_loop)))
        assert child_ok and outcome == [True]
    finally:
        if parent_loop is not None:
            parent_loop.run_until_complete(denylist.aclose())
            parent_loop.close()
        denylist.close()


# -- shutdown (item 14) --------------------------------------------------------------------------


def _connected_clients(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("clients")["connected_clients"]) - 1  # not counting this one
    finally:
        client.close()


def test_lifespan_shutdown_closes_the_denylist_and_refreshes(
    redis_url: str, prefix: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A real uvicorn lifespan shutdown: the denylist's async client is closed (Redis sees
    the connection go) and a key refresh still in flight is cancelled, not destroyed."""
    idp = LocalIssuer(algorithm="ES256", clock=clock)
    before = _connected_clients(redis_url)
    with JWKSServer(lambda: idp.jwks) as jwks:
        source = JWKSKeys(jwks.url, clock=clock, default_ttl=600)
        denylist = RedisDenylist(redis_url, prefix=prefix)
        app = starlette_app(idp.verifier(keys=source, denylist=denylist))
        with caplog.at_level(logging.WARNING), run_uvicorn(app) as base:
            headers = {"Authorization": f"Bearer {idp.mint()}"}
            assert httpx.get(base + "/me", headers=headers).status_code == 200
            assert _connected_clients(redis_url) > before
            jwks.delay = 5  # the next fetch hangs past the shutdown
            clock.advance(590)  # past 80 % of the TTL: a background refresh starts
            headers = {"Authorization": f"Bearer {idp.mint()}"}
            assert httpx.get(base + "/me", headers=headers).status_code == 200
        gc.collect()
    assert _connected_clients(redis_url) == before
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "destroyed" in m or "pending" in m], messages


def test_close_closes_the_sync_denylist_client(redis_url: str, prefix: str) -> None:
    idp = real_clock_issuer()
    before = _connected_clients(redis_url)
    verifier = idp.verifier(denylist=RedisDenylist(redis_url, prefix=prefix))
    assert verifier.verify(idp.mint())
    assert _connected_clients(redis_url) == before + 1
    verifier.close()
    assert _connected_clients(redis_url) == before


# -- a client object handed in (item 2) -----------------------------------------------------------


def test_sync_client_object_against_a_silent_redis_is_bounded() -> None:
    """A redis.Redis client with a bound of its own far longer than the denylist's (redis-py's
    defaults, 5 s timeouts and 10 retries with backoff, held a check for about a minute against
    a server that accepts and never answers; here a 30 s socket timeout) now answers 503 within
    the denylist's timeout, like a URL; the outer 10 s is only a liveness guard, not a speed
    assertion. No retries: the calls the deadline abandoned end when it shuts their connection
    down, so the test leaves no thread behind (redis-py's retries would go on for a minute)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    idp = real_clock_issuer()
    with _silent_listener() as port:
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=30, retry=Retry(NoBackoff(), 0)
        )
        verifier = idp.verifier(denylist=RedisDenylist(client, timeout=0.3), cache_size=0)
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(_sync_outcome, verifier, idp.mint()) for _ in range(4)]
                outcomes = [f.result(timeout=10) for f in futures]
            assert all(isinstance(o, DenylistUnavailable) for o in outcomes)
            with pytest.raises(DenylistUnavailable):
                verifier.revoke(idp.mint())  # writes too
        finally:
            client.close()


def test_sync_client_without_socket_timeout_is_refused() -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_timeout=None)
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisDenylist(client)
    client.close()


def test_sync_client_object_works(redis_url: str, prefix: str) -> None:
    import redis

    idp = real_clock_issuer()
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    verifier = idp.verifier(denylist=RedisDenylist(client, prefix=prefix))
    token = idp.mint()
    assert verifier.verify(token)
    verifier.revoke(token)
    with pytest.raises(TokenRevoked):
        verifier.verify(token)
    verifier.close()  # a client handed in is the caller's: it stays usable
    assert client.ping()
    client.close()


async def test_async_client_object_against_a_silent_redis_is_bounded() -> None:
    """The async twin: a redis.asyncio client handed in, no socket timeout of its own, is
    bounded by the denylist's timeout (the outer 10 s is a liveness guard only)."""
    import redis.asyncio as aredis

    idp = real_clock_issuer()
    with _silent_listener() as port:
        client = aredis.Redis(host="127.0.0.1", port=port, socket_timeout=None)
        verifier = idp.verifier(denylist=RedisDenylist(client, timeout=0.3), cache_size=0)
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(
                    *(verifier.averify(idp.mint()) for _ in range(4)), return_exceptions=True
                ),
                10,
            )
            assert all(isinstance(o, DenylistUnavailable) for o in outcomes)
            with pytest.raises(DenylistUnavailable):
                await asyncio.wait_for(verifier.arevoke(idp.mint()), 10)
        finally:
            await client.aclose()
