"""A test kit for applications protected by jwt_guard.

:class:`LocalIssuer` makes a key pair, hands a :class:`Verifier` its keys without any network,
serves its JWKS on a loopback port when a test wants real HTTP, and mints tokens with sane
defaults and easy overrides::

    issuer = LocalIssuer()
    verifier = issuer.verifier()
    token = issuer.mint(sub="alice", roles=["admin"])
    expired = issuer.mint(expired=True)
    bound = issuer.mint(certificate=make_client_certificate().der)  # cnf.x5t#S256

The pytest plugin (installed with the package) provides a ``jwt_issuer`` fixture.

For an app that takes opaque access tokens, the issuer is also an authorization server with a
token introspection endpoint (RFC 7662)::

    issuer.register_client("notes-api", client_secret="s3cret")  # who may introspect
    token = issuer.opaque_token(sub="alice", scopes=["notes:read"])
    issuer.revoke(token)  # introspected as {"active": false} from now on

answered in-process (:meth:`LocalIssuer.introspection_transport`, for an ``httpx`` client) or
served with the JWKS (``server.introspection_url``, named by the discovery document), with
RFC 9701 JWT responses to a client that asks for them.

A production-shaped test serves the issuer for real and lets the app find it as it would its
identity provider: ``with issuer.serve(as_issuer=True) as server`` makes the tokens' ``iss``
the served URL, whose discovery document names it, so ``OIDCDiscovery(server.base_url)`` (or
``JWT_GUARD_DISCOVERY_URL``) works unchanged. :func:`reset_fetch_timers` lets a rotation or
outage test refetch at once instead of sleeping out the refetch cooldown or the backoff.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any

import httpx
import jwt

from ._core.certificates import der_thumbprint
from ._core.dpop import jwk_thumbprint
from ._core.keyset import KeySource, StaticKeys
from ._sources.config import DEFAULT_ALGORITHM
from ._sources.jwks_state import JWKSState
from ._sources.verifier import Verifier
from ._tools.certificates import CertificateAuthority, TestCertificate, make_client_certificate
from ._tools.introspection_endpoint import AUTH_METHODS, Answer, IntrospectionEndpoint
from ._tools.signing import (
    PrivateKey,
    b64url,
    dpop_jwk,
    dpop_proof,
    encode,
    generate_key,
    public_jwk,
    pyjwt_writes_as_given,
    sign,
)

__all__ = [
    "FAULTS",
    "INTROSPECTION_PATH",
    "CertificateAuthority",
    "JWKSServer",
    "LocalIssuer",
    "TestCertificate",
    "compact",
    "dpop_jwk",
    "dpop_proof",
    "forge",
    "make_client_certificate",
    "reset_fetch_timers",
]


def compact(
    header: bytes | Mapping[str, Any], payload: bytes | Mapping[str, Any], sig: bytes
) -> str:
    """Assemble a compact JWS from raw parts, without any checks (for attack tests)."""

    def part(value: bytes | Mapping[str, Any]) -> str:
        if isinstance(value, (bytes, bytearray)):
            return b64url(bytes(value))
        return b64url(json.dumps(dict(value), separators=(",", ":")).encode("utf-8"))

    return f"{part(header)}.{part(payload)}.{b64url(sig)}"


def forge(
    header: bytes | Mapping[str, Any],
    payload: bytes | Mapping[str, Any],
    key: PrivateKey,
    alg: str,
) -> str:
    """Sign arbitrary header/payload bytes with ``key`` using ``alg`` (for attack tests).

    The signature is PyJWT's; the header and payload are taken as they are, so they may say
    anything, even an ``alg`` other than the one signed with.
    """
    unsigned = compact(header, payload, b"")[:-1]
    return unsigned + "." + b64url(sign(alg, key, unsigned.encode("ascii")))


class LocalIssuer:
    """An in-process token issuer for tests and development."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        issuer: str = "https://issuer.test",
        audience: str = "api://test",
        algorithm: str = DEFAULT_ALGORITHM,
        kid: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithm = algorithm
        self.clock = clock
        self._keys: list[tuple[str, PrivateKey]] = []
        self.rotate(kid)
        self._introspection = IntrospectionEndpoint(
            issuer=lambda: self.issuer,
            clock=lambda: self.clock(),
            sign=lambda payload, typ: self.mint(dict(payload), header={"typ": typ}),
            jwt_claims=self._claims_of,
        )

    def __repr__(self) -> str:
        return f"LocalIssuer(issuer={self.issuer!r}, algorithm={self.algorithm!r})"

    @property
    def kid(self) -> str:
        """The kid of the current signing key."""
        return self._keys[-1][0]

    @property
    def private_key(self) -> PrivateKey:
        """The key tokens are signed with now (the newest)."""
        return self._keys[-1][1]

    def rotate(self, kid: str | None = None, *, keep_old: bool = True) -> str:
        """Start signing with a new key; the old ones stay in the JWKS unless ``keep_old=False``."""
        new_kid = kid or f"key-{uuid.uuid4().hex[:12]}"
        entry = (new_kid, generate_key(self.algorithm))
        self._keys = [*self._keys, entry] if keep_old else [entry]
        return new_kid

    @property
    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (RFC 7517 §5)."""
        return {"keys": [public_jwk(key, kid=kid, alg=self.algorithm) for kid, key in self._keys]}

    def keys(self) -> StaticKeys:
        """A key source holding this issuer's public keys: no network needed."""
        return StaticKeys.from_jwks(self.jwks)

    def verifier(self, **overrides: Any) -> Verifier:
        """A verifier that trusts this issuer (keyword arguments override the defaults)."""
        settings: dict[str, Any] = {
            "keys": self.keys(),
            "algorithms": [self.algorithm],
            "issuer": self.issuer,
            "audience": self.audience,
            "clock": self.clock,
        }
        settings.update(overrides)
        return Verifier(**settings)

    def claims(
        self,
        *,
        sub: str | None = "user-1",
        roles: Sequence[str] | None = None,
        scopes: Sequence[str] | None = None,
        ttl: float = 300,
        expired: bool = False,
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The default claim set, with overrides.

        The defaults are ``iss``, ``sub``, ``aud``, ``iat``, ``exp``, ``jti``. Overrides:
        ``roles`` (a list), ``scopes`` (a space-separated ``scope``), ``ttl`` (seconds),
        ``expired=True`` (``exp`` 5 minutes ago), ``audience``/``issuer`` (another
        ``aud``/``iss``); other keywords are claims, and ``None`` drops a default claim
        (``sub=None`` too)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": issuer if issuer is not None else self.issuer,
            "sub": sub,
            "aud": audience if audience is not None else self.audience,
            "iat": now - 600 if expired else now,
            "exp": now - 300 if expired else int(now + ttl),
            "jti": uuid.uuid4().hex,
        }
        if sub is None:
            del claims["sub"]
        if roles is not None:
            claims["roles"] = list(roles) if isinstance(roles, (list, tuple)) else roles
        if scopes is not None:
            claims["scope"] = " ".join(scopes)
        for name, value in extra.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        header: Mapping[str, Any] | None = None,
        kid: str | None = None,
        dpop_key: Any = None,
        certificate: bytes | TestCertificate | None = None,
        **overrides: Any,
    ) -> str:
        """A signed token.

        ``claims`` replaces the default claim set; ``overrides`` adjust it; ``header`` adds or
        replaces header members (``None`` drops one). The header is exactly the one asked for,
        and the signature is always made with the issuer's algorithm and key: by PyJWT, or as
        :func:`forge` signs when PyJWT would check or rewrite a member asked for (another
        ``alg``, a falsy ``typ``, a non-string ``kid``, ``b64``).

        ``dpop_key`` (a key object, private or public) binds the token to that key: its
        RFC 7638 thumbprint goes in ``cnf.jkt`` (RFC 9449 §6.1). ``certificate`` (DER bytes, or
        a :class:`TestCertificate`) binds it to a client certificate: its SHA-256 thumbprint
        goes in ``cnf.x5t#S256`` (RFC 8705 §3.1). Both may be given.
        """
        payload = dict(claims) if claims is not None else self.claims(**overrides)
        if dpop_key is not None:
            payload["cnf"] = {"jkt": jwk_thumbprint(dpop_jwk(dpop_key))}
        if certificate is not None:
            der = certificate.der if isinstance(certificate, TestCertificate) else certificate
            payload["cnf"] = {**payload.get("cnf", {}), "x5t#S256": der_thumbprint(der)}
        use_kid = kid or self.kid
        key = dict(self._keys).get(use_kid, self.private_key)
        hdr: dict[str, Any] = {"alg": self.algorithm, "typ": "JWT", "kid": use_kid}
        if header is not None:
            hdr.update(header)
            hdr = {k: v for k, v in hdr.items() if v is not None}
        if not pyjwt_writes_as_given(hdr, self.algorithm):
            # PyJWT checks or rewrites some members (alg, a falsy typ, a non-string kid,
            # b64); a test that asks for such a header gets it exactly as asked.
            return forge(hdr, payload, key, self.algorithm)
        return encode(payload, key, self.algorithm, header=hdr)

    # -- opaque tokens and introspection (RFC 7662) ---------------------------------------

    def opaque_token(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        dpop_key: Any = None,
        client_id: str | None = None,
        **overrides: Any,
    ) -> str:
        """An opaque access token: random text standing for a claim set (RFC 7662 §2.2).

        Its introspection answers with the claims: those of :meth:`mint`, with the same
        ``claims``, ``dpop_key`` and keyword overrides (``sub``, ``scopes``, ``roles``, ``ttl``,
        ``expired``, ``audience``, ``issuer``, any claim); ``client_id`` is the client the token
        was issued to."""
        payload = dict(claims) if claims is not None else self.claims(**overrides)
        if dpop_key is not None:
            payload["cnf"] = {"jkt": jwk_thumbprint(dpop_jwk(dpop_key))}
        if client_id is not None:
            payload["client_id"] = client_id
        return self._introspection.issue(payload)

    def revoke(self, token: str) -> None:
        """Revoke a token: an opaque one, or a JWT this issuer signed.

        Its introspection says ``active: false`` from now on (a JWT verified locally is not
        affected: that is what the app's denylist is for)."""
        self._introspection.revoke(token)

    def introspect(self, token: str) -> dict[str, Any]:
        """What the introspection endpoint answers for ``token`` (RFC 7662 §2.2).

        Its claims with ``"active": true``, or only ``{"active": false}`` for a token that is
        unknown, revoked, expired or not yet valid. A JWT this issuer signed is introspected as
        well."""
        return self._introspection.response(token)

    def register_client(
        self,
        client_id: str,
        *,
        client_secret: str | None = None,
        public_key: Any = None,
        auth_method: str | None = None,
    ) -> None:
        """Allow a client (the app under test, a resource server) to introspect tokens.

        It authenticates by one method, as registered at a real server (RFC 7591
        ``token_endpoint_auth_method``): ``client_secret_basic`` (the default with
        ``client_secret``), ``client_secret_post``, or ``private_key_jwt`` (RFC 7523, the
        default with ``public_key``: a key object, private or public, or a public JWK). A
        request without a registered client's credentials, with wrong ones or by another method
        is answered 401 ``invalid_client`` (RFC 7662 §2.3).
        """
        self._introspection.register(
            client_id, client_secret=client_secret, public_key=public_key, auth_method=auth_method
        )

    @property
    def introspection_endpoint(self) -> str:
        """The introspection endpoint's URL: the issuer's ``/introspect``.

        In-process it is the URL to give the client using :meth:`introspection_transport`; served
        with ``as_issuer=True`` it is ``server.introspection_url``."""
        return self.issuer.rstrip("/") + INTROSPECTION_PATH

    @property
    def introspection_requests(self) -> int:
        """Introspection requests answered so far, in-process and served."""
        return self._introspection.requests

    def introspection_transport(self) -> httpx.MockTransport:
        """An ``httpx`` transport (sync and async) that answers introspection requests in-process.

        As the served endpoint does: ``httpx.Client(transport=...)``, no network. Any other
        request is a 404."""

        def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path != INTROSPECTION_PATH:
                return httpx.Response(404, json={})
            status, headers, body = self._introspection.answer(
                request.method, str(request.url), request.headers, request.read()
            )
            # A stream, not content=: a client that reads the raw stream (jwt_guard's bounded
            # reader) finds it unread, as from a server.
            return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

        return httpx.MockTransport(handle)

    def _claims_of(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT signed with one of this issuer's keys, else ``None`` (the
        signature only: the endpoint judges time and revocation)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = dict(self._keys).get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            verify_key = key if isinstance(key, bytes) else key.public_key()
            claims: dict[str, Any] = jwt.decode(
                token,
                verify_key,
                algorithms=[self.algorithm],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return claims

    @contextmanager
    def serve(self, *, as_issuer: bool = False) -> Iterator[JWKSServer]:
        """Serve this issuer's JWKS (and discovery document) on a loopback port.

        With ``as_issuer=True`` the served URL (``server.base_url``) *is* the issuer while the
        block runs: the tokens minted say it in ``iss``, :meth:`verifier` expects it, and the
        discovery document names it, so the app under test finds the keys through OIDC
        discovery exactly as it would at its identity provider. Off by default: a test that
        configures the app with the issuer given to ``LocalIssuer(issuer=...)`` keeps it.

        The server answers token introspection too (``server.introspection_url``, the
        discovery document's ``introspection_endpoint``), as :meth:`introspection_transport`
        does in-process.
        """
        configured = self.issuer
        server = JWKSServer(
            lambda: self.jwks,
            issuer=None if as_issuer else configured,
            introspect=self._introspection.answer,
        )
        with server:
            if as_issuer:
                server.issuer = self.issuer = server.base_url
            try:
                yield server
            finally:
                self.issuer = configured


def reset_fetch_timers(target: Any) -> None:
    """For tests only: let each remote key source of ``target`` fetch on its next request.

    ``target`` is a :class:`Verifier` or one key source.

    A remote key set refetches for an unknown ``kid`` at most once per ``cooldown`` (30 s), and
    after a failed fetch waits out a backoff (1 s doubling to 60 s): the limits that keep a
    flood of made-up kids or a down provider from being hammered. A test of a key rotation or of
    a provider coming back would have to sleep them out; this forgets when each source last
    tried, and nothing else (the cached key set, its TTL and the counters stay). The library
    never calls it: production code has no way to lift these limits.
    """
    sources = target.key_sources if hasattr(target, "key_sources") else (target,)
    if not all(isinstance(source, KeySource) for source in sources):
        raise TypeError("reset_fetch_timers takes a Verifier or a key source")
    for source in sources:
        if isinstance(source, JWKSState):  # JWKSKeys, OIDCDiscovery; static keys never fetch
            # Reaches into the source's cache state on purpose: the one place that does.
            source._state = replace(source._state, last_attempt=None, retry_at=0.0)


#: The faults :attr:`JWKSServer.fault` can play, beyond ``status``/``body``/``headers``/``delay``.
FAULTS = ("drip_headers", "drip_body", "silence", "garbage", "gzip_bomb")
#: Where a served issuer answers token introspection (RFC 7662).
INTROSPECTION_PATH = "/introspect"
#: The endpoints :attr:`JWKSServer.faults_on` can name.
_FAULT_PATHS = {"jwks": "/jwks.json", "introspection": INTROSPECTION_PATH}


@functools.cache
def _gzip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    # 64 MiB of zeros compress to ~64 KiB: small on the wire, huge once decoded.
    return gzip.compress(b"\0" * size, compresslevel=9)


class _ClosingThreads(ThreadingMixIn):
    """A threading server that leaves nothing behind: :meth:`close_all` stops it, shuts down
    the connections still open (a kept-alive client, an answer still being written) and joins
    every handler thread. A test that forks afterwards forks a process without our threads
    (Python 3.12+ warns about forking with threads running), and no socket is left to the
    garbage collector."""

    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_all(self) -> None:
        self.shutdown()  # type: ignore[attr-defined]
        with self._open_lock:
            still_open = list(self._open)
        for conn in still_open:
            with contextlib.suppress(OSError):  # closed meanwhile
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()


#: The biggest request body the server reads (an introspection form is a few KiB).
_MAX_POST = 1024 * 1024


class _Server(_ClosingThreads, HTTPServer):
    request_queue_size = 64  # every worker of a test may fetch at once (the default is 5)


class JWKSServer:
    """A threaded HTTP server on 127.0.0.1 that serves a JWKS and counts requests.

    Its behaviour can be changed while it runs, to simulate an identity provider that is slow
    (``delay``), failing (``status``), broken (``body``), redirecting (``headers``) or
    oversized, or one of the :data:`FAULTS` set in ``fault``:

    * ``"drip_headers"``: the status line and headers one byte every ``drip_interval`` seconds;
    * ``"drip_body"``: the headers at once, then the body one byte at a time;
    * ``"silence"``: reads the request and never answers;
    * ``"garbage"``: answers bytes that are not HTTP;
    * ``"gzip_bomb"``: a 200 whose ~64 KiB gzip body decodes to 64 MiB.

    The faults play at the JWKS endpoint (``delay`` and ``headers`` at every path), or, with
    ``faults_on = "introspection"``, at the introspection endpoint (``introspect``, given by
    :meth:`LocalIssuer.serve`) alone: the authorization server slow, down or broken while its
    keys are served.

    ``requests`` counts every request received, by path; ``hangups`` counts answers the client
    walked away from before the server had finished sending them. Each answer closes its
    connection unless ``keep_alive`` is true.
    """

    def __init__(
        self,
        jwks: Callable[[], Mapping[str, Any]] | Mapping[str, Any],
        *,
        issuer: str | None = None,
        max_age: int | None = None,
        discovery: Mapping[str, Any] | None = None,
        introspect: Callable[[str, str, Mapping[str, str], bytes], Answer] | None = None,
    ) -> None:
        self._jwks = jwks
        self._introspect = introspect
        self._faults_on = "jwks"
        self.issuer = issuer
        #: More members of the discovery document (e.g. ``authorization_endpoint``).
        self.discovery: dict[str, Any] = dict(discovery or {})
        self.status = 200
        self.delay = 0.0
        self.body: bytes | None = None
        self.headers: dict[str, str] = {}
        self.max_age = max_age
        self._fault: str | None = None
        self.drip_interval = 0.02
        self.keep_alive = False
        self.hangups = 0
        self.requests: dict[str, int] = {}
        self._stopping = threading.Event()
        self._released = threading.Event()  # answers wait for it inside held()
        self._released.set()
        self._hangup = threading.Condition()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def fault(self) -> str | None:
        """One of :data:`FAULTS`, or ``None`` for a well-behaved server."""
        return self._fault

    @fault.setter
    def fault(self, fault: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}")
        if fault == "gzip_bomb":
            _gzip_bomb()  # built now, not while a client waits for its answer
        self._fault = fault

    @property
    def faults_on(self) -> str:
        """``"jwks"`` (the default) or ``"introspection"``: the endpoint the faults play at."""
        return self._faults_on

    @faults_on.setter
    def faults_on(self, endpoint: str) -> None:
        if endpoint not in _FAULT_PATHS:
            raise ValueError(f"faults_on must be one of {tuple(_FAULT_PATHS)}")
        if endpoint == "introspection" and self._introspect is None:
            raise ValueError("this server has no introspection endpoint (LocalIssuer.serve has)")
        self._faults_on = endpoint

    @property
    def introspection_url(self) -> str:
        """The introspection endpoint (RFC 7662) of a server :meth:`LocalIssuer.serve` made."""
        if self._introspect is None:
            raise ValueError("this server has no introspection endpoint (LocalIssuer.serve has)")
        return f"{self.base_url}{INTROSPECTION_PATH}"

    @property
    def count(self) -> int:
        """Requests made to the JWKS path."""
        return self.requests.get("/jwks.json", 0)

    @property
    def url(self) -> str:
        """The key set's URL."""
        return f"{self.base_url}/jwks.json"

    @property
    def base_url(self) -> str:
        """The server's ``http://127.0.0.1:PORT`` (the issuer, for discovery)."""
        assert self._server is not None, "server not started"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def jwks_document(self) -> Mapping[str, Any]:
        """The JWKS document the server answers with now."""
        return self._jwks() if callable(self._jwks) else self._jwks

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        request_body = b""
        introspection = path == INTROSPECTION_PATH and self._introspect is not None
        if handler.command == "POST" and introspection:
            # Only the introspection endpoint's form is read here: a subclass serving POSTs
            # of its own reads its request itself.
            length = handler.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > _MAX_POST:
                handler.send_error(413 if length.isdigit() else 411)
                handler.close_connection = True
                return
            request_body = handler.rfile.read(int(length))
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
        self._released.wait()  # held(): until the test releases it (or stop())
        faulty = path == _FAULT_PATHS[self._faults_on]
        everywhere = self._faults_on == "jwks"  # delay and headers, as they always were
        if self.delay and (faulty or everywhere):
            self._stopping.wait(self.delay)  # stop() ends it
        fault = self.fault if faulty else None
        headers: dict[str, str] = {"Content-Type": "application/json"}
        status = self.status if faulty else 200
        replaced = self.body if faulty else None
        if path == "/.well-known/openid-configuration":
            document: dict[str, Any] = {
                "issuer": self.issuer or self.base_url,
                "jwks_uri": self.url,
            }
            if self._introspect is not None:
                document["introspection_endpoint"] = self.introspection_url
                document["introspection_endpoint_auth_methods_supported"] = list(AUTH_METHODS)
            body = json.dumps({**document, **self.discovery}).encode()
        elif path == "/jwks.json":
            body = replaced if replaced is not None else json.dumps(self.jwks_document()).encode()
        elif path == INTROSPECTION_PATH and self._introspect is not None:
            answer = self._introspect(
                handler.command,
                self.base_url + path,
                {name.lower(): value for name, value in handler.headers.items()},
                request_body,
            )
            headers.update(answer.headers)
            if status == 200:
                status = answer.status
            body = replaced if replaced is not None else answer.body
        else:
            status, body = 404, b"{}"
        if fault == "silence":
            self._stopping.wait()
            handler.close_connection = True
            return
        if fault == "garbage":
            self._send(handler, b"\x00\xffnot http at all\r\n\r\n", drip=False)
            handler.close_connection = True
            return
        if fault == "gzip_bomb":
            body = _gzip_bomb()
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(body))
        if not self.keep_alive:
            # One request per connection: a stopped server must look like a dead one, not
            # keep answering on a kept-alive connection.
            headers["Connection"] = "close"
            handler.close_connection = True
        if self.max_age is not None and path != INTROSPECTION_PATH:
            headers["Cache-Control"] = f"max-age={self.max_age}"
        if faulty or everywhere:
            headers.update(self.headers)
        reason = handler.responses.get(status, ("",))[0]
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        if self._send(handler, head.encode("latin-1") + b"\r\n", drip=fault == "drip_headers"):
            self._send(handler, body, drip=fault == "drip_body")

    def _send(self, handler: BaseHTTPRequestHandler, data: bytes, *, drip: bool) -> bool:
        """Write ``data`` (one byte at a time when dripping); False if the client went away."""
        try:
            if not drip:
                handler.wfile.write(data)
                return True
            for i in range(len(data)):
                if self._stopping.wait(self.drip_interval):
                    return False
                handler.wfile.write(data[i : i + 1])
            return True
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (timeout, size cap): that is what some tests want to see.
            with self._hangup:
                self.hangups += 1
                self._hangup.notify_all()
            handler.close_connection = True
            return False

    @contextmanager
    def held(self) -> Iterator[None]:
        """Inside, answers wait: a fetch stays in flight exactly as long as the test needs.

        ``delay`` guesses a duration, which a loaded machine can outlast."""
        self._released.clear()
        try:
            yield
        finally:
            self._released.set()

    def wait_for_hangups(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` clients have hung up on an answer.

        False after ``timeout``, a liveness bound."""
        with self._hangup:
            return self._hangup.wait_for(lambda: self.hangups >= count, timeout)

    def start(self) -> JWKSServer:
        """Start serving on a free port of 127.0.0.1 (``with JWKSServer(...)`` does it)."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer._respond(self)

            def do_POST(self) -> None:
                outer._respond(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; every connection is closed and every thread has ended on return."""
        self._stopping.set()  # ends delays, silences and drips
        self._released.set()  # and holds
        if self._server is not None:
            self._server.close_all()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> JWKSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
