"""Discovery from either metadata document: OpenID Connect discovery or RFC 8414 (issue 26,
item 4), against real servers on 127.0.0.1 that each serve one document only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jwt_guard import ConfigurationError, KeySourceUnavailable, OIDCDiscovery, Verifier
from jwt_guard._sources.discovery import metadata_urls
from jwt_guard.testing import LocalIssuer

from .conftest import FakeClock
from .servers import IssuerSite

OIDC = "/.well-known/openid-configuration"
OAUTH = "/.well-known/oauth-authorization-server"


@pytest.fixture
def idp(clock: FakeClock) -> LocalIssuer:
    return LocalIssuer(algorithm="ES256", clock=clock, kid="k1")


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["own client", "client object"])
async def client(request: pytest.FixtureRequest, driver: str) -> AsyncIterator[Any]:
    """``None`` (the source's own clients), or an httpx client of the driver's kind."""
    if request.param == "own client":
        yield None
    elif driver == "sync":
        with httpx.Client() as sync_client:
            yield sync_client
    else:
        async with httpx.AsyncClient() as async_client:
            yield async_client


async def verify(verifier: Verifier, token: str, driver: str) -> Any:
    return verifier.verify(token) if driver == "sync" else await verifier.averify(token)


async def close(source: OIDCDiscovery) -> None:
    source.close()
    await source.aclose()


def test_metadata_urls_follow_spring_security_order() -> None:
    # OpenID appended, OpenID inserted (RFC 8414 §5), RFC 8414 inserted (§3.1, the issuer's
    # terminating slash removed first); one address when the first two are the same.
    assert metadata_urls("https://as.example/tenant/") == (
        "https://as.example/tenant" + OIDC,
        "https://as.example" + OIDC + "/tenant",
        "https://as.example" + OAUTH + "/tenant",
    )
    assert metadata_urls("https://as.example") == (
        "https://as.example" + OIDC,
        "https://as.example" + OAUTH,
    )


@pytest.mark.parametrize(
    ("issuer_path", "published"),
    [
        ("/tenant", "/tenant" + OIDC),  # OpenID Connect Discovery 1.0 §4
        ("/tenant", OIDC + "/tenant"),  # RFC 8414 §5: OpenID configuration, path inserted
        ("/tenant", OAUTH + "/tenant"),  # RFC 8414 §3.1
        ("", OAUTH),  # RFC 8414 only, an issuer without a path
    ],
)
async def test_rfc8414_s3_keys_found_from_whichever_document_the_issuer_publishes(
    idp: LocalIssuer, clock: FakeClock, driver: str, client: Any, issuer_path: str, published: str
) -> None:
    with IssuerSite(lambda: idp.jwks, issuer_path) as site:
        site.routes[published] = 200
        source = OIDCDiscovery(site.issuer, clock=clock, client=client)
        verifier = idp.verifier(keys=source, issuer=site.issuer, cache_size=0)
        assert await verify(verifier, idp.mint(issuer=site.issuer), driver)
        # Tried in Spring Security's order, each address before the published one a 404.
        tried = [u.removeprefix(site.origin) for u in metadata_urls(site.issuer)]
        assert site.requests == [*tried[: tried.index(published) + 1], "/jwks.json"]
        await close(source)


async def test_rfc8414_s3_3_the_issuer_is_pinned_in_an_oauth_document(
    idp: LocalIssuer, clock: FakeClock, driver: str
) -> None:
    with IssuerSite(lambda: idp.jwks, "/tenant") as site:
        # Another issuer's address on the same origin serves a document naming site.issuer.
        site.routes[OAUTH + "/other"] = 200
        configured = site.origin + "/other"
        source = OIDCDiscovery(configured, clock=clock)
        verifier = idp.verifier(keys=source, issuer=configured, cache_size=0)
        with pytest.raises(KeySourceUnavailable):
            await verify(verifier, idp.mint(issuer=configured), driver)
        assert "/jwks.json" not in site.requests  # no keys from a document we do not trust
        assert (source.stats.last_failure_reason or "").startswith("OIDC discovery mismatch")
        with pytest.raises(ConfigurationError, match=r"RFC 8414 §3\.3"):
            if driver == "sync":
                source.prefetch(required=True)
            else:
                await source.aprefetch(required=True)
        await close(source)


@pytest.mark.parametrize("outage", [500, 503, 429, None])  # None: no answer (a timeout)
async def test_rfc8414_an_outage_is_a_503_not_a_fall_through_to_the_next_document(
    idp: LocalIssuer, clock: FakeClock, driver: str, outage: int | None
) -> None:
    with IssuerSite(lambda: idp.jwks, "/tenant") as site:
        site.routes[OIDC + "/tenant"] = outage
        site.routes[OAUTH + "/tenant"] = 200
        source = OIDCDiscovery(site.issuer, clock=clock, timeout=0.5)
        verifier = idp.verifier(keys=source, issuer=site.issuer, cache_size=0)
        token = idp.mint(issuer=site.issuer)
        with pytest.raises(KeySourceUnavailable) as caught:
            await verify(verifier, token, driver)
        assert caught.value.status_code == 503
        assert OAUTH + "/tenant" not in site.requests  # the outage did not fall through
        # The outage ends (the address now answers 404): the RFC 8414 document is found.
        site.routes[OIDC + "/tenant"] = 404
        clock.advance(120)  # past the failure backoff
        assert await verify(verifier, token, driver)
        assert site.requests[-2:] == [OAUTH + "/tenant", "/jwks.json"]
        await close(source)


async def test_rfc8414_no_document_anywhere_names_every_address_tried(
    idp: LocalIssuer, clock: FakeClock, driver: str
) -> None:
    with IssuerSite(lambda: idp.jwks, "/tenant") as site:
        site.routes[OIDC + "/tenant"] = 403  # S3 and CloudFront say 403 for a missing object
        source = OIDCDiscovery(site.issuer, clock=clock)
        verifier = idp.verifier(keys=source, issuer=site.issuer, cache_size=0)
        with pytest.raises(KeySourceUnavailable) as caught:
            await verify(verifier, idp.mint(issuer=site.issuer), driver)
        reason = caught.value.detail["reason"]
        assert reason == (
            f"no metadata document at {site.issuer}{OIDC} (HTTP 404), {site.origin}{OIDC}/tenant "
            f"(HTTP 403), {site.origin}{OAUTH}/tenant (HTTP 404)"
        )
        assert site.requests == [u.removeprefix(site.origin) for u in metadata_urls(site.issuer)]
        await close(source)


@pytest.mark.parametrize("document", [OAUTH + "/tenant", OIDC + "/tenant"])
def test_rfc8414_discovery_url_from_env_may_name_either_document(
    idp: LocalIssuer, monkeypatch: pytest.MonkeyPatch, document: str
) -> None:
    with IssuerSite(lambda: idp.jwks, "/tenant") as site:
        site.routes[document] = 200
        monkeypatch.setenv("JWT_GUARD_ISSUER", site.issuer)
        monkeypatch.setenv("JWT_GUARD_AUDIENCE", idp.audience)
        monkeypatch.setenv("JWT_GUARD_ALGORITHMS", "ES256")
        monkeypatch.setenv("JWT_GUARD_DISCOVERY_URL", site.origin + document)
        verifier = Verifier.from_env(clock=idp.clock)
        verifier.prefetch(required=True)  # a wrong URL would fail here, at start-up
        assert verifier.verify(idp.mint(issuer=site.issuer))
        assert site.requests == [document, "/jwks.json"]  # that document only
        verifier.close()


@pytest.mark.parametrize("issuer", ["https://as.example/t?x=1", "https://as.example/t#f"])
def test_rfc8414_s2_an_issuer_has_no_query_or_fragment(issuer: str) -> None:
    with pytest.raises(ConfigurationError, match=r"RFC 8414 §2"):
        OIDCDiscovery(issuer)
