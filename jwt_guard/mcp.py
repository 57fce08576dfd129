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
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._answer import ErrorHandler
from ._errors import AuthenticationRequired, ConfigurationError, InsufficientScope
from ._extras import MissingExtra
from ._guard import PRINCIPAL_KEY
from ._metadata import ProtectedResource
from ._principal import Principal
from ._types import ASGIApp, Message, Receive, Scope, Send
from ._verifier import Verifier

try:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # only without the mcp extra
    raise MissingExtra("jwt_guard.mcp", "mcp", "mcp") from exc
from .asgi import JWTGuardMiddleware

__all__ = ["MAX_BODY_BYTES", "access_token", "get_principal", "protect", "require_scopes"]

#: The largest request body read to find a ``tools/call`` (the SDK's own default limit).
MAX_BODY_BYTES: Final = 4 * 1024 * 1024

# JSON-RPC 2.0 §5.1 error objects, for bodies the scope gate cannot read.
_PARSE_ERROR: Final = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
_TOO_LARGE: Final = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Request too large"}}'
)


def protect(
    app: ASGIApp,
    *,
    verifier: Verifier,
    protected_resource: ProtectedResource,
    tool_scopes: Mapping[str, Sequence[str]] | None = None,
    exclude: Sequence[str] = (),
    realm: str | None = None,
    on_error: ErrorHandler | None = None,
    prefetch: bool = True,
) -> JWTGuardMiddleware:
    """The MCP server's Starlette app (``server.streamable_http_app()``) behind jwt_guard.

    ``protected_resource.resource`` is the server's canonical URL (the MCP endpoint, e.g.
    ``https://mcp.example.com/mcp``) and must be one of the verifier's audiences: a token
    issued for another server is refused (RFC 8707, MCP "token audience binding").
    ``tool_scopes`` maps tool names to the scopes a call needs (all of them). Routes added with
    ``@server.custom_route`` are guarded too unless listed in ``exclude``.
    """
    if not isinstance(protected_resource, ProtectedResource):
        # MCP authorization: servers MUST publish RFC 9728 metadata.
        raise ConfigurationError("protected_resource must be a jwt_guard.ProtectedResource")
    inner: ASGIApp = _SDKIdentity(app, protected_resource.resource)
    if tool_scopes:
        inner = _ToolScopes(inner, tool_scopes)
    return JWTGuardMiddleware(
        inner,
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


class _SDKIdentity:
    """Hands the SDK its own identity for the principal the middleware verified.

    ``scope["user"]`` becomes the SDK's ``AuthenticatedUser`` (session ownership: a session is
    only served to the principal that opened it) and the SDK's auth context variable is set
    (``get_access_token()``); the principal stays at ``scope["jwt_guard.principal"]``.
    """

    def __init__(self, app: ASGIApp, resource: str) -> None:
        self.app = app
        self.resource = resource

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        if not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        user = AuthenticatedUser(access_token(principal, self.resource))
        scope["user"] = user
        token = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(token)


class _ToolScopes:
    """Refuses a ``tools/call`` whose tool needs scopes the token lacks, before the SDK runs it.

    The body is read (up to :data:`MAX_BODY_BYTES`) and parsed once here; the SDK receives the
    message as parsed here, re-serialized, so it cannot read a different tool name from the
    same bytes (duplicate keys, encodings) than the one checked.
    """

    def __init__(self, app: ASGIApp, tool_scopes: Mapping[str, Sequence[str]]) -> None:
        if not isinstance(tool_scopes, Mapping) or not all(
            isinstance(name, str)
            and not isinstance(scopes, str)
            and isinstance(scopes, Sequence)
            and scopes
            and all(isinstance(s, str) and s and " " not in s for s in scopes)
            for name, scopes in tool_scopes.items()
        ):
            raise ConfigurationError("tool_scopes maps tool names to non-empty lists of scopes")
        self.app = app
        self.tool_scopes = {name: tuple(scopes) for name, scopes in tool_scopes.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _send_json(send, 413, _TOO_LARGE)
            return
        try:
            message = json.loads(body, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            await _send_json(send, 400, _PARSE_ERROR)
            return
        principal = scope.get(PRINCIPAL_KEY)
        for call in message if isinstance(message, list) else [message]:
            self._check(call, principal)
        forwarded = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(forwarded)).encode()))
        scope = {**scope, "headers": headers}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": forwarded, "more_body": False}
            return await receive()  # only a disconnect is left to wait for

        await self.app(scope, replay, send)

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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python accepts them, JSON does not


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # disconnected: what arrived is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
