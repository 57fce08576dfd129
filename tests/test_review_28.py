"""Review R28 of issue 28 (certificate-bound tokens, FAPI 2.0): each test is a finding and
fails on the branch reviewed (s5-m1-mtls + s5-m2-tls); see /work/notes/reviews/r28.md."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from jwt_guard import ClientCertificate, ConfigurationError, JWTGuardMiddleware
from jwt_guard.testing import LocalIssuer, TestCertificate, make_client_certificate


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return make_client_certificate("alice")


def test_r28_f1_environ_source_refuses_a_key_the_client_writes() -> None:
    # PEP 3333: every HTTP_* key is a request header, written by whoever connects. An environ
    # source named after one reads a client-chosen certificate with no trusted_proxies check.
    for key in ("HTTP_X_SSL_CLIENT_CERT", "HTTP_CLIENT_CERT", "http_x_client_cert"):
        with pytest.raises(ConfigurationError, match="header"):
            ClientCertificate.environ(key)
    # Today it is built, and a direct client at an address no one trusts passes a stolen
    # certificate-bound token by sending the victim's certificate (public) as a header:
    #   ClientCertificate.environ("HTTP_X_SSL_CLIENT_CERT").from_environ(
    #       {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_SSL_CLIENT_CERT": victim_pem}) == thumbprint


def test_r28_f2_readme_does_not_recommend_a_unix_socket_behind_the_proxy() -> None:
    # A Unix-socket peer has no address (uvicorn --uds: scope["client"] None; gunicorn:
    # REMOTE_ADDR empty) and is never trusted, so "Behind nginx" must not recommend one.
    from .manual import section as manual_section

    section = manual_section("Behind nginx (real TLS)")
    assert "127.0.0.1, a Unix socket" not in section
    assert "Unix-socket peer has no address and is never trusted" in section


def test_r28_f3_fapi2_refuses_a_token_cookie_at_start_up(make_issuer: Any) -> None:
    # profile="fapi2" is documented (commit b4a478f, README) as "tokens in the header only";
    # check_token_sources refuses header=False and websocket_query_param, not cookie=.
    fapi: LocalIssuer = make_issuer("PS256")
    verifier = fapi.verifier(profile="fapi2", mtls=True)
    with pytest.raises(ConfigurationError, match="fapi2"):
        JWTGuardMiddleware(
            Starlette(),
            verifier=verifier,
            cookie="access_token",
            client_certificate=ClientCertificate.header(trusted_proxies=["127.0.0.1"]),
        )


def test_r28_f4_header_spelled_with_an_underscore_is_not_the_certificate_header(
    issuer: LocalIssuer, cert: TestCertificate
) -> None:
    # Envoy forwards header names with underscores by default (headers_with_underscores_action:
    # ALLOW) and SANITIZE_SET only removes x-forwarded-client-cert for a client without a
    # certificate. A client without one sends "X-Forwarded-Client_Cert: Hash=<victim's>":
    # uvicorn keeps the name apart (ignored, 401), but a WSGI server that maps "_" like "-"
    # (the stdlib's wsgiref, which the tests' run_wsgi uses) hands it over as
    # HTTP_X_FORWARDED_CLIENT_CERT from the trusted proxy, and a stolen bound token passes.
    import httpx
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from .apps import flask_app
    from .servers import run_uvicorn, run_wsgi

    def source() -> ClientCertificate:
        return ClientCertificate.envoy_xfcc(trusted_proxies=["127.0.0.1"])

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    asgi = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)]),
        verifier=issuer.verifier(mtls=True),
        client_certificate=source(),
    )
    wsgi = flask_app(issuer.verifier(mtls=True), client_certificate=source())
    stolen = issuer.mint(certificate=cert)
    headers = {"Authorization": f"Bearer {stolen}", "X-Forwarded-Client_Cert": cert.xfcc()}
    with run_uvicorn(asgi) as asgi_base, run_wsgi(wsgi) as wsgi_base:
        for name, base in (("uvicorn", asgi_base), ("wsgiref", wsgi_base)):
            response = httpx.get(base + "/me", headers=headers)
            assert response.status_code == 401, name
            assert response.json()["code"] == "client_certificate_missing", name


def test_r28_f5_metadata_does_not_advertise_binding_a_middleware_cannot_check() -> None:
    # RFC 9728 §2 tls_client_certificate_bound_access_tokens tells clients to bring certificate-
    # bound tokens; a middleware with no client_certificate= source refuses every one of them
    # (client_certificate_missing), yet its document says true (set from verifier.mtls alone).
    from jwt_guard import ProtectedResource

    api = LocalIssuer(audience="https://api.test/")
    resource = ProtectedResource(resource=api.audience, authorization_servers=[api.issuer])
    middleware = JWTGuardMiddleware(
        Starlette(), verifier=api.verifier(mtls=True), protected_resource=resource
    )
    assert middleware.guard.metadata is not None
    document = middleware.guard.metadata.document
    assert "tls_client_certificate_bound_access_tokens" not in document


def test_r28_f6_fapi2_with_mtls_only_and_no_certificate_source_fails_at_start_up(
    make_issuer: Any,
) -> None:
    # profile="fapi2" + mtls=True (no DPoP) accepts only certificate-bound tokens; a middleware
    # with no client_certificate= can accept no token at all (bearer: not sender-constrained;
    # bound: client_certificate_missing). Today only a WARNING: the app starts and refuses all.
    fapi: LocalIssuer = make_issuer("PS256")
    with pytest.raises(ConfigurationError, match="client_certificate"):
        JWTGuardMiddleware(Starlette(), verifier=fapi.verifier(profile="fapi2", mtls=True))


def test_r28_f7_forwarded_for_does_not_make_a_peer_a_trusted_proxy(
    issuer: LocalIssuer, cert: TestCertificate
) -> None:
    # uvicorn's defaults (proxy_headers=True, forwarded_allow_ips="127.0.0.1"; many container
    # guides say "*") rewrite scope["client"] from X-Forwarded-For. trusted_proxies names the
    # proxy at 192.0.2.1; a caller that is not that proxy says "X-Forwarded-For: 192.0.2.1",
    # becomes it, and its forged Client-Cert (the victim's public certificate) is believed.
    import httpx
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from .servers import run_uvicorn

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    app = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)]),
        verifier=issuer.verifier(mtls=True),
        client_certificate=ClientCertificate.header(trusted_proxies=["192.0.2.1"]),
    )
    stolen = issuer.mint(certificate=cert)
    headers = {
        "Authorization": f"Bearer {stolen}",
        "Client-Cert": cert.client_cert_header,
        "X-Forwarded-For": "192.0.2.1",
    }
    with run_uvicorn(app) as base:
        response = httpx.get(base + "/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "client_certificate_missing"


def test_r28_f8_flask_config_can_turn_mtls_on(
    monkeypatch: pytest.MonkeyPatch, cert: TestCertificate
) -> None:
    # mtls is a bool, not an object option, yet no JWT_GUARD_MTLS exists: JWTGuard(app) built
    # from app.config can take client_certificate= but never mtls=True (ConfigurationError
    # "client_certificate= is read only for Verifier(mtls=True)"), and JWT_GUARD_PROFILE=fapi2
    # there always fails ("pass dpop=DPoP(...) or mtls=True", which that path cannot pass).
    from flask import Flask

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    app.config.update(
        JWT_GUARD_JWKS_URL="https://idp.example.com/jwks.json",
        JWT_GUARD_ISSUER="https://idp.example.com/",
        JWT_GUARD_AUDIENCE="orders-api",
        JWT_GUARD_ALGORITHMS="PS256",
        JWT_GUARD_PROFILE="fapi2",
        JWT_GUARD_MTLS="true",
    )
    JWTGuard(app, client_certificate=ClientCertificate.environ())
    assert app.wsgi_app.verifier.mtls is True  # type: ignore[attr-defined]


def test_r28_f9_envoy_xfcc_with_several_dns_sans_is_read(cert: TestCertificate) -> None:
    # Envoy's documentation of x-forwarded-client-cert: "A client certificate may contain
    # multiple DNS type Subject Alternative Names, each will be a separate key-value pair"
    # (set_current_client_cert_details: {dns: true}). _xfcc_elements refuses "a key twice in
    # one element", so every client whose certificate has two DNS names gets a 400.
    from jwt_guard._core.certificates import thumbprint_from_xfcc

    # cert.xfcc() is By=...;Hash=...;Subject="..."; Envoy then adds URI and the DNS names.
    value = (
        cert.xfcc() + ";URI=spiffe://example.com/client;"
        "DNS=client.example.com;DNS=www.client.example.com"
    )
    assert thumbprint_from_xfcc(value, last_element=False) == cert.thumbprint


def test_r28_f7_werkzeug_proxy_fix_does_not_make_a_peer_a_trusted_proxy(
    issuer: LocalIssuer, cert: TestCertificate
) -> None:
    # The WSGI form of F7: werkzeug's ProxyFix rewrites REMOTE_ADDR from X-Forwarded-For, so a
    # caller that names the trusted proxy there would become it.
    import httpx
    from werkzeug.middleware.proxy_fix import ProxyFix

    from .apps import flask_app
    from .servers import run_wsgi

    app = flask_app(
        issuer.verifier(mtls=True),
        client_certificate=ClientCertificate.header(trusted_proxies=["192.0.2.1"]),
    )
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    headers = {
        "Authorization": f"Bearer {issuer.mint(certificate=cert)}",
        "Client-Cert": cert.client_cert_header,
        "X-Forwarded-For": "192.0.2.1",
    }
    with run_wsgi(app) as base:
        response = httpx.get(base + "/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "client_certificate_missing"


@pytest.mark.parametrize(
    "forwarded",
    [
        {"X-Forwarded-For": "203.0.113.5, 198.51.100.7"},
        {"Forwarded": 'for=203.0.113.5;proto=https, for="[2001:db8::1]:4711"'},
    ],
)
def test_r28_f7_a_proxy_that_forwards_a_client_address_is_still_trusted(
    issuer: LocalIssuer, cert: TestCertificate, forwarded: dict[str, str]
) -> None:
    # The README's recipe: uvicorn --no-proxy-headers, so scope["client"] is the proxy's
    # connection; a forwarding header naming other addresses does not stop the certificate.
    import httpx
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from .servers import run_uvicorn

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    app = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)]),
        verifier=issuer.verifier(mtls=True),
        client_certificate=ClientCertificate.header(trusted_proxies=["127.0.0.1"]),
    )
    headers = {
        "Authorization": f"Bearer {issuer.mint(certificate=cert)}",
        "Client-Cert": cert.client_cert_header,
        **forwarded,
    }
    with run_uvicorn(app, proxy_headers=False) as base:
        assert httpx.get(base + "/me", headers=headers).status_code == 200
    if "X-Forwarded-For" in forwarded:
        # With uvicorn's defaults (it reads X-Forwarded-For, not Forwarded) the peer becomes
        # 198.51.100.7: not trusted, the certificate is not believed (fails closed).
        with run_uvicorn(app) as base:
            response = httpx.get(base + "/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "client_certificate_missing"


def test_r28_f4_header_sources_refuse_a_wsgi_server_that_conflates_underscores(
    cert: TestCertificate,
) -> None:
    # The stdlib's wsgiref maps "_" like "-": under it a header source cannot tell the proxy's
    # header from a client's underscore spelling, so it refuses with the fix, never reads.
    environ = {
        "SERVER_SOFTWARE": "WSGIServer/0.2 CPython/3.12.3",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_CLIENT_CERT": cert.client_cert_header,
    }
    source = ClientCertificate.header(trusted_proxies=["127.0.0.1"])
    with pytest.raises(ConfigurationError, match="gunicorn"):
        source.from_environ(environ)
    environ["SERVER_SOFTWARE"] = "gunicorn/23.0.0"
    assert source.from_environ(environ) == cert.thumbprint
