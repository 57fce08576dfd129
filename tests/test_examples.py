"""The examples are app factories: importable without settings, configured from the
environment when ``create_app()`` is called, or by a test's own verifier (issue 25, item 9)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwt_guard import ConfigurationError, Verifier
from jwt_guard.testing import JWKSServer, LocalIssuer

from .servers import run_uvicorn, run_wsgi

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["examples.starlette_app", "examples.fastapi_app", "examples.flask_app"]


@pytest.fixture
def issuer() -> LocalIssuer:
    # The examples verify against the real clock.
    return LocalIssuer(algorithm="ES256")


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JWT_GUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, issuer: LocalIssuer) -> Iterator[JWKSServer]:
    with JWKSServer(lambda: issuer.jwks) as server:
        monkeypatch.setenv("JWT_GUARD_ISSUER", issuer.issuer)
        monkeypatch.setenv("JWT_GUARD_AUDIENCE", f"other,{issuer.audience}")
        monkeypatch.setenv("JWT_GUARD_JWKS_URL", server.url)
        monkeypatch.setenv("JWT_GUARD_ALGORITHMS", "ES256")
        yield server


def load(name: str) -> Any:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


async def exercise(app: Any, issuer: LocalIssuer) -> None:
    """The example's routes, as any of its users would call them (ASGI or WSGI)."""
    if hasattr(app, "wsgi_app"):  # Flask: through a real WSGI transport
        transport: Any = httpx.WSGITransport(app=app)
        client: Any = httpx.Client(transport=transport, base_url="http://t")
    else:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    async def get(path: str, **kw: Any) -> httpx.Response:
        response = client.get(path, **kw)
        return await response if isinstance(client, httpx.AsyncClient) else response

    try:
        assert (await get("/health")).json() == {"status": "ok"}
        assert (await get("/api/me")).status_code == 401
        user = {"Authorization": f"Bearer {issuer.mint(sub='bob', roles=['user'])}"}
        me = await get("/api/me", headers=user)
        assert me.json() == {"sub": "bob", "roles": ["user"], "scopes": []}
        assert (await get("/api/admin", headers=user)).status_code == 403
        admin = {"Authorization": f"Bearer {issuer.mint(sub='alice', roles=['admin'])}"}
        assert (await get("/api/admin", headers=admin)).status_code == 200
    finally:
        closed = client.aclose() if isinstance(client, httpx.AsyncClient) else client.close()
        if closed is not None:
            await closed


@pytest.mark.parametrize("module", EXAMPLES)
async def test_an_example_imports_without_settings_and_takes_a_tests_verifier(
    no_settings: None, issuer: LocalIssuer, module: str
) -> None:
    """Issue 25 item 9: the README's FastAPI example built its app at import from the
    environment, so a test could not import it."""
    example = load(module)
    await exercise(example.create_app(issuer.verifier()), issuer)


@pytest.mark.parametrize("module", EXAMPLES)
def test_create_app_without_a_verifier_reads_the_environment(
    no_settings: None, module: str
) -> None:
    example = load(module)  # importing reads no setting
    with pytest.raises(ConfigurationError, match="JWT_GUARD_ISSUER is required"):
        example.create_app()


@pytest.mark.parametrize("module", EXAMPLES)
async def test_examples_from_the_environment(
    env: JWKSServer, issuer: LocalIssuer, module: str
) -> None:
    await exercise(load(module).create_app(), issuer)
    assert env.count == 1


@pytest.mark.parametrize("module", EXAMPLES)
async def test_examples_against_a_served_issuer_found_by_discovery(
    no_settings: None, monkeypatch: pytest.MonkeyPatch, issuer: LocalIssuer, module: str
) -> None:
    """Production-shaped: the settings a deployment has (issuer, audience, discovery URL),
    pointed at a LocalIssuer served as the issuer."""
    with issuer.serve(as_issuer=True) as server:
        monkeypatch.setenv("JWT_GUARD_ISSUER", server.base_url)
        monkeypatch.setenv("JWT_GUARD_AUDIENCE", issuer.audience)
        monkeypatch.setenv("JWT_GUARD_DISCOVERY_URL", server.base_url)
        verifier = Verifier.from_env()
        try:
            await exercise(load(module).create_app(verifier), issuer)
        finally:
            await verifier.aclose()
            verifier.close()
        assert server.requests["/.well-known/openid-configuration"] >= 1


def test_from_env_reports_every_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ISSUER", "AUDIENCE", "JWKS_URL", "DISCOVERY_URL"):
        monkeypatch.delenv(f"JWT_GUARD_{name}", raising=False)
    monkeypatch.setenv("JWT_GUARD_LEEWAY", "soon")
    with pytest.raises(ConfigurationError) as info:
        Verifier.from_env()
    message = str(info.value)
    for expected in ("ISSUER", "AUDIENCE", "JWKS_URL", "LEEWAY"):
        assert expected in message


@pytest.mark.parametrize(
    ("algorithms", "reason"),
    [("none", "'none' can never"), ("ES256,HS257", "unsupported algorithm")],
)
def test_from_env_reports_a_bad_algorithm_with_the_other_problems(
    monkeypatch: pytest.MonkeyPatch, algorithms: str, reason: str
) -> None:
    for name in ("ISSUER", "JWKS_URL", "DISCOVERY_URL"):
        monkeypatch.delenv(f"JWT_GUARD_{name}", raising=False)
    monkeypatch.setenv("JWT_GUARD_AUDIENCE", "orders-api")
    monkeypatch.setenv("JWT_GUARD_ALGORITHMS", algorithms)
    monkeypatch.setenv("JWT_GUARD_LEEWAY", "soon")
    with pytest.raises(ConfigurationError) as info:
        Verifier.from_env()
    message = str(info.value)
    # ISSUER, the key source, ALGORITHMS and LEEWAY, in one error
    for expected in ("ISSUER is required", "exactly one of", "LEEWAY must be"):
        assert expected in message
    assert f"JWT_GUARD_ALGORITHMS: {reason}" in message


def test_from_env_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_ISSUER", "https://idp.example")
    monkeypatch.setenv("X_AUDIENCE", "a, b")
    monkeypatch.setenv("X_DISCOVERY_URL", "https://idp.example")
    monkeypatch.setenv("X_ALGORITHMS", "ES256,RS256")
    monkeypatch.setenv("X_LEEWAY", "10")
    monkeypatch.setenv("X_ROLES_CLAIM", "realm_access.roles")
    monkeypatch.setenv("X_TYP", "at+jwt")
    verifier = Verifier.from_env("X_")
    assert verifier.leeway == 10
    monkeypatch.setenv("X_JWKS_URL", "http://idp.example/jwks")
    with pytest.raises(ConfigurationError, match="exactly one"):
        Verifier.from_env("X_")


@pytest.mark.parametrize("module", ["examples.fastapi_app", "examples.flask_app"])
def test_issue25_example_with_only_issuer_audience_and_discovery_accepts_an_rs256_provider(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, module: str
) -> None:
    """Issue 25: with only ISSUER, AUDIENCE and DISCOVERY_URL set, the examples refused every
    token of a provider signing RS256 (as Auth0, Okta, Entra ID, Keycloak, Cognito and Google
    do) with algorithm_not_allowed, under a default of ES256. Served for real: a discovery
    document and JWKS on 127.0.0.1, the example under uvicorn (FastAPI) or a WSGI server."""
    provider = LocalIssuer(algorithm="RS256", audience="orders-api")
    with JWKSServer(lambda: provider.jwks) as idp, caplog.at_level(logging.WARNING):
        provider.issuer = idp.base_url  # what its discovery document names
        for name in ("JWT_GUARD_JWKS_URL", "JWT_GUARD_ALGORITHMS", "DOCS_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("JWT_GUARD_ISSUER", idp.base_url)
        monkeypatch.setenv("JWT_GUARD_AUDIENCE", "orders-api")
        monkeypatch.setenv("JWT_GUARD_DISCOVERY_URL", idp.base_url)
        app = load(module).create_app()
        serve = run_uvicorn if "fastapi" in module else run_wsgi
        with serve(app) as base:
            token = provider.mint(sub="alice", roles=["user"])
            me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert me.json()["sub"] == "alice"
            # Not every token: one signed by a key the provider does not publish is refused.
            stranger = LocalIssuer(algorithm="RS256", issuer=idp.base_url, audience="orders-api")
            other = {"Authorization": f"Bearer {stranger.mint(kid=provider.kid)}"}
            assert httpx.get(f"{base}/api/me", headers=other).status_code == 401
        assert idp.requests["/.well-known/openid-configuration"] >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize("module", EXAMPLES)
async def test_issue25_examples_read_their_own_variable_outside_the_library_prefix(
    env: JWKSServer, monkeypatch: pytest.MonkeyPatch, issuer: LocalIssuer, module: str
) -> None:
    """The FastAPI example read its client id from a JWT_GUARD_DOCS_* variable, under the
    library's prefix, so every example passed ``Verifier.from_env(ignore_unknown=[...])`` to
    run in the README's one shell: a workaround a user copying an example learned. Its own
    variable is DOCS_CLIENT_ID now, and no example passes ignore_unknown."""
    monkeypatch.setenv("DOCS_CLIENT_ID", "jwt-guard-docs")
    monkeypatch.setenv("JWT_GUARD_AUDIENCE", issuer.audience)  # the login sends it
    example = load(module)
    assert "ignore_unknown" not in (ROOT / f"{module.replace('.', '/')}.py").read_text("utf-8")
    app = example.create_app()
    await exercise(app, issuer)
    if module == "examples.fastapi_app":
        assert app.swagger_ui_init_oauth["clientId"] == "jwt-guard-docs"
