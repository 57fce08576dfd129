"""The remote JWKS key source, against a real HTTP server on 127.0.0.1 that counts requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from jwt_guard import (
    AlgorithmNotAllowed,
    ClaimMissing,
    ConfigurationError,
    IssuerInvalid,
    KeyNotFound,
    KeySourceUnavailable,
    StaticKeys,
    TrustedIssuer,
    Verifier,
)
from jwt_guard._sources.discovery import WELL_KNOWN, OIDCDiscovery
from jwt_guard._sources.jwks import JWKSKeys
from jwt_guard._tools.signing import encode, generate_key, public_jwk, public_pem
from jwt_guard.testing import JWKSServer, LocalIssuer, compact, forge

from .conftest import FakeClock, fetch_over, fetches_over
from .manual import manual


@pytest.fixture
def idp(clock: FakeClock) -> LocalIssuer:
    return LocalIssuer(algorithm="ES256", clock=clock, kid="k1")


@pytest.fixture
def server(idp: LocalIssuer) -> Iterator[JWKSServer]:
    with JWKSServer(lambda: idp.jwks, issuer=idp.issuer) as srv:
        yield srv


@pytest.fixture
async def source(server: JWKSServer, clock: FakeClock) -> AsyncIterator[JWKSKeys]:
    src = JWKSKeys(server.url, clock=clock, timeout=2.0)
    yield src
    await src.aclose()


def verifier_for(idp: LocalIssuer, source: Any, **kw: Any) -> Verifier:
    kw.setdefault("cache_size", 0)
    return idp.verifier(keys=source, **kw)


Drive = Callable[[Verifier, str], Awaitable[Any]]


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Drive:
    """Verify through the driver under test (sync: in a worker thread, as WSGI does)."""

    async def verify(verifier: Verifier, token: str) -> Any:
        if request.param == "sync":
            return await asyncio.to_thread(verifier.verify, token)
        return await verifier.averify(token)

    return verify


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# 1. single flight ---------------------------------------------------------------------------


async def test_single_flight_1000_concurrent_averify_make_one_request(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys
) -> None:
    server.delay = 0.2
    verifier = verifier_for(idp, source)
    token = idp.mint()
    results = await asyncio.gather(*(verifier.averify(token) for _ in range(1000)))
    assert len(results) == 1000 and all(p.subject == "user-1" for p in results)
    assert server.count == 1


def test_single_flight_32_threads_make_one_request(
    idp: LocalIssuer, server: JWKSServer, clock: FakeClock
) -> None:
    server.delay = 0.2
    # A timeout no loaded machine reaches: a waiter that gave up would answer 503.
    source = JWKSKeys(server.url, clock=clock, timeout=60)
    verifier = verifier_for(idp, source)
    token = idp.mint()
    barrier = threading.Barrier(32)
    outcomes: list[object] = []

    def worker() -> None:
        barrier.wait()
        outcomes.append(verifier.verify(token).subject)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["user-1"] * 32
    assert server.count == 1
    source.close()


# 2. TTL and refresh ahead -----------------------------------------------------------------


@pytest.mark.parametrize(
    "max_age,refresh_after",
    [(None, 480), (120, 96), (5, 48), (10**9, 86400 * 0.8)],
)
async def test_ttl_from_cache_control_clamped(
    idp: LocalIssuer,
    server: JWKSServer,
    source: JWKSKeys,
    clock: FakeClock,
    max_age: int | None,
    refresh_after: float,
) -> None:
    server.max_age = max_age
    verifier = verifier_for(idp, source)
    await verifier.averify(idp.mint(ttl=10**6))
    clock.advance(refresh_after - 1)
    await verifier.averify(idp.mint(ttl=10**6))
    assert not source._background  # no refresh started (it would be a task by now)
    assert server.count == 1
    clock.advance(1)
    await verifier.averify(idp.mint(ttl=10**6))
    await fetches_over(source)
    assert server.count == 2


async def test_refresh_ahead_does_not_make_requests_wait(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    verifier = verifier_for(idp, source)
    await verifier.averify(idp.mint())
    first_fetch = source.stats.last_success
    clock.advance(500)
    with server.held():  # the refresh stays in flight until the end of this block
        principal = await verifier.averify(idp.mint(ttl=3600))
        # Answered from the cached set while the refresh is still in flight.
        assert principal.subject == "user-1"
        assert source.stats.last_success == first_fetch
    await fetches_over(source)
    assert server.count == 2
    assert source.stats.last_success != first_fetch


def test_sync_refresh_ahead_runs_in_background(
    idp: LocalIssuer, server: JWKSServer, clock: FakeClock
) -> None:
    source = JWKSKeys(server.url, clock=clock)
    verifier = verifier_for(idp, source)
    verifier.verify(idp.mint())
    first = source.stats.last_success
    clock.advance(500)
    with server.held():  # the refresh stays in flight until the end of this block
        assert verifier.verify(idp.mint(ttl=3600))
        assert source.stats.last_success == first  # not waited for
    fetch_over(source)
    assert server.count == 2
    source.close()


# 3. unknown kid ---------------------------------------------------------------------------


async def test_unknown_kid_refetches_once_after_cooldown(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    verifier = verifier_for(idp, source)
    await verifier.averify(idp.mint())
    new_kid = idp.rotate("k2")
    token = idp.mint(kid=new_kid)
    # inside the cooldown: immediate key_not_found, no request
    clock.advance(10)
    with pytest.raises(KeyNotFound):
        await verifier.averify(token)
    assert server.count == 1
    assert source.stats.unknown_kid_misses == 1
    # after the cooldown: the first token signed with the new key passes
    clock.advance(21)
    assert (await verifier.averify(token)).subject == "user-1"
    assert server.count == 2


def test_unknown_kid_sync_path(idp: LocalIssuer, server: JWKSServer, clock: FakeClock) -> None:
    source = JWKSKeys(server.url, clock=clock)
    verifier = verifier_for(idp, source)
    verifier.verify(idp.mint())
    token = idp.mint(kid=idp.rotate("k2"))
    with pytest.raises(KeyNotFound):
        verifier.verify(token)
    clock.advance(31)
    assert verifier.verify(token)
    assert server.count == 2
    source.close()


async def test_issue25_new_kid_refused_in_cooldown_says_the_refetch_was_skipped_and_when(
    idp: LocalIssuer, server: JWKSServer, clock: FakeClock, drive: Drive
) -> None:
    """Issue 25, item 3: a new key refused inside the refetch cooldown said only
    ``key_set_kids=['k1']``, which reads as "the provider lacks the key"."""
    source = JWKSKeys(server.url, clock=clock, timeout=2.0)
    verifier = verifier_for(idp, source)

    async def verify(token: str) -> Any:
        return await drive(verifier, token)

    try:
        await verify(idp.mint())
        token = idp.mint(kid=idp.rotate("k2"))
        clock.advance(10)
        with pytest.raises(KeyNotFound) as caught:
            await verify(token)
        detail = caught.value.detail
        assert detail["key_set_kids"] == ["k1"]
        assert detail["reason"] == (
            "the kid is not in the cached key set, and the refetch was skipped: the key set was "
            "fetched 10 s ago, within the 30 s cooldown between refetches for unknown kids; the "
            "next refetch may happen in 20 s"
        )
        assert detail["next_refetch_in"] == 20
        assert server.count == 1
        clock.advance(20)
        assert (await verify(token)).subject == "user-1"
        assert server.count == 2
        # A kid the provider really lacks, just refetched: no word of a skipped refetch.
        clock.advance(31)
        with pytest.raises(KeyNotFound) as missing:
            await verify(idp.mint(kid="k3"))
        assert server.count == 3
        assert "next_refetch_in" not in missing.value.detail
        assert "skipped" not in str(missing.value.detail)
    finally:
        await source.aclose()


async def test_flood_of_random_kids_makes_at_most_one_fetch(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    verifier = verifier_for(idp, source)
    good = idp.mint(ttl=3600)
    await verifier.averify(good)
    clock.advance(31)  # cooldown passed: the flood may trigger one fetch
    claims = idp.claims()
    rejected = 0
    for i in range(10_000):
        bogus = compact({"alg": "ES256", "kid": uuid.uuid4().hex}, claims, b"\x01" * 64)
        with pytest.raises(KeyNotFound):
            await verifier.averify(bogus)
        rejected += 1
        if i % 1000 == 0:
            assert await verifier.averify(good)
        clock.advance(0.0025)  # 10,000 tokens over 25 s
    assert rejected == 10_000
    assert server.count <= 2  # the initial fetch + at most one refetch
    assert source.stats.unknown_kid_misses >= 9_999


# 4. stale on error ---------------------------------------------------------------------


def _break(server: JWKSServer, mode: str, idp: LocalIssuer) -> None:
    if mode == "status_500":
        server.status = 500
    elif mode == "bad_json":
        server.body = b"<html>oops"
    elif mode == "not_an_object":
        server.body = b"[1,2,3]"
    elif mode == "no_usable_key":
        server.body = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).encode()
    elif mode == "timeout":
        server.fault = "silence"  # never answers: the deadline ends the fetch, whatever the load
    elif mode == "oversized":
        server.body = b'{"keys":[], "pad":"' + b"x" * 600_000 + b'"}'
    elif mode == "redirect":
        server.status = 302
        server.headers = {"Location": server.base_url + "/other.json"}
    else:
        raise AssertionError(mode)


FAULTS = [
    "status_500",
    "bad_json",
    "not_an_object",
    "no_usable_key",
    "timeout",
    "oversized",
    "redirect",
]


@pytest.mark.parametrize("mode", FAULTS)
async def test_stale_on_error_keeps_last_good_set(
    idp: LocalIssuer,
    server: JWKSServer,
    clock: FakeClock,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = JWKSKeys(server.url, clock=clock, timeout=1.0)
    verifier = verifier_for(idp, source)
    await verifier.averify(idp.mint())
    _break(server, mode, idp)
    clock.advance(700)  # past the default TTL
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        assert await verifier.averify(idp.mint())  # served stale, refresh in background
        await fetches_over(source)
    stats = source.stats
    assert stats.failures == 1 and stats.fetches == 2
    assert stats.stale_serves >= 1
    assert stats.key_ids == ("k1",)
    # The line names the URL (issue #14), once: no doubled "jwt_guard: jwt_guard:" prefix.
    assert any(f"JWKS fetch from {server.url} failed" in r.getMessage() for r in caplog.records)
    assert not any(r.getMessage().startswith("jwt_guard:") for r in caplog.records)
    assert all(idp.kid not in r.getMessage() or "k1" == idp.kid for r in caplog.records)
    assert await verifier.averify(idp.mint())
    assert server.requests.get("/other.json", 0) == 0  # redirects are never followed
    await source.aclose()


def test_stale_on_error_sync_connection_refused(idp: LocalIssuer, clock: FakeClock) -> None:
    with JWKSServer(lambda: idp.jwks) as srv:
        source = JWKSKeys(srv.url, clock=clock)
        verifier = verifier_for(idp, source)
        verifier.verify(idp.mint())
    clock.advance(700)  # server now gone
    assert verifier.verify(idp.mint())
    fetch_over(source)
    assert source.stats.failures == 1
    assert verifier.verify(idp.mint())
    source.close()


async def test_successful_fetch_replaces_set(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    verifier = verifier_for(idp, source)
    old_token = idp.mint(ttl=10**5)
    await verifier.averify(old_token)
    idp.rotate("k2", keep_old=False)
    clock.advance(601)
    await verifier.averify(idp.mint())  # triggers the refresh; new kid, waits for it
    await fetches_over(source)
    assert source.stats.key_ids == ("k2",)
    with pytest.raises(KeyNotFound):
        await verifier.averify(old_token)


# 5. no keys at all -------------------------------------------------------------------------


async def test_cold_start_with_provider_down_is_503(idp: LocalIssuer, clock: FakeClock) -> None:
    source = JWKSKeys(f"http://127.0.0.1:{free_port()}/jwks.json", clock=clock)
    verifier = verifier_for(idp, source)
    with pytest.raises(KeySourceUnavailable) as info:
        await verifier.averify(idp.mint())
    assert info.value.status_code == 503 and info.value.code == "jwks_unavailable"
    assert info.value.retry_after >= 1
    with pytest.raises(KeySourceUnavailable):
        verifier.verify(idp.mint())
    await source.aclose()


async def test_stale_beyond_max_stale_is_503(
    idp: LocalIssuer, server: JWKSServer, clock: FakeClock
) -> None:
    source = JWKSKeys(server.url, clock=clock, max_stale=3600)
    verifier = verifier_for(idp, source)
    await verifier.averify(idp.mint())
    server.status = 503
    clock.advance(600 + 3000)
    assert await verifier.averify(idp.mint())
    await fetches_over(source)
    clock.advance(700)
    with pytest.raises(KeySourceUnavailable):
        await verifier.averify(idp.mint())
    await source.aclose()


# 6. backoff ------------------------------------------------------------------------------


async def test_backoff_doubles_to_60_seconds(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    server.status = 500
    verifier = verifier_for(idp, source)
    token = idp.mint(ttl=10**5)
    expected_max = [1, 2, 4, 8, 16, 32, 60, 60]
    for attempt, ceiling in enumerate(expected_max, start=1):
        with pytest.raises(KeySourceUnavailable):
            await verifier.averify(token)
        assert server.count == attempt
        # inside the backoff window: no new request
        clock.advance(ceiling * 0.49)
        with pytest.raises(KeySourceUnavailable):
            await verifier.averify(token)
        assert server.count == attempt
        clock.advance(ceiling * 0.52)
    server.status = 200
    assert await verifier.averify(token)


# 7. hardening ----------------------------------------------------------------------------


async def test_refused_entries_are_skipped(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, caplog: pytest.LogCaptureFixture
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    good = idp.jwks["keys"][0]
    private = public_jwk(generate_key("ES256"), kid="with-d")
    private["d"] = private["x"]
    weak = public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), kid="weak")
    dup1 = public_jwk(generate_key("ES256"), kid="dup")
    dup2 = public_jwk(generate_key("ES256"), kid="dup")
    server.body = json.dumps(
        {
            "keys": [
                good,
                private,
                {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "hs"},
                weak,
                dup1,
                dup2,
                "not an object",
                {"kty": "EC", "crv": "P-256", "kid": "broken"},
            ]
        }
    ).encode()
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        await source.aprefetch()
    assert source.stats.key_ids == ("k1",)
    assert len([r for r in caplog.records if "skipping JWKS entry" in r.getMessage()]) == 5


async def test_rfc9864_entry_whose_alg_its_curve_cannot_serve_is_skipped(
    idp: LocalIssuer, server: JWKSServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # {"crv": "Ed448", "alg": "Ed25519"} or a P-256 key published as ES384 can never verify
    # a token: skipped with the reason logged, like other unusable entries, on both drivers.
    good = idp.jwks["keys"][0]
    server.body = json.dumps(
        {
            "keys": [
                public_jwk(generate_key("Ed448"), kid="ed", alg="Ed25519"),
                public_jwk(generate_key("ES256"), kid="p256", alg="ES384"),
                good,
            ]
        }
    ).encode()
    async_source = JWKSKeys(server.url, clock=clock, timeout=2.0)
    sync_source = JWKSKeys(server.url, clock=clock, timeout=2.0)
    try:
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            assert await verifier_for(idp, async_source).averify(idp.mint(sub="a"))
            assert verifier_for(idp, sync_source).verify(idp.mint(sub="s"))
        assert async_source.stats.key_ids == sync_source.stats.key_ids == ("k1",)
    finally:
        await async_source.aclose()
        sync_source.close()
    skipped = [r.getMessage() for r in caplog.records if "skipping JWKS entry" in r.getMessage()]
    assert len(skipped) == 4  # two entries, once per source
    assert all("cannot be bound to" in message for message in skipped)


@pytest.mark.parametrize("alg", ["Ed25519", "Ed448"])
async def test_rfc9864_jwks_publishing_fully_specified_eddsa_is_used(
    alg: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    ed = LocalIssuer(algorithm=alg, clock=clock, kid="ed-1")
    with ed.serve() as srv, caplog.at_level(logging.WARNING, logger="jwt_guard"):
        async_source = JWKSKeys(srv.url, clock=clock, timeout=2.0)
        sync_source = JWKSKeys(srv.url, clock=clock, timeout=2.0)
        try:
            assert await verifier_for(ed, async_source).averify(ed.mint(sub="a"))
            assert verifier_for(ed, sync_source).verify(ed.mint(sub="s"))
            assert async_source.stats.key_ids == ("ed-1",)
        finally:
            await async_source.aclose()
            sync_source.close()
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]


async def test_too_many_keys_is_a_failed_fetch(server: JWKSServer, source: JWKSKeys) -> None:
    key = public_jwk(generate_key("ES256"))
    server.body = json.dumps({"keys": [dict(key, kid=str(i)) for i in range(101)]}).encode()
    await source.aprefetch()
    assert source.stats.failures == 1 and source.stats.key_ids == ()


@pytest.mark.parametrize(
    "url", ["http://idp.example.com/jwks", "ftp://127.0.0.1/x", "/jwks.json", "https://"]
)
def test_url_must_be_https_unless_loopback(url: str) -> None:
    with pytest.raises(ConfigurationError):
        JWKSKeys(url)


def test_http_allowed_for_loopback_and_by_name() -> None:
    JWKSKeys("http://127.0.0.1:1/jwks.json")
    JWKSKeys("http://localhost:1/jwks.json")
    JWKSKeys("http://[::1]:1/jwks.json")
    JWKSKeys("http://idp.internal/jwks.json", allow_http=True)


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"min_ttl": 10, "max_ttl": 5}, {"cooldown": -1}, {"max_bytes": 10}],
)
def test_invalid_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        JWKSKeys("https://idp.example.com/jwks", **kwargs)


# 8. start-up -----------------------------------------------------------------------------


async def test_prefetch_warms_and_does_not_fail_unless_asked(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    verifier = verifier_for(idp, source)
    await verifier.aprefetch()
    assert server.count == 1
    await verifier.averify(idp.mint())
    assert server.count == 1
    down = JWKSKeys(f"http://127.0.0.1:{free_port()}/jwks.json", clock=clock)
    await down.aprefetch()  # logged, not raised
    with pytest.raises(KeySourceUnavailable):
        await down.aprefetch(required=True)
    down.prefetch()
    with pytest.raises(KeySourceUnavailable):
        down.prefetch(required=True)
    await down.aclose()


# OIDC discovery and several issuers ---------------------------------------------------------


async def test_oidc_discovery(idp: LocalIssuer, clock: FakeClock) -> None:
    with JWKSServer(lambda: idp.jwks) as srv:
        issuer = srv.base_url
        source = OIDCDiscovery(issuer, clock=clock)
        verifier = verifier_for(idp, source, issuer=issuer)
        assert await verifier.averify(idp.mint(issuer=issuer))
        assert srv.requests["/.well-known/openid-configuration"] == 1 and srv.count == 1
        sync_source = OIDCDiscovery(issuer, clock=clock)
        assert verifier_for(idp, sync_source, issuer=issuer).verify(idp.mint(issuer=issuer))
        await source.aclose()
        sync_source.close()


async def test_oidc_discovery_issuer_must_match_exactly(idp: LocalIssuer, clock: FakeClock) -> None:
    with JWKSServer(lambda: idp.jwks, issuer="https://evil.example") as srv:
        source = OIDCDiscovery(srv.base_url, clock=clock)
        verifier = verifier_for(idp, source, issuer=srv.base_url)
        with pytest.raises(KeySourceUnavailable) as caught:
            await verifier.averify(idp.mint(issuer=srv.base_url))
        assert srv.count == 0
        assert source.stats.last_failure_reason == (
            "OIDC discovery mismatch: the document names 'https://evil.example', not the "
            f"configured {srv.base_url!r}"
        )
        assert caught.value.detail["url"] == srv.base_url + "/.well-known/openid-configuration"
        assert caught.value.detail["reason"] == source.stats.last_failure_reason
        await source.aclose()


async def test_a_failed_discovery_fetch_is_logged_as_one(
    idp: LocalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    source = OIDCDiscovery(issuer, clock=clock)
    verifier = verifier_for(idp, source, issuer=issuer)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        with pytest.raises(KeySourceUnavailable):
            await verifier.averify(idp.mint(issuer=issuer))
    messages = [r.getMessage() for r in caplog.records]
    document = f"{issuer}/.well-known/openid-configuration"
    assert any(m.startswith(f"Discovery document fetch from {document} failed") for m in messages)
    assert not any(m.startswith("JWKS fetch") for m in messages), messages
    await source.aclose()


async def test_unknown_issuer_makes_no_request(
    idp: LocalIssuer, server: JWKSServer, source: JWKSKeys, clock: FakeClock
) -> None:
    verifier = Verifier(
        algorithms=["ES256"],
        issuers=[TrustedIssuer(idp.issuer, source, audience=idp.audience)],
        clock=clock,
    )
    with pytest.raises(IssuerInvalid):
        await verifier.averify(idp.mint(issuer="https://other.example"))
    assert server.count == 0
    assert await verifier.averify(idp.mint())
    assert server.count == 1


async def test_injected_clients_are_used(idp: LocalIssuer, server: JWKSServer) -> None:
    import httpx

    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async def ahook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    with httpx.Client(event_hooks={"request": [hook]}) as sync_client:
        source = JWKSKeys(server.url, client=sync_client)
        assert verifier_for(idp, source).verify(idp.mint())
    async with httpx.AsyncClient(event_hooks={"request": [ahook]}) as async_client:
        source = JWKSKeys(server.url, client=async_client)
        assert await verifier_for(idp, source).averify(idp.mint())
        await source.aclose()  # an injected client is left to its owner
        assert not async_client.is_closed
    assert seen == [server.url, server.url]


# Discovery: the URL users copy, the issuer it pins, a mismatch named as one (issue 13) -------


@pytest.mark.parametrize("trailing_slash", [False, True])
async def test_discovery_accepts_the_document_url(
    idp: LocalIssuer, clock: FakeClock, trailing_slash: bool
) -> None:
    with JWKSServer(lambda: idp.jwks) as srv:
        issuer = srv.base_url + ("/" if trailing_slash else "")
        srv.issuer = issuer  # Auth0 issuers end with a slash; the document URL never shows it
        document_url = srv.base_url + "/.well-known/openid-configuration"
        source = OIDCDiscovery(document_url, clock=clock)
        assert await verifier_for(idp, source, issuer=None).averify(idp.mint(issuer=issuer))
        sync_source = OIDCDiscovery(document_url, clock=clock)
        assert verifier_for(idp, sync_source, issuer=None).verify(idp.mint(issuer=issuer))
        assert srv.requests == {"/.well-known/openid-configuration": 2, "/jwks.json": 2}
        await source.aclose()
        sync_source.close()


async def test_discovery_pins_the_discovered_issuer(idp: LocalIssuer, clock: FakeClock) -> None:
    with JWKSServer(lambda: idp.jwks) as srv:
        issuer = srv.base_url
        source = OIDCDiscovery(issuer, clock=clock)
        verifier = verifier_for(idp, source, issuer=None)  # no issuer=
        assert await verifier.averify(idp.mint(issuer=issuer))
        # Same keys, another tenant of the same provider: refused.
        with pytest.raises(IssuerInvalid):
            await verifier.averify(idp.mint(issuer="https://other-tenant.example"))
        with pytest.raises(IssuerInvalid):
            verifier.verify(idp.mint(issuer="https://other-tenant.example"))
        other = idp.claims(issuer=issuer)
        del other["iss"]
        with pytest.raises(ClaimMissing):
            await verifier.averify(idp.mint(other))
        # Only by a loud, explicit option.
        anyone = OIDCDiscovery(issuer, clock=clock, allow_any_issuer=True)
        assert await verifier_for(idp, anyone, issuer=None).averify(
            idp.mint(issuer="https://x.example")
        )
        await source.aclose()
        await anyone.aclose()


def test_a_custom_key_source_pins_its_issuers(idp: LocalIssuer) -> None:
    # KeySource.pinned_issuers is the hook OIDC discovery uses; any source may pin.
    class Pinned(StaticKeys):
        @property
        def pinned_issuers(self) -> tuple[str, ...] | None:
            return ("https://tenant-a.example",)

    verifier = verifier_for(idp, Pinned.from_jwks(idp.jwks), issuer=None)
    assert verifier.verify(idp.mint(issuer="https://tenant-a.example"))
    with pytest.raises(IssuerInvalid):
        verifier.verify(idp.mint(issuer="https://tenant-b.example"))
    # issuer= still wins over what the source pins.
    named = verifier_for(idp, Pinned.from_jwks(idp.jwks), issuer="https://tenant-b.example")
    assert named.verify(idp.mint(issuer="https://tenant-b.example"))


async def test_discovery_issuer_mismatch_is_named_and_fails_start_up(
    idp: LocalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with JWKSServer(lambda: idp.jwks) as srv:
        srv.issuer = srv.base_url + "/"  # a trailing slash the configuration lacks
        source = OIDCDiscovery(srv.base_url, clock=clock)
        with caplog.at_level(logging.WARNING, logger="jwt_guard"):
            with pytest.raises(ConfigurationError) as info:
                await source.aprefetch(required=True)
        for text in (str(info.value), caplog.records[-1].getMessage()):
            assert "OIDC discovery mismatch" in text
            assert repr(srv.base_url + "/") in text and repr(srv.base_url) in text
        assert caplog.records[-1].levelno == logging.ERROR
        assert not any("JWKS fetch failed" in r.getMessage() for r in caplog.records)
        sync_source = OIDCDiscovery(srv.base_url, clock=clock)
        with pytest.raises(ConfigurationError, match="OIDC discovery mismatch"):
            sync_source.prefetch(required=True)
        assert srv.count == 0  # no JWKS fetched from a document we do not trust
        await source.aclose()
        sync_source.close()


def test_discovery_url_from_env_may_be_the_document_url(
    idp: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What users copy from their IdP console (issue 13 item 22).
    with JWKSServer(lambda: idp.jwks) as srv:  # the issuer is the server's base URL
        monkeypatch.setenv("JWT_GUARD_ISSUER", srv.base_url)
        monkeypatch.setenv("JWT_GUARD_AUDIENCE", idp.audience)
        monkeypatch.setenv("JWT_GUARD_ALGORITHMS", "ES256")
        monkeypatch.setenv("JWT_GUARD_DISCOVERY_URL", srv.url.replace("/jwks.json", WELL_KNOWN))
        verifier = Verifier.from_env(clock=idp.clock)
        verifier.prefetch(required=True)  # a wrong URL would fail here, at start-up
        assert verifier.verify(idp.mint(issuer=srv.base_url))
        assert srv.requests == {WELL_KNOWN: 1, "/jwks.json": 1}
        verifier.close()


# 8. algorithms follow the keys (issue 25, item 1; RFC 8725 §3.1, §2.1) ---------------------


class Provider:
    """A provider's keys as it publishes them: (kid, private key, the JWK's "alg" or None)."""

    def __init__(self, idp: LocalIssuer, *entries: tuple[str, str, str | None]) -> None:
        self.idp = idp
        self.keys: dict[str, tuple[Any, str | None]] = {}
        for kid, kind, alg in entries:
            self.add(kid, kind, alg)

    def add(self, kid: str, kind: str, alg: str | None) -> None:
        self.keys[kid] = (_KEYS.get(kind) or _KEYS.setdefault(kind, generate_key(kind)), alg)

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [public_jwk(key, kid=kid, alg=alg) for kid, (key, alg) in self.keys.items()]
        }

    def mint(self, alg: str, kid: str) -> str:
        return encode(self.idp.claims(), self.keys[kid][0], alg, header={"kid": kid})


_KEYS: dict[str, Any] = {}  # generated once per kind (RSA is slow)


@contextlib.asynccontextmanager
async def following(
    provider: Provider, clock: FakeClock, **options: Any
) -> AsyncIterator[tuple[Verifier, JWKSKeys, JWKSServer]]:
    """A verifier that names no algorithms, on the provider's JWKS served over HTTP."""
    with JWKSServer(provider.jwks) as srv:
        source = JWKSKeys(srv.url, clock=clock, timeout=2.0)
        idp = provider.idp
        verifier = Verifier(
            keys=source, issuer=idp.issuer, audience=idp.audience, clock=clock, **options
        )
        try:
            yield verifier, source, srv
        finally:
            await source.aclose()


async def test_issue25_with_no_algorithms_named_an_rs256_provider_is_accepted(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    provider = Provider(idp, ("rs-1", "RS256", "RS256"))
    async with following(provider, clock) as (verifier, _, srv):
        assert (await drive(verifier, provider.mint("RS256", "rs-1"))).subject == "user-1"
        assert srv.count == 1


@pytest.mark.parametrize(
    ("kind", "own", "others"),
    [
        ("RS256", "RS256", ["RS384", "RS512", "PS256", "PS384", "PS512"]),
        ("ES256", "ES256", []),
        ("ES384", "ES384", []),
        ("ES512", "ES512", []),
        ("EdDSA", "EdDSA", ["Ed25519"]),
        ("Ed448", "EdDSA", ["Ed448"]),
    ],
)
async def test_rfc8725_3_1_a_key_without_alg_verifies_only_the_one_its_type_implies(
    idp: LocalIssuer, clock: FakeClock, drive: Drive, kind: str, own: str, others: list[str]
) -> None:
    """RFC 8725 §3.1: each key is used with exactly one algorithm. An RSA key published
    without "alg" signs RS256 at every provider; a PS256 token with a valid signature by the
    same key is refused (the token must never pick), and so is RS384."""
    provider = Provider(idp, ("k", kind, None))
    async with following(provider, clock) as (verifier, _, _srv):
        assert await drive(verifier, provider.mint(own, "k"))
        for alg in others:
            with pytest.raises(AlgorithmNotAllowed) as caught:
                await drive(verifier, provider.mint(alg, "k"))
            assert caught.value.detail["allowed"] == [own]


async def test_rfc8725_3_1_a_key_s_alg_decides_and_named_algorithms_win(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    provider = Provider(idp, ("ps", "RS256", "PS256"), ("rs", "RS384", None))
    async with following(provider, clock) as (verifier, _, _srv):
        assert await drive(verifier, provider.mint("PS256", "ps"))
        assert await drive(verifier, provider.mint("RS256", "rs"))
        with pytest.raises(KeyNotFound) as caught:  # "ps" is for PS256 only
            await drive(verifier, provider.mint("RS256", "ps"))
        assert caught.value.detail["key_algs"] == ["PS256"]
        with pytest.raises(KeyNotFound):  # "rs" (no alg) is for RS256 only
            await drive(verifier, provider.mint("PS256", "rs"))
    # Named algorithms win: PS384 with the kid-bound RSA key, as before.
    async with following(provider, clock, algorithms=["PS384"]) as (verifier, _, _srv):
        assert await drive(verifier, provider.mint("PS384", "rs"))
        with pytest.raises(AlgorithmNotAllowed):
            await drive(verifier, provider.mint("RS256", "rs"))


async def test_rfc8725_2_1_hs256_with_the_public_key_as_secret_never_follows_the_keys(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    """Algorithm confusion (RFC 8725 §2.1, CVE-2015-9235): the RSA public key as an HMAC
    secret. With no algorithms named, HS* is never accepted: a JWKS holds no secrets."""
    provider = Provider(idp, ("rs-1", "RS256", None))
    async with following(provider, clock) as (verifier, _, _srv):
        secret = public_pem(provider.keys["rs-1"][0])
        forged = forge({"alg": "HS256", "kid": "rs-1"}, idp.claims(), secret, "HS256")
        with pytest.raises(AlgorithmNotAllowed) as caught:
            await drive(verifier, forged)
        assert "HS256" not in caught.value.detail["allowed"]
        assert "never HS*" in caught.value.detail["reason"]
        none = compact({"alg": "none", "kid": "rs-1"}, idp.claims(), b"")
        with pytest.raises(AlgorithmNotAllowed):
            await drive(verifier, none + "x")


async def test_issue25_a_rotation_to_a_key_of_a_new_type_works_without_restart(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    provider = Provider(idp, ("rs-1", "RS256", "RS256"))
    async with following(provider, clock) as (verifier, _, srv):
        assert await drive(verifier, provider.mint("RS256", "rs-1"))
        provider.add("ec-1", "ES256", "ES256")  # the provider moves to ES256
        token = provider.mint("ES256", "ec-1")
        clock.advance(31)  # past the cooldown: the unknown kid refetches
        assert (await drive(verifier, token)).subject == "user-1"
        assert srv.count == 2
        assert await drive(verifier, provider.mint("RS256", "rs-1"))


async def test_issue25_a_new_key_type_inside_the_cooldown_is_key_not_found_not_a_bad_alg(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    # Not algorithm_not_allowed with allowed=['RS256']: the set is only out of date.
    provider = Provider(idp, ("rs-1", "RS256", "RS256"))
    async with following(provider, clock) as (verifier, _, _srv):
        assert await drive(verifier, provider.mint("RS256", "rs-1"))
        provider.add("ec-1", "ES256", "ES256")
        with pytest.raises(KeyNotFound) as caught:
            await drive(verifier, provider.mint("ES256", "ec-1"))
        assert "refetch was skipped" in caught.value.detail["reason"]


async def test_issue25_a_key_whose_alg_is_not_supported_is_skipped_with_a_reason(
    idp: LocalIssuer, clock: FakeClock, drive: Drive, caplog: pytest.LogCaptureFixture
) -> None:
    provider = Provider(idp, ("rs-1", "RS256", None), ("k1", "ES256", "ES256K"))
    enc = public_jwk(generate_key("RS256"), kid="enc-1", alg="RSA-OAEP") | {"use": "enc"}

    def jwks() -> dict[str, Any]:
        return {"keys": [*provider.jwks()["keys"], enc]}

    with caplog.at_level(logging.DEBUG, logger="jwt_guard"), JWKSServer(jwks) as srv:
        source = JWKSKeys(srv.url, clock=clock, timeout=2.0)
        verifier = Verifier(keys=source, issuer=idp.issuer, audience=idp.audience, clock=clock)
        try:
            assert await drive(verifier, provider.mint("RS256", "rs-1"))
            assert source.stats.key_ids == ("rs-1",)
        finally:
            await source.aclose()
    skipped = {r.levelno: r.getMessage() for r in caplog.records if "skipping" in r.getMessage()}
    assert (
        "alg 'ES256K' is not a signature algorithm jwt_guard verifies" in skipped[logging.WARNING]
    )
    # An encryption key (every Keycloak JWKS has one) is skipped too, without a warning.
    assert "alg 'RSA-OAEP'" in skipped[logging.DEBUG]


@pytest.mark.parametrize("start", ["prefetch", "first token"])
async def test_issue25_a_warning_when_no_published_key_fits_the_algorithms_in_force(
    idp: LocalIssuer, clock: FakeClock, drive: Drive, caplog: pytest.LogCaptureFixture, start: str
) -> None:
    """ES256 named against an RS256 provider refused every token, and nothing said why."""
    provider = Provider(idp, ("rs-1", "RS256", "RS256"), ("rs-2", "RS256", None))
    # An ES256 token passes the header check, so it makes the first fetch.
    es256 = compact({"alg": "ES256", "kid": "rs-1"}, idp.claims(), b"\x01" * 64)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        async with following(provider, clock, algorithms=["ES256"]) as (verifier, source, srv):
            if start == "prefetch":
                await asyncio.to_thread(verifier.prefetch)
            with pytest.raises(KeyNotFound):
                await drive(verifier, es256)
            with pytest.raises(AlgorithmNotAllowed):
                await drive(verifier, provider.mint("RS256", "rs-1"))
            await source.aprefetch()  # the same state again: no second warning
            assert srv.count == 2
            url = srv.url
    warnings = [r.getMessage() for r in caplog.records if "publishes" in r.getMessage()]
    assert warnings == [
        f"JWKS at {url} publishes only RS256 keys but algorithms=['ES256']: no token can "
        "verify; set algorithms=['RS256'] (JWT_GUARD_ALGORITHMS=RS256), or leave them unset to "
        "accept the keys' own"
    ]
    # What the configuration page's Algorithms section shows is this line.
    shown = warnings[0].replace(url, "https://idp.example.com/.well-known/jwks.json")
    assert f"\nWARNING jwt_guard: {shown}\n" in manual()


async def test_issue25_no_warning_when_a_published_key_fits(
    idp: LocalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    provider = Provider(idp, ("rs-1", "RS256", None), ("ec-1", "ES256", None))
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        for algorithms in (["ES256"], ["PS256"], None):
            options = {"algorithms": algorithms} if algorithms else {}
            async with following(provider, clock, **options) as (verifier, _, _srv):
                await verifier.aprefetch(required=True)
    assert not caplog.records


def test_issue25_static_keys_still_need_named_algorithms(idp: LocalIssuer) -> None:
    with pytest.raises(ConfigurationError, match="JWKS URL or discovery"):
        Verifier(keys=idp.keys(), issuer=idp.issuer, audience=idp.audience)


async def test_issue25_trusted_issuers_follow_their_own_keys(
    clock: FakeClock, drive: Drive
) -> None:
    rsa_idp = LocalIssuer(issuer="https://rsa.test", clock=clock)
    ec_idp = LocalIssuer(issuer="https://ec.test", clock=clock)
    rsa = Provider(rsa_idp, ("rs-1", "RS256", None))
    ec = Provider(ec_idp, ("ec-1", "ES384", None))
    with JWKSServer(rsa.jwks) as rsa_srv, JWKSServer(ec.jwks) as ec_srv:
        sources = [JWKSKeys(s.url, clock=clock) for s in (rsa_srv, ec_srv)]
        verifier = Verifier(
            issuers=[
                TrustedIssuer(rsa_idp.issuer, sources[0], audience=rsa_idp.audience),
                TrustedIssuer(ec_idp.issuer, sources[1], audience=ec_idp.audience),
            ],
            clock=clock,
        )
        try:
            assert await drive(verifier, rsa.mint("RS256", "rs-1"))
            assert await drive(verifier, ec.mint("ES384", "ec-1"))
            # Each issuer's keys, not the union: RS256 is not ec.test's.
            forged_iss = encode(
                ec_idp.claims(), rsa.keys["rs-1"][0], "RS256", header={"kid": "rs-1"}
            )
            with pytest.raises((AlgorithmNotAllowed, KeyNotFound)):
                await drive(verifier, forged_iss)
        finally:
            for source in sources:
                await source.aclose()
