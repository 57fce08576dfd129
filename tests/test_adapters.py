"""The adapter behaviour suite (RFC 6750 §2-3, CSRF, optional/exclude) through real requests.

Written once and run against both adapters: the ASGI middleware on a Starlette app (through
``httpx.ASGITransport``) and the WSGI middleware on a Flask app (served by a real threaded
``wsgiref`` server on 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from jwt_guard import Answer, JWTGuardError
from jwt_guard.testing import LocalIssuer

from .apps import flask_app, starlette_app
from .conftest import AppFactory, assert_no_leak, bearer, challenge
from .servers import run_wsgi

# -- success and placement ---------------------------------------------------------------------


async def test_bearer_token_sets_user(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client()
    token = issuer.mint(sub="alice", roles=["admin"], scopes=["read"])
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "roles": ["admin"], "scopes": ["read"]}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_rfc6750_2_1_scheme_is_case_insensitive(
    make_client: AppFactory, issuer: LocalIssuer, scheme: str
) -> None:
    response = await make_client().get(
        "/me", headers={"Authorization": f"{scheme} {issuer.mint()}"}
    )
    assert response.status_code == 200


async def test_cookie_token(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client(cookie="access_token")
    response = await client.get("/me", headers={"Cookie": f"access_token={issuer.mint()}"})
    assert response.status_code == 200 and response.json()["sub"] == "user-1"


async def test_same_token_in_header_and_cookie_is_fine(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    token = issuer.mint()
    client = make_client(cookie="access_token")
    response = await client.post(
        "/me", headers={**bearer(token), "Cookie": f"access_token={token}"}
    )
    assert response.status_code == 200  # header-authenticated: no CSRF needed


# -- RFC 6750 answers ------------------------------------------------------------------------


async def test_rfc6750_3_missing_token_is_401_without_error(make_client: AppFactory) -> None:
    response = await make_client(realm="orders").get("/me")
    assert response.status_code == 401
    assert challenge(response) == 'Bearer realm="orders"'
    assert response.json() == {
        "error": "unauthorized",
        "error_description": "Authentication is required.",
        "code": "token_missing",
    }
    assert response.headers["cache-control"] == "no-store"


async def test_other_scheme_counts_as_missing(make_client: AppFactory) -> None:
    response = await make_client().get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401 and "error=" not in challenge(response)


async def test_rfc6750_3_1_invalid_token_is_401_invalid_token(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    token = issuer.mint(expired=True, sub="secret-subject")
    response = await make_client().get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert challenge(response) == (
        'Bearer realm="api", error="invalid_token", error_description="The token has expired."'
    )
    assert response.json()["code"] == "token_expired"
    assert_no_leak(response, token, "secret-subject", issuer.kid, issuer.issuer)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer a b",
        "Bearer tok=en",
        "Bearer tök",
        "Bearer\ttoken",
        "Bearer  ,",
    ],
)
async def test_rfc6750_2_1_malformed_header_is_400(make_client: AppFactory, value: str) -> None:
    raw = value.encode("latin-1")
    response = await make_client().get("/me", headers=[(b"Authorization", raw)])
    assert response.status_code == 400
    assert 'error="invalid_request"' in challenge(response)


async def test_rfc6750_2_two_authorization_headers_is_400(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    token = issuer.mint()
    response = await make_client().get(
        "/me", headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert response.status_code == 400
    assert response.json()["code"] == "multiple_tokens"


async def test_rfc6750_2_header_and_cookie_with_different_tokens_is_400(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    response = await make_client(cookie="at").get(
        "/me", headers={**bearer(issuer.mint()), "Cookie": f"at={issuer.mint(sub='other')}"}
    )
    assert response.status_code == 400 and response.json()["code"] == "multiple_tokens"


async def test_two_different_token_cookies_is_400(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    response = await make_client(cookie="at").get(
        "/me", headers={"Cookie": f"at={issuer.mint()}; at={issuer.mint(sub='x')}"}
    )
    assert response.status_code == 400


async def test_rfc6750_2_3_query_parameter_is_never_read_for_http(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = make_client(websocket_query_param="access_token")
    response = await client.get("/me", params={"access_token": issuer.mint()})
    assert response.status_code == 401
    assert "error=" not in challenge(response)


async def test_issue26_role_refusal_is_403_claiming_no_scope(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    """A role is not a scope: ``insufficient_scope`` (RFC 6750 §3.1) would send an OAuth or MCP
    client to the authorization server for a scope named ``admin``. A plain 403 (RFC 9110
    §15.5.4: not repeated with the same credentials); the code says why."""
    client = make_client()
    response = await client.get("/admin", headers=bearer(issuer.mint(roles=["user"])))
    assert response.status_code == 403
    assert challenge(response) == 'Bearer realm="api"'
    assert response.json() == {
        "error": "forbidden",
        "error_description": "The token lacks a required role.",
        "code": "insufficient_role",
    }
    ok = await client.get("/admin", headers=bearer(issuer.mint(roles=["admin"])))
    assert ok.status_code == 200


async def test_rfc6750_3_1_insufficient_scope_is_403_with_scope(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = make_client()
    response = await client.get("/scoped", headers=bearer(issuer.mint(scopes=["read"])))
    assert response.status_code == 403
    assert 'scope="read write"' in challenge(response)
    assert response.json()["code"] == "insufficient_scope"
    ok = await client.get("/scoped", headers=bearer(issuer.mint(scopes=["write", "read"])))
    assert ok.status_code == 200


async def test_any_of_roles(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client()
    ok = await client.get("/any-role", headers=bearer(issuer.mint(roles=["auditor"])))
    no = await client.get("/any-role", headers=bearer(issuer.mint(roles=["user"])))
    assert (ok.status_code, no.status_code) == (200, 403)


async def test_unauthenticated_on_role_route_is_401_not_403(make_client: AppFactory) -> None:
    response = await make_client(optional=True).get("/admin")
    assert response.status_code == 401


async def test_key_source_down_is_503_with_retry_after(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    from jwt_guard import JWKSKeys

    source = JWKSKeys("http://127.0.0.1:9/jwks.json", timeout=0.5)
    client = make_client(issuer.verifier(keys=source))
    response = await client.get("/me", headers=bearer(issuer.mint()))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "jwks_unavailable"
    assert_no_leak(response, "127.0.0.1", "jwks.json")
    await source.aclose()


async def test_on_error_shapes_the_answer(make_client: AppFactory) -> None:
    seen: list[str] = []

    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        seen.append(exc.code)
        answer.headers.append(("x-auth-error", exc.code))
        answer.body = b'{"message":"login first"}'
        return answer

    response = await make_client(on_error=on_error).get("/me")
    assert response.status_code == 401
    assert response.headers["x-auth-error"] == "token_missing"
    assert response.json() == {"message": "login first"}
    assert seen == ["token_missing"]


# -- optional / exclude ------------------------------------------------------------------------


async def test_optional_lets_anonymous_through_but_rejects_invalid(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = make_client(optional=True)
    anonymous = await client.get("/me")
    assert anonymous.status_code == 200 and anonymous.json() == {"sub": None}
    invalid = await client.get("/me", headers=bearer(issuer.mint(expired=True)))
    assert invalid.status_code == 401


async def test_exclude_public_paths(make_client: AppFactory) -> None:
    client = make_client(exclude=["/health", "/public/*"])
    health = await client.get("/health", headers=bearer("not even a token"))
    assert health.status_code == 200 and health.json() == {"ok": True, "anonymous": True}
    assert (await client.get("/public/info")).status_code == 200
    assert (await client.get("/me")).status_code == 401
    assert (await client.get("/healthz")).status_code in (401, 404)


# -- CSRF for cookie authentication ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_cookie_auth_unsafe_method_needs_csrf_proof(
    make_client: AppFactory, issuer: LocalIssuer, method: str
) -> None:
    client = make_client(cookie="at")
    token = issuer.mint()
    cookie = f"at={token}; csrf_token=abc123"
    refused = await client.request(method, "/me", headers={"Cookie": cookie})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    assert_no_leak(refused, token)
    wrong = await client.request(
        method, "/me", headers={"Cookie": cookie, "X-CSRF-Token": "abc124"}
    )
    assert wrong.status_code == 403
    ok = await client.request(method, "/me", headers={"Cookie": cookie, "X-CSRF-Token": "abc123"})
    assert ok.status_code == 200


async def test_csrf_same_origin_headers_pass(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client(cookie="at")
    cookie = {"Cookie": f"at={issuer.mint()}"}
    same = await client.post("/me", headers={**cookie, "Origin": str(client.base_url).rstrip("/")})
    fetch_site = await client.post("/me", headers={**cookie, "Sec-Fetch-Site": "same-origin"})
    cross = await client.post("/me", headers={**cookie, "Origin": "http://evil.example"})
    cross_site = await client.post("/me", headers={**cookie, "Sec-Fetch-Site": "cross-site"})
    null_origin = await client.post("/me", headers={**cookie, "Origin": "null"})
    assert [r.status_code for r in (same, fetch_site, cross, cross_site, null_origin)] == [
        200,
        200,
        403,
        403,
        403,
    ]


async def test_csrf_trusted_origins(make_client: AppFactory, issuer: LocalIssuer) -> None:
    from jwt_guard import CSRF

    client = make_client(cookie="at", csrf=CSRF(trusted_origins=["https://app.example"]))
    response = await client.post(
        "/me", headers={"Cookie": f"at={issuer.mint()}", "Origin": "https://app.example"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "override",
    [
        {"X-HTTP-Method-Override": "DELETE"},
        {"X-HTTP-Method": "POST"},
        {"X-Method-Override": "PUT"},
    ],
)
async def test_method_override_cannot_bypass_csrf(
    make_client: AppFactory, issuer: LocalIssuer, override: dict[str, str]
) -> None:
    client = make_client(cookie="at")
    response = await client.get("/me", headers={"Cookie": f"at={issuer.mint()}", **override})
    assert response.status_code == 403
    query = await client.get(
        "/me", params={"_method": "DELETE"}, headers={"Cookie": f"at={issuer.mint()}"}
    )
    assert query.status_code == 403


#: Spellings of ``_method`` that Starlette's and Werkzeug's query parsers decode to it.
ENCODED_OVERRIDES = ["%5Fmethod", "%5fMETHOD", "_%6Dethod", "%5F%6D%65%74%68%6F%64"]


@pytest.mark.parametrize("name", ["_method", *ENCODED_OVERRIDES])
async def test_issue22_encoded_override_parameter_needs_csrf(
    make_any_client: AppFactory, issuer: LocalIssuer, name: str
) -> None:
    # ?%5Fmethod=DELETE is ?_method=DELETE to a framework that honours it: a cookie GET
    # carrying it is a DELETE for the CSRF check too, however the name is spelled.
    client = make_any_client(cookie="at")
    cookie = {"Cookie": f"at={issuer.mint()}"}
    refused = await client.get(f"/me?{name}=DELETE", headers=cookie)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    # A parameter that merely looks alike (another name once decoded) changes nothing.
    assert (await client.get("/me?%5Fmethods=DELETE", headers=cookie)).status_code == 200


@pytest.mark.parametrize("name", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"])
async def test_issue22_repeated_override_header_counts_every_copy(
    make_any_client: AppFactory, issuer: LocalIssuer, name: str
) -> None:
    # DELETE then GET: the ASGI view kept the last copy (GET, safe: no CSRF value asked)
    # while Starlette's headers.get, which an override middleware reads, gives the first.
    client = make_any_client(cookie="at")
    headers = [("Cookie", f"at={issuer.mint()}"), (name, "DELETE"), (name, "GET")]
    refused = await client.get("/me", headers=headers)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"


async def test_cookie_auth_safe_method_needs_no_csrf(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    response = await make_client(cookie="at").get("/me", headers={"Cookie": f"at={issuer.mint()}"})
    assert response.status_code == 200


async def test_header_auth_needs_no_csrf(make_client: AppFactory, issuer: LocalIssuer) -> None:
    response = await make_client(cookie="at").post("/me", headers=bearer(issuer.mint()))
    assert response.status_code == 200


async def test_csrf_can_be_disabled_by_name(make_client: AppFactory, issuer: LocalIssuer) -> None:
    client = make_client(cookie="at", csrf=False)
    response = await client.post("/me", headers={"Cookie": f"at={issuer.mint()}"})
    assert response.status_code == 200


# -- leaks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-4] + "AAAA",  # bad signature
        lambda t: t + "x",  # bad base64 length
        lambda t: t.replace(".", "..", 1),
        lambda t: t * 9,  # too large
    ],
)
async def test_no_rejection_echoes_token_or_claims(
    make_client: AppFactory, issuer: LocalIssuer, mutate: Callable[[str], str]
) -> None:
    token = issuer.mint(sub="leaky-subject", email="someone@example.com")
    bad = mutate(token)
    response = await make_client().get("/me", headers=bearer(bad))
    assert response.status_code in (400, 401)
    assert_no_leak(response, bad, token, "leaky-subject", "someone@example.com", issuer.kid)


@pytest.mark.parametrize(
    "options",
    [
        {"cookie": "bad name;"},
        {"exclude": "/health"},
        {"exclude": ["health"]},
        {"csrf": "yes"},
        {"realm": 'a"b'},
        {"on_error": "not callable"},
        {"header": False},
        {"websocket_query_param": 5},
    ],
)
def test_middleware_configuration_errors(issuer: LocalIssuer, options: dict[str, Any]) -> None:
    from jwt_guard import ConfigurationError, JWTGuardMiddleware
    from jwt_guard.wsgi import JWTGuardWSGIMiddleware

    with pytest.raises(ConfigurationError):
        JWTGuardMiddleware(None, verifier=issuer.verifier(), **options)  # type: ignore[arg-type]
    options.pop("websocket_query_param", None)
    if options:
        with pytest.raises(ConfigurationError):
            JWTGuardWSGIMiddleware(None, verifier=issuer.verifier(), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cookie": ""},
        {"header": 5},
        {"trusted_origins": "https://a.example"},
        {"trusted_origins": ["a.example"]},
    ],
)
def test_csrf_configuration_errors(kwargs: dict[str, Any]) -> None:
    from jwt_guard import CSRF, ConfigurationError

    with pytest.raises(ConfigurationError):
        CSRF(**kwargs)


# -- the answer layer cannot fail --------------------------------------------------------------

_FIXED = {
    "insufficient_role": "The token lacks a required role.",
    "forbidden": "The token does not grant access to this resource.",
}


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("role-fr", "insufficient_role", "Réservé aux administrateurs"),
        ("quoted", "forbidden", 'Needs the "admin" role'),
        ("control", "forbidden", "line\r\nX-Injected: 1"),
    ],
)
async def test_rfc6750_3_app_raised_error_with_its_own_text(
    make_client: AppFactory, issuer: LocalIssuer, name: str, code: str, text: str
) -> None:
    """Fixed texts in WWW-Authenticate (RFC 6750 §3 allows printable ASCII only), the app's
    own text in the JSON body."""
    response = await make_client().get(f"/raise/{name}", headers=bearer(issuer.mint()))
    assert response.status_code == 403
    assert challenge(response) == (
        'Bearer realm="api"'  # a role refusal claims no scope (issue 26)
        if code == "insufficient_role"
        else f'Bearer realm="api", error="insufficient_scope", error_description="{_FIXED[code]}"'
    )
    error = "forbidden" if code == "insufficient_role" else "insufficient_scope"
    body = {"error": error, "error_description": text, "code": code}
    assert response.json() == body
    assert "x-injected" not in response.headers


async def test_request_time_configuration_error_is_500_and_logged(
    make_client: AppFactory, issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="jwt_guard"):
        response = await make_client().get("/raise/config", headers=bearer(issuer.mint()))
    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "Internal error.",
        "code": "server_error",
    }
    assert "www-authenticate" not in response.headers
    assert_no_leak(response, "internal-host", "redis://")
    assert any(
        r.levelno == logging.ERROR and "internal-host" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize("status", [299, 418, 499, 599])
async def test_on_error_may_choose_any_status(make_client: AppFactory, status: int) -> None:
    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        answer.status = status
        return answer

    response = await make_client(on_error=on_error).get("/me")
    assert response.status_code == status
    assert response.json()["code"] == "token_missing"


def _raises(exc: JWTGuardError, answer: Answer) -> Answer:
    answer.headers.append(("x-half", "done"))
    raise RuntimeError("bug in on_error")


@pytest.mark.parametrize(
    "on_error",
    [
        _raises,
        lambda exc, answer: None,
        lambda exc, answer: Answer(42, [], b"{}"),
        lambda exc, answer: Answer(401, [("x-bad", "a\r\nSet-Cookie: s=1")], b"{}"),
        lambda exc, answer: Answer(401, [("x-bad", "é€")], b"{}"),
        lambda exc, answer: Answer(401, [], "not bytes"),  # type: ignore[arg-type]
    ],
)
async def test_on_error_that_fails_leaves_the_default_answer(
    make_client: AppFactory,
    caplog: pytest.LogCaptureFixture,
    on_error: Callable[[JWTGuardError, Answer], Answer],
) -> None:
    with caplog.at_level(logging.ERROR, logger="jwt_guard"):
        response = await make_client(on_error=on_error).get("/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_missing"
    assert "x-half" not in response.headers and "x-bad" not in response.headers
    assert "set-cookie" not in response.headers
    assert any("on_error" in r.getMessage() for r in caplog.records)


# -- the framework-neutral decorators under the plain WSGI middleware ----------------------------


async def test_require_roles_answers_the_same_under_every_adapter(
    make_any_client: AppFactory, issuer: LocalIssuer
) -> None:
    client = make_any_client(realm="orders")
    user = await client.get("/admin", headers=bearer(issuer.mint(roles=["user"])))
    assert user.status_code == 403
    assert challenge(user) == (
        'Bearer realm="orders"'  # a role is not a scope (issue 26)
    )
    assert user.json()["code"] == "insufficient_role"
    scope = await client.get("/scoped", headers=bearer(issuer.mint(scopes=["read"])))
    assert scope.status_code == 403 and 'scope="read write"' in challenge(scope)
    admin = await client.get("/admin", headers=bearer(issuer.mint(roles=["admin"])))
    assert admin.status_code == 200
    anonymous = await make_any_client(optional=True).get("/admin")
    assert anonymous.status_code == 401 and challenge(anonymous) == 'Bearer realm="api"'


def test_wsgi_middleware_is_importable_from_the_package() -> None:
    import jwt_guard
    from jwt_guard.wsgi import JWTGuardWSGIMiddleware

    assert jwt_guard.JWTGuardWSGIMiddleware is JWTGuardWSGIMiddleware
    assert "JWTGuardWSGIMiddleware" in jwt_guard.__all__


# -- only Bearer credentials count as tokens -----------------------------------------------------

_OTHER_SCHEMES = [
    'Digest username="bob", realm="api@example.com", nonce="dcd98b", uri="/me", '
    'response="6629fae49393a05397450978507c4ef1"',
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, "
    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
]


@pytest.mark.parametrize("value", _OTHER_SCHEMES)
async def test_another_scheme_with_commas_is_not_a_second_token(
    make_client: AppFactory, value: str
) -> None:
    optional = await make_client(optional=True).get("/me", headers={"Authorization": value})
    assert optional.status_code == 200 and optional.json() == {"sub": None}
    required = await make_client().get("/me", headers={"Authorization": value})
    assert required.status_code == 401 and "error=" not in challenge(required)


@pytest.mark.parametrize("other", ["Basic dXNlcjpwYXNz", *_OTHER_SCHEMES])
async def test_bearer_beside_another_scheme_is_one_token(
    make_client: AppFactory, issuer: LocalIssuer, other: str
) -> None:
    token = issuer.mint()
    response = await make_client().get(
        "/me", headers=[("Authorization", other), ("Authorization", f"Bearer {token}")]
    )
    assert response.status_code == 200 and response.json()["sub"] == "user-1"


# -- exclude means the app's own paths, wherever the app is mounted ----------------------------


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
async def test_exclude_under_a_mount_prefix(issuer: LocalIssuer, adapter: str) -> None:
    """The app is mounted under /api (Starlette Mount / ASGI root_path, WSGI SCRIPT_NAME):
    ``exclude=["/health", "/café/*"]`` means the app's own /health and /café/... in both."""
    options = {"exclude": ["/health", "/public/*", "/café"]}
    with contextlib.ExitStack() as stack:
        if adapter == "asgi":
            from starlette.applications import Starlette
            from starlette.routing import Mount

            inner = starlette_app(issuer.verifier(), **options)
            inner.router.routes.append(Route("/café", _cafe_asgi))
            outer = Starlette(routes=[Mount("/api", app=inner)])
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=outer), base_url="http://t"
            )
        else:
            from werkzeug.middleware.dispatcher import DispatcherMiddleware

            app = flask_app(issuer.verifier(), **options)
            app.add_url_rule("/café", "cafe", lambda: {"ok": True, "anonymous": True})
            mounted = DispatcherMiddleware(_not_found, {"/api": app})
            client = httpx.AsyncClient(base_url=stack.enter_context(run_wsgi(mounted)))
        async with client:
            health = await client.get("/api/health")
            assert health.status_code == 200 and health.json()["anonymous"] is True
            assert (await client.get("/api/public/info")).status_code == 200
            assert (await client.get("/api/caf%C3%A9")).status_code == 200
            assert (await client.get("/api/me")).status_code == 401


async def _cafe_asgi(request: Any) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"ok": True, "anonymous": True})


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
