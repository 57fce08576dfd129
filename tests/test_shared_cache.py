"""The cache shared by workers and instances (``RedisCache``, issue 27 item 6): JWKS documents
and introspection answers.

A real redis-server and a real JWKS server on loopback. Two key sources on one Redis are two
workers (or pods): the second takes the first's fetch from Redis instead of the network, a
refresh is made once for both, a worker that starts while the provider is down starts warm,
and whatever goes wrong with Redis (down, restarted, garbage or a forged entry in it) leaves
each worker as it would be without the shared cache. Both drivers, a URL and a client object,
and after a fork.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aredis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from jwt_guard import (
    ConfigurationError,
    Introspection,
    InvalidToken,
    JWKSKeys,
    KeySourceUnavailable,
    Metrics,
    OIDCDiscovery,
    RedisCache,
    TenantKeys,
    TokenInactive,
    Verifier,
    providers,
)
from jwt_guard._core.introspection import token_key
from jwt_guard._core.jwks_policy import REFRESH_AHEAD
from jwt_guard._sources.config import options_from_env
from jwt_guard._sources.redis_cache import _MAX_FORGED_NAMES
from jwt_guard.testing import JWKSServer, LocalIssuer

from .conftest import Drive, FakeClock, bearer, fetches_over
from .forking import in_child
from .redis_server import RedisProcess, free_port
from .servers import IntrospectionServer
from .test_fork import ROOT, WORKERS, _wait_until_serving

FORMS = ["url", "client"]
#: Every RedisCache needs one (review R27-8) but those of the tests of a store written by
#: others, which say trust_redis_writers=True.
INTEGRITY_KEY = "test-integrity-key-" + "k" * 32


@pytest.fixture(scope="module")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path_factory.mktemp("redis"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"t{abs(hash(request.node.nodeid))}:"


class Caches:
    """The RedisCaches of one test (one per worker), made for the test's driver and form, and
    closed at its end."""

    def __init__(self, url: str, prefix: str, driver: str, form: str) -> None:
        self.url, self.prefix, self.driver, self.form = url, prefix, driver, form
        self.made: list[RedisCache] = []
        self.clients: list[Any] = []

    def __call__(self, **options: Any) -> RedisCache:
        target: Any = self.url
        if self.form == "client":
            if self.driver == "async":
                target = aredis.Redis.from_url(self.url, socket_timeout=0.5)
            else:
                target = redis.Redis.from_url(
                    self.url, socket_timeout=0.5, socket_connect_timeout=0.5
                )
            self.clients.append(target)
        if not options.get("trust_redis_writers"):
            options.setdefault("integrity_key", INTEGRITY_KEY)
        cache = RedisCache(target, prefix=self.prefix, **options)
        self.made.append(cache)
        return cache

    async def close(self) -> None:
        for cache in self.made:
            if self.driver == "async":
                await cache.aclose()
            cache.close()
        for client in self.clients:
            if isinstance(client, aredis.Redis):
                await client.aclose()
            else:
                client.close()


@pytest.fixture(params=FORMS)
async def caches(
    request: pytest.FixtureRequest, redis_process: RedisProcess, prefix: str, drive: Drive
) -> Any:
    made = Caches(redis_process.url, prefix, drive.mode, request.param)
    yield made
    await made.close()


@pytest.fixture
def idp(clock: FakeClock) -> LocalIssuer:
    return LocalIssuer(algorithm="ES256", clock=clock)


@pytest.fixture
def server(idp: LocalIssuer) -> Iterator[JWKSServer]:
    with JWKSServer(lambda: idp.jwks) as served:
        yield served


def worker(
    idp: LocalIssuer, url: str, cache: RedisCache | None, clock: FakeClock, **options: Any
) -> tuple[Verifier, JWKSKeys]:
    """One worker: its own key source (its own memory cache) on the shared cache."""
    source = JWKSKeys(url, shared_cache=cache, clock=clock, **options)
    return idp.verifier(keys=source, cache_size=0), source


async def settle(drive: Drive, *sources: JWKSKeys) -> None:
    for source in sources:
        await fetches_over(source)


def raw_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2)


# -- one fetch for the cluster ---------------------------------------------------------------


async def test_a_second_worker_takes_the_first_workers_fetch_from_redis(
    idp: LocalIssuer, server: JWKSServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    one, first = worker(idp, server.url, caches(), clock)
    two, second = worker(idp, server.url, caches(), clock)
    token = idp.mint()
    assert (await drive.verify(one, token)).subject
    assert server.count == 1
    assert (await drive.verify(two, token)).subject
    assert server.count == 1  # the second worker asked Redis, not the provider
    assert (first.stats.fetches, first.stats.shared_hits) == (1, 0)
    assert (second.stats.fetches, second.stats.shared_hits) == (0, 1)
    # A prefetch (an ASGI lifespan start-up) of a worker holding the shared copy asks no one.
    second.prefetch() if drive.mode == "sync" else await second.aprefetch()
    assert server.count == 1


async def test_workers_starting_together_make_one_request(
    idp: LocalIssuer, server: JWKSServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    """Eight new workers at once, the provider taking 0.2 s: one takes the lock and fetches,
    the others wait for its copy (one that read Redis before the copy was there and took the
    lock after it was released reads Redis again before fetching)."""
    server.delay = 0.2
    workers = [worker(idp, server.url, caches(timeout=5), clock) for _ in range(8)]
    token = idp.mint()
    if drive.mode == "sync":
        with ThreadPoolExecutor(8) as pool:
            principals = list(pool.map(lambda w: w[0].verify(token), workers))
    else:
        principals = await asyncio.gather(*(w[0].averify(token) for w in workers))
    assert all(p.subject for p in principals)
    assert server.count == 1
    assert sum(source.stats.shared_hits for _, source in workers) == 7


async def test_a_worker_that_takes_the_lock_after_another_fetched_reads_redis_again(
    idp: LocalIssuer,
    server: JWKSServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race of workers starting together: the second reads Redis (nothing yet), the first
    fetches, stores and releases the lock, then the second takes it: it must read Redis again
    rather than fetch a second time."""
    one, _ = worker(idp, server.url, caches(), clock)
    late = caches()
    two, second = worker(idp, server.url, late, clock)
    token = idp.mint()
    lock, alock = late.lock, late.alock

    def lock_after_the_first(key: str, ttl: float) -> str | None:
        one.verify(token)
        return lock(key, ttl)

    async def alock_after_the_first(key: str, ttl: float) -> str | None:
        await one.averify(token)
        return await alock(key, ttl)

    monkeypatch.setattr(late, "lock", lock_after_the_first)
    monkeypatch.setattr(late, "alock", alock_after_the_first)
    assert (await drive.verify(two, token)).subject
    assert server.count == 1 and second.stats.shared_hits == 1


async def test_a_refresh_is_made_once_for_the_cluster(
    idp: LocalIssuer, server: JWKSServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    one, first = worker(idp, server.url, caches(), clock, default_ttl=600)
    two, second = worker(idp, server.url, caches(), clock, default_ttl=600)
    token = idp.mint(ttl=3600)
    await drive.verify(one, token)
    await drive.verify(two, token)
    assert server.count == 1
    clock.advance(600 * REFRESH_AHEAD + 1)  # both are due for a refresh ahead
    await drive.verify(one, token)
    await settle(drive, first)
    assert server.count == 2
    await drive.verify(two, token)
    await settle(drive, second)
    assert server.count == 2  # the second took the first one's refresh
    assert second.stats.shared_hits == 2
    # Its refresh point is the shared fetch's: no refresh until that one is due again.
    assert second._state.fetched_at == first._state.fetched_at


async def test_while_another_worker_fetches_a_warm_worker_keeps_its_set(
    idp: LocalIssuer,
    server: JWKSServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
) -> None:
    one, source = worker(idp, server.url, caches(), clock)
    token = idp.mint(ttl=3600)
    await drive.verify(one, token)
    clock.advance(600)  # due
    lock = caches.prefix + source._shared_key + ":lock"
    with raw_client(redis_process.url) as client:
        client.set(lock, "another worker", px=60_000)
        await drive.verify(one, token)
        await settle(drive, source)
        assert server.count == 1  # it did not fetch: another worker holds the lock
        # An unknown kid meanwhile may be in the set being fetched: 503, come back, not 401.
        idp.rotate()
        with pytest.raises(KeySourceUnavailable) as info:
            await drive.verify(one, idp.mint())
        assert info.value.retry_after == 1
        client.delete(lock)
    clock.advance(2)
    assert (await drive.verify(one, idp.mint())).subject  # the lock is gone: it fetches
    assert server.count == 2


async def test_a_cold_worker_waits_briefly_for_another_workers_fetch_then_fetches(
    idp: LocalIssuer,
    server: JWKSServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
) -> None:
    one, source = worker(idp, server.url, caches(), clock, timeout=0.4)
    lock = caches.prefix + source._shared_key + ":lock"
    with raw_client(redis_process.url) as client:
        client.set(lock, "a worker that died", px=60_000)
        assert (await drive.verify(one, idp.mint())).subject
    assert server.count == 1


# -- a new worker starts warm while the provider is down -------------------------------------


async def test_a_new_worker_starts_warm_while_the_provider_is_down(
    idp: LocalIssuer, server: JWKSServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    one, _ = worker(idp, server.url, caches(), clock, default_ttl=600)
    token = idp.mint(ttl=86400)
    await drive.verify(one, token)
    server.status = 503
    # Fresh from Redis: no request at all.
    two, second = worker(idp, server.url, caches(), clock)
    assert (await drive.verify(two, token)).subject
    assert server.count == 1
    # Stale (past its TTL, within max_stale): the provider is tried, fails, the copy serves.
    clock.advance(3600)
    three, third = worker(idp, server.url, caches(), clock)
    assert (await drive.verify(three, token)).subject
    assert server.count == 2
    assert third.stats.failures == 1 and third.stats.shared_hits == 1
    assert second.stats.fetches == 0


async def test_discovery_documents_are_shared_too(
    idp: LocalIssuer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    with idp.serve(as_issuer=True) as served:
        one = idp.verifier(keys=OIDCDiscovery(served.base_url, shared_cache=caches(), clock=clock))
        second = OIDCDiscovery(served.base_url, shared_cache=caches(), clock=clock)
        two = idp.verifier(keys=second)
        token = idp.mint()
        await drive.verify(one, token)
        served.status = 500
        assert (await drive.verify(two, token)).subject
        assert second.stats.shared_hits == 1 and sum(served.requests.values()) == 2


# -- Redis down, restarted, holding garbage: as without the shared cache ----------------------


async def test_redis_down_is_as_without_the_shared_cache(
    idp: LocalIssuer,
    server: JWKSServer,
    clock: FakeClock,
    drive: Drive,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    cache = RedisCache(nowhere, timeout=0.2, integrity_key=INTEGRITY_KEY)
    one, _ = worker(idp, server.url, cache, clock)
    two, _ = worker(idp, server.url, cache, clock)
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        assert (await drive.verify(one, idp.mint())).subject
        assert (await drive.verify(two, idp.mint())).subject
    assert server.count == 2  # each fetched, as without a shared cache
    said = [r for r in caplog.records if "shared cache (Redis) unavailable" in r.getMessage()]
    assert len(said) == 1
    if drive.mode == "async":
        await cache.aclose()
    cache.close()


async def test_redis_restart_falls_back_then_shares_again(
    idp: LocalIssuer, server: JWKSServer, tmp_path: Path, clock: FakeClock, drive: Drive
) -> None:
    process = RedisProcess(tmp_path)
    process.start()
    cache = RedisCache(process.url, timeout=0.5, integrity_key=INTEGRITY_KEY)
    try:
        one, _ = worker(idp, server.url, cache, clock)
        await drive.verify(one, idp.mint())
        process.restart()  # the entry is gone with it (no persistence), connections are stale
        two, second = worker(idp, server.url, cache, clock)
        assert (await drive.verify(two, idp.mint())).subject
        assert server.count == 2 and second.stats.fetches == 1
        three, third = worker(idp, server.url, cache, clock)
        assert (await drive.verify(three, idp.mint())).subject
        assert server.count == 2 and third.stats.shared_hits == 1
    finally:
        if drive.mode == "async":
            await cache.aclose()
        cache.close()
        process.stop()


@pytest.mark.parametrize(
    "entry",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"fetched_at": 1, "ttl": 600}).encode(),
        json.dumps({"fetched_at": "now", "ttl": 600, "document": "{}"}).encode(),
        json.dumps({"fetched_at": 1.8e9, "ttl": 600, "document": '{"keys": []}'}).encode(),
        # A symmetric key: never trusted from a JWKS, from Redis neither.
        json.dumps(
            {
                "fetched_at": 1.8e9,
                "ttl": 600,
                "document": json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0" * 8}]}),
            }
        ).encode(),
    ],
)
async def test_garbage_in_redis_is_ignored_and_the_keys_fetched(
    idp: LocalIssuer,
    server: JWKSServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
    entry: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Trusting writers: the garbage reaches the parser (with a key its MAC is missing).
    one, source = worker(idp, server.url, caches(trust_redis_writers=True), clock)
    with raw_client(redis_process.url) as client:
        client.set(caches.prefix + source._shared_key, entry, px=60_000)
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        assert (await drive.verify(one, idp.mint())).subject
    assert server.count == 1 and source.stats.shared_hits == 0
    assert any("not a usable key set" in r.getMessage() for r in caplog.records)


async def test_keys_injected_in_redis_are_refused_with_an_integrity_key(
    idp: LocalIssuer,
    server: JWKSServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anyone who can write to the shared Redis can put keys there: without ``integrity_key``
    a worker trusts them (the README says so), with it an entry not written by an instance
    holding the key is ignored with a WARNING, the provider's keys are fetched, and the
    attacker's token is refused."""
    attacker = LocalIssuer(algorithm="ES256", clock=clock, issuer=idp.issuer, audience=idp.audience)
    name = caches.prefix + JWKSKeys(server.url)._shared_key
    entry = {"fetched_at": clock.now, "ttl": 600, "document": json.dumps(attacker.jwks)}
    with raw_client(redis_process.url) as forger:  # can write there, holds no integrity key
        forger.set(name, json.dumps(entry).encode(), px=600_000)
    naive, _ = worker(idp, server.url, caches(trust_redis_writers=True), clock)
    assert (await drive.verify(naive, attacker.mint())).subject  # the risk, stated
    secret = "k" * 32
    one, source = worker(idp, server.url, caches(integrity_key=secret), clock)
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        with pytest.raises(InvalidToken) as info:
            await drive.verify(one, attacker.mint())
    assert info.value.status_code == 401
    assert any("no valid MAC" in r.getMessage() for r in caplog.records)
    assert server.count == 1 and source.stats.shared_hits == 0
    assert (await drive.verify(one, idp.mint())).subject
    # An entry written with the key is taken by the next worker holding it.
    two, second = worker(idp, server.url, caches(integrity_key=secret), clock)
    assert (await drive.verify(two, idp.mint())).subject
    assert second.stats.shared_hits == 1 and server.count == 1


# -- after a fork ------------------------------------------------------------------------------


def test_a_forked_worker_starts_warm_from_redis_with_the_provider_down(
    idp: LocalIssuer, redis_process: RedisProcess, prefix: str, clock: FakeClock
) -> None:
    cache = RedisCache(redis_process.url, prefix=prefix, integrity_key=INTEGRITY_KEY)
    token = idp.mint()
    with JWKSServer(lambda: idp.jwks) as server:
        url = server.url
        parent, source = worker(idp, url, cache, clock)
        source.prefetch(required=True)  # in this thread: nothing left running at the fork
    # The provider is gone; the child is a new worker on the parent's (forked) RedisCache.

    def child() -> bool:
        verifier, fresh = worker(idp, url, cache, clock)
        return bool(verifier.verify(token).subject) and fresh.stats.shared_hits == 1

    assert in_child(child)
    assert parent.verify(token).subject
    cache.close()


# -- configuration -----------------------------------------------------------------------------


def test_shared_cache_and_integrity_key_are_checked_at_construction(
    redis_process: RedisProcess,
) -> None:
    with pytest.raises(ConfigurationError, match="RedisCache"):
        JWKSKeys("https://idp.example/jwks.json", shared_cache=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="32 bytes"):
        RedisCache(redis_process.url, integrity_key="short")
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisCache("http://127.0.0.1:6379")
    assert "integrity=on" in repr(RedisCache(redis_process.url, integrity_key=b"x" * 32))


@pytest.mark.parametrize("form", FORMS)
def test_r27_8_a_redis_cache_without_integrity_key_is_refused_with_the_fix(
    redis_process: RedisProcess, form: str
) -> None:
    """Review R27-8: whoever can write to the Redis (a shared instance, an SSRF to it) could
    store a key set or an introspection answer this library trusts, and so mint any token;
    the default was no integrity key, without a word. Now integrity_key= is required, and the
    message names the risk and both ways out."""
    target: Any = redis_process.url
    if form == "client":
        target = redis.Redis.from_url(target, socket_timeout=0.5, socket_connect_timeout=0.5)
    with pytest.raises(ConfigurationError) as info:
        RedisCache(target)
    message = str(info.value)
    assert "integrity_key=" in message and "forge any token" in message
    assert "trust_redis_writers=True" in message
    if form == "client":
        target.close()


def test_r27_8_trust_redis_writers_is_the_loud_opt_out(
    redis_process: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        cache = RedisCache(redis_process.url, trust_redis_writers=True)
    (record,) = [r for r in caplog.records if "trust_redis_writers" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "forge any token" in record.getMessage()
    assert "integrity_key=" in record.getMessage()  # the fix
    assert "integrity=off" in repr(cache)
    cache.close()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"integrity_key": "k" * 31}, "at least 32 bytes"),
        ({"integrity_key": b"k" * 31}, "at least 32 bytes"),
        ({"integrity_key": bytearray(32)}, "bytes or a string"),
        ({"integrity_key": 12345678901234567890123456789012}, "bytes or a string"),
        ({"integrity_key": "k" * 32, "trust_redis_writers": True}, "not both"),
        ({"integrity_key": "k" * 32, "trust_redis_writers": "yes"}, "True or False"),
    ],
)
def test_r27_8_integrity_key_strength_and_type_are_checked(
    redis_process: RedisProcess, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RedisCache(redis_process.url, **options)


def test_r27_8_integrity_key_length_is_counted_in_bytes(redis_process: RedisProcess) -> None:
    # 16 characters of two UTF-8 bytes each: 32 bytes, the HMAC-SHA256 key floor (RFC 2104 §3).
    assert "integrity=on" in repr(RedisCache(redis_process.url, integrity_key="é" * 16))


def test_redis_cache_entries_and_locks(redis_process: RedisProcess, prefix: str) -> None:
    cache = RedisCache(redis_process.url, prefix=prefix, integrity_key=INTEGRITY_KEY)
    assert cache.get("a") is None
    cache.set("a", b"value", 60)
    assert cache.get("a") == b"value"
    token = cache.lock("l", 5)
    assert token and cache.lock("l", 5) is None
    cache.unlock("l", token)
    assert cache.lock("l", 5)
    cache.close()


async def test_redis_cache_async_twin(redis_process: RedisProcess, prefix: str) -> None:
    cache = RedisCache(redis_process.url, prefix=prefix, integrity_key="i" * 32)
    await cache.aset("a", b"value", 60)
    assert await cache.aget("a") == b"value"
    token = await cache.alock("l", 5)
    assert token and await cache.alock("l", 5) is None
    await cache.aunlock("l", token)
    assert await cache.alock("l", 5)
    await cache.aclose()
    await asyncio.sleep(0)


# -- every path a key source is built on -----------------------------------------------------


def test_presets_tenants_and_from_env_take_the_shared_cache(
    redis_process: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(redis_process.url, integrity_key=INTEGRITY_KEY)
    trusted = providers.keycloak("https://sso.acme.io", "main", audience="api", shared_cache=cache)
    assert trusted.keys._shared is cache  # type: ignore[attr-defined]
    tenant = TenantKeys.discovery("https://login.example.com/{tenant}/v2.0", shared_cache=cache)
    assert tenant("acme")._shared is cache  # type: ignore[attr-defined]
    for name, value in {
        "ISSUER": "https://idp.example.com/",
        "AUDIENCE": "orders-api",
        "DISCOVERY_URL": "https://idp.example.com/",
        "SHARED_CACHE_URL": redis_process.url,
        "SHARED_CACHE_KEY": INTEGRITY_KEY,
    }.items():
        monkeypatch.setenv("JWT_GUARD_" + name, value)
    keys = options_from_env()["keys"]
    assert isinstance(keys, OIDCDiscovery) and isinstance(keys._shared, RedisCache)
    keys._shared.close()
    monkeypatch.setenv("JWT_GUARD_SHARED_CACHE_URL", "http://not-redis")
    with pytest.raises(ConfigurationError, match="JWT_GUARD_SHARED_CACHE_URL"):
        Verifier.from_env()
    cache.close()


async def test_a_shared_hit_is_counted_in_the_metrics(
    idp: LocalIssuer, server: JWKSServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    reader = InMemoryMetricReader()
    metrics = Metrics(meter_provider=MeterProvider(metric_readers=[reader]))
    one, _ = worker(idp, server.url, caches(), clock)
    await drive.verify(one, idp.mint())
    two = idp.verifier(
        keys=JWKSKeys(server.url, shared_cache=caches(), clock=clock), metrics=metrics
    )
    await drive.verify(two, idp.mint())
    points = {
        tuple(sorted(point.attributes.items())): point.value
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "jwt_guard.jwks.fetches"
        for point in metric.data.data_points
    }
    shared = (("jwt_guard.key_source", server.url), ("jwt_guard.outcome", "shared"))
    assert points == {shared: 1}


# -- real workers --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(WORKERS))
def test_gunicorn_workers_start_warm_from_redis_while_the_provider_is_down(
    kind: str, tmp_path: Path, redis_process: RedisProcess
) -> None:
    """Two real gunicorn workers (sync Flask, uvicorn FastAPI), each importing the app and
    prefetching with ``required=True`` (no ``--preload``): the provider answers 503 from the
    start, and both start and verify with the keys another instance put in Redis."""
    app_kind, app, worker_class = WORKERS[kind]
    idp = LocalIssuer(algorithm="ES256", kid="k1")
    with JWKSServer(lambda: idp.jwks, issuer=idp.issuer) as server:
        # The app's prefix (the URL names the entry) and integrity key.
        cache = RedisCache(redis_process.url, integrity_key=INTEGRITY_KEY)
        JWKSKeys(server.url, shared_cache=cache).prefetch(required=True)  # another instance
        cache.close()
        server.status = 503
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FORK_APP": app_kind,
            "FORK_JWKS_URL": server.url,
            "FORK_ISSUER": idp.issuer,
            "FORK_AUDIENCE": idp.audience,
            "FORK_SHARED_CACHE": redis_process.url,
            "FORK_SHARED_CACHE_KEY": INTEGRITY_KEY,
        }
        log = tmp_path / "gunicorn.log"
        argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class"]
        argv += [worker_class, "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_serving(base, proc, log)
            pids: set[int] = set()

            def call(token: str) -> tuple[int, int]:
                # A connection each: the requests spread over both workers.
                answer = httpx.get(base + "/me", headers=bearer(token), timeout=30)
                return answer.status_code, answer.json().get("pid")

            with ThreadPoolExecutor(8) as pool:
                for _ in range(5):
                    answers = list(pool.map(call, [idp.mint() for _ in range(16)]))
                    assert {status for status, _ in answers} == {200}, log.read_text()
                    pids |= {pid for _, pid in answers}
                    if len(pids) == 2:
                        break
        finally:
            proc.terminate()
            proc.wait(20)
        assert server.count == 1, log.read_text()  # only the other instance's fetch
        assert len(pids) == 2  # both workers answered


def test_forged_entries_are_warned_about_once_each_in_bounded_memory(
    redis_process: RedisProcess, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The names looked up follow the tokens presented (introspection): the record of the
    forged ones warned about is bounded."""
    cache = RedisCache(redis_process.url, prefix=prefix, integrity_key="k" * 32)
    with raw_client(redis_process.url) as client:
        client.set(prefix + "forged", b"no mac here", px=60_000)
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        assert cache.get("forged") is None and cache.get("forged") is None
    assert sum("no valid MAC" in r.getMessage() for r in caplog.records) == 1
    for n in range(_MAX_FORGED_NAMES + 10):
        cache._open(f"name-{n}", b"m1:" + b"\0" * 40)
    assert len(cache._forged) <= _MAX_FORGED_NAMES


# -- introspection answers ---------------------------------------------------------------------

OPAQUE = "2YotnFZFEjr1zCsicMWpAA"  # RFC 6749 §1.4's example of an access token
AS_ISSUER = "https://as.example"


@pytest.fixture
def introspection() -> Iterator[IntrospectionServer]:
    with IntrospectionServer() as endpoint:
        yield endpoint


def answer(clock: FakeClock, **claims: Any) -> dict[str, Any]:
    """An RFC 7662 §2.2 response for an active token."""
    response = {
        "active": True, "iss": AS_ISSUER, "sub": "alice", "aud": "api", "scope": "notes:read",
        "token_type": "Bearer", "iat": int(clock()) - 10, "exp": int(clock()) + 3600,
    }  # fmt: skip
    return {**response, **claims}


def introspecting(url: str, cache: RedisCache | None, clock: FakeClock) -> Verifier:
    """One worker's verifier, introspecting at ``url`` with its own memory cache."""
    endpoint = Introspection(
        url, client_id="rs", client_secret="s3cret", shared_cache=cache, clock=clock
    )
    return Verifier(introspection=endpoint, issuer=AS_ISSUER, audience="api", clock=clock)


async def test_a_token_is_introspected_once_for_every_worker(
    introspection: IntrospectionServer, caches: Caches, clock: FakeClock, drive: Drive
) -> None:
    introspection.tokens[OPAQUE] = answer(clock)
    one = introspecting(introspection.url, caches(), clock)
    two = introspecting(introspection.url, caches(), clock)
    assert (await drive.verify(one, OPAQUE)).subject == "alice"
    assert (await drive.verify(two, OPAQUE)).subject == "alice"
    assert introspection.count == 1
    # Negative answers too (for their short TTL).
    with pytest.raises(TokenInactive):
        await drive.verify(one, "unknown-token")
    with pytest.raises(TokenInactive):
        await drive.verify(two, "unknown-token")
    assert introspection.count == 2


async def test_a_shared_answer_never_outlives_the_tokens_exp(
    introspection: IntrospectionServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
) -> None:
    introspection.tokens[OPAQUE] = answer(clock, exp=int(clock()) + 20)
    one = introspecting(introspection.url, caches(), clock)
    await drive.verify(one, OPAQUE)
    with raw_client(redis_process.url) as client:
        (name,) = client.keys(caches.prefix + "*")
        assert OPAQUE.encode() not in name  # keyed by a hash of the token
        assert 0 < client.pttl(name) <= 20_000  # Redis drops it at exp, not later
    clock.advance(21)  # past exp: a worker that reads the entry (another clock) asks again
    introspection.tokens[OPAQUE] = {"active": False}
    two = introspecting(introspection.url, caches(), clock)
    with pytest.raises(TokenInactive):
        await drive.verify(two, OPAQUE)
    assert introspection.count == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b'{"until": 1, "response": []}',
        # NaN passes any "until <= now" check: it would have kept a forged answer for ever.
        b'{"until": NaN, "response": {"active": true, "sub": "mallory"}}',
    ],
)
async def test_garbage_in_the_shared_introspection_cache_is_a_miss(
    garbage: bytes,
    introspection: IntrospectionServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    introspection.tokens[OPAQUE] = answer(clock)
    one = introspecting(introspection.url, caches(), clock)
    await drive.verify(one, OPAQUE)
    with raw_client(redis_process.url) as client:
        (name,) = client.keys(caches.prefix + "*")
        client.set(name, garbage, px=60_000)
    # Trusting writers: the garbage reaches the parser (with a key its MAC is missing).
    two = introspecting(introspection.url, caches(trust_redis_writers=True), clock)
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        assert (await drive.verify(two, OPAQUE)).subject == "alice"  # not a 503
    assert introspection.count == 2
    assert any("unreadable" in r.getMessage() for r in caplog.records)


async def test_an_active_answer_forged_in_redis_is_ignored_with_an_integrity_key(
    introspection: IntrospectionServer,
    caches: Caches,
    clock: FakeClock,
    drive: Drive,
    redis_process: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anyone who can write to the shared Redis can make any string an active token (the
    entry's name is a hash of a token they choose): with ``integrity_key`` such an entry is
    ignored with a WARNING and the endpoint is asked."""
    forged = "made-up-token"
    probe = Introspection(introspection.url, client_id="rs", client_secret="s3cret")
    name = caches.prefix + probe._shared_prefix + token_key(forged.encode()).hex()
    entry = {"until": clock.now + 600, "response": answer(clock, sub="admin")}
    with raw_client(redis_process.url) as client:
        client.set(name, json.dumps(entry).encode(), px=600_000)
    naive = introspecting(introspection.url, caches(trust_redis_writers=True), clock)
    assert (await drive.verify(naive, forged)).subject == "admin"  # the risk, stated
    guarded = introspecting(introspection.url, caches(integrity_key="k" * 32), clock)
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        with pytest.raises(TokenInactive):
            await drive.verify(guarded, forged)
    assert introspection.count == 1
    assert any("no valid MAC" in r.getMessage() for r in caplog.records)


async def test_redis_down_introspects_as_without_the_shared_cache(
    introspection: IntrospectionServer, clock: FakeClock, drive: Drive
) -> None:
    introspection.tokens[OPAQUE] = answer(clock)
    cache = RedisCache(
        f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, integrity_key=INTEGRITY_KEY
    )
    one = introspecting(introspection.url, cache, clock)
    two = introspecting(introspection.url, cache, clock)
    assert (await drive.verify(one, OPAQUE)).subject == "alice"
    assert (await drive.verify(two, OPAQUE)).subject == "alice"
    assert introspection.count == 2
    if drive.mode == "async":
        await cache.aclose()
    cache.close()


def test_a_forked_worker_takes_introspection_answers_from_redis(
    redis_process: RedisProcess, prefix: str, clock: FakeClock
) -> None:
    cache = RedisCache(redis_process.url, prefix=prefix, integrity_key=INTEGRITY_KEY)
    with IntrospectionServer() as server:
        server.tokens[OPAQUE] = answer(clock)
        url = server.url
        parent = introspecting(url, cache, clock)
        assert parent.verify(OPAQUE).subject == "alice"
    # The endpoint is gone; the child is a new worker on the parent's (forked) RedisCache.

    def child() -> bool:
        return introspecting(url, cache, clock).verify(OPAQUE).subject == "alice"

    assert in_child(child)
    cache.close()
