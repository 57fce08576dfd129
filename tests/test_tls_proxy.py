"""Certificate-bound tokens (RFC 8705) over real TLS: nginx terminates TLS, asks for the
client's certificate (``ssl_verify_client optional_no_ca``) and forwards it as
``$ssl_client_escaped_cert`` to the app on 127.0.0.1, served by uvicorn (ASGI) or a threaded
wsgiref server (WSGI), which reads it with ``ClientCertificate.nginx(trusted_proxies=...)``
(issue 28, item 5). The nginx configuration is the README's (``tests/nginx_server.py``).

No ASGI server on the package index provides the ASGI ``tls`` extension's
``client_cert_chain`` (uvicorn, Hypercorn 0.18, Daphne 4.2, Granian 2.8 were read), so
``ClientCertificate.tls()`` has no real server to run against here.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jwt_guard import ClientCertificate, Verifier
from jwt_guard.testing import CertificateAuthority, LocalIssuer, TestCertificate

from .apps import flask_app, starlette_app
from .nginx_server import nginx_proxy
from .servers import run_uvicorn, run_wsgi

HEADER = "X-SSL-Client-Cert"  # the README's proxy_set_header


@dataclass
class Proxied:
    """An app behind nginx: ``url`` through nginx, ``direct`` the app itself."""

    url: str
    direct: str
    ca: CertificateAuthority
    tmp: Path

    def client(self, certificate: TestCertificate | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.tmp / "ca.pem"))
        if certificate is not None:
            cert = self.tmp / f"{certificate.thumbprint}.pem"
            key = self.tmp / f"{certificate.thumbprint}.key"
            cert.write_text(certificate.pem)
            key.write_text(certificate.key_pem)
            context.load_cert_chain(str(cert), str(key))
        return httpx.Client(base_url=self.url, verify=context, timeout=10)


@pytest.fixture(scope="module")
def idp() -> LocalIssuer:
    return LocalIssuer(algorithm="PS256")  # real time: the servers run on the real clock


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@contextlib.contextmanager
def _serve(adapter: str, verifier: Verifier, trusted: list[str]) -> Iterator[str]:
    source = ClientCertificate.nginx(HEADER, trusted_proxies=trusted)
    if adapter == "asgi":
        with run_uvicorn(starlette_app(verifier, client_certificate=source)) as url:
            yield url
    else:
        with run_wsgi(flask_app(verifier, client_certificate=source)) as url:
            yield url


Behind = Callable[..., contextlib.AbstractContextManager[Proxied]]


@pytest.fixture(params=["asgi", "wsgi"])
def behind_nginx(
    request: pytest.FixtureRequest,
    idp: LocalIssuer,
    ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Behind:
    """Start the app (ASGI or WSGI) with a verifier and the proxies it trusts, and nginx in
    front of it."""

    @contextlib.contextmanager
    def start(
        trusted: list[str] | None = None, verifier: Verifier | None = None
    ) -> Iterator[Proxied]:
        checks = verifier or idp.verifier(mtls=True)
        with _serve(request.param, checks, trusted or ["127.0.0.1"]) as direct:
            tmp = tmp_path_factory.mktemp("nginx")
            with nginx_proxy(tmp, ca, direct) as nginx:
                yield Proxied(nginx.url, direct, ca, tmp)

    return start


def me(client: httpx.Client, token: str, **headers: str) -> httpx.Response:
    return client.get("/me", headers={"Authorization": f"Bearer {token}", **headers})


def test_rfc8705_3_a_bound_token_with_its_certificate_passes_nginx(
    behind_nginx: Behind, idp: LocalIssuer, ca: CertificateAuthority
) -> None:
    alice, mallory = ca.issue("alice"), ca.issue("mallory")
    token = idp.mint(sub="alice", certificate=alice)
    with behind_nginx() as proxied:
        with proxied.client(alice) as client:
            for _ in range(2):  # the second from the verified-token cache
                ok = me(client, token)
                assert ok.status_code == 200 and ok.json()["sub"] == "alice"
        with proxied.client(mallory) as client:
            stolen = me(client, token)
            assert stolen.status_code == 401
            assert stolen.json()["code"] == "certificate_binding_mismatch"
        with proxied.client() as client:
            bare = me(client, token)
            assert bare.status_code == 401
            assert bare.json()["code"] == "client_certificate_missing"
            # A plain bearer token needs no certificate (RFC 8705 §3 binds only bound tokens).
            assert me(client, idp.mint(sub="bob")).status_code == 200


def test_rfc8705_3_a_self_signed_client_certificate_works_with_optional_no_ca(
    behind_nginx: Behind, idp: LocalIssuer
) -> None:
    """RFC 8705 §3: the binding is to the certificate itself, not to a CA; nginx's
    ``optional_no_ca`` hands over a self-signed one."""
    from jwt_guard.testing import make_client_certificate

    own = make_client_certificate("self-signed")
    with behind_nginx() as proxied, proxied.client(own) as client:
        assert me(client, idp.mint(certificate=own)).status_code == 200


def test_rfc9440_a_certificate_header_sent_to_nginx_is_replaced(
    behind_nginx: Behind, idp: LocalIssuer, ca: CertificateAuthority
) -> None:
    """A client without a certificate sends the header itself: nginx's proxy_set_header
    replaces it (with nothing), so the bound token has no certificate."""
    alice = ca.issue("alice")
    token = idp.mint(certificate=alice)
    with behind_nginx() as proxied, proxied.client() as client:
        forged = me(client, token, **{HEADER: alice.escaped_pem})
        assert forged.status_code == 401
        assert forged.json()["code"] == "client_certificate_missing"


def test_rfc9440_a_header_from_a_direct_client_is_ignored(
    behind_nginx: Behind, idp: LocalIssuer, ca: CertificateAuthority
) -> None:
    """A client reaching the app itself (from 127.0.0.2, not the proxy) with the header: it is
    not believed, so the bound token fails; the same header from the proxy's address is."""
    alice = ca.issue("alice")
    token = idp.mint(certificate=alice)
    with behind_nginx() as proxied:
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=proxied.direct, transport=other) as direct:
            forged = me(direct, token, **{HEADER: alice.escaped_pem})
            assert forged.status_code == 401
            assert forged.json()["code"] == "client_certificate_missing"
        # From 127.0.0.1, the trusted proxy's address, the same header is believed: why the
        # app must listen where only the proxy reaches it (README).
        with httpx.Client(base_url=proxied.direct) as local:
            assert me(local, token, **{HEADER: alice.escaped_pem}).status_code == 200


def test_rfc9440_an_app_that_does_not_trust_the_proxy_ignores_its_header(
    behind_nginx: Behind, idp: LocalIssuer, ca: CertificateAuthority
) -> None:
    alice = ca.issue("alice")
    with behind_nginx(trusted=["10.0.0.0/8"]) as proxied, proxied.client(alice) as client:
        refused = me(client, idp.mint(certificate=alice))
        assert refused.status_code == 401
        assert refused.json()["code"] == "client_certificate_missing"


def test_fapi2_5_3_4_over_real_tls_mtls_bound_tokens_only(
    behind_nginx: Behind, idp: LocalIssuer, ca: CertificateAuthority
) -> None:
    """profile="fapi2" with mtls=True behind nginx: a bearer token is refused, a
    certificate-bound one with its certificate passes."""
    alice = ca.issue("alice")
    verifier = idp.verifier(profile="fapi2", mtls=True)
    with behind_nginx(verifier=verifier) as proxied, proxied.client(alice) as client:
        bearer = me(client, idp.mint(sub="alice"))
        assert bearer.status_code == 401
        assert bearer.json()["code"] == "token_not_sender_constrained"
        assert me(client, idp.mint(sub="alice", certificate=alice)).status_code == 200
