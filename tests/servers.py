"""Real servers on 127.0.0.1 for tests: uvicorn (ASGI) and a threaded WSGI server."""

from __future__ import annotations

import io
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn

from jwt_guard.testing import JWKSServer, LocalIssuer, _ClosingThreads


def loopback_socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1 with a free port, for an app that must know its
    own URL before it starts (pass it to ``run_uvicorn(app, sock=...)``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, with an event set once it listens (or once it gave up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def serve_in_thread(self, sockets: list[socket.socket] | None) -> None:
        try:
            self.run(sockets=sockets)
        finally:
            self.ready.set()  # it did not start, or it stopped


@contextmanager
def run_uvicorn(app: Any, *, sock: socket.socket | None = None, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields the base URL."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "log_level": "warning",
        "ws": "websockets-sansio",
        "lifespan": "on",
    }
    settings.update(config)
    server = _Uvicorn(uvicorn.Config(app, **settings))
    thread = threading.Thread(
        target=server.serve_in_thread, args=([sock] if sock else None,), daemon=True
    )
    thread.start()
    server.ready.wait(60)  # a liveness bound
    if not server.started:
        server.should_exit = True
        thread.join()
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)  # a liveness bound: a thread still alive fails the leak check


class _ThreadingWSGIServer(_ClosingThreads, WSGIServer):
    request_queue_size = 64  # many clients connect at once in some tests (the default is 5)


class _QuietHandler(WSGIRequestHandler):
    """wsgiref, quiet, and dropping header names with "_" as gunicorn (>= 22), waitress and
    mod_wsgi do: wsgiref alone reads "Client_Cert" as "Client-Cert" (review R28 F4), which
    jwt_guard's header certificate sources refuse under its SERVER_SOFTWARE."""

    server_version = "jwt-guard-tests/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def get_environ(self) -> dict[str, Any]:
        for name in {name for name in self.headers if "_" in name}:
            del self.headers[name]
        return super().get_environ()


@contextmanager
def run_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app with the stdlib's wsgiref (threaded) on 127.0.0.1; yields the URL."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.close_all()  # every connection closed, every handler thread joined
        thread.join()


class _ThreadingHTTPServer(_ClosingThreads, HTTPServer):
    pass


class IssuerSite:
    """An authorization server's origin on 127.0.0.1 that serves its metadata at the paths
    given and nowhere else (404), and its JWKS at ``/jwks.json``.

    ``routes`` maps a path to a status, the metadata document (``issuer``, ``jwks_uri``) with
    200, ``{}`` otherwise; ``None`` never answers (a timeout). ``requests`` lists the paths
    asked for, in order.
    """

    def __init__(self, jwks: Callable[[], Mapping[str, Any]], issuer_path: str = "") -> None:
        self.routes: dict[str, int | None] = {}
        #: More members of the metadata document (e.g. ``authorization_endpoint``).
        self.document: dict[str, Any] = {}
        self.requests: list[str] = []
        self._jwks = jwks
        self._path = issuer_path
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.origin + self._path

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        self.requests.append(path)
        if path == "/jwks.json":
            status, body = 200, json.dumps(self._jwks()).encode()
        elif path in self.routes:
            answer = self.routes[path]
            if answer is None:
                self._stop.wait()  # silence until the site stops
                return
            status, body = answer, b"{}"
            if answer == 200:
                document = {
                    "issuer": self.issuer,
                    "jwks_uri": self.origin + "/jwks.json",
                    **self.document,
                }
                body = json.dumps(document).encode()
        else:
            status, body = 404, b"{}"
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> IssuerSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close_all()
        self._thread.join()


class TenantsServer:
    """Several tenants of one identity provider on one loopback port, as Entra ID or Keycloak
    serve them: ``/{tenant}/v2.0/.well-known/openid-configuration`` (its ``issuer`` is
    ``{base}/{tenant}/v2.0``, or ``discovery_issuer[tenant]``) and ``/{tenant}/keys``, the
    tenant's own JWKS. A tenant not served answers 404. ``requests`` counts every request by
    path, answered or not."""

    def __init__(self, tenants: Mapping[str, LocalIssuer]) -> None:
        self.tenants = dict(tenants)
        self.discovery_issuer: dict[str, str] = {}
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def total(self) -> int:
        """Every request received, on any path."""
        return sum(self.requests.values())

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def issuer(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/v2.0"

    def _answer(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
        tenant, _, rest = path.lstrip("/").partition("/")
        idp = self.tenants.get(tenant)
        if idp is None:
            return 404, b"{}"
        if rest == "v2.0/.well-known/openid-configuration":
            issuer = self.discovery_issuer.get(tenant, self.issuer(tenant))
            return 200, json.dumps(
                {"issuer": issuer, "jwks_uri": f"{self.base_url}/{tenant}/keys"}
            ).encode()
        if rest == "keys":
            return 200, json.dumps(idp.jwks).encode()
        return 404, b"{}"

    def __enter__(self) -> TenantsServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, body = outer._answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close_all()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class IntrospectionServer(JWKSServer):
    """A token introspection endpoint (RFC 7662) on 127.0.0.1, with every fault of the JWKS
    server (``status``, ``body``, ``headers``, ``delay``, ``fault``, ``held()``): one fault
    matrix for both kinds of outgoing call.

    ``tokens`` maps a token to its response (an unknown token: ``{"active": false}``); each
    call's form fields and ``Authorization`` header are appended to ``calls``; ``count`` is the
    number of calls."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, str]] = []
        self._form = threading.local()
        super().__init__({})

    @property
    def url(self) -> str:
        return f"{self.base_url}/introspect"

    def jwks_document(self) -> Mapping[str, Any]:
        token = self._form.fields.get("token", "")
        return self.tokens.get(token, {"active": False})

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        handler.rfile = io.BytesIO(body)  # read again by the JWKS server's _respond
        fields = dict(urllib.parse.parse_qsl(body.decode("ascii")))
        fields["authorization"] = handler.headers.get("Authorization", "")
        fields["content_type"] = handler.headers.get("Content-Type", "")
        with self._lock:
            self.calls.append(fields)
        self._form.fields = fields
        # The JWKS server's faults apply to its JWKS path: this endpoint answers there.
        handler.path = "/jwks.json" if handler.path == "/introspect" else handler.path
        self._respond(handler)

    def start(self) -> IntrospectionServer:
        super().start()
        assert self._server is not None
        outer = self

        def do_POST(handler: BaseHTTPRequestHandler) -> None:
            outer._post(handler)

        self._server.RequestHandlerClass.do_POST = do_POST  # type: ignore[attr-defined]
        return self
