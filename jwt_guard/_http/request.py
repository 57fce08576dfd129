"""The request as the guard reads it: an ASGI scope or a WSGI environ behind one view.

An adapter wraps its request (:class:`ASGIRequest`, :class:`WSGIRequest`) and hands it to the
guard (:mod:`.guard`), which extracts the token, checks CSRF and reads the DPoP inputs through
it: the adapter is never called back. A view reads the two token headers when it is made (the
common request needs nothing else) and the rest only when the guard asks (CSRF, DPoP).
"""

from __future__ import annotations

from typing import Final

from .._core.dpop import quote_path
from .client_cert import ClientCertificate
from .extract import METHOD_OVERRIDE_HEADERS, RequestView, joined_authorization
from .types import Environ, Scope

__all__ = ["ASGIRequest", "DPoPInputs", "WSGIRequest"]

#: What a request with the DPoP scheme gives for the proof checks (RFC 9449 §4.3): the
#: ``DPoP`` header values, scheme, host, path as received, method, method-override header
#: values and the query string.
DPoPInputs = tuple[list[str], str, str, str, str, list[str], str]

#: Header names (bytes, as ASGI gives them) of the method-override headers.
OVERRIDE_HEADERS: Final = frozenset(name.encode() for name in METHOD_OVERRIDE_HEADERS)
#: The environ keys of the method-override headers (PEP 3333: HTTP_ plus the name).
OVERRIDE_KEYS: Final = tuple(
    "HTTP_" + name.upper().replace("-", "_") for name in METHOD_OVERRIDE_HEADERS
)


class ASGIRequest:
    """An HTTP request or WebSocket handshake, from its ASGI scope."""

    __slots__ = ("authorization", "cookies", "scope", "websocket")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.websocket = scope["type"] == "websocket"
        # One pass over the raw headers for the two we always need; the rest is decoded only
        # for a CSRF check (view) or a DPoP proof (dpop_inputs).
        authorization: list[str] = []
        cookies: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == b"cookie":
                cookies.append(value.decode("latin-1"))
        self.authorization = authorization
        self.cookies = cookies

    @property
    def record(self) -> Scope:
        """Where the guard records an accepted authentication: the scope."""
        return self.scope

    def client_thumbprint(self, source: ClientCertificate) -> str | None:
        """The thumbprint of the client certificate ``source`` finds (RFC 8705 §3)."""
        return source.from_scope(self.scope)

    def query_string(self) -> str:
        return str(self.scope.get("query_string", b"").decode("latin-1"))

    def view(self) -> RequestView:
        """The full view, for the CSRF check (the two token headers are already read)."""
        scope = self.scope
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            if name != "authorization" and name != "cookie":
                value = raw_value.decode("latin-1")
                # A repeated field is one list (RFC 9110 §5.3), as WSGI servers join it: a check
                # reading the last copy while the app reads the first (Starlette's headers.get)
                # would decide on another value than the app acts on.
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        scheme = scope.get("scheme", "http")
        if scope["type"] == "websocket":
            scheme = "https" if scheme in ("wss", "https") else "http"
        return RequestView(
            method=scope.get("method", "GET"),
            scheme=scheme,
            host=headers.get("host"),
            path=scope.get("path", "/"),
            authorization=self.authorization,
            cookie_headers=self.cookies,
            headers=headers,
            query_string=self.query_string(),
        )

    def dpop_inputs(self) -> DPoPInputs:
        """For a token sent with the DPoP scheme (RFC 9449 §7.1). A WebSocket handshake is a
        GET; its ``htu`` may use ws/wss or http/https."""
        scope = self.scope
        proofs: list[str] = []
        host: str | None = None
        overrides: list[str] = []
        for name, value in scope["headers"]:
            if name == b"dpop":
                proofs.append(value.decode("latin-1"))
            elif name == b"host":
                host = value.decode("latin-1")
            elif name in OVERRIDE_HEADERS:
                overrides.append(value.decode("latin-1"))
        if host is None:
            server = scope.get("server") or ("localhost", None)
            host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
        raw_path = scope.get("raw_path")  # the path as received, when the server gives it
        path = raw_path.decode("latin-1") if raw_path else quote_path(scope["path"].encode())
        method = scope.get("method", "GET")
        scheme = scope.get("scheme", "http")
        return proofs, scheme, host, path, method, overrides, self.query_string()


class WSGIRequest:
    """An HTTP request, from its WSGI environ (PEP 3333)."""

    __slots__ = ("authorization", "cookies", "environ")

    #: WSGI has no WebSocket handshake.
    websocket: Final = False

    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        header_value = environ.get("HTTP_AUTHORIZATION")
        cookie = environ.get("HTTP_COOKIE")
        self.authorization = joined_authorization(header_value) if header_value else []
        self.cookies = [cookie] if cookie else []

    @property
    def record(self) -> Environ:
        """Where the guard records an accepted authentication: the environ."""
        return self.environ

    def client_thumbprint(self, source: ClientCertificate) -> str | None:
        """The thumbprint of the client certificate ``source`` finds (RFC 8705 §3)."""
        return source.from_environ(self.environ)

    def query_string(self) -> str:
        return str(self.environ.get("QUERY_STRING", ""))

    def view(self) -> RequestView:
        """The full view, for the CSRF check (the two token headers are already read)."""
        environ = self.environ
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_") and key not in ("HTTP_AUTHORIZATION", "HTTP_COOKIE"):
                headers[key[5:].replace("_", "-").lower()] = value
        return RequestView(
            method=environ.get("REQUEST_METHOD", "GET"),
            scheme=environ.get("wsgi.url_scheme", "http"),
            host=environ.get("HTTP_HOST") or environ.get("SERVER_NAME"),
            path=environ.get("PATH_INFO", "/") or "/",
            authorization=self.authorization,
            cookie_headers=self.cookies,
            headers=headers,
            query_string=self.query_string(),
        )

    def dpop_inputs(self) -> DPoPInputs:
        """For a token sent with the DPoP scheme (RFC 9449 §7.1)."""
        environ = self.environ
        # Servers join repeated headers with commas; a compact JWS has none, so each part is
        # one DPoP header (two of them are refused).
        joined = environ.get("HTTP_DPOP")
        proofs = [part.strip() for part in joined.split(",")] if joined is not None else []
        host = environ.get("HTTP_HOST")
        if not host:
            host = environ.get("SERVER_NAME", "localhost")
            port = environ.get("SERVER_PORT")
            if port:
                host = f"{host}:{port}"
        # The path as received, where the server keeps it (Werkzeug, gunicorn); else rebuilt
        # from the decoded SCRIPT_NAME and PATH_INFO (PEP 3333: latin-1 of the raw bytes).
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
        if not raw.startswith("/"):
            decoded = environ.get("SCRIPT_NAME", "") + (environ.get("PATH_INFO", "") or "/")
            raw = quote_path(decoded.encode("latin-1", "replace"))
        method = environ.get("REQUEST_METHOD", "GET")
        overrides = [environ.get(key, "") for key in OVERRIDE_KEYS]
        scheme = environ.get("wsgi.url_scheme", "http")
        return proofs, scheme, host, raw, method, overrides, self.query_string()
