# ruff: noqa: F811 - the fixtures of tests/test_introspection.py, imported
"""Opaque tokens when things fail: the shared store inside the call's deadline (review R27-2),
the endpoint's failure backoff (R27-4), the cap on calls in flight (review R27, noticed).

Every test runs on both drivers (``run``) and on an Introspection with its own client or one
handed in (``make_endpoint``), against the real endpoint of ``tests/test_introspection.py``;
the adapters' answers on ASGI and WSGI (``make_client``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from jwt_guard import (
    ConfigurationError,
    Introspection,
    IntrospectionUnavailable,
    JWKSKeys,
    RedisCache,
    TokenInactive,
    Verifier,
)
from jwt_guard._sources.introspection import BACKOFF_MAX, MAX_RETRY_AFTER
from jwt_guard.testing import JWKSServer, LocalIssuer

from .conftest import AppFactory, FakeClock, bearer
from .servers import IntrospectionServer
from .test_denylist import _silent_listener
from .test_introspection import (  # noqa: F401 - fixtures
    AUDIENCE,
    ISSUER,
    OPAQUE,
    TIMEOUT,
    Run,
    active,
    make_endpoint,
    run,
    server,
    start_introspection_fault,
    verifier_for,
)

#: The shared store's integrity key (RedisCache requires one).
KEY = "k" * 32
#: A liveness guard of the hang tests, far beyond every deadline in them: never a speed check.
HANG = 20.0


# -- R27-2: the shared store runs inside the call's deadline --------------------------------------


class HungStore:
    """A shared store that never answers (a Redis behind a black-holed route, a custom store
    without timeouts): its reads, or only its writes (``reads=False``)."""

    def __init__(self, *, reads: bool = True) -> None:
        self.reads = reads
        self.release = threading.Event()
        self.items: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        if self.reads:
            self.release.wait(HANG)
        return self.items.get(key)

    async def aget(self, key: str) -> bytes | None:
        if self.reads:
            await asyncio.sleep(HANG)
        return self.items.get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.release.wait(HANG)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        await asyncio.sleep(HANG)


async def test_r27_2_a_hung_shared_store_is_a_miss_within_the_deadline(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # The store's get ran before (outside) the call's deadline: nothing bounded it. Now it has
    # the first half of the deadline, then it is a miss and the endpoint is asked.
    server.tokens[OPAQUE] = active(clock)
    store = HungStore()
    verifier = verifier_for(make_endpoint(server.url, shared_cache=store, timeout=1), clock)
    try:
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            principal = await asyncio.wait_for(run(verifier, OPAQUE), HANG)
        assert principal.subject == "alice"
        assert server.count == 1
        assert "no answer within" in caplog.text and "taken as a miss" in caplog.text
        # Known slow: the next miss does not wait for the store again (nor warn again).
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            with pytest.raises(TokenInactive):
                await asyncio.wait_for(run(verifier, "second"), HANG)
        assert "taken as a miss" not in caplog.text
    finally:
        store.release.set()


async def test_r27_2_a_hung_shared_store_write_never_delays_the_answer_past_the_deadline(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock)
    store = HungStore(reads=False)
    verifier = verifier_for(make_endpoint(server.url, shared_cache=store, timeout=1), clock)
    try:
        principal = await asyncio.wait_for(run(verifier, OPAQUE), HANG)
        assert principal.subject == "alice"
    finally:
        store.release.set()


async def test_r27_2_a_redis_that_never_answers_is_a_miss_within_the_deadline(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # A real store: RedisCache on a listener that accepts and never answers, its own timeout
    # (30 s) far past the call's deadline (1 s).
    server.tokens[OPAQUE] = active(clock)
    with _silent_listener() as port:
        store = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=30, integrity_key=KEY)
        endpoint = make_endpoint(server.url, shared_cache=store, timeout=1)
        verifier = verifier_for(endpoint, clock)
        principal = await asyncio.wait_for(run(verifier, OPAQUE), HANG)
        assert principal.subject == "alice"
        await endpoint.aclose()
        store.close()
        await store.aclose()


async def test_r27_2_jwks_with_a_redis_that_never_answers_still_fetches_within_the_deadline(
    run: Run, clock: FakeClock
) -> None:
    # The key sets' shared cache on the same hung Redis: the store's read must not use up the
    # fetch's deadline, or a cold worker answers 503 for as long as Redis hangs.
    issuer = LocalIssuer(algorithm="ES256", clock=clock, kid="k1")
    with JWKSServer(lambda: issuer.jwks) as jwks, _silent_listener() as port:
        store = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=30, integrity_key=KEY)
        keys = JWKSKeys(jwks.url, shared_cache=store, timeout=1, clock=clock)
        verifier = issuer.verifier(keys=keys, cache_size=0)
        principal = await asyncio.wait_for(run(verifier, issuer.mint()), HANG)
        assert principal.subject
        await keys.aclose()
        keys.close()


# -- R27-4: failure backoff ------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["status_500", "refused", "silence", "not_json", "too_large"])
async def test_r27_4_a_failing_endpoint_is_not_asked_again_within_the_cooldown(
    fault: str, server: IntrospectionServer, make_endpoint: Callable[..., Introspection],
    run: Run, clock: FakeClock,
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock)
    url = server.url
    start_introspection_fault(server, fault)
    verifier = verifier_for(make_endpoint(url, timeout=TIMEOUT), clock)
    with pytest.raises(IntrospectionUnavailable):
        await run(verifier, OPAQUE)
    calls = server.count
    for token in (OPAQUE, "another", "a-third"):  # any new token: the endpoint is down
        with pytest.raises(IntrospectionUnavailable) as caught:
            await run(verifier, token)
        assert server.count == calls  # refused at once, no call
    detail = caught.value.detail
    assert detail["endpoint"] == url
    assert "failure backoff" in detail["reason"]
    assert 0 < detail["cooldown_left"] <= 1  # the first failure: 0.5 to 1 s (jitter)
    assert caught.value.retry_after == 1


async def test_r27_4_the_cooldown_doubles_while_failing_and_ends_with_an_answer(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock)
    server.status = 500
    verifier = verifier_for(make_endpoint(server.url), clock)
    lefts = []
    for _ in range(6):
        with pytest.raises(IntrospectionUnavailable):
            await run(verifier, OPAQUE)
        with pytest.raises(IntrospectionUnavailable) as caught:
            await run(verifier, OPAQUE)
        lefts.append(caught.value.detail["cooldown_left"])
        clock.advance(BACKOFF_MAX)  # past any cooldown
    assert server.count == 6
    assert lefts[-1] > 1 and max(lefts) <= BACKOFF_MAX  # doubled, capped
    server.status = 200
    assert (await run(verifier, OPAQUE)).subject == "alice"
    server.status = 500  # a new outage starts again from a short cooldown
    with pytest.raises(IntrospectionUnavailable):
        await run(verifier, "another")
    with pytest.raises(IntrospectionUnavailable) as caught:
        await run(verifier, "another")
    assert caught.value.detail["cooldown_left"] <= 1


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (503, "30", 30),
        (429, "30", 30),
        (503, "86400", MAX_RETRY_AFTER),  # bounded
        (503, "Wed, 21 Oct 2015 07:28:00 GMT", 1),  # a date in the past: our own backoff
        (503, "soon", 1),  # unreadable: our own backoff
    ],
)
async def test_rfc9110_10_2_3_the_servers_retry_after_is_honoured_up_to_a_bound(
    status: int, header: str, expected: float, server: IntrospectionServer,
    make_endpoint: Callable[..., Introspection], run: Run, clock: FakeClock,
) -> None:  # fmt: skip
    server.status = status
    server.headers = {"Retry-After": header}
    verifier = verifier_for(make_endpoint(server.url), clock)
    with pytest.raises(IntrospectionUnavailable) as caught:
        await run(verifier, OPAQUE)
    assert caught.value.retry_after == expected
    clock.advance(expected - 0.5)
    with pytest.raises(IntrospectionUnavailable) as caught:
        await run(verifier, "another")
    assert server.count == 1
    assert caught.value.retry_after == 1
    clock.advance(1)
    server.status = 200
    with pytest.raises(TokenInactive):
        await run(verifier, "another")
    assert server.count == 2


@pytest.mark.parametrize("answer", ["inactive", "400", "401", "redirect"])
async def test_r27_4_a_token_a_client_chose_never_starts_a_cooldown(
    answer: str, server: IntrospectionServer, make_endpoint: Callable[..., Introspection],
    run: Run, clock: FakeClock,
) -> None:  # fmt: skip
    # active:false, or a 4xx the server gives for one token: what a client's crafted token can
    # cause must not refuse every other client's new tokens.
    server.tokens[OPAQUE] = active(clock)
    if answer != "inactive":
        server.status = {"400": 400, "401": 401, "redirect": 302}[answer]
    verifier = verifier_for(make_endpoint(server.url), clock)
    expected = TokenInactive if answer == "inactive" else IntrospectionUnavailable
    for token in ("crafted-1", "crafted-2", "crafted-3"):
        with pytest.raises(expected):
            await run(verifier, token)
    assert server.count == 3  # each asked: no cooldown
    server.status = 200
    assert (await run(verifier, OPAQUE)).subject == "alice"


async def test_r27_4_adapters_answer_503_with_the_cooldowns_retry_after(
    server: IntrospectionServer, make_client: AppFactory
) -> None:
    clock = FakeClock(time.time())
    endpoint = Introspection(server.url, client_id="rs", client_secret="x", clock=clock)
    verifier = Verifier(introspection=endpoint, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    server.status = 503
    server.headers = {"Retry-After": "7"}
    client = make_client(verifier)
    for token in ("first", "second"):
        response = await client.get("/me", headers=bearer(token))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
    assert server.count == 1
    await endpoint.aclose()


# -- a cap on calls in flight (review R27, noticed: one call per made-up token) --------------------


async def test_max_concurrent_calls_refuses_a_new_call_beyond_it_at_once(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from jwt_guard import Metrics

    from .test_metrics import collect

    reader = InMemoryMetricReader()
    metrics = Metrics(meter_provider=MeterProvider(metric_readers=[reader]))
    for token in ("one", "two", OPAQUE):
        server.tokens[token] = active(clock)
    endpoint = make_endpoint(server.url, max_concurrent_calls=2, timeout=HANG)
    verifier = verifier_for(endpoint, clock, metrics=metrics)
    with server.held():
        # Two calls in flight (sync: two request threads; async: two tasks), and two more
        # requests waiting on the first one's call: waiters are not calls.
        held = [asyncio.ensure_future(run(verifier, t)) for t in ("one", "two", "one", "one")]
        while server.count < 2:
            await asyncio.sleep(0.01)
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            with pytest.raises(IntrospectionUnavailable) as caught:
                await run(verifier, OPAQUE)
        assert server.count == 2
    assert {p.subject for p in await asyncio.gather(*held)} == {"alice"}
    assert server.count == 2
    error = caught.value
    assert error.retry_after == 1
    assert "max_concurrent_calls" in error.detail["reason"]
    assert "max_concurrent_calls" in caplog.text
    assert (await run(verifier, OPAQUE)).subject == "alice"  # room again
    skipped = collect(reader)["jwt_guard.introspection.skipped"]
    attrs = (("jwt_guard.endpoint", server.url), ("jwt_guard.reason", "max_concurrent_calls"))
    assert skipped == {attrs: 1}


def test_max_concurrent_calls_must_be_a_positive_integer() -> None:
    for value in (0, -1, 1.5, True, None):
        with pytest.raises(ConfigurationError, match="max_concurrent_calls"):
            Introspection(
                "https://as.example/i",
                client_id="rs",
                client_secret="x",
                max_concurrent_calls=value,  # type: ignore[arg-type]
            )


async def test_cooldown_refusals_are_counted(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from jwt_guard import Metrics

    from .test_metrics import collect

    reader = InMemoryMetricReader()
    metrics = Metrics(meter_provider=MeterProvider(metric_readers=[reader]))
    server.status = 500
    verifier = verifier_for(make_endpoint(server.url), clock, metrics=metrics)
    for _ in range(3):
        with pytest.raises(IntrospectionUnavailable):
            await run(verifier, OPAQUE)
    points: dict[str, Any] = collect(reader)
    attrs = (("jwt_guard.endpoint", server.url), ("jwt_guard.reason", "cooldown"))
    assert points["jwt_guard.introspection.skipped"] == {attrs: 2}
