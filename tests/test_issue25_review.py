"""Findings of the review of issue 25 items 1 and 3 (algorithms follow the keys; details that
point the wrong way), one regression test each, over both drivers where a driver applies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from flask import Flask
from jwt.algorithms import RSAAlgorithm

from jwt_guard import (
    AlgorithmNotAllowed,
    ConfigurationError,
    JWKSKeys,
    KeyNotFound,
    StaticKeys,
    TrustedIssuer,
    Verifier,
    providers,
)
from jwt_guard._core.keys import JWK
from jwt_guard._tools.signing import encode, generate_key, public_jwk
from jwt_guard.flask import JWTGuard
from jwt_guard.testing import JWKSServer, LocalIssuer, compact, forge

from .conftest import FakeClock
from .servers import TenantsServer
from .test_jwks import Drive
from .test_jwks import drive as _drive

drive = _drive  # the fixture over both drivers, as test_jwks's tests use it

_KEYS: dict[str, Any] = {}  # generated once per kind (RSA is slow)


def key(kind: str) -> Any:
    if kind not in _KEYS:
        _KEYS[kind] = generate_key(kind)
    return _KEYS[kind]


@pytest.fixture
def idp(clock: FakeClock) -> LocalIssuer:
    return LocalIssuer(issuer="https://idp.test", clock=clock)


@pytest.fixture(params=["sync", "async"])
def prefetch(request: pytest.FixtureRequest) -> Callable[[Verifier], Awaitable[None]]:
    """A required prefetch through the driver under test."""

    async def run(verifier: Verifier) -> None:
        if request.param == "sync":
            await asyncio.to_thread(verifier.prefetch, required=True)
        else:
            await verifier.aprefetch(required=True)

    return run


@contextlib.asynccontextmanager
async def serving(
    keys: list[dict[str, Any]], idp: LocalIssuer, clock: FakeClock
) -> AsyncIterator[tuple[Verifier, JWKSKeys, JWKSServer]]:
    """A verifier naming no algorithms, on ``keys`` served as a JWKS over HTTP."""
    with JWKSServer(lambda: {"keys": keys}) as srv:
        source = JWKSKeys(srv.url, clock=clock, timeout=2.0)
        verifier = Verifier(keys=source, issuer=idp.issuer, audience=idp.audience, clock=clock)
        try:
            yield verifier, source, srv
        finally:
            await source.aclose()
            source.close()


def mint(idp: LocalIssuer, kind: str, kid: str, alg: str | None = None) -> str:
    return encode(idp.claims(), key(kind), alg or kind, header={"kid": kid})


def skipping(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith("skipping JWKS entry")
    ]


# F1 ------------------------------------------------------------------------------------------


async def test_issue25_review_skipped_entry_warns_once_not_at_every_attacker_triggered_refetch(
    idp: LocalIssuer, clock: FakeClock, drive: Drive, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry jwt_guard cannot use (ES256K) was a WARNING at every fetch, and anyone makes a
    fetch per cooldown with a made-up kid: the same line for ever. Once per source while the
    entry stays published; the repeats at DEBUG."""
    good = public_jwk(key("RS256"), kid="good")
    odd = public_jwk(key("ES256"), kid="odd") | {"alg": "ES256K"}
    with caplog.at_level(logging.DEBUG, logger="jwt_guard"):
        async with serving([good, odd], idp, clock) as (verifier, _, srv):
            assert await drive(verifier, mint(idp, "RS256", "good"))
            for n in range(5):
                clock.advance(31)  # past the unknown-kid cooldown: each one refetches
                with pytest.raises(KeyNotFound):
                    await drive(verifier, mint(idp, "RS256", f"made-up-{n}"))
            assert srv.count == 6
            url = srv.url
    lines = skipping(caplog)
    assert [level for level, _ in lines] == [logging.WARNING] + [logging.DEBUG] * 5
    assert lines[0][1] == (
        f"skipping JWKS entry 1 from {url}: alg 'ES256K' is not a signature algorithm "
        "jwt_guard verifies (ES256, ES384, ES512, Ed25519, Ed448, EdDSA, PS256, PS384, PS512, "
        "RS256, RS384, RS512)"
    )


async def test_issue25_review_skipped_entry_warns_again_when_it_comes_back(
    idp: LocalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Once per state, as the "no key fits" warning: removed and published again, it is news.
    good = public_jwk(key("RS256"), kid="good")
    odd = public_jwk(key("ES256"), kid="odd") | {"alg": "ES256K"}
    keys = [good, odd]
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        async with serving(keys, idp, clock) as (_, source, _srv):
            for published in ([good, odd], [good], [good, odd], [good, odd]):
                keys[:] = published
                await source.aprefetch()
                source.prefetch()
    assert len(skipping(caplog)) == 2


# F2 ------------------------------------------------------------------------------------------


async def test_issue25_review_published_private_key_with_use_enc_is_a_warning(
    idp: LocalIssuer,
    clock: FakeClock,
    prefetch: Callable[[Verifier], Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A provider publishing its encryption key's private part has leaked a secret: skipped
    with a WARNING that says so (588ba77 made every failure of a "use": "enc" entry DEBUG).
    A public encryption key stays quiet."""
    leaked = json.loads(RSAAlgorithm.to_jwk(key("RS256"))) | {
        "kid": "enc-1",
        "use": "enc",
        "alg": "RSA-OAEP",
    }
    public_enc = public_jwk(key("RS256"), kid="enc-2", alg="RSA-OAEP") | {"use": "enc"}
    good = public_jwk(key("ES256"), kid="good")
    with caplog.at_level(logging.DEBUG, logger="jwt_guard"):
        async with serving([good, leaked, public_enc], idp, clock) as (verifier, _, _srv):
            await prefetch(verifier)
    lines = skipping(caplog)
    assert [level for level, _ in lines] == [logging.WARNING, logging.DEBUG]
    assert "JWK contains private key material" in lines[0][1]
    assert "alg 'RSA-OAEP'" in lines[1][1]


# F3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["alg", "use", "key_ops"])
async def test_issue25_review_jwk_member_null_is_refused_like_kid_null(
    idp: LocalIssuer, clock: FakeClock, drive: Drive, member: str
) -> None:
    """RFC 7517 §4.2-4.4: "alg" is a string, "use" a string, "key_ops" an array when present.
    {"alg": null} was read as "no alg", so the key verified the RS256 its type implies, while
    {"kid": null} is refused: a null member is not an absent one."""
    nulled = public_jwk(key("RS256"), kid="k") | {member: None}
    good = public_jwk(key("ES256"), kid="good")
    async with serving([good, nulled], idp, clock) as (verifier, source, _):
        with pytest.raises(KeyNotFound):
            await drive(verifier, mint(idp, "RS256", "k"))
        assert source.stats.key_ids == ("good",)
    with pytest.raises(ConfigurationError, match=f"JWK {member} must be"):
        StaticKeys([nulled])


# F4 ------------------------------------------------------------------------------------------


async def test_issue25_review_own_mode_details_name_only_algorithms_the_keys_verify(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    """With one issuer following its keys (RS256 only) and one naming HS256, a refused alg's
    detail listed HS256 as allowed *and* said "never HS*"; an HS256 token routed to the issuer
    following its keys was refused with all twelve asymmetric algorithms allowed, PS512 and
    ES384 among them, none of which its keys verify."""
    with JWKSServer({"keys": [public_jwk(key("RS256"), kid="k")]}) as srv:
        source = JWKSKeys(srv.url, clock=clock, timeout=2.0)
        hs = StaticKeys.from_secret(b"s" * 32)
        verifier = Verifier(
            issuers=[
                TrustedIssuer(idp.issuer, source, audience=idp.audience),
                TrustedIssuer("https://hs.test", hs, algorithms=["HS256"], audience="x"),
            ],
            clock=clock,
        )
        try:
            unknown = compact({"alg": "XS256", "kid": "k"}, idp.claims(), b"x")
            with pytest.raises(AlgorithmNotAllowed) as caught:
                await drive(verifier, unknown)
            assert caught.value.detail["allowed"] == ["HS256"]  # the keys: not fetched yet
            assert caught.value.detail["reason"] == (
                "no algorithms configured for https://idp.test: each published key's own is "
                "accepted there (RFC 8725 §3.1); no key set fetched yet"
            )
            assert await drive(verifier, mint(idp, "RS256", "k"))
            with pytest.raises(AlgorithmNotAllowed) as caught:
                await drive(verifier, unknown)
            assert caught.value.detail["allowed"] == ["HS256", "RS256"]
            assert "never HS*" not in caught.value.detail["reason"]
            routed = forge({"alg": "HS256", "kid": "k"}, idp.claims(), b"s" * 32, "HS256")
            with pytest.raises(AlgorithmNotAllowed) as caught:
                await drive(verifier, routed)
            assert caught.value.detail == {
                "alg": "HS256",
                "allowed": ["RS256"],
                "reason": "no algorithms configured: each published key's own is accepted, "
                "never HS* or none (RFC 8725 §3.1)",
                "iss": idp.issuer,
            }
        finally:
            await source.aclose()
            source.close()


async def test_issue25_review_single_issuer_own_mode_header_refusal_lists_the_keys_algs(
    idp: LocalIssuer, clock: FakeClock, drive: Drive
) -> None:
    async with serving([public_jwk(key("RS256"), kid="k")], idp, clock) as (verifier, _, _s):
        unknown = compact({"alg": "none", "kid": "k"}, idp.claims(), b"")
        with pytest.raises(AlgorithmNotAllowed) as caught:
            await drive(verifier, unknown + "x")
        assert caught.value.detail["allowed"] == []
        assert caught.value.detail["reason"].endswith("; no key set fetched yet")
        assert await drive(verifier, mint(idp, "RS256", "k"))
        with pytest.raises(AlgorithmNotAllowed) as caught:
            await drive(verifier, unknown + "x")
        assert caught.value.detail["allowed"] == ["RS256"]  # not PS256, ES384...
        assert "never HS* or none" in caught.value.detail["reason"]


# F5 ------------------------------------------------------------------------------------------


def test_issue25_review_unsupported_alg_of_a_public_key_lists_no_hs() -> None:
    # A JWKS is never used for HS*: offering HS256 as a fix for a public key points nowhere.
    with pytest.raises(ValueError, match="not a signature algorithm") as caught:
        JWK.from_dict(public_jwk(key("ES256"), kid="odd") | {"alg": "ES256K"})
    assert "RS256" in str(caught.value)
    assert "HS256" not in str(caught.value)


# Also: Flask's empty ALGORITHMS, Entra's multi-tenant presets ---------------------------------


@pytest.mark.parametrize("value", [[], " ", "", ","])
def test_issue25_review_flask_empty_algorithms_is_refused_like_the_verifier_s(
    value: Any,
) -> None:
    """JWT_GUARD_ALGORITHMS = [] (or blank) fell back to "the keys decide" without a word,
    while Verifier(algorithms=[]) is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="non-empty string or list of strings"):
        Verifier(keys=JWKSKeys("https://idp.test/jwks"), audience="a", algorithms=[])
    app = Flask(__name__)
    app.config.update(
        JWT_GUARD_ISSUER="https://idp.test",
        JWT_GUARD_AUDIENCE="api",
        JWT_GUARD_JWKS_URL="https://idp.test/jwks",
        JWT_GUARD_ALGORITHMS=value,
    )
    with pytest.raises(ConfigurationError, match="non-empty string or list of strings"):
        JWTGuard(app)


async def test_issue25_review_entra_organizations_follows_the_keys_like_one_tenant(
    drive: Drive,
) -> None:
    """entra_id("organizations") named RS256 while entra_id(tenant_id) follows the keys: a
    tenant whose published key is ES256 was refused by one and accepted by the other."""
    tenant = "11111111-1111-4111-8111-111111111111"
    issuer = LocalIssuer(algorithm="ES256", kid="kid-es", audience="api://orders")
    with TenantsServer({tenant: issuer}) as server:
        trusted = providers.entra_id(
            "organizations",
            audience="api://orders",
            tenants=[tenant],
            jwks_url=f"{server.base_url}/{{tid}}/keys",
            allow_http=True,
        )
        verifier = Verifier(issuers=[trusted])
        try:
            token = issuer.mint(
                issuer=f"https://login.microsoftonline.com/{tenant}/v2.0", tid=tenant
            )
            assert (await drive(verifier, token)).subject
        finally:
            await verifier.aclose()
            verifier.close()
    # Keys of your own (a shared StaticKeys): RS256, as the single-tenant preset's.
    shared = providers.entra_id(
        "organizations", audience="api://orders", tenants=[tenant], keys=issuer.keys()
    )
    assert shared.algorithms == ("RS256",)
