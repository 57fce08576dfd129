"""Multi-tenant issuers (issue 25, item 7): an issuer template with an allow-list of tenants or
``any_tenant`` with a validator; each tenant's key source made on first use, bounded in number;
a tenant that is not allowed costs no fetch; the tenant checked before it goes into a URL;
``entra_id("organizations" | "common")`` built on it.

Against real HTTP servers on 127.0.0.1 serving several tenants' discovery documents and JWKS
(``tests.servers.TenantsServer``), on both drivers and both adapters, and after a fork.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwt_guard import (
    AlgorithmNotAllowed,
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    IssuerInvalid,
    JWKSKeys,
    KeyNotFound,
    KeySourceUnavailable,
    MemoryDenylist,
    Principal,
    StaticKeys,
    TenantIssuer,
    TenantKeys,
    TokenRevoked,
    TrustedIssuer,
    Verifier,
    providers,
)
from jwt_guard._core.tenants import DEFAULT_MAX_TENANTS
from jwt_guard.testing import LocalIssuer, compact

from .apps import starlette_app
from .conftest import AppFactory, assert_no_leak, bearer, fetch_over
from .forking import in_child
from .servers import TenantsServer, run_uvicorn

T1 = "11111111-1111-4111-8111-111111111111"
T2 = "22222222-2222-4222-8222-222222222222"
T3 = "33333333-3333-4333-8333-333333333333"  # served, but never allowed
CONSUMERS = providers.ENTRA_CONSUMERS_TENANT
ENTRA = "https://login.microsoftonline.com/{tid}/v2.0"

Verify = Callable[[Verifier, str], Awaitable[Principal]]


@pytest.fixture(scope="module")
def _keys() -> dict[str, LocalIssuer]:
    # Key generation is the slow part: one signing key per tenant for the module.
    return {
        tenant: LocalIssuer(algorithm="RS256", kid=f"kid-{tenant[:4]}")
        for tenant in (T1, T2, T3, CONSUMERS)
    }


@pytest.fixture
def idp(_keys: dict[str, LocalIssuer]) -> Iterator[TenantsServer]:
    """Four tenants of one provider, each with its own key, on one loopback port."""
    with TenantsServer(_keys) as server:
        for tenant, issuer in _keys.items():
            issuer.issuer = server.issuer(tenant)
            issuer.audience = "api://orders"
        yield server


@pytest.fixture(params=["verify", "averify"])
def verify(request: pytest.FixtureRequest) -> Verify:
    """Both drivers: ``verify`` (sync, WSGI) and ``averify`` (async, ASGI)."""

    async def run(verifier: Verifier, token: str) -> Principal:
        if request.param == "verify":
            return verifier.verify(token)
        return await verifier.averify(token)

    return run


async def close(verifier: Verifier) -> None:
    await verifier.aclose()
    verifier.close()


def entra(server: TenantsServer, tenant_id: str = "organizations", **options: Any) -> Verifier:
    """An Entra multi-tenant verifier whose tenants' JWKS are the local server's."""
    trusted = providers.entra_id(
        tenant_id,  # type: ignore[arg-type]
        audience="api://orders",
        jwks_url=f"{server.base_url}/{{tid}}/keys",
        **options,
    )
    return Verifier(issuers=[trusted])


def among(*tenants: str) -> dict[str, Any]:
    """Any tenant of these (a validator): an allow-list keeps every listed tenant, so a bound
    below it is only for ``any_tenant``."""
    return {"any_tenant": True, "validate_tenant": lambda tenant: tenant in tenants}


def entra_token(idp: TenantsServer, tenant: str, **claims: Any) -> str:
    claims.setdefault("tid", tenant)
    return idp.tenants[tenant].mint(issuer=ENTRA.format(tid=tenant), **claims)


def discovery(
    server: TenantsServer, *, tenants: Any = None, **options: Any
) -> tuple[Verifier, TenantIssuer]:
    """A generic template over the local server: each tenant's keys through its discovery
    document, whose issuer must be the tenant's (RFC 8414 §3.3)."""
    template = f"{server.base_url}/{{tenant}}/v2.0"
    if tenants is None and "any_tenant" not in options:
        tenants = [T1, T2]
    trusted = TenantIssuer(
        template,
        TenantKeys.discovery(template),
        tenants=tenants,
        audience="api://orders",
        algorithms=["RS256"],
        **options,
    )
    return Verifier(issuers=[trusted]), trusted


# -- the issue's bullets -----------------------------------------------------------------------


async def test_issue25_tenants_with_no_algorithms_named_follow_each_tenant_s_keys(
    idp: TenantsServer, verify: Verify
) -> None:
    # Issue 25, item 1: as with any JWKS or discovery source, each tenant's keys (RS256 here)
    # decide when no algorithm is named; HS256 never.
    template = f"{idp.base_url}/{{tenant}}/v2.0"
    trusted = TenantIssuer(
        template, TenantKeys.discovery(template), tenants=[T1], audience="api://orders"
    )
    verifier = Verifier(issuers=[trusted])
    try:
        assert (await verify(verifier, idp.tenants[T1].mint())).subject
        forged = compact({"alg": "HS256", "kid": "kid-1111"}, idp.tenants[T1].claims(), b"s")
        with pytest.raises(AlgorithmNotAllowed):
            await verify(verifier, forged)
    finally:
        await close(verifier)


async def test_issue25_entra_organizations_accepts_the_listed_tenants(
    idp: TenantsServer, verify: Verify
) -> None:
    verifier = entra(idp, tenants=[T1, T2.upper()])  # a GUID in any case; tokens say lower
    try:
        for tenant in (T1, T2):
            principal = await verify(verifier, entra_token(idp, tenant, scp="orders.read"))
            assert principal.issuer == ENTRA.format(tid=tenant)
            assert principal.scopes == {"orders.read"}
        # Each tenant's own key set, fetched once.
        assert idp.requests == {f"/{T1}/keys": 1, f"/{T2}/keys": 1}
    finally:
        await close(verifier)


async def test_issue25_entra_common_is_built_on_tenant_templates(
    idp: TenantsServer, verify: Verify
) -> None:
    common = entra(idp, "common", tenants=[T1, CONSUMERS])
    try:
        # Personal accounts' tenant, accepted by "common" when listed.
        await verify(common, entra_token(idp, CONSUMERS))
        await verify(common, entra_token(idp, T1))
    finally:
        await close(common)
    with pytest.raises(ConfigurationError, match="not an organization"):
        entra(idp, tenants=[T1, CONSUMERS])
    everyone = entra(idp, any_tenant=True, validate_tenant=lambda tenant: True)
    try:
        with pytest.raises(IssuerInvalid) as caught:
            await verify(everyone, entra_token(idp, CONSUMERS))
        assert caught.value.detail["reason"] == "tenant does not match the tenant pattern"
        assert idp.total == 2  # the two accepted above, nothing for the refused one
    finally:
        await close(everyone)
    for alias in ("common", "organizations"):
        with pytest.raises(ConfigurationError, match="tenants="):
            providers.entra_id(alias, audience="api")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match=CONSUMERS):
        providers.entra_id("consumers", audience="api")


async def test_issue25_a_tenant_not_allowed_causes_no_fetch(
    idp: TenantsServer, verify: Verify, caplog: pytest.LogCaptureFixture
) -> None:
    """T3 is a real tenant of the provider, served, with a valid token signed by its own key:
    not on the allow-list, it is refused before its key source exists."""
    verifier = entra(idp, tenants=[T1])
    try:
        with pytest.raises(IssuerInvalid) as caught:
            await verify(verifier, entra_token(idp, T3))
        assert caught.value.detail["reason"] == "tenant not in the allow-list"
        assert caught.value.detail["tenant"] == T3
        assert caught.value.detail["expected"] == [ENTRA]
        assert idp.total == 0
        assert verifier.key_sources == ()
    finally:
        await close(verifier)


async def test_issue25_any_tenant_asks_the_validator_before_any_fetch(
    idp: TenantsServer, verify: Verify
) -> None:
    asked: list[str] = []
    customers = {T1}

    def is_customer(tenant: str) -> bool:
        asked.append(tenant)
        return tenant in customers

    verifier = entra(idp, any_tenant=True, validate_tenant=is_customer)
    try:
        await verify(verifier, entra_token(idp, T1))
        with pytest.raises(IssuerInvalid) as caught:
            await verify(verifier, entra_token(idp, T2))
        assert caught.value.detail["reason"] == "validate_tenant did not return True"
        assert asked == [T1, T2]
        assert idp.requests == {f"/{T1}/keys": 1}

        def broken(tenant: str) -> bool:
            raise KeyError(tenant)

        failing = entra(idp, any_tenant=True, validate_tenant=broken)
        with pytest.raises(IssuerInvalid) as caught:  # fails closed, never a 500
            await verify(failing, entra_token(idp, T2))
        assert caught.value.detail["reason"] == "validate_tenant raised KeyError"
        assert idp.requests == {f"/{T1}/keys": 1}
    finally:
        await close(verifier)


@pytest.mark.parametrize(
    "tenant",
    [
        "a/../../admin",
        "..",
        "a..b",
        "%2e%2e",
        "x%2Fy",
        "t?x=1",
        "t#frag",
        "evil.example@127.0.0.1",
        "host:80",
        "a\\b",
        "a b",
        "ténant",
        "\uff54\uff45\uff4e\uff41\uff4e\uff54",  # fullwidth "tenant" (NFKC makes it ASCII)
        "-leading",
        "x" * 300,
    ],
)
async def test_ssrf_path_injection_via_iss_is_refused_before_any_fetch(
    idp: TenantsServer, verify: Verify, tenant: str
) -> None:
    """The tenant comes from the token's ``iss``, unverified when the key source is made: it
    must never reach a URL unless it is a plain name, whatever the validator says."""
    asked: list[str] = []

    def anyone(name: str) -> bool:
        asked.append(name)
        return True

    verifier, _ = discovery(idp, any_tenant=True, validate_tenant=anyone)
    prefix = f"{idp.base_url}/"
    try:
        with pytest.raises(IssuerInvalid) as caught:
            await verify(verifier, idp.tenants[T1].mint(issuer=f"{prefix}{tenant}/v2.0"))
        assert caught.value.detail["reason"].startswith("tenant ")
        assert asked == []
        assert idp.total == 0
        assert verifier.key_sources == ()
    finally:
        await close(verifier)


async def test_ssrf_a_tenant_in_the_host_must_be_a_dns_name(verify: Verify) -> None:
    """Auth0 custom domains: the tenant names the server. An IP address or a local name is
    refused (cloud metadata at 169.254.169.254), even when the validator accepts anything."""
    issuer = LocalIssuer(algorithm="ES256", kid="k")
    verifier = Verifier(
        issuers=[
            TenantIssuer(
                "https://{domain}/",
                TenantKeys.jwks("https://{domain}/.well-known/jwks.json"),
                any_tenant=True,
                validate_tenant=lambda domain: True,
                algorithms=["ES256"],
            )
        ]
    )
    try:
        for domain in ("169.254.169.254", "127.0.0.1", "localhost", "metadata"):
            with pytest.raises(IssuerInvalid) as caught:
                await verify(verifier, issuer.mint(issuer=f"https://{domain}/", aud=None))
            assert "host name" in caught.value.detail["reason"]
        assert verifier.key_sources == ()
    finally:
        await close(verifier)


async def test_entra_tid_must_equal_the_tenant_in_iss(idp: TenantsServer, verify: Verify) -> None:
    """Microsoft's guidance for multi-tenant apps: the tenant in ``iss`` is the ``tid``."""
    verifier = entra(idp, tenants=[T1, T2])
    try:
        with pytest.raises(ClaimInvalid) as caught:
            await verify(verifier, entra_token(idp, T1, tid=T2))
        assert caught.value.detail["claim"] == "tid"
        with pytest.raises(ClaimMissing):
            await verify(verifier, entra_token(idp, T1, tid=None))
    finally:
        await close(verifier)


async def test_a_tenants_keys_do_not_verify_another_tenants_tokens(
    idp: TenantsServer, verify: Verify
) -> None:
    """T2's token signed with T1's key (its kid too): T2's own key set has no such key."""
    verifier = entra(idp, tenants=[T1, T2])
    forged = idp.tenants[T1].mint(issuer=ENTRA.format(tid=T2), tid=T2)
    try:
        await verify(verifier, entra_token(idp, T1))
        with pytest.raises(KeyNotFound):
            await verify(verifier, forged)
    finally:
        await close(verifier)


async def test_rfc8414_3_3_each_tenant_discovery_pins_its_issuer(
    idp: TenantsServer, verify: Verify, caplog: pytest.LogCaptureFixture
) -> None:
    """T2's discovery document names T1's issuer: T2's keys are never fetched (503, and the
    mismatch logged), T1 works."""
    idp.discovery_issuer[T2] = idp.issuer(T1)
    verifier, _ = discovery(idp)
    try:
        await verify(verifier, idp.tenants[T1].mint())
        with pytest.raises(KeySourceUnavailable):
            await verify(verifier, idp.tenants[T2].mint())
        assert f"/{T2}/keys" not in idp.requests
        assert "OIDC discovery mismatch" in caplog.text
    finally:
        await close(verifier)


async def test_tenant_sources_are_bounded_and_the_evicted_closed(
    idp: TenantsServer, verify: Verify
) -> None:
    verifier = entra(idp, "common", **among(T1, T2, CONSUMERS), max_tenants=2)
    assert DEFAULT_MAX_TENANTS == 100
    tokens = {t: entra_token(idp, t) for t in (T1, T2, CONSUMERS)}
    try:
        await verify(verifier, tokens[T1])
        first = verifier.key_sources[0]
        assert isinstance(first, JWKSKeys)
        await verify(verifier, tokens[T2])
        await verify(verifier, tokens[CONSUMERS])  # the least recently used, T1, goes
        assert len(verifier.key_sources) == 2
        assert first not in verifier.key_sources
        assert first._sync_client is None and first._own_async == {}  # closed
        # T1's cached token asks a new source for T1, which takes over the retired one's cache
        # (review h5): no fetch before its TTL or cooldown says so.
        await verify(verifier, tokens[T1])
        assert idp.requests[f"/{T1}/keys"] == 1
        assert first not in verifier.key_sources
        assert len(verifier.key_sources) == 2
    finally:
        await close(verifier)


async def test_prefetch_fetches_no_tenant_and_close_closes_each(
    idp: TenantsServer, verify: Verify
) -> None:
    verifier = entra(idp, tenants=[T1, T2])
    verifier.prefetch()
    await verifier.aprefetch()
    assert idp.total == 0  # sources are made when a tenant's first token comes
    await verify(verifier, entra_token(idp, T1))
    (source,) = verifier.key_sources
    await close(verifier)
    assert isinstance(source, JWKSKeys)
    assert source._sync_client is None and source._own_async == {}


async def test_revocation_is_scoped_by_the_tenants_issuer(
    idp: TenantsServer, verify: Verify
) -> None:
    trusted = providers.entra_id(
        "organizations",
        audience="api://orders",
        tenants=[T1, T2],
        jwks_url=f"{idp.base_url}/{{tid}}/keys",
    )
    verifier = Verifier(issuers=[trusted], denylist=MemoryDenylist())
    try:
        token1, token2 = entra_token(idp, T1, sub="alice"), entra_token(idp, T2, sub="alice")
        with pytest.raises(ConfigurationError, match="issuer="):
            verifier.revoke_subject("alice")
        with pytest.raises(ConfigurationError, match="not one this verifier trusts"):
            verifier.revoke_subject("alice", issuer=ENTRA.format(tid=T3))
        verifier.revoke_subject("alice", issuer=ENTRA.format(tid=T1), issued_before=2e9)
        with pytest.raises(TokenRevoked):
            await verify(verifier, token1)
        await verify(verifier, token2)  # the same subject name in another tenant
    finally:
        await close(verifier)


# -- the adapters --------------------------------------------------------------------------


async def test_tenants_through_both_adapters(idp: TenantsServer, make_client: AppFactory) -> None:
    verifier = entra(idp, tenants=[T1, T2])
    client = make_client(verifier)
    try:
        for tenant in (T1, T2):
            answer = await client.get("/me", headers=bearer(entra_token(idp, tenant, sub=tenant)))
            assert answer.status_code == 200, answer.text
            assert answer.json()["sub"] == tenant
        refused = entra_token(idp, T3)
        answer = await client.get("/me", headers=bearer(refused))
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        assert_no_leak(answer, refused, T3, idp.base_url)
        assert f"/{T3}/keys" not in idp.requests
    finally:
        await close(verifier)


# -- after a fork ------------------------------------------------------------------------------


def test_tenants_after_a_fork(tmp_path: Path) -> None:
    """A lock of the tenants' routing held at the fork (another request thread was admitting a
    tenant) stays held in the child unless renewed; the child admits a new tenant and fetches
    its keys on its own connection. Forked with no other thread: the JWKS are served by
    another process."""
    from .test_fork import served_by_another_process

    issuers = {t: LocalIssuer(algorithm="ES256", kid=f"k-{t[:4]}") for t in (T1, T2)}
    for tenant, issuer in issuers.items():
        (tmp_path / tenant).mkdir()
        (tmp_path / tenant / "jwks.json").write_text(json.dumps(issuer.jwks))
    with served_by_another_process({"keys": []}, tmp_path) as url:
        base = url.rsplit("/", 1)[0]
        template = "https://tenants.example/{tenant}"
        trusted = TenantIssuer(
            template,
            TenantKeys.jwks(base + "/{tenant}/jwks.json"),
            tenants=[T1, T2],
            algorithms=["ES256"],
        )
        verifier = Verifier(issuers=[trusted])
        tokens = {t: i.mint(issuer=template.format(tenant=t), aud=None) for t, i in issuers.items()}
        verifier.verify(tokens[T1])  # T1's source made and fetched in the parent
        fetch_over(verifier.key_sources[0])  # type: ignore[arg-type]
        tenants = verifier._config.tenants[0]

        def child() -> bool:
            verifier.clear_cache()
            return verifier.verify(tokens[T1]).issuer == template.format(
                tenant=T1
            ) and verifier.verify(tokens[T2]).issuer == template.format(tenant=T2)

        try:
            assert in_child(child, holding=tenants._lock)
        finally:
            verifier.close()


# -- configuration -------------------------------------------------------------------------


def _keys_for(tenant: str) -> StaticKeys:
    return StaticKeys.from_secret("s" * 32)


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: TenantIssuer("https://idp.example/t", _keys_for, tenants=["a"]), "placeholder"),
        (lambda: TenantIssuer("https://{a}/{b}", _keys_for, tenants=["a"]), "placeholder"),
        (lambda: TenantIssuer("{t}://idp.example/", _keys_for, tenants=["a"]), "http"),
        (lambda: TenantIssuer("https://idp.example/{t}", _keys_for), "tenants="),
        (
            lambda: TenantIssuer("https://idp.example/{t}", _keys_for, any_tenant=True),
            "validate_tenant",
        ),
        (
            lambda: TenantIssuer(
                "https://idp.example/{t}",
                _keys_for,
                tenants=["a"],
                any_tenant=True,
                validate_tenant=bool,
            ),
            "not both",
        ),
        (lambda: TenantIssuer("https://idp.example/{t}", _keys_for, tenants=["a/b"]), "plain"),
        (lambda: TenantIssuer("https://idp.example/{t}", _keys_for, tenants=[]), "at least"),
        (
            lambda: TenantIssuer(
                "https://idp.example/{t}", _keys_for, tenants=["a"], max_tenants=0
            ),
            "max_tenants",
        ),
        (
            lambda: TenantIssuer(
                "https://idp.example/{t}", StaticKeys.from_secret("s" * 32), tenants=["a"]
            ),
            "callable",
        ),
        (
            lambda: TenantIssuer(
                "https://idp.example/{t}",
                TenantKeys.jwks("https://idp.example/{tid}/keys"),
                tenants=["a"],
            ),
            r"\{tid\}",
        ),
        (lambda: TenantKeys.jwks("https://idp.example/keys"), "placeholder"),
        (lambda: TenantKeys.jwks("http://idp.example/{t}/keys"), "https"),
        (lambda: TenantKeys.jwks("https://idp.example/{t}/keys", timeout=-1), "timeout"),
        (
            lambda: Verifier(
                issuers=[
                    TenantIssuer(
                        "https://idp.example/{t}",
                        TenantKeys.jwks("https://idp.example/{t}/keys"),
                        tenants=["a"],
                        algorithms=["HS256"],
                    )
                ]
            ),
            "JWKS",
        ),
        (
            # Discovery for another issuer than the tokens': no token could ever verify.
            lambda: Verifier(
                issuers=[
                    TenantIssuer(
                        "https://idp.example/{t}",
                        TenantKeys.discovery("https://other.example/{t}"),
                        tenants=["a"],
                        algorithms=["RS256"],
                    )
                ]
            ),
            "another issuer",
        ),
        (
            lambda: providers.entra_id(
                "organizations",
                audience="api",
                tenants=["contoso.onmicrosoft.com"],
            ),
            "GUID",
        ),
    ],
)
def test_misconfigured_tenants_are_refused_at_start_up(
    build: Callable[[], Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_an_async_tenant_validator_is_refused() -> None:
    async def check(tenant: str) -> bool:
        return True

    with pytest.raises(ConfigurationError, match="plain function"):
        TenantIssuer(
            "https://idp.example/{t}",
            _keys_for,
            any_tenant=True,
            validate_tenant=check,  # type: ignore[arg-type]
        )


def test_tenants_beside_trusted_issuers() -> None:
    """A fixed issuer and a template in one verifier: the exact issuer first, then the
    template; an issuer matching neither is refused naming both."""
    single = LocalIssuer(issuer="https://single.example", algorithm="ES256", kid="s")
    tenant = LocalIssuer(algorithm="ES256", kid="t")
    verifier = Verifier(
        algorithms=["ES256"],
        issuers=[
            TrustedIssuer("https://single.example", single.keys()),
            TenantIssuer("https://multi.example/{t}", lambda t: tenant.keys(), tenants=["a"]),
        ],
    )
    assert verifier.verify(single.mint(aud=None)).issuer == "https://single.example"
    assert verifier.verify(tenant.mint(issuer="https://multi.example/a", aud=None))
    with pytest.raises(IssuerInvalid) as caught:
        verifier.verify(tenant.mint(issuer="https://elsewhere.example/a", aud=None))
    assert caught.value.detail["expected"] == [
        "https://multi.example/{t}",
        "https://single.example",
    ]
    assert isinstance(verifier.key_sources[0], StaticKeys)


async def test_a_key_source_shared_by_tenants_is_not_closed_while_one_uses_it(
    idp: TenantsServer, verify: Verify
) -> None:
    """``keys=`` one source for every tenant (a provider's common JWKS): a tenant leaving the
    LRU does not close it under the tenant that stays."""
    shared = JWKSKeys(f"{idp.base_url}/{T1}/keys")
    trusted = providers.entra_id(
        "organizations", audience="api://orders", **among(T1, T2), keys=shared, max_tenants=1
    )
    verifier = Verifier(issuers=[trusted])
    signer = idp.tenants[T1]
    try:
        await verify(verifier, signer.mint(issuer=ENTRA.format(tid=T1), tid=T1))
        await verify(verifier, signer.mint(issuer=ENTRA.format(tid=T2), tid=T2))  # T1 leaves
        assert verifier.key_sources == (shared,)
        assert verifier._retired == []
        assert idp.requests == {f"/{T1}/keys": 1}
    finally:
        await close(verifier)


def test_a_key_factory_that_raises_is_a_configuration_error() -> None:
    """At start-up when it fails for an allowed tenant; at a request for a tenant a validator
    accepts (a deployment bug, answered 500 and logged, never a token's fault nor a bare
    exception)."""
    idp = LocalIssuer(algorithm="ES256", kid="k")

    def factory(tenant: str) -> StaticKeys:
        if tenant not in ("a", "tenant"):  # "tenant": any_tenant's start-up sample
            raise ValueError(tenant)
        return idp.keys()

    template = "https://idp.example/{t}"
    with pytest.raises(ConfigurationError, match="keys= raised ValueError"):
        Verifier(issuers=[TenantIssuer(template, factory, tenants=["0"], algorithms=["ES256"])])
    verifier = Verifier(
        issuers=[TenantIssuer(template, factory, **among("a", "b"), algorithms=["ES256"])]
    )
    assert verifier.verify(idp.mint(issuer="https://idp.example/a", aud=None))
    with pytest.raises(ConfigurationError, match=r"keys= raised ValueError .*idp\.example/\{t\}"):
        verifier.verify(idp.mint(issuer="https://idp.example/b", aud=None))


async def test_each_tenants_fetches_are_counted_in_the_metrics(
    idp: TenantsServer, verify: Verify
) -> None:
    """A tenant's key source, made after the verifier, counts on the verifier's instruments."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from jwt_guard import Metrics

    from .test_metrics import collect

    reader = InMemoryMetricReader()
    metrics = Metrics(meter_provider=MeterProvider(metric_readers=[reader]))
    trusted = providers.entra_id(
        "organizations",
        audience="api://orders",
        tenants=[T1, T2],
        jwks_url=f"{idp.base_url}/{{tid}}/keys",
    )
    verifier = Verifier(issuers=[trusted], metrics=metrics)
    try:
        for tenant in (T1, T2):
            await verify(verifier, entra_token(idp, tenant))
        fetches = collect(reader)["jwt_guard.jwks.fetches"]
        for tenant in (T1, T2):
            name = ("jwt_guard.key_source", f"{idp.base_url}/{tenant}/keys")
            assert fetches[(name, ("jwt_guard.outcome", "success"))] == 1
    finally:
        await close(verifier)


# -- Review h5 (issue 25, item 7) ---------------------------------------------------------------


class SlowTenants(TenantsServer):
    """A TenantsServer whose answers for the paths in ``slow`` take ``delay`` seconds."""

    def __init__(self, tenants: Any) -> None:
        super().__init__(tenants)
        self.slow: set[str] = set()
        self.delay = 1.5

    def _answer(self, path: str) -> tuple[int, bytes]:
        if path in self.slow:
            time.sleep(self.delay)
        return super()._answer(path)


@pytest.fixture
def slow_idp(_keys: dict[str, LocalIssuer]) -> Iterator[SlowTenants]:
    with SlowTenants(_keys) as server:
        for tenant, issuer in _keys.items():
            issuer.issuer = server.issuer(tenant)
            issuer.audience = "api://orders"
        yield server


@pytest.fixture(params=["verify", "averify"])
def off_loop(request: pytest.FixtureRequest) -> Verify:
    """Both drivers, the sync one in a thread (so a slow fetch does not stop the loop)."""

    async def run(verifier: Verifier, token: str) -> Principal:
        if request.param == "verify":
            return await asyncio.to_thread(verifier.verify, token)
        return await verifier.averify(token)

    return run


async def test_issue25_review_evicting_a_tenant_mid_fetch_gives_its_waiter_our_answer_async(
    slow_idp: SlowTenants,
) -> None:
    """T1's first token waits on its (slow) JWKS fetch; a token of another allowed tenant evicts
    T1 (max_tenants=1). Closing T1's source cancelled the shared fetch: the waiting request got
    asyncio.CancelledError (a 500 under uvicorn). Retiring lets the fetch end: T1 is accepted."""
    slow_idp.slow.add(f"/{T1}/keys")
    verifier = entra(slow_idp, **among(T1, T2), max_tenants=1)
    try:
        victim = asyncio.ensure_future(verifier.averify(entra_token(slow_idp, T1)))
        await asyncio.sleep(0.3)  # T1's fetch in flight
        await verifier.averify(entra_token(slow_idp, T2))  # evicts T1
        assert isinstance(await victim, Principal)
    finally:
        await close(verifier)


def test_issue25_review_evicting_a_tenant_mid_fetch_does_not_fail_its_waiter_sync(
    slow_idp: SlowTenants,
) -> None:
    """The sync twin: close() aborted T1's fetch in flight, so T1's good token got a 503 while
    the provider was up (anyone naming another allowed tenant could do it)."""
    slow_idp.slow.add(f"/{T1}/keys")
    verifier = entra(slow_idp, **among(T1, T2), max_tenants=1)
    outcome: list[object] = []

    def victim() -> None:
        try:
            outcome.append(verifier.verify(entra_token(slow_idp, T1)))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=victim)
    try:
        thread.start()
        time.sleep(0.3)
        verifier.verify(entra_token(slow_idp, T2))
        thread.join(10)
        (result,) = outcome
        assert isinstance(result, Principal), f"T1's valid token refused: {result!r}"
    finally:
        verifier.close()
    (source,) = verifier.key_sources
    assert isinstance(source, JWKSKeys) and source._sync_client is None


async def test_issue25_review_evicting_a_tenant_mid_fetch_is_never_a_500_under_uvicorn(
    slow_idp: SlowTenants,
) -> None:
    """The same through a real uvicorn: the victim's correctly signed token got a 500."""
    slow_idp.slow.add(f"/{T1}/keys")
    verifier = entra(slow_idp, **among(T1, T2), max_tenants=1)
    with run_uvicorn(starlette_app(verifier)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            victim = asyncio.ensure_future(
                client.get("/me", headers=bearer(entra_token(slow_idp, T1)))
            )
            await asyncio.sleep(0.3)
            await client.get("/me", headers=bearer(entra_token(slow_idp, T2)))
            answer = await victim
    assert answer.status_code == 200, (answer.status_code, answer.text)


async def test_issue25_review_a_fetch_cancelled_at_shutdown_is_a_503_for_its_waiter(
    slow_idp: SlowTenants,
) -> None:
    """The verifier's aclose (lifespan shutdown) cancels a shared fetch: a request still
    waiting on it gets KeySourceUnavailable, not CancelledError."""
    slow_idp.slow.add(f"/{T1}/keys")
    verifier = entra(slow_idp, tenants=[T1])
    waiter = asyncio.ensure_future(verifier.averify(entra_token(slow_idp, T1)))
    await asyncio.sleep(0.3)
    await close(verifier)
    with pytest.raises(KeySourceUnavailable):
        await waiter


async def test_issue25_review_a_source_retired_before_its_fetch_closes_the_client_it_makes(
    idp: TenantsServer, off_loop: Verify
) -> None:
    """A request routed to T1, T1 retired before its keys() ran: the fetch on the retired
    source made a client nothing closed. It is closed when that fetch ends."""
    verifier = entra(idp, **among(T1, T2), max_tenants=1)
    try:
        policy = verifier._route({"iss": ENTRA.format(tid=T1), "tid": T1})
        await off_loop(verifier, entra_token(idp, T2))  # T1's source retired, never fetched
        source = policy.keys
        assert isinstance(source, JWKSKeys)
        await asyncio.to_thread(source.keys, None)
        await source.akeys(None)
        assert source._sync_client is None and source._own_async == {}
    finally:
        await close(verifier)


@pytest.mark.parametrize("host", ["127.0.0.0x1", "127.0.0x1", "0177.0.0.0x1", "169.254.169.0xfe"])
async def test_issue25_review_ssrf_a_host_tenant_in_hex_or_octal_ipv4_form_is_refused(
    slow_idp: SlowTenants, off_loop: Verify, host: str
) -> None:
    """README: where the tenant is the host, 'a DNS name with a dot, not an IP address'. The rule
    looked only at whether the last label was all digits; getaddrinfo (inet_aton) reads
    127.0.0.0x1, 127.0.0x1 and 0177.0.0.0x1 as 127.0.0.1 (169.254.169.0xfe: cloud metadata)."""
    port = slow_idp.base_url.rsplit(":", 1)[1]
    signer = LocalIssuer(algorithm="ES256", kid="k")
    verifier = Verifier(
        issuers=[
            TenantIssuer(
                f"http://{{domain}}:{port}/",
                TenantKeys.jwks(f"http://{{domain}}:{port}/keys", allow_http=True),
                any_tenant=True,
                validate_tenant=lambda domain: True,
                algorithms=["ES256"],
            )
        ]
    )
    try:
        with pytest.raises(IssuerInvalid) as caught:
            await off_loop(verifier, signer.mint(issuer=f"http://{host}:{port}/", aud=None))
        assert "IP address" in caught.value.detail["reason"]
        assert slow_idp.total == 0, slow_idp.requests
        assert verifier.key_sources == ()
    finally:
        await close(verifier)


@pytest.mark.parametrize("host", ["127.0.0x1", "login.1acme", "12.example.com", "LOGIN.acme.test"])
def test_issue25_review_host_tenants_are_dns_names_in_lowercase(host: str) -> None:
    """The host rule, in TenantKeys and for an allow-list (a ConfigurationError at start-up)."""
    keys = TenantKeys.jwks("https://{domain}/keys")
    assert keys.tenant_problem(host) is not None
    assert keys.tenant_problem("login.acme.test") is None
    with pytest.raises(ConfigurationError, match="cannot be a tenant"):
        TenantIssuer("https://{domain}/", keys, tenants=[host], algorithms=["ES256"])


async def test_issue25_review_ssrf_the_host_rule_holds_with_a_key_factory_of_ones_own(
    slow_idp: SlowTenants, off_loop: Verify
) -> None:
    """The host rule lived in TenantKeys only: with the issuer template's tenant in the host and
    a keys= callable of the app's own, a token naming 127.0.0.1 made a source and a fetch."""
    port = slow_idp.base_url.rsplit(":", 1)[1]
    signer = LocalIssuer(algorithm="ES256", kid="k")
    verifier = Verifier(
        issuers=[
            TenantIssuer(
                "https://{domain}/",
                lambda domain: JWKSKeys(f"http://{domain}:{port}/keys", allow_http=True),
                any_tenant=True,
                validate_tenant=lambda domain: True,
                algorithms=["ES256"],
            )
        ]
    )
    try:
        with pytest.raises(IssuerInvalid) as caught:
            await off_loop(verifier, signer.mint(issuer="https://127.0.0.1/", aud=None))
        assert "IP address" in caught.value.detail["reason"]
        assert slow_idp.total == 0
        assert verifier.key_sources == ()
    finally:
        await close(verifier)


async def test_issue25_review_case_variants_of_one_host_tenant_make_no_source(
    slow_idp: SlowTenants, off_loop: Verify
) -> None:
    """LOGIN.acme.test and login.acme.test are one server. A validator comparing host names
    case-insensitively let one customer's domain be named in 2**n spellings: each a new
    tenant, a new key source and a fresh fetch. A host tenant must be lowercase."""
    port = slow_idp.base_url.rsplit(":", 1)[1]
    customers = {"login.acme.test"}
    verifier = Verifier(
        issuers=[
            TenantIssuer(
                f"http://{{domain}}:{port}/",
                TenantKeys.jwks(f"http://{{domain}}:{port}/keys", allow_http=True),
                any_tenant=True,
                validate_tenant=lambda domain: domain.lower() in customers,
                algorithms=["ES256"],
                max_tenants=3,
            )
        ]
    )
    signer = LocalIssuer(algorithm="ES256", kid="k")
    try:
        for spelling in ("LOGIN.acme.test", "Login.acme.test", "lOgin.acme.test"):
            token = signer.mint(issuer=f"http://{spelling}:{port}/", aud=None)
            with pytest.raises(IssuerInvalid) as caught:
                await off_loop(verifier, token)
            assert "lowercase" in caught.value.detail["reason"]
        assert verifier.key_sources == ()
    finally:
        await close(verifier)


def test_issue25_review_a_key_factory_failing_for_a_later_allowed_tenant_is_refused() -> None:
    """The factory was tried on the first allowed tenant only: the second's tokens were a 500
    (ConfigurationError at request time) for every request. Making a source does no I/O, so
    every listed tenant is tried at start-up."""
    acme = LocalIssuer(algorithm="ES256", kid="k")
    sources = {"acme": acme.keys()}
    with pytest.raises(ConfigurationError, match="keys= raised KeyError"):
        Verifier(
            issuers=[
                TenantIssuer(
                    "https://sso.example.com/realms/{realm}",
                    lambda realm: sources[realm],  # globex forgotten
                    tenants=["acme", "globex"],
                    algorithms=["ES256"],
                )
            ]
        )


def test_issue25_review_max_tenants_below_the_allow_list_is_refused_at_start_up(
    idp: TenantsServer,
) -> None:
    """With an allow-list longer than max_tenants, anyone could name the allowed tenants in turn
    (tenant ids are no secret; the fetch comes before the signature check): each request
    evicted one tenant and fetched again. Refused; without max_tenants every listed tenant is
    kept."""
    with pytest.raises(ConfigurationError, match="max_tenants=2 is less than the 3 tenants"):
        entra(idp, tenants=[T1, T2, T3], max_tenants=2)


async def test_issue25_review_cycling_more_tenants_than_max_tenants_is_not_a_fetch_per_request(
    idp: TenantsServer, verify: Verify
) -> None:
    """any_tenant with a validator accepting more tenants than max_tenants: forged tokens naming
    them in turn made a new source, and a fetch, per request (the cooldown started afresh with
    each source). A tenant that comes back takes over its retired source's cache."""
    verifier = entra(idp, **among(T1, T2, T3), max_tenants=2)
    forger = LocalIssuer(algorithm="RS256", kid="nope")
    try:
        for _ in range(5):
            for tenant in (T1, T2, T3):
                token = forger.mint(issuer=ENTRA.format(tid=tenant), tid=tenant, aud="api://orders")
                with pytest.raises(KeyNotFound):
                    await verify(verifier, token)
        assert idp.total == 3, idp.requests  # one per tenant, then the cooldown holds
        # And a legitimate tenant's token still verifies with its kept keys.
        assert await verify(verifier, entra_token(idp, T1))
        assert idp.total == 3
    finally:
        await close(verifier)


async def test_issue25_review_a_validator_returning_an_awaitable_refuses_without_a_warning(
    verify: Verify, caplog: pytest.LogCaptureFixture
) -> None:
    """A validator returning a coroutine (an async lookup behind a plain lambda) refused the
    tenant with 'did not return True' and Python warned that the coroutine was never awaited
    (an error under filterwarnings=error). It is closed and named as the reason."""

    async def lookup(tenant: str) -> bool:
        return True

    signer = LocalIssuer(algorithm="ES256", kid="k")
    verifier = Verifier(
        issuers=[
            TenantIssuer(
                "https://idp.example/{t}",
                lambda t: signer.keys(),
                any_tenant=True,
                validate_tenant=lambda t: lookup(t),
                algorithms=["ES256"],
            )
        ]
    )
    with pytest.raises(IssuerInvalid) as caught:
        await verify(verifier, signer.mint(issuer="https://idp.example/acme", aud=None))
    assert "returned an awaitable" in caught.value.detail["reason"]
    assert "plain function returning True" in caplog.text
