"""RFC 9728 protected resource metadata, through both adapters (ASGI and WSGI)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from jwt_guard import (
    AudienceInvalid,
    ConfigurationError,
    DPoP,
    IssuerInvalid,
    JWTGuardMiddleware,
    KeyNotFound,
    ProtectedResource,
    TrustedIssuer,
    Verifier,
)
from jwt_guard.testing import LocalIssuer
from jwt_guard.wsgi import JWTGuardWSGIMiddleware

from .conftest import AppFactory, bearer, challenge
from .servers import IssuerSite

RESOURCE = "https://api.example.com/orders"
AUTH_SERVER = "https://login.example.com"
METADATA_URL = "https://api.example.com/.well-known/oauth-protected-resource/orders"


def resource(**overrides: Any) -> ProtectedResource:
    settings: dict[str, Any] = {
        "resource": RESOURCE,
        "authorization_servers": [AUTH_SERVER],
        "scopes_supported": ["orders:read", "orders:write"],
        "resource_name": "Orders API",
    }
    settings.update(overrides)
    return ProtectedResource(**settings)


def client_for(make_client: AppFactory, issuer: LocalIssuer, **options: Any) -> httpx.AsyncClient:
    # The API accepts its old audience and its URL (RFC 8707) during a migration.
    verifier = issuer.verifier(audience=["api://test", RESOURCE])
    options.setdefault("protected_resource", resource())
    return make_client(verifier, **options)


# -- the document -------------------------------------------------------------------------------


async def test_rfc9728_3_1_document_at_path_inserted_url(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    response = await client_for(make_client, issuer).get(
        "/.well-known/oauth-protected-resource/orders"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "resource": RESOURCE,
        "authorization_servers": [AUTH_SERVER],
        "scopes_supported": ["orders:read", "orders:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Orders API",
    }


async def test_rfc9728_3_document_also_at_plain_well_known_path(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = client_for(make_client, issuer)
    plain = await client.get("/.well-known/oauth-protected-resource")
    inserted = await client.get("/.well-known/oauth-protected-resource/orders")
    assert plain.status_code == 200 and plain.json() == inserted.json()
    other = await client.get("/.well-known/oauth-protected-resource/other")
    assert other.status_code == 401  # not ours: the app behind the guard


async def test_document_is_public_whatever_the_token(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = client_for(make_client, issuer)
    path = "/.well-known/oauth-protected-resource/orders"
    for headers in ({}, bearer("not a token"), bearer(issuer.mint(expired=True))):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, headers
        assert "www-authenticate" not in response.headers


async def test_document_is_cacheable(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = client_for(make_client, issuer, protected_resource=resource(max_age=600))
    path = "/.well-known/oauth-protected-resource/orders"
    response = await client.get(path)
    assert response.headers["cache-control"] == "public, max-age=600"
    assert response.headers["access-control-allow-origin"] == "*"
    etag = response.headers["etag"]
    revalidated = await client.get(path, headers={"If-None-Match": etag})
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    weak = await client.get(path, headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    changed = await client.get(path, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.json()["resource"] == RESOURCE


async def test_head_and_other_methods(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = client_for(make_client, issuer)
    path = "/.well-known/oauth-protected-resource/orders"
    full = await client.get(path)
    head = await client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    post = await client.post(path, headers=bearer(issuer.mint()))
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_cookie_only_api_supports_no_rfc6750_method(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = client_for(make_client, issuer, header=False, cookie="at")
    response = await client.get("/.well-known/oauth-protected-resource/orders")
    # RFC 9728 §2: [] says no bearer method of RFC 6750 is supported.
    assert response.json()["bearer_methods_supported"] == []


async def test_resource_without_path_uses_plain_well_known_path(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    root = "https://api.example.com"
    verifier = issuer.verifier(audience=root)
    client = make_client(verifier, protected_resource=resource(resource=root))
    response = await client.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200 and response.json()["resource"] == root
    missing = await client.get("/me")
    assert missing.headers["www-authenticate"].endswith(
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
    )


async def test_extra_members_and_response_signing_are_explicit(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = client_for(
        make_client,
        issuer,
        protected_resource=resource(
            scopes_supported=None,
            resource_name=None,
            resource_documentation="https://docs.example.com/orders",
            resource_signing_alg_values_supported=["PS256"],
            extra={"tls_client_certificate_bound_access_tokens": False},
        ),
    )
    document = (await client.get("/.well-known/oauth-protected-resource/orders")).json()
    assert document == {
        "resource": RESOURCE,
        "authorization_servers": [AUTH_SERVER],
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": ["PS256"],
        "resource_documentation": "https://docs.example.com/orders",
        "tls_client_certificate_bound_access_tokens": False,
    }


# -- challenges point to it (RFC 9728 §5.1) --------------------------------------------------------


async def test_rfc9728_5_1_every_challenge_carries_resource_metadata(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = client_for(make_client, issuer)
    suffix = f'resource_metadata="{METADATA_URL}"'
    missing = await client.get("/me")
    assert missing.status_code == 401
    # MCP scope selection: the first 401 names the scopes to ask for (scopes_supported here).
    assert challenge(missing) == f'Bearer realm="api", scope="orders:read orders:write", {suffix}'
    expired = await client.get("/me", headers=bearer(issuer.mint(expired=True)))
    assert expired.status_code == 401 and challenge(expired).endswith(suffix)
    assert 'error="invalid_token"' in challenge(expired)
    wrong_audience = await client.get(
        "/me", headers=bearer(issuer.mint(audience="https://other.example.com"))
    )
    assert wrong_audience.status_code == 401 and challenge(wrong_audience).endswith(suffix)
    scoped = await client.get("/scoped", headers=bearer(issuer.mint(scopes=["read"])))
    assert scoped.status_code == 403 and challenge(scoped).endswith(suffix)
    malformed = await client.get("/me", headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 400 and challenge(malformed).endswith(suffix)
    ok = await client.get("/me", headers=bearer(issuer.mint(audience=RESOURCE)))
    assert ok.status_code == 200


# -- configuration -------------------------------------------------------------------------------


def test_resource_must_be_one_of_the_audiences(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()  # audience "api://test" only
    for middleware in (JWTGuardMiddleware, JWTGuardWSGIMiddleware):
        with pytest.raises(ConfigurationError, match="audiences"):
            middleware(None, verifier=verifier, protected_resource=resource())  # type: ignore[arg-type]
    slash = issuer.verifier(audience=RESOURCE + "/")  # exact match, no normalization
    with pytest.raises(ConfigurationError):
        JWTGuardMiddleware(None, verifier=slash, protected_resource=resource())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"resource": "http://api.example.com/orders"},  # RFC 9728 §2: https
        {"resource": "https://api.example.com/orders#frag"},  # §1.2: no fragment
        {"resource": "https://api.example.com/orders?tenant=1"},
        {"resource": "/orders"},
        {"resource": 'https://api.example.com/"x"'},
        {"authorization_servers": "https://login.example.com"},  # a string, not a list
        {"authorization_servers": ["ftp://login.example.com"]},
        {"scopes_supported": ["two words"]},
        {"scopes_supported": "orders:read"},
        {"resource_signing_alg_values_supported": ["none"]},
        {"resource_documentation": "docs"},
        {"extra": {"resource": "https://elsewhere.example"}},
        {"extra": {"x": object()}},
        {"max_age": -1},
        {"max_age": True},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        resource(**overrides)


def test_http_only_for_loopback_or_by_name() -> None:
    local = resource(resource="http://127.0.0.1:8000/mcp", authorization_servers=[])
    assert local.metadata_url == "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
    named = resource(resource="http://api.internal/orders", allow_http=True)
    assert named.metadata_paths == (
        "/.well-known/oauth-protected-resource/orders",
        "/.well-known/oauth-protected-resource",
    )


def test_rfc9728_3_1_terminating_slash_is_removed() -> None:
    # §3.1: only the slash after the host goes; a path's own trailing slash is the resource's.
    assert resource(resource="https://api.example.com/").metadata_paths == (
        "/.well-known/oauth-protected-resource",
    )
    assert resource(resource="https://api.example.com/v1/orders/").metadata_url == (
        "https://api.example.com/.well-known/oauth-protected-resource/v1/orders/"
    )


# -- DPoP (RFC 9728 §2 members from the verifier's DPoP settings) --------------------------------


@pytest.mark.parametrize("required", [False, True])
async def test_dpop_members_follow_the_verifier(
    make_client: AppFactory, issuer: LocalIssuer, required: bool
) -> None:
    dpop = DPoP(required=required, algorithms=["ES256", "EdDSA"])
    verifier = issuer.verifier(audience=RESOURCE, dpop=dpop)
    client = make_client(verifier, protected_resource=resource())
    document = (await client.get("/.well-known/oauth-protected-resource/orders")).json()
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    assert document["dpop_bound_access_tokens_required"] is required
    # With DPoP required no Bearer token is taken, in the header or anywhere.
    assert document["bearer_methods_supported"] == ([] if required else ["header"])
    missing = await client.get("/me")
    assert missing.status_code == 401
    # RFC 9728 §5.1 / RFC 9449 §7.1: each challenge of the answer names the metadata.
    value = challenge(missing)
    assert value.count(f'resource_metadata="{METADATA_URL}"') == (1 if required else 2)
    assert value.startswith("DPoP " if required else "Bearer ")


async def test_no_dpop_members_without_dpop(make_client: AppFactory, issuer: LocalIssuer) -> None:
    document = (
        await client_for(make_client, issuer).get("/.well-known/oauth-protected-resource")
    ).json()
    assert "dpop_signing_alg_values_supported" not in document
    assert "dpop_bound_access_tokens_required" not in document


# -- where the document is found -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/my%20api", "/caf%C3%A9", "/v1/orders/"])
async def test_document_at_percent_encoded_and_slashed_paths(
    make_client: AppFactory, issuer: LocalIssuer, path: str
) -> None:
    """The §3.1 address of a resource whose path is percent-encoded (compared decoded, as the
    adapters see paths) or ends with a slash (served with and without it)."""
    url = "https://api.example.com" + path
    client = make_client(issuer.verifier(audience=url), protected_resource=resource(resource=url))
    stripped = path.rstrip("/")
    for variant in (stripped, stripped + "/"):
        response = await client.get("/.well-known/oauth-protected-resource" + variant)
        assert response.status_code == 200, variant
        assert response.json()["resource"] == url


async def test_root_fallback_can_be_turned_off(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = client_for(make_client, issuer, protected_resource=resource(root_fallback=False))
    assert (await client.get("/.well-known/oauth-protected-resource/orders")).status_code == 200
    assert (await client.get("/.well-known/oauth-protected-resource")).status_code == 401
    with pytest.raises(ConfigurationError):
        resource(root_fallback="no")


async def test_cors_preflight_for_the_document(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    """A browser-based MCP client's preflight before it sends MCP-Protocol-Version (Fetch)."""
    client = client_for(make_client, issuer)
    response = await client.options(
        "/.well-known/oauth-protected-resource/orders",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "mcp-protocol-version",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "mcp-protocol-version" in response.headers["access-control-allow-headers"].lower()
    assert "content-length" not in response.headers or response.headers["content-length"] == "0"
    odd = await client.options(
        "/.well-known/oauth-protected-resource/orders",
        headers={"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "a b"},
    )
    assert odd.headers["access-control-allow-headers"] == "MCP-Protocol-Version, If-None-Match"


async def test_asgi_document_behind_a_prefix_stripping_proxy(issuer: LocalIssuer) -> None:
    """uvicorn --root-path /api: ``path`` carries the prefix, the app's own path does not."""
    app = JWTGuardMiddleware(
        None,  # type: ignore[arg-type]  # never reached
        verifier=issuer.verifier(audience=RESOURCE),
        protected_resource=resource(),
    )
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    path = "/api/.well-known/oauth-protected-resource/orders"
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "/api",
        "query_string": b"",
        "headers": [(b"host", b"api.example.com")],
        "scheme": "https",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["resource"] == RESOURCE


def test_wsgi_document_behind_a_prefix_stripping_proxy(issuer: LocalIssuer) -> None:
    """SCRIPT_NAME=/api: PATH_INFO is the app's own path."""
    app = JWTGuardWSGIMiddleware(
        None,  # type: ignore[arg-type]  # never reached
        verifier=issuer.verifier(audience=RESOURCE),
        protected_resource=resource(),
    )
    started: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/.well-known/oauth-protected-resource/orders",
        "QUERY_STRING": "",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
    }
    body = b"".join(app(environ, lambda status, headers, *exc: started.append(status)))
    assert started == ["200 OK"]
    assert json.loads(body)["resource"] == RESOURCE


# -- RFC 9728 §7.4: the audience binding holds for every trusted issuer ---------------------------


def test_rfc9728_7_4_every_trusted_issuer_must_expect_the_resource() -> None:
    """A trusted issuer without the resource among its audiences would have its tokens for
    any API (or with no aud at all) accepted here: refused at start-up."""
    ours = LocalIssuer(issuer="https://a.example", audience=RESOURCE)
    other = LocalIssuer(issuer="https://b.example", audience="https://other-api.example")

    def verifier(b_audience: Any) -> Verifier:
        return Verifier(
            issuers=[
                TrustedIssuer("https://a.example", ours.keys(), audience=RESOURCE),
                TrustedIssuer("https://b.example", other.keys(), audience=b_audience),
            ],
            algorithms=[ours.algorithm],
        )

    for b_audience in (None, "https://other-api.example"):
        for middleware in (JWTGuardMiddleware, JWTGuardWSGIMiddleware):
            with pytest.raises(ConfigurationError, match=r"https://b\.example"):
                app: Any = None
                middleware(app, verifier=verifier(b_audience), protected_resource=resource())
    both = verifier([RESOURCE, "https://other-api.example"])
    JWTGuardMiddleware(None, verifier=both, protected_resource=resource())  # type: ignore[arg-type]


# -- from the document to a verifier (issue 26, item 5) -----------------------------------------


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_rfc9728_the_resources_document_configures_its_verifier(driver: str) -> None:
    # Two authorization servers, one publishing OpenID configuration only, the other RFC 8414
    # metadata only: each becomes a trusted issuer with its own keys, the resource the audience.
    oidc, oauth = LocalIssuer(kid="a"), LocalIssuer(kid="b")
    with IssuerSite(lambda: oidc.jwks, "/a") as a, IssuerSite(lambda: oauth.jwks, "/b") as b:
        a.routes["/a/.well-known/openid-configuration"] = 200
        b.routes["/.well-known/oauth-authorization-server/b"] = 200
        document = ProtectedResource(RESOURCE, [a.issuer, b.issuer])
        verifier = document.verifier(algorithms=["ES256"], cache_size=0)

        async def verify(token: str) -> Any:
            return verifier.verify(token) if driver == "sync" else await verifier.averify(token)

        for idp, site in ((oidc, a), (oauth, b)):
            assert (await verify(idp.mint(issuer=site.issuer, audience=RESOURCE))).subject
            # RFC 9728 §7.4 / RFC 8707: a token of the same issuer for another resource.
            with pytest.raises(AudienceInvalid):
                await verify(idp.mint(issuer=site.issuer, audience="https://other.example"))
        # Each issuer's own keys: a's name on a token signed with b's key is refused.
        with pytest.raises(KeyNotFound):
            await verify(oauth.mint(issuer=a.issuer, audience=RESOURCE))
        with pytest.raises(IssuerInvalid):  # not one of authorization_servers
            await verify(oidc.mint(issuer="https://login.example.com", audience=RESOURCE))
        verifier.close()
        await verifier.aclose()


async def test_rfc9728_the_resources_verifier_under_every_adapter(
    issuer: LocalIssuer, make_any_client: AppFactory
) -> None:
    with IssuerSite(lambda: issuer.jwks) as site:
        site.routes["/.well-known/oauth-authorization-server"] = 200
        document = ProtectedResource(RESOURCE, [site.issuer])
        client = make_any_client(
            document.verifier(algorithms=[issuer.algorithm], clock=issuer.clock),
            protected_resource=document,
        )
        ok = await client.get(
            "/me", headers=bearer(issuer.mint(issuer=site.issuer, audience=RESOURCE))
        )
        assert ok.status_code == 200, ok.json()
        other = issuer.mint(issuer=site.issuer, audience="api://test")
        refused = await client.get("/me", headers=bearer(other))
        assert refused.status_code == 401 and refused.json()["code"] == "audience_invalid"
        assert f'resource_metadata="{METADATA_URL}"' in challenge(refused)


async def test_issue25_the_resources_verifier_follows_the_servers_keys(driver: str) -> None:
    # No algorithms named: an RS256 server's tokens are accepted (its keys say RS256).
    rs256 = LocalIssuer(algorithm="RS256", kid="r")
    with IssuerSite(lambda: rs256.jwks) as site:
        site.routes["/.well-known/oauth-authorization-server"] = 200
        verifier = ProtectedResource(RESOURCE, [site.issuer]).verifier(cache_size=0)
        token = rs256.mint(issuer=site.issuer, audience=RESOURCE)
        principal = verifier.verify(token) if driver == "sync" else await verifier.averify(token)
        assert principal.subject
        verifier.close()
        await verifier.aclose()


def test_the_resources_verifier_takes_issuers_and_audience_from_the_document_only() -> None:
    document = resource()
    for option in ("keys", "issuer", "issuers", "audience"):
        with pytest.raises(ConfigurationError, match="from the document"):
            document.verifier(algorithms=["ES256"], **{option: None})
    with pytest.raises(ConfigurationError, match="needs authorization_servers"):
        resource(authorization_servers=[]).verifier(algorithms=["ES256"])
    with pytest.raises(ConfigurationError, match="algorithms"):
        document.verifier(algorithms=[])


@pytest.mark.parametrize(
    ("discovery", "says"),
    [({"issuer": "https://other.example.com"}, "cannot set issuer"), ({"timout": 2}, "timout")],
)
def test_issue26_review_minor_verifier_discovery_options_are_a_configuration_error(
    discovery: dict[str, Any], says: str
) -> None:
    """Review h8 (minor): ``discovery={"issuer": ...}`` (or a misspelt option) raised a
    ``TypeError`` from OIDCDiscovery, not the ConfigurationError naming the mistake."""
    with pytest.raises(ConfigurationError, match=says):
        resource().verifier(algorithms=["ES256"], discovery=discovery)
