"""Every fault of the test kit's JWKS server against both drivers, a URL and a client object.

The drivers are the only twins in the package (sync ``keys``, async ``akeys``): every bound
one of them promises is tested on the other through the ``run`` fixture, the way the adapter
suite runs ASGI and WSGI. Nothing here asserts a duration: a fault that would hang is shown
to be cut short by what the server saw (the client hung up before the drip was over) and by
the reason the source recorded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from jwt_guard import (
    ConfigurationError,
    InvalidSignature,
    KeyNotFound,
    KeySourceUnavailable,
    Verifier,
)
from jwt_guard._sources.deadline import DeadlineExceeded, acall_with_deadline, call_with_deadline
from jwt_guard._sources.jwks import JWKSKeys
from jwt_guard.testing import FAULTS, JWKSServer, LocalIssuer

from .conftest import FakeClock, fetch_over, fetches_over
from .test_jwks import free_port

#: Short enough to keep the matrix quick, long enough for a loopback fetch on a busy machine.
TIMEOUT = 0.5

#: What the source records for each fault (the reason in ``stats`` and in the log).
REASONS: dict[str, Callable[[str], bool]] = {
    "drip_headers": lambda r: r == "timed out",
    "drip_body": lambda r: r == "timed out",
    "silence": lambda r: r == "timed out",
    "garbage": lambda r: r.startswith("transport error"),
    "gzip_bomb": lambda r: r == "response too large (decoded)",
    "refused": lambda r: r.startswith("transport error"),
    "status_500": lambda r: r == "HTTP status 500",
    "redirect": lambda r: r == "HTTP status 302",
}
ALL_FAULTS = [*FAULTS, "refused", "status_500", "redirect"]
assert set(ALL_FAULTS) == set(REASONS)


@pytest.fixture
def idp(clock: FakeClock) -> LocalIssuer:
    return LocalIssuer(algorithm="ES256", clock=clock, kid="k1")


Verify = Callable[[Verifier, str], Awaitable[Any]]


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(driver: str) -> Verify:
    """Verify a token through the driver under test (sync: in a worker thread, as WSGI does)."""

    async def verify(verifier: Verifier, token: str) -> Any:
        if driver == "sync":
            return await asyncio.to_thread(verifier.verify, token)
        return await verifier.averify(token)

    return verify


@pytest.fixture(params=["url", "client"])
async def make_source(
    request: pytest.FixtureRequest, driver: str, clock: FakeClock
) -> AsyncIterator[Callable[..., JWKSKeys]]:
    """A JWKSKeys for the driver under test: on its own client, or on a client handed in."""
    sources: list[JWKSKeys] = []
    clients: list[httpx.Client | httpx.AsyncClient] = []

    def make(url: str, **options: Any) -> JWKSKeys:
        if request.param == "client":
            client = httpx.Client() if driver == "sync" else httpx.AsyncClient()
            clients.append(client)
            options["client"] = client
        options.setdefault("timeout", TIMEOUT)
        source = JWKSKeys(url, clock=clock, **options)
        sources.append(source)
        return source

    yield make
    for source in sources:
        await source.aclose()
    for client in clients:
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()
        else:
            client.close()


def start_fault(server: JWKSServer, fault: str) -> None:
    if fault in FAULTS:
        server.fault = fault
    elif fault == "status_500":
        server.status = 500
    elif fault == "redirect":
        server.status = 302
        server.headers = {"Location": server.base_url + "/other.json"}
    elif fault == "refused":
        server.stop()
    else:
        raise AssertionError(fault)


async def check_cut_short(server: JWKSServer, fault: str) -> None:
    """A dripping server saw the client hang up: nobody waited for the drip to end."""
    if fault in ("drip_headers", "drip_body"):
        # Waited for in a worker thread: the loop must run meanwhile, to close the socket of
        # the fetch it cancelled (blocking it here would keep that socket open).
        assert await asyncio.to_thread(server.wait_for_hangups, 1)


@pytest.mark.parametrize("fault", ALL_FAULTS)
async def test_fault_on_a_cold_cache_is_503(
    fault: str,
    idp: LocalIssuer,
    run: Verify,
    make_source: Callable[..., JWKSKeys],
) -> None:
    with JWKSServer(lambda: idp.jwks) as server:
        start_fault(server, fault)
        source = make_source(
            server.url if fault != "refused" else f"http://127.0.0.1:{free_port()}/jwks.json"
        )
        verifier = idp.verifier(keys=source, cache_size=0)
        with pytest.raises(KeySourceUnavailable) as info:
            await run(verifier, idp.mint())
        assert info.value.retry_after >= 1
        reason = source.stats.last_failure_reason
        assert reason is not None and REASONS[fault](reason), reason
        await check_cut_short(server, fault)
        assert server.requests.get("/other.json", 0) == 0  # redirects are never followed


@pytest.mark.parametrize("fault", ALL_FAULTS)
async def test_fault_on_a_warm_cache_serves_stale_and_unknown_kids_get_503(
    fault: str,
    idp: LocalIssuer,
    clock: FakeClock,
    run: Verify,
    make_source: Callable[..., JWKSKeys],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with JWKSServer(lambda: idp.jwks) as server:
        source = make_source(server.url)
        verifier = idp.verifier(keys=source, cache_size=0)
        assert await run(verifier, idp.mint())
        start_fault(server, fault)
        clock.advance(700)  # past the TTL: the next request refreshes in the background
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            assert await run(verifier, idp.mint())  # served stale, without waiting
            await fetches_over(source)  # its failure recorded and logged
        assert source.stats.failures == 1
        reason = source.stats.last_failure_reason
        assert reason is not None and REASONS[fault](reason), reason
        assert any(
            r.getMessage().startswith("JWKS fetch from") and getattr(r, "reason", None) == reason
            for r in caplog.records
        )
        assert await run(verifier, idp.mint())  # still served from the last good set
        # A new key's token while the provider fails: we cannot know the key does not exist,
        # so 503 and Retry-After, not 401 (issue #13, item 27).
        token = idp.mint(kid=idp.rotate("k2"))
        with pytest.raises(KeySourceUnavailable) as info:
            await run(verifier, token)
        assert info.value.retry_after >= 1
        await check_cut_short(server, fault)
        assert server.requests.get("/other.json", 0) == 0


# Item 1: one total deadline, enforced in shared code --------------------------------------


def test_call_with_deadline_stops_waiting_and_aborts() -> None:
    release = threading.Event()
    aborted: list[bool] = []

    def stuck() -> int:
        release.wait(30)
        return 1

    def abort() -> None:
        aborted.append(True)
        release.set()

    with pytest.raises(DeadlineExceeded):
        call_with_deadline(stuck, 0.05, abort=abort)
    assert aborted == [True]
    assert call_with_deadline(lambda: 7, 5) == 7
    with pytest.raises(ZeroDivisionError):
        call_with_deadline(lambda: 1 // 0, 5)


def test_call_with_deadline_leaves_no_thread_behind() -> None:
    """Its worker has ended when it returns or raises (issue 23: a thread still running is
    copied, stopped, into a forked child, and Python 3.12+ warns about forking with one); the
    worker a deadline gave up on is handed over, aborted, to be joined."""
    before = set(threading.enumerate())
    for _ in range(50):
        assert call_with_deadline(lambda: 7, 5) == 7
        with pytest.raises(ZeroDivisionError):
            call_with_deadline(lambda: 1 // 0, 5)
        assert set(threading.enumerate()) <= before
    release = threading.Event()
    with pytest.raises(DeadlineExceeded) as info:
        call_with_deadline(lambda: release.wait(30), 0.01, abort=release.set)
    worker = info.value.worker
    assert worker is not None
    worker.join(10)
    assert not worker.is_alive()


async def test_acall_with_deadline_cancels() -> None:
    with pytest.raises(DeadlineExceeded):
        await acall_with_deadline(asyncio.sleep(30), 0.05)
    assert await acall_with_deadline(asyncio.sleep(0, result=3), 5) == 3


# Item 17: a gzip bomb is capped while it is decoded ----------------------------------------


async def test_gzip_bomb_is_capped_while_decoding(
    idp: LocalIssuer, run: Verify, make_source: Callable[..., JWKSKeys]
) -> None:
    with JWKSServer(lambda: idp.jwks) as server:
        server.fault = "gzip_bomb"
        with pytest.raises(KeySourceUnavailable):  # the server builds its bomb once, here
            await run(idp.verifier(keys=make_source(server.url, timeout=10)), idp.mint())
        source = make_source(server.url, timeout=10)
        verifier = idp.verifier(keys=source, cache_size=0)
        gc.collect()
        tracemalloc.start()
        try:
            with pytest.raises(KeySourceUnavailable):
                await run(verifier, idp.mint())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert source.stats.last_failure_reason == "response too large (decoded)"
    # The 64 MiB the body decodes to are never held: at most about max_bytes (512 KiB) are.
    assert peak < 8 * 1024 * 1024, peak


# Item 3: a refresh that cannot start holds nothing ------------------------------------------


def test_refresh_thread_that_fails_to_start_holds_no_lock(
    idp: LocalIssuer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with JWKSServer(lambda: idp.jwks) as server:
        source = JWKSKeys(server.url, clock=clock, timeout=5)
        verifier = idp.verifier(keys=source, cache_size=0)
        assert verifier.verify(idp.mint())
        first = source.stats.last_success
        clock.advance(500)  # past 80 % of the TTL: the next request starts a refresh
        real_start = threading.Thread.start
        calls: list[threading.Thread] = []

        def failing_start(thread: threading.Thread) -> None:
            calls.append(thread)
            if len(calls) == 1:
                raise RuntimeError("can't start new thread")
            real_start(thread)

        monkeypatch.setattr(threading.Thread, "start", failing_start)
        assert verifier.verify(idp.mint())  # answered from the cache all the same
        assert source.stats.failures == 1
        assert (source.stats.last_failure_reason or "").startswith("cannot start")
        clock.advance(2)  # past the backoff
        assert verifier.verify(idp.mint())  # a new refresh starts: nothing was left held
        fetch_over(source)
        assert source.stats.last_success != first
        assert server.count == 2
        source.close()


# Item 19: NaN and infinity are not settings -------------------------------------------------


@pytest.mark.parametrize(
    "option",
    ["timeout", "default_ttl", "min_ttl", "max_ttl", "cooldown", "max_stale", "unknown_kid_wait"],
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_timings_refuse_nan_and_infinity(option: str, value: float) -> None:
    with pytest.raises(ConfigurationError):
        JWKSKeys("https://idp.example.com/jwks", **{option: value})


# Items 26 and 27: nobody waits long on a slow provider; an unknown kid is not a 401 while
# the key set may be out of date ------------------------------------------------------------


async def test_unknown_kid_waits_a_short_bound_and_known_kids_not_at_all(
    idp: LocalIssuer, clock: FakeClock, run: Verify, make_source: Callable[..., JWKSKeys]
) -> None:
    with JWKSServer(lambda: idp.jwks) as server:
        source = make_source(server.url, timeout=10, unknown_kid_wait=0.2)
        verifier = idp.verifier(keys=source, cache_size=0)
        assert await run(verifier, idp.mint())
        first = source.stats.last_success
        token = idp.mint(kid=idp.rotate("k2"))
        clock.advance(31)  # past the unknown-kid cooldown
        with server.held():  # the refetch is slow: in flight until the end of this block
            with pytest.raises(KeySourceUnavailable) as info:
                await run(verifier, token)  # gave up waiting: the fetch is still in flight
            assert info.value.retry_after == 1
            assert source.stats.last_success == first and source.stats.failures == 0
            # Known kids are answered while the fetch is in flight.
            for _ in range(5):
                assert await run(verifier, idp.mint(kid="k1"))
            with pytest.raises(KeySourceUnavailable):
                await run(verifier, token)  # waits on the same fetch: no second request
            assert source.stats.last_success == first
        await fetches_over(source)
        assert source.stats.last_success != first
        assert await run(verifier, token)  # the fetch brought k2
        assert server.count == 2


async def test_new_kid_during_an_outage_is_503_and_refetched_after_recovery(
    idp: LocalIssuer, clock: FakeClock, run: Verify, make_source: Callable[..., JWKSKeys]
) -> None:
    with JWKSServer(lambda: idp.jwks) as server:
        source = make_source(server.url)
        verifier = idp.verifier(keys=source, cache_size=0)
        assert await run(verifier, idp.mint())
        server.status = 500
        clock.advance(700)
        assert await run(verifier, idp.mint())  # stale; the refresh fails in the background
        await fetches_over(source)
        assert source.stats.failures == 1
        token = idp.mint(kid=idp.rotate("k2"))
        with pytest.raises(KeySourceUnavailable) as info:
            await run(verifier, token)  # not 401 key_not_found: the set may be out of date
        assert info.value.code == "jwks_unavailable" and info.value.retry_after >= 1
        assert server.count == 2  # inside the backoff: no new request
        server.status = 200  # the provider recovers
        clock.advance(2)  # past the first backoff, well inside the 30 s cooldown
        assert await run(verifier, token)  # the first unknown kid refetches at once
        assert server.count == 3
        with pytest.raises(KeyNotFound):  # a set just fetched: an unknown kid is a 401 again
            await run(verifier, idp.mint(kid="nobody"))
        assert server.count == 3


# Item 18: one kid on two key types (RFC 7517 §4.5) ------------------------------------------


async def test_rfc7517_4_5_one_kid_on_two_key_types(
    run: Verify, make_source: Callable[..., JWKSKeys], clock: FakeClock
) -> None:
    """RFC 7517 §4.5 lets "different keys ... with different kty values" share a kid: each token
    is checked against the key that fits its alg, and neither key is dropped."""
    rsa = LocalIssuer(algorithm="RS256", kid="shared", clock=clock)
    ec = LocalIssuer(algorithm="ES256", kid="shared", clock=clock)
    twin = LocalIssuer(algorithm="ES256", kid="shared", clock=clock)
    document = {"keys": [*rsa.jwks["keys"], *ec.jwks["keys"]]}
    with JWKSServer(lambda: document) as server:
        source = make_source(server.url)
        verifier = Verifier(
            keys=source,
            algorithms=["RS256", "ES256"],
            issuer=rsa.issuer,
            audience=rsa.audience,
            clock=clock,
            cache_size=0,
        )
        assert (await run(verifier, rsa.mint())).subject == "user-1"
        assert (await run(verifier, ec.mint())).subject == "user-1"
        with pytest.raises(InvalidSignature):  # the kid does not pick a key: kid and alg do
            await run(verifier, twin.mint())
        assert source.stats.key_ids == ("shared",)
        # Two keys that could both verify ES256 under one kid stay ambiguous: both refused.
        document["keys"] = [*rsa.jwks["keys"], *ec.jwks["keys"], *twin.jwks["keys"]]
        first = source.stats.last_success
        clock.advance(700)
        await run(verifier, rsa.mint())  # past the TTL: served, and refreshed in the background
        await fetches_over(source)
        assert source.stats.last_success != first
        assert (await run(verifier, rsa.mint())).subject == "user-1"
        with pytest.raises(KeyNotFound):
            await run(verifier, ec.mint())
