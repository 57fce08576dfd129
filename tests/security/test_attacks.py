"""Algorithm and key attacks, through the middleware (ASGI and WSGI)."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from jwt_guard._tools.signing import b64url, generate_key, public_jwk
from jwt_guard.testing import LocalIssuer, compact, forge

from ..conftest import AppFactory
from .helpers import public_forms, rejected

# -- algorithm confusion ---------------------------------------------------------------------


@pytest.mark.parametrize("form", ["spki_pem", "pkcs1_pem", "der", "jwk_json"])
@pytest.mark.parametrize("allowed", [["RS256"], ["RS256", "HS256"]])
async def test_cve_2022_29217_hs256_signed_with_the_public_key(
    make_client: AppFactory, issuer: LocalIssuer, form: str, allowed: list[str]
) -> None:
    token = forge(
        {"alg": "HS256", "kid": issuer.kid}, issuer.claims(), public_forms(issuer)[form], "HS256"
    )
    client = make_client(issuer.verifier(algorithms=allowed))
    await rejected(client, token, codes=("algorithm_not_allowed", "key_not_found"))


# -- keys in the token ------------------------------------------------------------------------


async def test_rfc8725_3_10_embedded_jwk_ignored(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    attacker = generate_key("RS256")
    header = {"alg": "RS256", "kid": issuer.kid, "jwk": public_jwk(attacker, kid=issuer.kid)}
    token = forge(header, issuer.claims(), attacker, "RS256")
    await rejected(make_client(), token, codes=("signature_invalid",))


class _Listener(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def listener() -> Iterator[str]:
    _Listener.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/keys.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("member", ["jku", "x5u"])
async def test_rfc8725_3_10_jku_x5u_receive_zero_requests(
    make_client: AppFactory, issuer: LocalIssuer, member: str
) -> None:
    with listener() as url:
        attacker = generate_key("RS256")
        token = forge(
            {"alg": "RS256", "kid": "evil", member: url}, issuer.claims(), attacker, "RS256"
        )
        await rejected(make_client(), token, codes=("key_not_found",), secrets=(url, "evil"))
        assert _Listener.hits == 0


async def test_rfc7515_4_1_6_self_signed_x5c_ignored(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    attacker = generate_key("RS256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(attacker.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(attacker, hashes.SHA256())
    )
    x5c = [b64url(cert.public_bytes(serialization.Encoding.DER))]
    token = forge({"alg": "RS256", "x5c": x5c}, issuer.claims(), attacker, "RS256")
    await rejected(make_client(), token, codes=("signature_invalid",))


@contextmanager
def no_files_or_network() -> Iterator[list[str]]:
    """Record file opens and socket connections made while the block runs (audit hooks)."""
    events: list[str] = []
    active = threading.local()
    active.on = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if getattr(active, "on", False) and event in ("open", "socket.connect", "os.listdir"):
            events.append(f"{event}:{args[0]!r}")

    _HOOKS.append(hook)
    try:
        yield events
    finally:
        active.on = False
        _HOOKS.remove(hook)


_HOOKS: list[Any] = []
sys.addaudithook(lambda event, args: [h(event, args) for h in list(_HOOKS)] and None)


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "/dev/random",
        "' OR '1'='1' --",
        "key1; DROP TABLE keys",
        "$(curl http://127.0.0.1:1/)",
        "`rm -rf /`",
        "k" * 10_000,
        5,
        None,
        ["a"],
        {"a": 1},
        True,
    ],
)
def test_kid_injection_rejected_without_files_or_network(issuer: LocalIssuer, kid: Any) -> None:
    verifier = issuer.verifier(max_token_bytes=65536)
    attacker = generate_key("ES256")
    token = forge({"alg": "RS256", "kid": kid}, issuer.claims(), attacker, "ES256")
    from jwt_guard import JWTGuardError

    with no_files_or_network() as events, pytest.raises(JWTGuardError) as info:
        verifier.verify(token)
    assert events == []
    assert info.value.code in ("key_not_found", "token_malformed", "signature_invalid")


@pytest.mark.parametrize("kid", ["../../etc/passwd", "k" * 200, "' OR 1=1"])
async def test_kid_injection_through_the_middleware(
    make_client: AppFactory, issuer: LocalIssuer, kid: str
) -> None:
    token = forge({"alg": "RS256", "kid": kid}, issuer.claims(), generate_key("RS256"), "RS256")
    await rejected(make_client(), token, codes=("key_not_found",), secrets=(kid,))


async def test_unsigned_token_with_valid_looking_parts(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    token = compact({"alg": "RS256", "kid": issuer.kid}, issuer.claims(), b"\x00" * 256)
    await rejected(make_client(), token, codes=("signature_invalid",))
