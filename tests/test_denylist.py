"""Revocation against a real redis-server (and in memory)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwt_guard import (
    ClaimMissing,
    ConfigurationError,
    DenylistUnavailable,
    JWTGuardError,
    MemoryDenylist,
    Principal,
    RedisDenylist,
    TokenRevoked,
    Verifier,
)
from jwt_guard.testing import LocalIssuer, forge

from .apps import starlette_app
from .conftest import FakeClock
from .redis_server import free_port, redis_server


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
    clock.advance(60 + 31)  # past exp + leeway: the entry has expired by itself
    denylist.add_token("x", "y", clock.now + 10)  # writing purges nothing yet (not full)
    assert denylist._lookup(next(iter(denylist._entries)), clock.now) is None


def test_memory_denylist_is_bounded(clock: FakeClock) -> None:
    denylist = MemoryDenylist(max_entries=2, clock=clock)
    denylist.add_token("i", "a", clock.now + 10)
    denylist.add_token("i", "b", clock.now + 100)
    with pytest.raises(DenylistUnavailable):
        denylist.add_token("i", "c", clock.now + 100)
    clock.advance(11)  # "a" expired: room again
    denylist.add_token("i", "c", clock.now + 100)
    assert len(denylist) == 2


def test_tokens_without_jti_rejected_when_denylist_configured(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist())
    with pytest.raises(ClaimMissing):
        verifier.verify(issuer.mint(jti=None))
    relaxed = issuer.verifier(denylist=MemoryDenylist(), allow_tokens_without_jti=True)
    assert relaxed.verify(issuer.mint(jti=None))


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

        def check(self, principal: Principal, leeway: float) -> None:
            type(self).checks += 1
            super().check(principal, leeway)

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
    assert 100 <= ttl <= 106
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


def _silent_listener() -> tuple[socket.socket, int]:
    """A TCP listener that accepts and never answers: a hung Redis."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", ["refused", "hung"])
async def test_redis_down_fails_closed_with_503(mode: str) -> None:
    idp = real_clock_issuer()
    listener = None
    if mode == "refused":
        url = f"redis://127.0.0.1:{free_port()}/0"
    else:
        listener, port = _silent_listener()
        url = f"redis://127.0.0.1:{port}/0"
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
    if listener is not None:
        listener.close()


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
    assert client.ttl(key) > 86400  # the longer lifetime is kept too
    client.close()
    await denylist.aclose()
    denylist.close()
