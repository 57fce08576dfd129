"""Certificate-bound access tokens (RFC 8705): the binding check on both drivers, the
certificate sources (ASGI ``tls`` extension, WSGI environ, RFC 9440 ``Client-Cert``, nginx's
escaped PEM, Envoy's ``x-forwarded-client-cert``) through both adapters, trusted proxies from
real servers' peer addresses, the RFC 9728 member, and the parsers fuzzed."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from jwt_guard import (
    CertificateBindingMismatch,
    ClaimInvalid,
    ClientCertificate,
    ClientCertificateMissing,
    ConfigurationError,
    DPoP,
    DPoPBoundTokenAsBearer,
    InvalidRequest,
    JWTGuardMiddleware,
    JWTGuardWSGIMiddleware,
    MemoryDenylist,
    ProtectedResource,
    RouteGuard,
    TokenBindingUnsupported,
    TokenNotSenderConstrained,
)
from jwt_guard._core.certificates import (
    der_from_pem,
    thumbprint_from_client_cert,
    thumbprint_from_escaped_pem,
    thumbprint_from_pem,
    thumbprint_from_xfcc,
)
from jwt_guard.testing import (
    CertificateAuthority,
    LocalIssuer,
    TestCertificate,
    make_client_certificate,
)

from .apps import flask_app
from .conftest import AppFactory, Drive, assert_no_leak, bearer, challenge
from .servers import run_uvicorn, run_wsgi

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return make_client_certificate("alice")


@pytest.fixture(scope="module")
def other() -> TestCertificate:
    return CertificateAuthority().issue("mallory")


def mtls(issuer: LocalIssuer, **options: Any) -> Any:
    return issuer.verifier(mtls=True, **options)


async def verify(drive: Drive, verifier: Any, token: str, **inputs: Any) -> Any:
    if drive.mode == "sync":
        return verifier.verify(token, **inputs)
    return await verifier.averify(token, **inputs)


# -- the binding (RFC 8705 §3), both drivers ---------------------------------------------------


def test_rfc8705_3_1_thumbprint_is_base64url_sha256_of_the_der(cert: TestCertificate) -> None:
    digest = hashlib.sha256(cert.der).digest()
    assert cert.thumbprint == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(cert.thumbprint) == 43


async def test_rfc8705_3_bound_token_with_its_certificate_is_accepted(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate
) -> None:
    verifier = mtls(issuer)
    token = issuer.mint(sub="alice", certificate=cert)
    principal = await verify(drive, verifier, token, client_certificate=cert.der)
    assert principal.subject == "alice"
    by_thumbprint = await verify(drive, verifier, token, certificate_thumbprint=cert.thumbprint)
    assert by_thumbprint.subject == "alice"


async def test_rfc8705_3_bound_token_without_a_certificate_is_refused(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate
) -> None:
    verifier = mtls(issuer)
    with pytest.raises(ClientCertificateMissing) as refused:
        await verify(drive, verifier, issuer.mint(certificate=cert))
    assert refused.value.code == "client_certificate_missing"
    assert refused.value.status_code == 401 and refused.value.error == "invalid_token"


async def test_rfc8705_3_bound_token_with_another_certificate_is_refused(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate, other: TestCertificate
) -> None:
    verifier = mtls(issuer)
    with pytest.raises(CertificateBindingMismatch) as refused:
        await verify(drive, verifier, issuer.mint(certificate=cert), client_certificate=other.der)
    assert refused.value.code == "certificate_binding_mismatch"
    detail = refused.value.detail
    assert detail["expected"] == cert.thumbprint and detail["presented"] == other.thumbprint


async def test_rfc8705_3_cached_token_is_checked_against_each_requests_certificate(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate, other: TestCertificate
) -> None:
    # The second call is a cache hit: the certificate is still checked.
    verifier = mtls(issuer)
    token = issuer.mint(certificate=cert)
    await verify(drive, verifier, token, client_certificate=cert.der)
    with pytest.raises(CertificateBindingMismatch):
        await verify(drive, verifier, token, client_certificate=other.der)
    with pytest.raises(ClientCertificateMissing):
        await verify(drive, verifier, token)
    assert verifier._hit is None  # no hit without the check (the ASGI fast path checks it)


async def test_rfc8705_3_asgi_fast_path_checks_the_certificate_on_every_hit(
    issuer: LocalIssuer, cert: TestCertificate, other: TestCertificate
) -> None:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    source = ClientCertificate.header(trusted_proxies=LOOPBACK)
    app = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)]), verifier=mtls(issuer), client_certificate=source
    )
    assert app._fast  # the cached-token path serves certificate-bound tokens too
    token = issuer.mint(sub="fast", certificate=cert)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):  # a fresh verification, then a cache hit
            ok = await client.get("/me", headers={**bearer(token), **client_cert(cert)})
            assert ok.json() == {"sub": "fast"}
            wrong = await client.get("/me", headers={**bearer(token), **client_cert(other)})
            assert wrong.json()["code"] == "certificate_binding_mismatch"
            none = await client.get("/me", headers=bearer(token))
            assert none.json()["code"] == "client_certificate_missing"
            bad = await client.get("/me", headers={**bearer(token), "Client-Cert": ":x:"})
            assert bad.status_code == 400
    with_denylist = issuer.verifier(mtls=True, denylist=MemoryDenylist())
    assert not JWTGuardMiddleware(Starlette(), verifier=with_denylist)._fast


async def test_rfc8705_3_unbound_token_with_a_certificate_is_accepted(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate
) -> None:
    verifier = mtls(issuer)
    principal = await verify(drive, verifier, issuer.mint(sub="b"), client_certificate=cert.der)
    assert principal.subject == "b"
    assert (await verify(drive, verifier, issuer.mint(sub="c"))).subject == "c"


async def test_rfc7800_3_1_bound_token_stays_refused_without_mtls(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate
) -> None:
    with pytest.raises(TokenBindingUnsupported) as refused:
        await verify(drive, issuer.verifier(), issuer.mint(certificate=cert))
    assert "mtls=True" in refused.value.detail["reason"]
    with pytest.raises(ConfigurationError, match="mtls=True"):
        await verify(drive, issuer.verifier(), issuer.mint(), client_certificate=cert.der)


async def test_rfc8705_3_1_malformed_x5t_s256_is_refused(issuer: LocalIssuer, drive: Drive) -> None:
    for value in ("abc", 12, "é" * 43, "A" * 44):
        token = issuer.mint(cnf={"x5t#S256": value})
        with pytest.raises(ClaimInvalid):
            await verify(drive, mtls(issuer), token, certificate_thumbprint="A" * 43)


async def test_token_with_jkt_and_x5t_s256_is_held_to_both(
    issuer: LocalIssuer, drive: Drive, cert: TestCertificate
) -> None:
    # RFC 7800 §3.1 lets cnf hold several members; each is a constraint its issuer set, so
    # accepting on one alone would drop the other: both are checked, or the token refused.
    from cryptography.hazmat.primitives.asymmetric import ec

    from jwt_guard.testing import dpop_proof

    key = ec.generate_private_key(ec.SECP256R1())
    token = issuer.mint(certificate=cert, dpop_key=key)
    with pytest.raises(DPoPBoundTokenAsBearer):
        await verify(drive, mtls(issuer), token, client_certificate=cert.der)
    both = issuer.verifier(mtls=True, dpop=DPoP(allowed_hosts=["api.test"]))
    url = "https://api.test/r"
    proof = dpop_proof(key, "GET", url, access_token=token, iat=issuer.clock())
    with pytest.raises(ClientCertificateMissing):
        await verify(drive, both, token, dpop_proof=proof, method="GET", url=url)
    proof = dpop_proof(key, "GET", url, access_token=token, iat=issuer.clock())
    principal = await verify(
        drive, both, token, dpop_proof=proof, method="GET", url=url, client_certificate=cert.der
    )
    assert principal.subject == "user-1"


def test_mtls_options_are_checked(issuer: LocalIssuer, cert: TestCertificate) -> None:
    with pytest.raises(ConfigurationError, match="mtls must be"):
        issuer.verifier(mtls="yes")
    with pytest.raises(ConfigurationError, match="choose one"):
        issuer.verifier(mtls=True, accept_bound_tokens_as_bearer=True)
    verifier = mtls(issuer)
    with pytest.raises(ConfigurationError, match="certificate_thumbprint must be"):
        verifier.verify(issuer.mint(), certificate_thumbprint="not-one")
    with pytest.raises(ConfigurationError, match="client_certificate or"):
        verifier.verify(issuer.mint(), client_certificate=cert.der, certificate_thumbprint="x")


# -- the parsers (sans-IO) ---------------------------------------------------------------------


def test_pem_forms(cert: TestCertificate) -> None:
    assert der_from_pem(cert.pem) == cert.der
    assert thumbprint_from_pem(cert.pem.replace("\n", "\r\n")) == cert.thumbprint
    assert thumbprint_from_escaped_pem(cert.escaped_pem) == cert.thumbprint
    assert thumbprint_from_client_cert(cert.client_cert_header) == cert.thumbprint


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nMIGHAgEA\n-----END CERTIFICATE-----\n",  # not a cert
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ],
)
def test_a_pem_that_is_no_certificate_is_400(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        thumbprint_from_pem(text)
    assert refused.value.code == "client_certificate_invalid"
    assert refused.value.status_code == 400


def test_two_certificates_in_one_pem_are_refused(
    cert: TestCertificate, other: TestCertificate
) -> None:
    with pytest.raises(InvalidRequest):
        thumbprint_from_pem(cert.pem + other.pem)


@pytest.mark.parametrize(
    "make",
    [
        lambda c: c.client_cert_header + ";a=1",  # parameters: RFC 9440 defines none
        lambda c: c.client_cert_header + ", " + c.client_cert_header,  # a repeated header
        lambda c: c.client_cert_header.strip(":"),  # a token, not a byte sequence
        lambda c: c.client_cert_header.replace("+", "-"),  # base64url is not sf-binary
        lambda c: c.client_cert_header[:-3] + ":",  # unpadded
        lambda c: ":" + base64.b64encode(c.der + b"\0").decode() + ":",  # trailing data
    ],
)
def test_rfc9440_2_2_client_cert_is_one_byte_sequence_of_a_der_certificate(
    cert: TestCertificate, make: Any
) -> None:
    value = make(cert)
    if value == cert.client_cert_header:  # this certificate's base64 has no "+"
        return
    with pytest.raises(InvalidRequest):
        thumbprint_from_client_cert(value)


def test_envoy_xfcc_hash_and_cert(cert: TestCertificate, other: TestCertificate) -> None:
    assert thumbprint_from_xfcc(cert.xfcc(), last_element=False) == cert.thumbprint
    assert thumbprint_from_xfcc(cert.xfcc(cert=True), last_element=False) == cert.thumbprint
    # Keys are case-insensitive; a quoted value may hold , ; = and an escaped quote.
    quoted = f'Subject="CN=a,\\"b\\";c";hash={cert.xfcc().split("Hash=")[1].split(";")[0]}'
    assert thumbprint_from_xfcc(quoted, last_element=False) == cert.thumbprint
    mixed = other.xfcc().replace(";Subject", f';Cert="{cert.escaped_pem}";Subject')
    with pytest.raises(InvalidRequest) as refused:
        thumbprint_from_xfcc(mixed, last_element=False)
    assert refused.value.detail["reason"] == "x-forwarded-client-cert: Hash and Cert disagree"
    assert thumbprint_from_xfcc("By=spiffe://x;URI=spiffe://y", last_element=False) is None


def test_envoy_xfcc_several_elements_fail_closed(
    cert: TestCertificate, other: TestCertificate
) -> None:
    # APPEND_FORWARD: the client wrote the first element, the trusted proxy the last.
    header = f"{other.xfcc()},{cert.xfcc()}"
    with pytest.raises(InvalidRequest) as refused:
        thumbprint_from_xfcc(header, last_element=False)
    assert refused.value.detail["elements"] == 2
    assert thumbprint_from_xfcc(header, last_element=True) == cert.thumbprint


@pytest.mark.parametrize(
    "value",
    ['Hash="abc', "Hash", "Hash=zz", "Hash=a;hash=b", "=x", 'Hash="a"b', "a=b=c"],
)
def test_envoy_xfcc_malformed_is_400(value: str) -> None:
    with pytest.raises(InvalidRequest):
        thumbprint_from_xfcc(value, last_element=False)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_certificate_parsers_never_raise_anything_but_invalid_request(text: str) -> None:
    for parse in (
        thumbprint_from_pem,
        thumbprint_from_escaped_pem,
        thumbprint_from_client_cert,
        lambda t: thumbprint_from_xfcc(t, last_element=True),
    ):
        with contextlib.suppress(InvalidRequest):
            parse(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_der_check_never_raises_anything_but_invalid_request(der: bytes) -> None:
    value = ":" + base64.b64encode(der).decode() + ":"
    with contextlib.suppress(InvalidRequest):
        thumbprint_from_client_cert(value)


# -- the adapters: both, with the RFC 9440 header from a trusted proxy (127.0.0.1) ------------


def client_cert(cert: TestCertificate) -> dict[str, str]:
    return {"Client-Cert": cert.client_cert_header}


@pytest.fixture
def header_source() -> ClientCertificate:
    return ClientCertificate.header(trusted_proxies=LOOPBACK)


async def test_adapters_check_the_binding(
    make_client: AppFactory,
    issuer: LocalIssuer,
    cert: TestCertificate,
    other: TestCertificate,
    header_source: ClientCertificate,
) -> None:
    client = make_client(mtls(issuer), client_certificate=header_source)
    token = issuer.mint(sub="alice", certificate=cert)
    ok = await client.get("/me", headers={**bearer(token), **client_cert(cert)})
    assert ok.status_code == 200 and ok.json()["sub"] == "alice"
    # The same token again (a cache hit) with another certificate, then with none.
    wrong = await client.get("/me", headers={**bearer(token), **client_cert(other)})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "certificate_binding_mismatch"
    assert 'error="invalid_token"' in challenge(wrong)
    assert_no_leak(wrong, token, cert.thumbprint, other.thumbprint)
    missing = await client.get("/me", headers=bearer(token))
    assert missing.status_code == 401 and missing.json()["code"] == "client_certificate_missing"
    plain = await client.get("/me", headers={**bearer(issuer.mint()), **client_cert(other)})
    assert plain.status_code == 200


@pytest.mark.parametrize("value", [":not base64!:", "abc", ":" + "A" * 8 + ":"])
async def test_rfc9440_2_malformed_client_cert_header_is_400(
    make_client: AppFactory, issuer: LocalIssuer, header_source: ClientCertificate, value: str
) -> None:
    client = make_client(mtls(issuer), client_certificate=header_source)
    response = await client.get("/me", headers={**bearer(issuer.mint()), "Client-Cert": value})
    assert response.status_code == 400
    assert response.json()["code"] == "client_certificate_invalid"
    assert 'error="invalid_request"' in challenge(response)


async def test_rfc9440_2_repeated_client_cert_header_is_400(
    make_client: AppFactory,
    issuer: LocalIssuer,
    cert: TestCertificate,
    header_source: ClientCertificate,
) -> None:
    client = make_client(mtls(issuer), client_certificate=header_source)
    headers = [
        ("Authorization", f"Bearer {issuer.mint(certificate=cert)}"),
        ("Client-Cert", cert.client_cert_header),
        ("Client-Cert", cert.client_cert_header),
    ]
    response = await client.get("/me", headers=headers)
    assert response.status_code == 400


async def test_header_from_an_untrusted_peer_is_ignored(
    make_client: AppFactory, issuer: LocalIssuer, cert: TestCertificate
) -> None:
    source = ClientCertificate.header(trusted_proxies=["10.0.0.0/8"])
    client = make_client(mtls(issuer), client_certificate=source)
    token = issuer.mint(certificate=cert)
    response = await client.get("/me", headers={**bearer(token), **client_cert(cert)})
    assert response.status_code == 401 and response.json()["code"] == "client_certificate_missing"
    # Ignored means not read: a malformed header from there is no 400 either.
    plain = await client.get("/me", headers={**bearer(issuer.mint()), "Client-Cert": "x"})
    assert plain.status_code == 200


@pytest.mark.parametrize("kind", ["nginx", "envoy", "envoy-cert"])
async def test_proxy_headers_through_both_adapters(
    make_client: AppFactory,
    issuer: LocalIssuer,
    cert: TestCertificate,
    other: TestCertificate,
    kind: str,
) -> None:
    if kind == "nginx":
        source = ClientCertificate.nginx(trusted_proxies=LOOPBACK)
        name, value, wrong = "X-SSL-Client-Cert", cert.escaped_pem, other.escaped_pem
    else:
        source = ClientCertificate.envoy_xfcc(trusted_proxies=LOOPBACK)
        with_cert = kind == "envoy-cert"
        name, value = "X-Forwarded-Client-Cert", cert.xfcc(cert=with_cert)
        wrong = other.xfcc(cert=with_cert)
    client = make_client(mtls(issuer), client_certificate=source)
    token = issuer.mint(certificate=cert)
    assert (await client.get("/me", headers={**bearer(token), name: value})).status_code == 200
    refused = await client.get("/me", headers={**bearer(token), name: wrong})
    assert refused.json()["code"] == "certificate_binding_mismatch"
    empty = await client.get("/me", headers={**bearer(token), name: ""})
    assert empty.json()["code"] == "client_certificate_missing"


async def test_rfc9728_2_metadata_says_certificate_bound_tokens(
    make_client: AppFactory, header_source: ClientCertificate
) -> None:
    api = LocalIssuer(audience="https://api.test/")
    resource = ProtectedResource(resource=api.audience, authorization_servers=[api.issuer])
    client = make_client(mtls(api), client_certificate=header_source, protected_resource=resource)
    document = (await client.get("/.well-known/oauth-protected-resource")).json()
    assert document["tls_client_certificate_bound_access_tokens"] is True
    plain = make_client(api.verifier(), protected_resource=resource)
    document = (await plain.get("/.well-known/oauth-protected-resource")).json()
    assert "tls_client_certificate_bound_access_tokens" not in document
    refused = ProtectedResource(
        resource=api.audience,
        authorization_servers=[api.issuer],
        extra={"tls_client_certificate_bound_access_tokens": False},
    )
    with pytest.raises(ConfigurationError, match="drop it from extra"):
        JWTGuardMiddleware(
            Starlette(),
            verifier=mtls(api),
            client_certificate=header_source,
            protected_resource=refused,
        )


# -- start-up checks ---------------------------------------------------------------------------


def test_startup_checks(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture, header_source: ClientCertificate
) -> None:
    app = Starlette()
    with pytest.raises(ConfigurationError, match="mtls=True"):
        JWTGuardMiddleware(app, verifier=issuer.verifier(), client_certificate=header_source)
    with pytest.raises(ConfigurationError, match="for WSGI"):
        JWTGuardMiddleware(
            app, verifier=mtls(issuer), client_certificate=ClientCertificate.environ()
        )
    with pytest.raises(ConfigurationError, match="for ASGI"):
        JWTGuardWSGIMiddleware(
            lambda e, s: [], verifier=mtls(issuer), client_certificate=ClientCertificate.tls()
        )
    with pytest.raises(ConfigurationError, match="ClientCertificate"):
        JWTGuardMiddleware(app, verifier=mtls(issuer), client_certificate="tls")  # type: ignore[arg-type]
    for bad in ([], "127.0.0.1", ["not-an-ip"], ["10.0.0.1/8"]):
        with pytest.raises(ConfigurationError, match="trusted_proxies"):
            ClientCertificate.header(trusted_proxies=bad)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        JWTGuardMiddleware(app, verifier=mtls(issuer))
        RouteGuard(mtls(issuer))
    said = [
        r.getMessage() for r in caplog.records if "no client_certificate= source" in r.getMessage()
    ]
    assert len(said) == 2 and "ClientCertificate.tls()" in said[0]


# -- where the certificate comes from: servers ------------------------------------------------


def _tls_scope(app: Any) -> Any:
    """An ASGI server with the TLS extension, as far as the scope goes: the certificate comes
    from a test header (the server side is M2's real-TLS test)."""

    async def with_tls(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            pem = dict(scope["headers"]).get(b"x-test-pem")
            chain = [pem.decode().replace("\\n", "\n")] if pem else []
            scope = {
                **scope,
                "extensions": {
                    **(scope.get("extensions") or {}),
                    "tls": {"client_cert_chain": chain},
                },
            }
        await app(scope, receive, send)

    return with_tls


def _pem_header(cert: TestCertificate) -> dict[str, str]:
    return {"X-Test-Pem": cert.pem.replace("\n", "\\n")}


async def test_asgi_tls_extension(
    issuer: LocalIssuer, cert: TestCertificate, other: TestCertificate
) -> None:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    inner = Starlette(routes=[Route("/me", me)])
    app = _tls_scope(
        JWTGuardMiddleware(inner, verifier=mtls(issuer), client_certificate=ClientCertificate.tls())
    )
    token = issuer.mint(certificate=cert)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t") as c:
        assert (
            await c.get("/me", headers={**bearer(token), **_pem_header(cert)})
        ).status_code == 200
        wrong = await c.get("/me", headers={**bearer(token), **_pem_header(other)})
        assert wrong.json()["code"] == "certificate_binding_mismatch"
        none = await c.get("/me", headers=bearer(token))
        assert none.json()["code"] == "client_certificate_missing"


async def test_asgi_server_without_the_tls_extension_is_said_once(
    issuer: LocalIssuer, cert: TestCertificate, caplog: pytest.LogCaptureFixture
) -> None:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    source = ClientCertificate.tls()
    app = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)]), verifier=mtls(issuer), client_certificate=source
    )
    token = issuer.mint(certificate=cert)
    transport = httpx.ASGITransport(app=app)  # no "tls" extension in its scopes
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
            for _ in range(3):
                response = await c.get("/me", headers=bearer(token))
                assert response.json()["code"] == "client_certificate_missing"
    said = [r for r in caplog.records if "no 'tls' extension" in r.getMessage()]
    assert len(said) == 1
    # Over plain HTTP the extension is absent by the spec: no certificate, nothing to say.
    caplog.clear()
    quiet = ClientCertificate.tls()
    app = JWTGuardMiddleware(
        Starlette(routes=[Route("/me", me)]), verifier=mtls(issuer), client_certificate=quiet
    )
    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/me", headers=bearer(token))
            assert response.json()["code"] == "client_certificate_missing"
    assert not [r for r in caplog.records if "no 'tls' extension" in r.getMessage()]


def test_wsgi_environ_ssl_client_cert(
    issuer: LocalIssuer, cert: TestCertificate, other: TestCertificate
) -> None:
    # mod_wsgi exports SSL_CLIENT_CERT; wsgiref does not, so a layer sets it from a test header.
    app = flask_app(mtls(issuer), client_certificate=ClientCertificate.environ())

    def mod_ssl(environ: dict[str, Any], start_response: Any) -> Any:
        pem = environ.pop("HTTP_X_TEST_PEM", None)
        if pem:
            environ["SSL_CLIENT_CERT"] = pem.replace("\\n", "\n")
        return app(environ, start_response)

    token = issuer.mint(certificate=cert)
    with run_wsgi(mod_ssl) as base, httpx.Client(base_url=base) as client:
        assert client.get("/me", headers={**bearer(token), **_pem_header(cert)}).status_code == 200
        wrong = client.get("/me", headers={**bearer(token), **_pem_header(other)})
        assert wrong.json()["code"] == "certificate_binding_mismatch"
        broken = client.get("/me", headers={**bearer(token), "X-Test-Pem": "-----BEGIN x"})
        assert broken.status_code == 400


@pytest.fixture
def uvicorn_app(issuer: LocalIssuer) -> Iterator[Any]:
    def make(trusted: list[str]) -> Any:
        async def me(request: Request) -> JSONResponse:
            return JSONResponse({"sub": request.user.subject})

        source = ClientCertificate.header(trusted_proxies=trusted)
        return JWTGuardMiddleware(
            Starlette(routes=[Route("/me", me)]), verifier=mtls(issuer), client_certificate=source
        )

    yield make


@pytest.mark.parametrize("trusted", [["127.0.0.1"], ["127.0.0.0/8", "::1"], ["192.0.2.1"]])
def test_trusted_proxies_against_real_servers_peer_address(
    issuer: LocalIssuer, cert: TestCertificate, uvicorn_app: Any, trusted: list[str]
) -> None:
    # The peer address a real server reports (uvicorn: scope["client"]; wsgiref:
    # REMOTE_ADDR) is 127.0.0.1: believed only when the list holds it.
    token = issuer.mint(certificate=cert)
    headers = {**bearer(token), **client_cert(cert)}
    wsgi = flask_app(
        mtls(issuer), client_certificate=ClientCertificate.header(trusted_proxies=trusted)
    )
    with run_uvicorn(uvicorn_app(trusted)) as asgi_base, run_wsgi(wsgi) as wsgi_base:
        for base in (asgi_base, wsgi_base):
            response = httpx.get(base + "/me", headers=headers)
            if "192.0.2.1" in trusted:
                assert response.json()["code"] == "client_certificate_missing", base
            else:
                assert response.status_code == 200, base


def test_route_guard_and_websocket_handshake(
    issuer: LocalIssuer, cert: TestCertificate, other: TestCertificate
) -> None:
    verifier = mtls(issuer)
    guard = RouteGuard(
        verifier, client_certificate=ClientCertificate.header(trusted_proxies=LOOPBACK)
    )

    @guard.protect
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.subject})

    @guard.protect
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.user.subject)
        await websocket.close()

    app = Starlette(routes=[Route("/me", me), WebSocketRoute("/ws", ws)])
    token = issuer.mint(sub="ws-alice", certificate=cert)
    with run_uvicorn(app) as base:
        assert httpx.get(base + "/me", headers={**bearer(token), **client_cert(cert)}).json() == {
            "sub": "ws-alice"
        }
        url = base.replace("http", "ws") + "/ws"
        with connect(url, additional_headers={**bearer(token), **client_cert(cert)}) as socket:
            assert socket.recv() == "ws-alice"
        with pytest.raises(InvalidStatus) as refused:
            with connect(url, additional_headers={**bearer(token), **client_cert(other)}):
                pass
        assert refused.value.response.status_code == 401
        assert b"certificate_binding_mismatch" in refused.value.response.body


async def test_fastapi_jwtbearer_and_mcp_protect_take_the_source(
    cert: TestCertificate, other: TestCertificate
) -> None:
    from fastapi import Depends, FastAPI

    from jwt_guard import Principal
    from jwt_guard.fastapi import JWTBearer

    from .test_mcp import ISSUER, custom_app, in_process, protected

    source = ClientCertificate.header(trusted_proxies=LOOPBACK)
    verifier = ISSUER.verifier(mtls=True)
    bearer_guard = JWTBearer(verifier, client_certificate=source)
    api = FastAPI()

    @api.get("/me")
    async def me(principal: Principal = Depends(bearer_guard)) -> dict[str, Any]:
        return {"sub": principal.subject}

    mcp_app, _ = custom_app()
    token = ISSUER.mint(sub="m", certificate=cert)
    for app in (api, protected(mcp_app, verifier, client_certificate=source)):
        async with in_process(app) as http:
            path, method = ("/me", "GET") if app is api else ("/hook", "POST")
            ok = await http.request(method, path, headers={**bearer(token), **client_cert(cert)})
            assert ok.status_code == 200, ok.text
            wrong = await http.request(
                method, path, headers={**bearer(token), **client_cert(other)}
            )
            assert wrong.status_code == 401
            assert wrong.json()["code"] == "certificate_binding_mismatch"


async def test_fapi2_5_3_4_certificate_bound_tokens_with_mtls(
    make_issuer: Any, drive: Drive, cert: TestCertificate, other: TestCertificate
) -> None:
    # profile="fapi2" takes mtls=True as the sender constraint it checks (RFC 8705).
    fapi = make_issuer("PS256")
    verifier = fapi.verifier(profile="fapi2", mtls=True)
    bound = fapi.mint(certificate=cert)
    principal = await verify(drive, verifier, bound, client_certificate=cert.der)
    assert principal.subject == "user-1"
    with pytest.raises(CertificateBindingMismatch):
        await verify(drive, verifier, bound, client_certificate=other.der)
    with pytest.raises(TokenNotSenderConstrained):
        await verify(drive, verifier, fapi.mint(), client_certificate=cert.der)
