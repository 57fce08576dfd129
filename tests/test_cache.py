"""The verified-token cache: a hit skips parsing and the signature, never the time checks, the
key-set check or the denylist."""

from __future__ import annotations

import copy
import json

import pytest

from jwt_guard import (
    AudienceInvalid,
    JWKSKeys,
    KeyNotFound,
    MemoryDenylist,
    Principal,
    TokenExpired,
    TokenNotYetValid,
    TokenRevoked,
)
from jwt_guard.testing import JWKSServer, LocalIssuer

from .conftest import FakeClock, fetches_over


def test_hit_returns_the_same_principal(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    token = issuer.mint()
    assert verifier.verify(token) is verifier.verify(token)


def test_cache_size_zero_disables_it(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(cache_size=0)
    token = issuer.mint()
    assert verifier.verify(token) is not verifier.verify(token)


def test_expiry_while_cached(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(leeway=10)
    token = issuer.mint(ttl=60)
    assert verifier.verify(token)
    clock.advance(69)
    assert verifier.verify(token)  # still inside exp + leeway
    clock.advance(1)
    with pytest.raises(TokenExpired):
        verifier.verify(token)
    assert token not in verifier._cache  # type: ignore[operator]


def test_max_age_while_cached(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(max_token_age=100, leeway=0)
    token = issuer.mint(ttl=3600)
    verifier.verify(token)
    clock.advance(101)
    with pytest.raises(TokenExpired) as info:
        verifier.verify(token)
    assert info.value.code == "token_too_old"


def test_failures_are_never_cached(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(leeway=0)
    token = issuer.mint(nbf=int(clock.now) + 5)
    with pytest.raises(TokenNotYetValid):
        verifier.verify(token)
    clock.advance(5)
    assert verifier.verify(token)


def test_denylist_is_checked_on_every_hit(issuer: LocalIssuer, clock: FakeClock) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist(clock=clock))
    token = issuer.mint()
    verifier.verify(token)
    verifier.revoke(token)
    with pytest.raises(TokenRevoked):
        verifier.verify(token)


async def test_denylist_is_checked_on_every_async_hit(
    issuer: LocalIssuer, clock: FakeClock
) -> None:
    verifier = issuer.verifier(denylist=MemoryDenylist(clock=clock))
    token = issuer.mint()
    await verifier.averify(token)
    await verifier.arevoke(token)
    with pytest.raises(TokenRevoked):
        await verifier.averify(token)


def test_configurations_do_not_share_entries(issuer: LocalIssuer) -> None:
    lenient = issuer.verifier(audience=[issuer.audience, "other"])
    strict = issuer.verifier(audience="other")
    token = issuer.mint()
    assert lenient.verify(token)
    with pytest.raises(AudienceInvalid):
        strict.verify(token)


def test_bounded(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(cache_size=2)
    tokens = [issuer.mint(sub=f"u{i}") for i in range(3)]
    for token in tokens:
        verifier.verify(token)
    assert verifier._cache is not None and len(verifier._cache) == 2
    assert tokens[0] not in verifier._cache


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_entries_dropped_when_their_key_leaves_the_key_set(
    clock: FakeClock, mode: str
) -> None:
    idp = LocalIssuer(algorithm="ES256", clock=clock, kid="old")
    with JWKSServer(lambda: idp.jwks) as server:
        source = JWKSKeys(server.url, clock=clock)
        verifier = idp.verifier(keys=source)
        token = idp.mint(ttl=10**5)

        async def verify(t: str) -> object:
            return verifier.verify(t) if mode == "sync" else await verifier.averify(t)

        assert await verify(token)
        idp.rotate("new", keep_old=False)
        clock.advance(601)  # past the TTL: the next request refreshes in the background
        await verify(idp.mint(kid="new"))
        await fetches_over(source)
        assert source.stats.key_ids == ("new",)
        with pytest.raises(KeyNotFound):
            await verify(token)
        await source.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_cached_principal_shares_no_mutable_claims(issuer: LocalIssuer, mode: str) -> None:
    """One request's ``claims["groups"].append(...)`` must not be seen by the next request
    with the same token (a cache hit hands out the same principal)."""
    verifier = issuer.verifier()
    token = issuer.mint(
        groups=["staff"],
        realm_access={"roles": ["user"]},
        header={"x5c": ["MIIB"], "ext": {"n": [1]}},
    )

    async def verify() -> Principal:
        return verifier.verify(token) if mode == "sync" else await verifier.averify(token)

    first = await verify()
    attempts = [
        lambda: first.claims["groups"].append("admin"),
        lambda: first.claims["groups"].__setitem__(0, "admin"),
        lambda: first.claims["realm_access"]["roles"].extend(["admin"]),
        lambda: first.claims["realm_access"].update(roles=["admin"]),
        lambda: first.header["x5c"].clear(),
        lambda: first.header["ext"]["n"].append(2),
    ]
    for attempt in attempts:
        with pytest.raises(TypeError):
            attempt()
    second = await verify()
    assert second is first  # a hit: the very same principal, so nothing may change in it
    assert second.claims["groups"] == ["staff"]
    assert second.claims["realm_access"] == {"roles": ["user"]}
    assert second.header["x5c"] == ["MIIB"] and second.header["ext"] == {"n": [1]}
    # Still plain JSON values to read, compare and serialize; a copy is the caller's to change.
    assert isinstance(second.claims["groups"], list)
    assert json.loads(json.dumps(dict(second.claims)))["realm_access"] == {"roles": ["user"]}
    mine = copy.deepcopy(dict(second.claims))
    mine["groups"].append("admin")
    assert verifier.verify(token).claims["groups"] == ["staff"]
