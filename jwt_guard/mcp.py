"""Protecting an MCP server built with the official ``mcp`` SDK (``pip install jwt_guard[mcp]``).

    from mcp.server.mcpserver import Context, MCPServer
    from jwt_guard.mcp import get_principal, protect

    server = MCPServer("notes")

    @server.tool()
    def add_note(text: str, ctx: Context) -> str:
        return f"saved for {get_principal(ctx).subject}"

    app = protect(
        server.streamable_http_app(),
        verifier=verifier,                           # audience = the server's URL (RFC 8707)
        protected_resource=ProtectedResource("https://mcp.example.com/mcp", [issuer_url]),
        tool_scopes={"add_note": ["notes:write"]},
    )

Why the middleware in front, rather than a ``TokenVerifier`` in the SDK's ``AuthSettings``: the
SDK's bearer backend reduces every outcome of a verifier to "a token or ``None``", so an
expired token, a wrong audience and a missing token all become the same 401, a JWKS outage
(which must be a 503 with ``Retry-After``) escapes as a 500, and scopes can only be required for
the whole server. Here the middleware answers with the RFC 6750 challenges of the rest of
jwt_guard (each pointing to the RFC 9728 document it serves), ``tool_scopes`` refuses a
``tools/call`` the token's scopes do not cover with HTTP 403 ``insufficient_scope`` naming the
scopes (the MCP authorization spec's runtime scope challenge, which the SDK's client answers
by asking for them), and the SDK still gets its own identity object: sessions stay bound to
the principal that opened them, and ``mcp.server.auth.middleware.auth_context.get_access_token``
works in tools.

Where each part sits: the middleware is installed *inside* the SDK's Starlette app
(``add_middleware``), so a :class:`JWTGuardError` raised by a requirement on a
``@server.custom_route`` (``@require_scopes("admin")``, ``@require_acr("mfa")``) is answered
with its 401/403 before Starlette's error middleware could turn it into a 500. The SDK's
identity, the scope gate and the removal of the token headers are attached to the SDK's
streamable HTTP endpoint only (found in the app's routes): custom routes get their requests
untouched (bodies are never read for them) and ``request.user`` there is the jwt_guard
:class:`Principal`, as under :class:`JWTGuardMiddleware` everywhere else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from ._answer import ErrorHandler
from ._errors import AuthenticationRequired, ConfigurationError, InsufficientScope, JWTGuardError
from ._extras import MissingExtra
from ._guard import GUARD_KEY, PRINCIPAL_KEY, Guard
from ._metadata import ProtectedResource
from ._principal import Principal
from ._types import ASGIApp, Message, Receive, Scope, Send
from ._verifier import Verifier
from .asgi import JWTGuardMiddleware, send_answer

try:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
except ImportError as exc:  # only without the mcp extra
    raise MissingExtra("jwt_guard.mcp", "mcp", "mcp") from exc

__all__ = ["MAX_BODY_BYTES", "access_token", "get_principal", "protect", "require_scopes"]

#: The largest request body read to find a ``tools/call`` when the SDK's own limit
#: (``streamable_http_app(max_request_body_size=...)``) cannot be read: its default.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024

# JSON-RPC 2.0 §5.1 error objects, for bodies the scope gate cannot read.
_PARSE_ERROR: Final = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
_TOO_LARGE: Final = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Request too large"}}'
)
#: The token never reaches the SDK or the tools (MCP authorization, "token passthrough").
_TOKEN_HEADERS: Final = frozenset({b"authorization", b"dpop"})


def protect(
    app: Starlette,
    *,
    verifier: Verifier,
    protected_resource: ProtectedResource,
    tool_scopes: Mapping[str, Sequence[str]] | None = None,
    exclude: Sequence[str] = (),
    realm: str | None = None,
    on_error: ErrorHandler | None = None,
    prefetch: bool = True,
) -> Starlette:
    """Put the MCP server's Starlette app (``server.streamable_http_app()``) behind jwt_guard.

    ``protected_resource.resource`` is the server's canonical URL (the MCP endpoint, e.g.
    ``https://mcp.example.com/mcp``) and must be one of the verifier's audiences: a token
    issued for another server is refused (RFC 8707, MCP "token audience binding").
    ``tool_scopes`` maps tool names to the scopes a call needs (all of them). Routes added with
    ``@server.custom_route`` are guarded too unless listed in ``exclude``.

    The app is changed in place (the middleware added, the MCP endpoint wrapped) and returned.
    """
    if not isinstance(protected_resource, ProtectedResource):
        # MCP authorization: servers MUST publish RFC 9728 metadata.
        raise ConfigurationError("protected_resource must be a jwt_guard.ProtectedResource")
    gate = _ToolScopes(tool_scopes) if tool_scopes else None
    # Built now, so that a wrong configuration (the resource not an audience) fails here.
    middleware = JWTGuardMiddleware(
        app,
        verifier=verifier,
        protected_resource=protected_resource,
        exclude=exclude,
        realm=realm,
        on_error=on_error,
        prefetch=prefetch,
        # Tokens come in the Authorization header only: MCP clients are not browsers with
        # cookies, so there is no cookie and no CSRF check.
        header=True,
    )
    if not isinstance(app, Starlette):
        raise ConfigurationError("protect() takes the app of server.streamable_http_app()")
    routes = list(_mcp_routes(app.routes))
    if not routes:
        raise ConfigurationError(
            "protect() found no MCP streamable HTTP endpoint in the app: pass the app of "
            "server.streamable_http_app()"
        )
    for route in routes:
        if isinstance(route.app, _MCPEndpoint):
            raise ConfigurationError("this app is already protected")
        route.app = _MCPEndpoint(route.app, protected_resource.resource, gate, _body_limit(route))
    # Inside the app (after its error middleware): a JWTGuardError raised by a requirement on a
    # custom route reaches the middleware, which answers it, instead of becoming a 500.
    app.add_middleware(_Installed, middleware=middleware)
    return app


def _mcp_routes(routes: Sequence[BaseRoute]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route) and isinstance(route.endpoint, StreamableHTTPASGIApp):
            yield route
        elif isinstance(route, Mount):
            yield from _mcp_routes(route.routes)


def _body_limit(route: Route) -> int:
    manager = getattr(route.endpoint, "session_manager", None)
    limit = getattr(manager, "max_request_body_size", None)
    return limit if type(limit) is int and limit > 0 else MAX_BODY_BYTES


class _Installed:
    """The middleware factory ``add_middleware`` calls: hands back the middleware built (and
    checked) by :func:`protect`, now wrapping the app's inner stack."""

    def __new__(cls, app: ASGIApp, *, middleware: JWTGuardMiddleware) -> JWTGuardMiddleware:  # type: ignore[misc]
        middleware.app = app
        return middleware


def get_principal(ctx: Context[Any]) -> Principal:
    """The verified principal of the request a tool (or resource, or prompt) is serving."""
    request = ctx.request_context.request
    principal = getattr(request, "scope", {}).get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        # Only without protect() in front: with it, no request reaches a tool anonymously.
        raise AuthenticationRequired()
    return principal


def require_scopes(ctx: Context[Any], *scopes: str) -> Principal:
    """The principal, if its token grants every one of ``scopes``; else a tool error.

    For checks inside a tool (they depend on the arguments, say). The call then fails as an
    MCP tool result (``isError``), not with HTTP 403: the response may have started already.
    Use ``protect(tool_scopes=...)`` for the 403 scope challenge clients can answer.
    """
    principal = get_principal(ctx)
    missing = [s for s in scopes if s not in principal.scopes]
    if missing:
        raise ToolError(f"The token lacks a required scope: {' '.join(missing)}")
    return principal


def access_token(principal: Principal, resource: str | None = None) -> AccessToken:
    """The SDK's view of a verified principal.

    ``token`` is empty: jwt_guard never keeps the raw token, and an MCP server must not pass
    it on to other services anyway (MCP authorization, "token passthrough"). ``client_id`` is
    the ``client_id`` claim (RFC 9068 §2.2), else ``azp``.
    """
    claims = principal.claims
    client_id = claims.get("client_id", claims.get("azp"))
    exp = principal.expires_at
    return AccessToken(
        token="",
        client_id=client_id if isinstance(client_id, str) else "",
        scopes=sorted(principal.scopes),
        expires_at=int(exp) if exp is not None else None,
        resource=resource,
        subject=principal.subject,
        claims=dict(claims),
    )


class _MCPEndpoint:
    """Wraps the SDK's streamable HTTP endpoint (and nothing else).

    - The SDK gets its own identity for the principal the middleware verified:
      ``scope["user"]`` becomes the SDK's ``AuthenticatedUser`` (session ownership: a session
      is only served to the principal that opened it) and the SDK's auth context variable is
      set (``get_access_token()``); the principal stays at ``scope["jwt_guard.principal"]``.
    - The ``Authorization`` and ``DPoP`` headers are removed: the raw token never reaches a
      tool (MCP authorization forbids token passthrough).
    - With ``tool_scopes``, the scope gate (:class:`_ToolScopes`) runs first.
    """

    def __init__(
        self, app: ASGIApp, resource: str, gate: _ToolScopes | None, body_limit: int
    ) -> None:
        self.app = app
        self.resource = resource
        self.gate = gate
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [h for h in scope["headers"] if h[0] not in _TOKEN_HEADERS]}
        principal = scope.get(PRINCIPAL_KEY)
        if self.gate is not None and scope["method"] == "POST" and _may_be_json(scope):
            replay = await self.gate.admit(scope, receive, send, principal, self.body_limit)
            if replay is None:
                return  # refused, answered
            receive = replay
        if not isinstance(principal, Principal):
            await self.app(scope, receive, send)  # an excluded MCP path: anonymous
            return
        user = AuthenticatedUser(access_token(principal, self.resource))
        scope["user"] = user
        token = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(token)


def _may_be_json(scope: Scope) -> bool:
    """Whether the SDK could read this body as JSON: a ``Content-Type`` of
    ``application/json``, compared more loosely than the SDK does (every header, any case), so
    that no body the SDK runs escapes the gate. Others get the SDK's own 415."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.decode("latin-1").split(";")[0].lower()
            if any(part.strip() == "application/json" for part in media.split(",")):
                return True
    return False


class _ToolScopes:
    """Refuses a ``tools/call`` whose tool needs scopes the token lacks, before the SDK runs it.

    The body is read (up to the SDK's own limit) and parsed here only to decide; the SDK then
    receives the original bytes. The parse is strict where JSON parsers differ, so that what
    is decided here is what the SDK reads: UTF-8 only (RFC 8259 §8.1), no duplicate member
    names (§4: their meaning is parser-specific, the one way to show a gate one tool name and
    the SDK another), no NaN/Infinity and no number out of a double's range (§6). A body that
    fails this is a JSON-RPC parse error (400), which the SDK would not run either.
    """

    def __init__(self, tool_scopes: Mapping[str, Sequence[str]]) -> None:
        if not isinstance(tool_scopes, Mapping) or not all(
            isinstance(name, str)
            and not isinstance(scopes, str)
            and isinstance(scopes, Sequence)
            and scopes
            and all(isinstance(s, str) and s and " " not in s for s in scopes)
            for name, scopes in tool_scopes.items()
        ):
            raise ConfigurationError("tool_scopes maps tool names to non-empty lists of scopes")
        self.tool_scopes = {name: tuple(scopes) for name, scopes in tool_scopes.items()}

    async def admit(
        self, scope: Scope, receive: Receive, send: Send, principal: object, limit: int
    ) -> Receive | None:
        """A ``receive`` replaying the body when the call may go on; ``None`` once refused."""
        body = await _read_body(receive, limit)
        if body is None:
            await _send_json(send, 413, _TOO_LARGE)
            return None
        try:
            message = _strict_json(body)
        except (ValueError, RecursionError):
            await _send_json(send, 400, _PARSE_ERROR)
            return None
        try:
            for call in message if isinstance(message, list) else [message]:
                self._check(call, principal)
        except JWTGuardError as exc:
            guard: Guard = scope[GUARD_KEY]  # protect()'s middleware ran before the route
            await send_answer(send, guard.answer(exc, scope))
            return None
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # only a disconnect is left to wait for

        return replay

    def _check(self, call: object, principal: object) -> None:
        if not isinstance(call, dict) or call.get("method") != "tools/call":
            return
        params = call.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        needed = self.tool_scopes.get(name) if isinstance(name, str) else None
        if needed is None:
            return
        if not isinstance(principal, Principal):
            raise AuthenticationRequired()
        if not principal.scopes.issuperset(needed):
            # MCP authorization, scope challenge: 403 naming the scopes the call needs.
            raise InsufficientScope(required=needed)


def _strict_json(body: bytes) -> Any:
    return json.loads(
        body.decode("utf-8"),  # strict: UnicodeDecodeError is a ValueError
        parse_constant=_no_constant,
        parse_float=_finite_float,
        object_pairs_hook=_unique_members,
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python accepts them, JSON does not


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")  # 1e400: RFC 8259 §6, interoperability
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member names")  # RFC 8259 §4: behaviour unpredictable
    return members


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # disconnected: what arrived is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
