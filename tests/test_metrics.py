"""OpenTelemetry metrics, read with the SDK's in-memory reader (issue #14 item 7)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from jwt_guard import (
    ConfigurationError,
    JWKSKeys,
    JWTGuardError,
    Metrics,
    RedisDenylist,
    Verifier,
)
from jwt_guard.testing import JWKSServer, LocalIssuer

from .conftest import AppFactory, FakeClock, bearer
from .manual import section as manual_section

Points = dict[str, dict[tuple[tuple[str, Any], ...], Any]]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def metrics(reader: InMemoryMetricReader) -> Metrics:
    return Metrics(meter_provider=MeterProvider(metric_readers=[reader]))


def collect(reader: InMemoryMetricReader) -> Points:
    """name -> sorted attributes -> value (counters) or count (histograms)."""
    points: Points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count
                    key = tuple(sorted(point.attributes.items()))
                    points.setdefault(metric.name, {})[key] = value
    return points


def _verifications(outcome: str, source: str) -> tuple[tuple[str, Any], ...]:
    return (("jwt_guard.outcome", outcome), ("jwt_guard.source", source))


async def test_verifications_cache_and_duration_through_both_adapters(
    make_client: AppFactory,
    issuer: LocalIssuer,
    metrics: Metrics,
    reader: InMemoryMetricReader,
) -> None:
    verifier = issuer.verifier(metrics=metrics)
    client = make_client(verifier, cookie="access")
    token = issuer.mint()
    for _ in range(3):  # one fresh verification, then two cache hits
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert (
        await client.get("/me", headers={"Cookie": f"access={issuer.mint()}"})
    ).status_code == 200
    assert (await client.get("/me", headers=bearer(issuer.mint(expired=True)))).status_code == 401
    assert (await client.get("/me", headers=bearer("a.b"))).status_code == 401
    assert (await client.get("/me")).status_code == 401
    points = collect(reader)
    assert points["jwt_guard.verifications"] == {
        _verifications("valid", "header"): 3,
        _verifications("valid", "cookie"): 1,
        _verifications("token_expired", "header"): 1,
        _verifications("token_malformed", "header"): 1,
        _verifications("token_missing", "none"): 1,
    }
    # Every verify() looks in the cache: 3 + 1 + 1 + 1 lookups, 2 of them hits.
    assert points["jwt_guard.cache.lookups"] == {
        (("jwt_guard.cache.hit", True),): 2,
        (("jwt_guard.cache.hit", False),): 4,
    }
    # Fresh verifications only: 2 valid tokens, 1 expired, 1 malformed.
    assert points["jwt_guard.verification.duration"] == {
        (("jwt_guard.outcome", "valid"),): 2,
        (("jwt_guard.outcome", "token_expired"),): 1,
        (("jwt_guard.outcome", "token_malformed"),): 1,
    }


async def test_direct_verify_counts_cache_and_duration(
    issuer: LocalIssuer, metrics: Metrics, reader: InMemoryMetricReader
) -> None:
    verifier = issuer.verifier(metrics=metrics)
    token = issuer.mint()
    verifier.verify(token)
    await verifier.averify(token)
    with pytest.raises(JWTGuardError):
        await verifier.averify(issuer.mint(audience="other"))
    points = collect(reader)
    assert points["jwt_guard.cache.lookups"][(("jwt_guard.cache.hit", True),)] == 1
    assert points["jwt_guard.verification.duration"] == {
        (("jwt_guard.outcome", "valid"),): 1,
        (("jwt_guard.outcome", "audience_invalid"),): 1,
    }


@pytest.mark.parametrize("driver", ["sync", "async"])
async def test_jwks_fetches_failures_and_stale_serves(
    issuer: LocalIssuer,
    clock: FakeClock,
    metrics: Metrics,
    reader: InMemoryMetricReader,
    driver: str,
) -> None:
    with JWKSServer(lambda: issuer.jwks) as server:
        source = JWKSKeys(server.url, clock=clock, timeout=2)
        verifier = issuer.verifier(keys=source, metrics=metrics, cache_size=0)

        async def verify() -> None:
            if driver == "sync":
                verifier.verify(issuer.mint())
            else:
                await verifier.averify(issuer.mint())

        await verify()
        server.status = 500
        clock.advance(700)  # past the TTL: the refresh fails, the old set is served stale
        source.prefetch() if driver == "sync" else await source.aprefetch()
        await verify()
        name = ("jwt_guard.key_source", server.url)
        points = collect(reader)
        fetches = points["jwt_guard.jwks.fetches"]
        assert fetches[(name, ("jwt_guard.outcome", "success"))] == 1
        assert fetches[(name, ("jwt_guard.outcome", "failure"))] >= 1
        assert points["jwt_guard.jwks.stale_serves"][(name,)] >= 1
        await source.aclose()


def test_denylist_errors(
    issuer: LocalIssuer, metrics: Metrics, reader: InMemoryMetricReader
) -> None:
    # Nothing listens on port 9 of the loopback: every lookup fails.
    verifier = issuer.verifier(denylist=RedisDenylist("redis://127.0.0.1:9/0"), metrics=metrics)
    with pytest.raises(JWTGuardError) as caught:
        verifier.verify(issuer.mint())
    assert caught.value.code == "denylist_unavailable"
    points = collect(reader)
    assert points["jwt_guard.denylist.errors"] == {(("jwt_guard.store", "redis"),): 1}


def test_metrics_setting(issuer: LocalIssuer) -> None:
    assert issuer.verifier(metrics=False).metrics is None
    assert isinstance(issuer.verifier().metrics, Metrics)  # on when OpenTelemetry is there
    with pytest.raises(ConfigurationError, match="metrics"):
        issuer.verifier(metrics="yes")


def test_without_opentelemetry_everything_works_and_nothing_is_counted() -> None:
    """A subprocess where ``import opentelemetry`` fails, as without the [otel] extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # makes the import fail
        import asyncio, httpx
        from starlette.applications import Starlette
        from jwt_guard import ConfigurationError, JWTGuardMiddleware, Metrics
        from jwt_guard.testing import LocalIssuer

        idp = LocalIssuer()
        verifier = idp.verifier()
        assert verifier.metrics is None
        try:
            Metrics()
        except ConfigurationError as exc:
            assert "[otel]" in exc.description and "pip install" in exc.description
        else:
            raise AssertionError("Metrics() without OpenTelemetry")

        async def main():
            app = JWTGuardMiddleware(Starlette(), verifier=verifier)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                auth = {"Authorization": "Bearer " + idp.mint()}
                assert (await client.get("/", headers=auth)).status_code == 404  # passed
                assert (await client.get("/")).status_code == 401
        asyncio.run(main())
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_verifier_without_key_sources_metrics_is_fine() -> None:
    from jwt_guard import StaticKeys

    verifier = Verifier(keys=StaticKeys.from_secret("s" * 32), algorithms=["HS256"])
    assert verifier.metrics is not None


def test_readme_prometheus_export_runs_as_written() -> None:
    """The Metrics page's snippet, in a fresh process (it sets the global provider), on a free
    port: a verifier made before it is scraped with the lines the page shows."""
    import re

    from .redis_server import free_port

    section = manual_section("Metrics")
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert snippet is not None and shown is not None
    port = free_port()
    # Loopback only in tests (the page's call listens on every interface, as in production).
    code = snippet.group(1).replace(
        "start_http_server(9464)", f"start_http_server({port}, addr='127.0.0.1')"
    )
    assert f"start_http_server({port}" in code
    script = (
        textwrap.dedent(
            """
        import asyncio, httpx
        from starlette.applications import Starlette
        from jwt_guard import JWTGuardMiddleware
        from jwt_guard.testing import LocalIssuer
        idp = LocalIssuer()
        verifier = idp.verifier()
        """
        )
        + code
        + textwrap.dedent(
            f"""
        async def main():
            app = JWTGuardMiddleware(Starlette(), verifier=verifier)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                token = idp.mint()
                for value in (token, token, "a.b"):
                    await client.get("/", headers={{"Authorization": "Bearer " + value}})
        asyncio.run(main())
        print(httpx.get("http://127.0.0.1:{port}/metrics").text)
        """
        )
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    scraped = result.stdout.splitlines()
    for line in shown.group(1).splitlines():
        assert line in scraped, line
