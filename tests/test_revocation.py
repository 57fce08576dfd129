"""What a revocation covers and for how long, on both denylists and both drivers.

Each test runs against a MemoryDenylist and a RedisDenylist on a real redis-server, through the
sync driver (``verify``/``revoke``) and the async one (``averify``/``arevoke``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from jwt_guard import (
    ConfigurationError,
    Denylist,
    MemoryDenylist,
    Principal,
    RedisDenylist,
    StaticKeys,
    TokenRevoked,
    TrustedIssuer,
    Verifier,
)
from jwt_guard.testing import LocalIssuer

from .apps import flask_app, starlette_app
from .conftest import FakeClock, bearer
from .redis_server import redis_server
from .servers import run_wsgi


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


class Store:
    """A denylist factory and a way to read an entry's remaining lifetime."""

    def __init__(self, kind: str, redis_url: str, clock: FakeClock, prefix: str) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.clock = clock
        self.prefix = prefix
        self.made: list[Denylist] = []

    def make(self) -> Denylist:
        if self.kind == "memory":
            denylist: Denylist = MemoryDenylist(clock=self.clock)
        else:
            denylist = RedisDenylist(self.redis_url, prefix=self.prefix, clock=self.clock)
        self.made.append(denylist)
        return denylist

    def lifetimes(self) -> list[float]:
        """Seconds each stored entry has left (``inf``: kept for ever)."""
        if self.kind == "memory":
            return [
                until - self.clock.now
                for d in self.made
                for until, _ in d._entries.values()  # type: ignore[attr-defined]
            ]
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            ttls = [client.ttl(k) for k in client.keys(self.prefix + "*")]
        finally:
            client.close()
        return [math.inf if t == -1 else float(t) for t in ttls]


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, clock: FakeClock
) -> AsyncIterator[Store]:
    s = Store(request.param, redis_url, clock, f"r{abs(hash(request.node.nodeid))}:")
    yield s
    for denylist in s.made:
        await denylist.aclose()
        denylist.close()


class Drive:
    """The sync or the async driver, behind one awaitable interface."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def verify(self, verifier: Verifier, token: str) -> Principal:
        return verifier.verify(token) if self.mode == "sync" else await verifier.averify(token)

    async def revoke(self, verifier: Verifier, token: str | Principal) -> Principal:
        if self.mode == "sync":
            return verifier.revoke(token)
        return await verifier.arevoke(token)

    async def revoke_subject(self, verifier: Verifier, subject: str, **kw: Any) -> None:
        if self.mode == "sync":
            verifier.revoke_subject(subject, **kw)
        else:
            await verifier.arevoke_subject(subject, **kw)


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Drive:
    return Drive(request.param)


async def assert_revoked(drive: Drive, verifier: Verifier, token: str) -> None:
    with pytest.raises(TokenRevoked):
        await drive.verify(verifier, token)


# -- item 10: one function builds the keys for writing and for checking ----------------------


async def test_revoke_subject_on_a_verifier_without_issuer(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock
) -> None:
    """The token carries an ``iss``; the verifier names none. "Log out everywhere" must still
    revoke (it used to store the entry under no issuer and look it up under the token's)."""
    verifier = issuer.verifier(issuer=None, denylist=store.make())
    token = issuer.mint(sub="alice")
    await drive.verify(verifier, token)  # cached: the check must still apply
    clock.advance(5)
    await drive.revoke_subject(verifier, "alice")
    await assert_revoked(drive, verifier, token)
    await drive.verify(verifier, issuer.mint(sub="bob"))
    with pytest.raises(ConfigurationError):  # not scoped by issuer: saying one would be a no-op
        await drive.revoke_subject(verifier, "alice", issuer="https://issuer.test")


async def test_revoke_subject_scoped_by_issuer_among_several(
    make_issuer: Callable[..., LocalIssuer], store: Store, drive: Drive, clock: FakeClock
) -> None:
    one = make_issuer("RS256")
    two = LocalIssuer(issuer="https://two.test", algorithm="ES256", clock=clock)
    verifier = Verifier(
        issuers=[
            TrustedIssuer(one.issuer, one.keys(), audience=one.audience, algorithms=["RS256"]),
            TrustedIssuer(two.issuer, two.keys(), audience=two.audience, algorithms=["ES256"]),
        ],
        denylist=store.make(),
        clock=clock,
    )
    from_one, from_two = one.mint(sub="alice"), two.mint(sub="alice")
    clock.advance(5)
    with pytest.raises(ConfigurationError):
        await drive.revoke_subject(verifier, "alice")  # which issuer's alice?
    with pytest.raises(ConfigurationError):
        await drive.revoke_subject(verifier, "alice", issuer="https://untrusted.test")
    await drive.revoke_subject(verifier, "alice", issuer=two.issuer)
    await assert_revoked(drive, verifier, from_two)
    await drive.verify(verifier, from_one)


# -- item 11: the cut-off is in whole seconds, as iat is ---------------------------------------


async def test_subject_cutoff_is_whole_seconds(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock
) -> None:
    """Password change, "log out everywhere", log in again within the same second: the new
    token (its iat in that second) must pass; tokens of earlier seconds must not."""
    verifier = issuer.verifier(denylist=store.make())
    earlier = issuer.mint(sub="alice")
    clock.advance(1.7)  # the revocation happens at x.7 s
    await drive.revoke_subject(verifier, "alice")
    again = issuer.mint(sub="alice")  # iat = the same whole second
    clock.advance(0.2)
    assert (await drive.verify(verifier, again)).subject == "alice"
    await assert_revoked(drive, verifier, earlier)
    # An explicit cut-off is floored the same way.
    await drive.revoke_subject(verifier, "bob", issued_before=clock.now)
    assert await drive.verify(verifier, issuer.mint(sub="bob"))


# -- item 12: revoking twice is harmless -------------------------------------------------------


async def test_revoke_twice_is_harmless(issuer: LocalIssuer, store: Store, drive: Drive) -> None:
    verifier = issuer.verifier(denylist=store.make())
    token = issuer.mint()
    await drive.revoke(verifier, token)
    principal = await drive.revoke(verifier, token)  # a double-clicked logout
    assert principal.subject == "user-1"
    await assert_revoked(drive, verifier, token)
    with pytest.raises(Exception) as forged:
        await drive.revoke(verifier, token[:-6] + "AAAAAA")  # still only a verified token
    assert not isinstance(forged.value, TokenRevoked)


# -- item 13: no revocation lapses while a token it covers can verify -------------------------


async def test_token_without_exp_stays_revoked_for_ever(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock
) -> None:
    verifier = issuer.verifier(denylist=store.make(), required_claims=())
    token = issuer.mint(exp=None)
    await drive.revoke(verifier, token)
    assert store.lifetimes() == [math.inf]
    clock.advance(365 * 86400)  # the token still verifies a year later: so must the entry hold
    await assert_revoked(drive, verifier, token)


async def test_token_entry_follows_exp_or_max_token_age(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock
) -> None:
    verifier = issuer.verifier(denylist=store.make(), leeway=10, max_token_age=600)
    token = issuer.mint(ttl=3600)  # max_token_age ends it first: iat + 600 + leeway
    await drive.revoke(verifier, token)
    (left,) = store.lifetimes()
    assert 600 + 10 <= left <= 600 + 10 + 60 + 1
    clock.advance(600 + 10)  # the last second the token verifies: still revoked
    await assert_revoked(drive, verifier, token)


async def test_subject_cutoff_without_max_token_age_is_kept(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock
) -> None:
    """No token lifetime is known: a ten-day token must stay revoked past the old 7-day TTL."""
    verifier = issuer.verifier(denylist=store.make())
    token = issuer.mint(sub="mallory", ttl=10 * 86400)
    clock.advance(1)
    await drive.revoke_subject(verifier, "mallory")
    assert store.lifetimes() == [math.inf]
    clock.advance(8 * 86400)
    await assert_revoked(drive, verifier, token)


async def test_subject_cutoff_lifetime_from_max_token_age(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock
) -> None:
    verifier = issuer.verifier(denylist=store.make(), max_token_age=3600, leeway=30)
    token = issuer.mint(sub="mallory", ttl=7200)
    clock.advance(1)
    await drive.revoke_subject(verifier, "mallory", ttl=60)  # a shorter ttl cannot shorten it
    (left,) = store.lifetimes()
    assert 3600 + 30 - 1 <= left <= 3600 + 30 + 60
    clock.advance(3600 + 29)  # the token is just not too old yet
    await assert_revoked(drive, verifier, token)


# -- item 7: a lone surrogate in a signed claim -----------------------------------------------


@pytest.mark.parametrize("claim", ["sub", "jti"])
async def test_lone_surrogate_in_signed_claim(
    issuer: LocalIssuer, store: Store, drive: Drive, clock: FakeClock, claim: str
) -> None:
    """``"\\ud800"`` is valid JSON and may be signed; with revocation on it must be checked,
    revoked and refused like any other value, never a UnicodeEncodeError (a 500)."""
    verifier = issuer.verifier(denylist=store.make())
    token = issuer.mint(**{claim: "\ud800"})
    other = issuer.mint(**{claim: "\ud801"})
    assert await drive.verify(verifier, token)
    clock.advance(2)
    if claim == "sub":
        await drive.revoke_subject(verifier, "\ud800")
    else:
        await drive.revoke(verifier, token)
    await assert_revoked(drive, verifier, token)
    assert await drive.verify(verifier, other)


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
async def test_lone_surrogate_through_the_adapters(issuer: LocalIssuer, adapter: str) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist())
    token = issuer.mint(sub="\ud800", jti="\udfff", roles=["admin"])
    if adapter == "asgi":
        transport = httpx.ASGITransport(app=starlette_app(verifier))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/admin", headers=bearer(token))
    else:
        with run_wsgi(flask_app(verifier)) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                response = await client.get("/admin", headers=bearer(token))
    assert response.status_code == 200


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"ttl": 0}, {"ttl": math.inf}, {"ttl": math.nan}, {"issued_before": math.nan}],
)
def test_revoke_subject_refuses_bad_numbers(issuer: LocalIssuer, kwargs: dict[str, Any]) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist())
    with pytest.raises(ConfigurationError):
        verifier.revoke_subject("alice", **kwargs)


def test_static_keys_verifier_without_issuer_revokes(issuer: LocalIssuer, clock: FakeClock) -> None:
    """A plain verifier: keys, algorithms, nothing else."""
    verifier = Verifier(
        keys=StaticKeys(issuer.jwks["keys"]),
        algorithms=["RS256"],
        audience=issuer.audience,
        denylist=MemoryDenylist(),
        clock=clock,
    )
    token = issuer.mint(sub="carol")
    clock.advance(3)
    verifier.revoke_subject("carol")
    with pytest.raises(TokenRevoked):
        verifier.verify(token)
