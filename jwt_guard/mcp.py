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
``tools/call`` (``prompt_scopes`` a ``prompts/get``, ``resource_scopes`` a ``resources/read``)
the token's scopes do not cover with HTTP 403 ``insufficient_scope`` naming the
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

The gate (:class:`_Gate`): an authorization decision never rests on the SDK parsing a body as
we did, nor on a header deciding whether we look. Every ``POST`` to the MCP endpoint is read
(up to the SDK's own body limit) and decided here, whatever its ``Content-Type``, content
coding or ``MCP-Protocol-Version``; the gate admits only one JSON-RPC object in strict UTF-8
JSON that every path of the SDK reads the same way, decides the scopes on that message, and
refuses anything else (400, 413, 415, with a JSON-RPC error) before the SDK sees it. The SDK
then gets the original bytes.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from ._core.errors import (
    AuthenticationRequired,
    ConfigurationError,
    InsufficientScope,
    InvalidRequest,
    JWTGuardError,
)
from ._core.extras import MissingExtra
from ._core.principal import Principal
from ._http.answer import ErrorHandler
from ._http.client_cert import ClientCertificate
from ._http.guard import GUARD_KEY, PRINCIPAL_KEY, Guard
from ._http.metadata import ProtectedResource
from ._http.types import ASGIApp, Message, Receive, Scope, Send
from ._integrations.mcp_operations import OperationScopes, UnmatchedResource
from ._sources.verifier import Verifier
from .asgi import JWTGuardMiddleware, send_answer

try:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.sse import SseServerTransport
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )
    from mcp.shared.inbound import decode_header_value
except ImportError as exc:  # only without the mcp extra
    raise MissingExtra("jwt_guard.mcp", "mcp", "mcp") from exc

__all__ = ["MAX_BODY_BYTES", "access_token", "get_principal", "protect", "require_scopes"]

#: The largest request body read to find a ``tools/call`` when the SDK's own limit
#: (``streamable_http_app(max_request_body_size=...)``) cannot be read: its default.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024

#: The token never reaches the SDK or the tools (MCP authorization, "token passthrough").
_TOKEN_HEADERS: Final = frozenset({b"authorization", b"dpop"})


def protect(
    app: Starlette,
    *,
    verifier: Verifier,
    protected_resource: ProtectedResource,
    tool_scopes: Mapping[str, Sequence[str]] | None = None,
    resource_scopes: Mapping[str, Sequence[str]] | None = None,
    prompt_scopes: Mapping[str, Sequence[str]] | None = None,
    server: MCPServer[Any] | None = None,
    exclude: Sequence[str] = (),
    realm: str | None = None,
    on_error: ErrorHandler | None = None,
    prefetch: bool = True,
    client_certificate: ClientCertificate | None = None,
) -> Starlette:
    """Put the MCP server's Starlette app (``server.streamable_http_app()``) behind jwt_guard.

    ``protected_resource.resource`` is the server's canonical URL (the MCP endpoint, e.g.
    ``https://mcp.example.com/mcp``) and must be one of the verifier's audiences: a token
    issued for another server is refused (RFC 8707, MCP "token audience binding").
    ``tool_scopes`` maps tool names to the scopes a ``tools/call`` needs (all of them),
    ``prompt_scopes`` prompt names to those of a ``prompts/get``, ``resource_scopes`` resource
    URIs or RFC 6570 level-1 URI templates (``notes://{id}``) to those of a ``resources/read``
    (see :mod:`jwt_guard._integrations.mcp_operations`). Every name in these tables must be
    one the server registers (a tool or prompt name, a resource URI, a template's own text),
    else a :class:`ConfigurationError` names it: a typo or a look-alike template would leave
    what it meant open to any token. ``server`` is the ``MCPServer`` whose registrations are
    read; left out, it is found through the app's endpoint. Register tools, prompts and
    resources before calling ``protect``. Routes added with ``@server.custom_route`` are
    guarded too unless listed in ``exclude``. ``client_certificate`` is the middleware's, for a
    verifier with ``mtls=True`` (RFC 8705).

    The app is changed in place (the middleware added, the MCP endpoint wrapped) and returned.
    """
    if not isinstance(protected_resource, ProtectedResource):
        # MCP authorization: servers MUST publish RFC 9728 metadata.
        raise ConfigurationError("protected_resource must be a jwt_guard.ProtectedResource")
    if not isinstance(app, Starlette):
        raise ConfigurationError("protect() takes the app of server.streamable_http_app()")
    scopes = OperationScopes(tool_scopes, prompt_scopes, resource_scopes)
    # Built now, so that a wrong configuration (the resource not an audience) fails here.
    middleware = JWTGuardMiddleware(
        app,
        verifier=verifier,
        protected_resource=protected_resource,
        exclude=exclude,
        realm=realm,
        on_error=on_error,
        prefetch=prefetch,
        client_certificate=client_certificate,
        # Tokens come in the Authorization header only: MCP clients are not browsers with
        # cookies, so there is no cookie and no CSRF check.
        header=True,
    )
    routes = list(_mcp_routes(app.routes))
    if not routes:
        raise ConfigurationError(
            "protect() found no MCP streamable HTTP endpoint in the app: pass the app of "
            "server.streamable_http_app()"
        )
    for path in _ungated_transports(app.routes, routes):
        # Guarded like a custom route, a transport would run tools/call past tool_scopes.
        raise ConfigurationError(
            f"the app serves MCP at {path!r} through a transport protect() does not gate "
            "(an SSE app, or the endpoint mounted again): a tools/call there would not be "
            "gated by tool_scopes; serve MCP only through server.streamable_http_app()'s "
            "endpoint"
        )
    registered = _registrations(routes, server, scopes)
    for route in routes:
        if isinstance(route.app, _MCPEndpoint):
            raise ConfigurationError("this app is already protected")
        gate = _Gate(scopes, _body_limit(route), registered)
        route.app = _MCPEndpoint(route.app, protected_resource.resource, gate)
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


#: How deep :func:`_ungated_transports` looks through ``.app`` attributes of wrappers.
_MAX_WRAPPERS: Final = 8


def _ungated_transports(
    routes: Sequence[BaseRoute], gated: Sequence[Route], prefix: str = ""
) -> Iterator[str]:
    """The paths of routes and mounts (at any depth) that hand requests to an MCP transport
    other than the endpoints in ``gated``: an SSE transport's message endpoint, the streamable
    HTTP endpoint or its session manager mounted as an app, or either behind wrappers that
    keep their inner app at ``.app``."""
    for route in routes:
        if any(route is r for r in gated):
            continue
        path = prefix + str(getattr(route, "path", ""))
        for target in (getattr(route, "endpoint", None), getattr(route, "app", None)):
            for _ in range(_MAX_WRAPPERS):
                if target is None:
                    break
                owner = getattr(target, "__self__", target)  # a bound method's instance
                if isinstance(
                    owner, (StreamableHTTPASGIApp, StreamableHTTPSessionManager, SseServerTransport)
                ):
                    yield path or "/"
                    break
                target = getattr(target, "app", None)
        if isinstance(route, Mount):
            yield from _ungated_transports(route.routes, gated, path)


class _Registered:
    """What an ``MCPServer`` registers, read when asked (the SDK's managers: private
    attributes, reached only here): tools and prompts by name, resources by URI, templates
    by their own text."""

    def __init__(self, server: MCPServer[Any]) -> None:
        try:
            self._tools = server._tool_manager
            self._prompts = server._prompt_manager
            self._resources = server._resource_manager
            self.tools()
            self.prompts()
            self.resources()
            self.templates()
        except AttributeError as exc:  # an SDK release that moved them
            raise ConfigurationError(
                "protect() cannot read the MCPServer's tools, prompts and resources in this "
                f"version of the mcp SDK ({exc}); use an mcp version jwt_guard supports"
            ) from None

    def tools(self) -> set[str]:
        return {tool.name for tool in self._tools.list_tools()}

    def prompts(self) -> set[str]:
        return {prompt.name for prompt in self._prompts.list_prompts()}

    def resources(self) -> set[str]:
        return {str(resource.uri) for resource in self._resources.list_resources()}

    def templates(self) -> set[str]:
        return {template.uri_template for template in self._resources.list_templates()}


def _server_of(route: Route) -> MCPServer[Any] | None:
    """The ``MCPServer`` behind an endpoint of ``streamable_http_app()``: its low-level server
    holds the ``MCPServer``'s bound handlers (private attributes of the SDK)."""
    manager = getattr(route.endpoint, "session_manager", None)
    handlers = getattr(getattr(manager, "app", None), "_request_handlers", None)
    if not isinstance(handlers, dict):
        return None
    for method in ("tools/call", "resources/read", "prompts/get"):
        owner = getattr(getattr(handlers.get(method), "handler", None), "__self__", None)
        if isinstance(owner, MCPServer):
            return owner
    return None


def _registrations(
    routes: Sequence[Route], server: MCPServer[Any] | None, scopes: OperationScopes
) -> _Registered | None:
    """The server's registrations, after checking every name in the scope tables is one of
    them (``None``: no table is set, nothing to check)."""
    if server is not None and not isinstance(server, MCPServer):
        raise ConfigurationError("protect(server=...) takes the MCPServer the app was made from")
    found = {id(s): s for s in map(_server_of, routes) if s is not None}
    if server is not None and found and id(server) not in found:
        raise ConfigurationError("protect(server=...) is not the MCPServer this app serves")
    if not scopes:
        return None
    if server is None:
        if len(found) != 1:
            raise ConfigurationError(
                "protect() cannot find the MCPServer behind this app, so it cannot check the "
                "names in tool_scopes, prompt_scopes and resource_scopes against what the "
                "server registers: pass protect(..., server=server)"
            )
        (server,) = found.values()
    registered = _Registered(server)
    for option, kind, names, known in (
        ("tool_scopes", "tool", scopes.tool_names, registered.tools()),
        ("prompt_scopes", "prompt", scopes.prompt_names, registered.prompts()),
    ):
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigurationError(
                    f"{option}: the server registers no {kind} named {name!r}{hint}: the "
                    f"{kind} meant would need no scope. Use the name it is registered under, "
                    "and register it before protect()"
                )
    uris, templates = registered.resources(), registered.templates()
    for key in scopes.resource_keys:
        if key not in uris and key not in templates:
            listing = ", ".join(repr(t) for t in sorted(templates)[:8]) or "none"
            raise ConfigurationError(
                f"resource_scopes: {key!r} is neither a resource URI nor the text of a "
                f"template the server registers (its templates: {listing}): the SDK routes a "
                "resources/read to a registration, so name the one it serves, exactly as "
                "registered (a template with an operator, {+path}, {/path}, {?query}, cannot "
                "be given scopes: register it as level-1 templates)"
            )
    return registered


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
    missing = [s for s in scopes if not principal.has_scopes(s)]  # scope_implies honoured
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
        # The implied scopes too, as the gate and scope["auth"] decide: a tool checking
        # get_access_token().scopes agrees with the gate that let the call in (review H7-8).
        scopes=sorted(principal.effective_scopes),
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
    - Every ``POST`` goes through the gate (:class:`_Gate`) first, whatever its headers say.
    """

    def __init__(self, app: ASGIApp, resource: str, gate: _Gate) -> None:
        self.app = app
        self.resource = resource
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [h for h in scope["headers"] if h[0] not in _TOKEN_HEADERS]}
        principal = scope.get(PRINCIPAL_KEY)
        if scope["method"] == "POST":
            replay = await self.gate.admit(scope, receive, send, principal)
            if replay is None:
                return  # refused and answered, or the client left
            receive = replay
        elif scope["method"] not in _UNREAD_METHODS:
            await self.gate.refuse(scope, send, _Refused.method(scope["method"]))
            return
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


class _Refused(Exception):
    """The gate's refusal: an HTTP status, a JSON-RPC 2.0 error object with a fixed message
    (§5.1 codes), and the reason, for the log only."""

    def __init__(self, status: int, code: int, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason

    @classmethod
    def parse(cls, reason: str) -> _Refused:
        return cls(400, -32700, "Parse error", reason)

    @classmethod
    def invalid(cls, reason: str) -> _Refused:
        return cls(400, -32600, "Invalid Request", reason)

    @classmethod
    def media(cls, reason: str) -> _Refused:
        # RFC 9110 §15.5.16: 415 for a media type or a content coding the server won't read.
        return cls(415, -32600, "Unsupported Media Type: the body must be application/json", reason)

    @classmethod
    def method(cls, method: str) -> _Refused:
        return cls(405, -32600, "Method Not Allowed", f"method {method[:16]!r}")

    def body(self) -> bytes:
        error = {"code": self.code, "message": self.message}
        return json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()


#: Requests the SDK serves without reading a body (GET: the SSE stream, DELETE: end the
#: session); every POST is read and decided by the gate, and other methods are refused.
_UNREAD_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
#: Routing headers of the streamable HTTP transport: the SDK picks the protocol path by
#: ``MCP-Protocol-Version``, and ``Mcp-Method``/``Mcp-Name`` mirror the body for
#: intermediaries. Sent twice, the first and the last copy could name different things.
_ROUTING_HEADERS: Final = frozenset({b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
#: The member of ``params`` naming what a method acts on (MCP: tools/call, prompts/get,
#: resources/read, mirrored in ``Mcp-Name`` from 2026-07-28; resources/subscribe).
_NAMED_BY: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
}
#: The members of a ``subscriptions/listen``'s ``params.notifications`` the SDK acts on
#: (MCP 2026-07-28 ``SubscriptionFilter``, by their wire names).
_LISTEN_MEMBERS: Final = frozenset(
    {"toolsListChanged", "promptsListChanged", "resourcesListChanged", "resourceSubscriptions"}
)
# A \u escape of a UTF-16 surrogate (U+D800-U+DFFF): the only way a lone one gets into a
# string once the body is strict UTF-8.
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89abcdefABCDEF]")


class _Gate:
    """Reads every ``POST`` to the MCP endpoint and decides on the message the SDK will run.

    The SDK picks its parser by a header (``MCP-Protocol-Version``: Python's ``json`` for
    2026-07-28, ``pydantic_core`` before), accepts any ``Content-Type`` starting with
    ``application/json`` on one path and only ``application/json`` on the other, reads a
    byte-order mark, UTF-16 and lone surrogates on one path and not the other, and lets the
    last of duplicate member names win. So the gate never asks which path a request takes:
    it reads every POST, whatever its headers say, and admits only what both paths read the
    same way (strict JSON, RFC 8259, in UTF-8, one JSON-RPC object), deciding the scopes on
    that message. Anything else is refused before the SDK sees it; the SDK then receives
    the original bytes.
    """

    def __init__(self, scopes: OperationScopes, limit: int, registered: _Registered | None) -> None:
        self.scopes = scopes  # method → the name or URI it acts on → the scopes a call needs
        self.limit = limit
        self.registered = registered  # None: no scope table, nothing to check against

    async def admit(
        self, scope: Scope, receive: Receive, send: Send, principal: object
    ) -> Receive | None:
        """A ``receive`` replaying the body when the request may go on; ``None`` once it was
        refused (and answered) or the client left."""
        try:
            headers = _request_headers(scope, self.limit)
            body = await _read_body(receive, self.limit)
            if body is None:
                return None  # disconnected before the body ended: nothing to run
            message = _read_message(body)
            self.decide(message, headers, principal)
        except _Refused as refused:
            await self.refuse(scope, send, refused)
            return None
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

    def decide(
        self, message: dict[str, Any], headers: Mapping[bytes, str], principal: object
    ) -> None:
        """Raise unless ``principal`` may have the SDK run ``message``."""
        method = message.get("method")
        if method is None and "method" not in message:
            # A response to a request of the server's (JSON-RPC §5): it runs nothing.
            if b"mcp-method" in headers:
                raise _Refused.invalid("Mcp-Method header on a message without a method")
            return
        if not isinstance(method, str):
            raise _Refused.invalid("the method is not a string")
        if headers.get(b"mcp-method", method) != method:
            raise _Refused.invalid("the Mcp-Method header does not match the body's method")
        params = message.get("params")
        if method == "completion/complete":
            needed = self._completing(params)
        elif method == "subscriptions/listen":
            needed = self._listening(params)
        else:
            needed = self._acting_on(method, params, headers)
        if needed is None:
            return
        if not isinstance(principal, Principal):
            raise AuthenticationRequired()
        if not principal.has_scopes(*needed):
            # MCP authorization: a broader scope implying a needed one will do (scope_implies:
            # has_scopes asks the hierarchy only for a scope the token does not name); else the
            # scope challenge, a 403 naming every scope the call needs, in one challenge.
            raise InsufficientScope(
                required=needed,
                detail={
                    "required": list(needed),
                    "missing": [s for s in needed if not principal.has_scopes(s)],
                },
            )

    def _acting_on(
        self, method: str, params: object, headers: Mapping[bytes, str]
    ) -> tuple[str, ...] | None:
        """The scopes a method acting on one named thing needs (``None``: any other method,
        or a thing no table names), after checking ``Mcp-Name`` agrees with the body."""
        member = _NAMED_BY.get(method)
        if member is None:
            return None
        name = params.get(member) if isinstance(params, dict) else None
        if not isinstance(name, str):
            raise _Refused.invalid(f"{method} without a string params.{member}")
        header = headers.get(b"mcp-name")
        if header is not None and _header_name(header) != name:
            raise _Refused.invalid(f"the Mcp-Name header does not match the body's {member}")
        try:
            return self.scopes.needed(method, name)
        except UnmatchedResource as exc:
            raise _Refused.invalid(str(exc)) from None

    def _listening(self, params: object) -> tuple[str, ...] | None:
        """A ``subscriptions/listen`` (MCP 2026-07-28, which replaced ``resources/subscribe``)
        opens a stream of ``notifications/resources/updated`` for every URI in
        ``params.notifications.resourceSubscriptions``: each needs the scopes of reading that
        resource. The SDK reads the member by its wire name only (``by_name=False``) and keeps
        unknown members (an extension's, ``taskIds``); the gate cannot tell what those
        subscribe to, so with any scope table set they are refused."""
        notifications = params.get("notifications") if isinstance(params, dict) else None
        if not isinstance(notifications, dict):
            raise _Refused.invalid("subscriptions/listen without an object params.notifications")
        unknown = notifications.keys() - _LISTEN_MEMBERS
        if unknown and self.scopes:
            raise _Refused.invalid(
                "subscriptions/listen with params.notifications members the gate cannot decide "
                f"on: {sorted(unknown)[:4]}"
            )
        uris = notifications.get("resourceSubscriptions")
        if uris is None:
            return None
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise _Refused.invalid(
                "subscriptions/listen with a resourceSubscriptions not a list of strings"
            )
        needed: list[str] = []
        for uri in uris:
            try:
                needed.extend(self.scopes.needed("resources/read", uri) or ())
            except UnmatchedResource as exc:
                raise _Refused.invalid(str(exc)) from None
        return tuple(dict.fromkeys(needed)) or None

    def _completing(self, params: object) -> tuple[str, ...] | None:
        """A ``completion/complete`` offers values for a prompt's or a resource template's
        arguments (``params.ref``: ``name`` or ``uri``), which the server may draw from what
        they serve: it needs their scopes. A ``ref`` naming both needs both (the SDK's model
        would pick one; the gate does not guess which)."""
        ref = params.get("ref") if isinstance(params, dict) else None
        if not isinstance(ref, dict):
            raise _Refused.invalid("completion/complete without an object params.ref")
        needed: list[str] = []
        for member, method in (("name", "prompts/get"), ("uri", "resources/read")):
            if member not in ref:
                continue
            if not isinstance(ref[member], str):
                raise _Refused.invalid(
                    f"completion/complete with a params.ref.{member} not a string"
                )
            if not self._registered_ref(member, ref[member]):
                # The gate decides on the ref's name and the completion handler dispatches on
                # it: a name nothing registers has no scopes, and a handler that matches
                # loosely (isinstance, a prefix) would answer for it (review h8 F2).
                raise _Refused.invalid(
                    f"completion/complete for a {member} the server does not register"
                )
            try:
                needed.extend(self.scopes.completing(method, ref[member]) or ())
            except UnmatchedResource as exc:
                raise _Refused.invalid(str(exc)) from None
        return tuple(dict.fromkeys(needed)) or None

    def _registered_ref(self, member: str, name: str) -> bool:
        """Whether a completion's ``ref`` names what the server registers (always, when no
        prompt or resource has scopes)."""
        if self.registered is None or not self.scopes.completions_checked:
            return True
        if member == "name":
            return name in self.registered.prompts()
        return name in self.registered.templates() or name in self.registered.resources()

    async def refuse(self, scope: Scope, send: Send, refused: _Refused) -> None:
        guard = scope.get(GUARD_KEY)
        if isinstance(guard, Guard):
            # The reason goes to the log (rate-limited per code); the client gets fixed texts.
            logged = InvalidRequest(code="mcp_request_refused", detail={"reason": refused.reason})
            logged.status_code = refused.status
            guard.log(logged)
        body = refused.body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if refused.status == 405:
            headers.append((b"allow", b"GET, POST, DELETE"))
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header_name(value: str) -> str | None:
    """The name an ``Mcp-Name`` header carries in the SDK's own encoding (plain, or its
    ``=?base64?…?=`` form); ``None`` for one that names nothing: the SDK's decoder raises
    ``ValueError`` (not its ``binascii.Error``) for a payload that is not ASCII."""
    try:
        return decode_header_value(value)
    except ValueError:
        return None


def _request_headers(scope: Scope, limit: int) -> dict[bytes, str]:
    """The routing headers of a POST (each at most once), after checking the headers that say
    how to read its body: ``Content-Type`` exactly ``application/json``, no content coding, a
    ``Content-Length`` within ``limit``."""
    routing: dict[bytes, str] = {}
    content_type: str | None = None
    for name, raw in scope["headers"]:
        value = raw.decode("latin-1")
        if name == b"content-type":
            if content_type is not None:
                raise _Refused.media("Content-Type sent twice")
            content_type = value
        elif name == b"content-encoding":
            if value.strip().lower() != "identity":
                # RFC 9110 §8.4: the SDK decodes no content coding, so it would run bytes the
                # gate cannot read as JSON.
                raise _Refused.media("a Content-Encoding")
        elif name == b"content-length":
            if not (value.isascii() and value.isdigit()):
                raise _Refused.invalid("Content-Length is not a number")
            # Leading zeros aside, more digits than the limit's is over it: int() refuses
            # strings past 4300 digits (a ValueError, so a 500) and need not see them.
            digits = value.lstrip("0")
            if len(digits) > len(str(limit)) or int(digits or "0") > limit:
                raise _Refused(413, -32600, "Request too large", "Content-Length over the limit")
        elif name in _ROUTING_HEADERS:
            if name in routing:
                raise _Refused.invalid(f"{name.decode()} header sent twice")
            routing[name] = value
    if content_type is None or not _is_json(content_type):
        raise _Refused.media("Content-Type is not application/json")
    return routing


def _is_json(content_type: str) -> bool:
    """``application/json`` (RFC 8259 §11), any case, with nothing after it but
    ``charset=utf-8`` (RFC 9110 §8.3.1); not a type that merely starts with it
    (``application/jsonx``, ``application/json-seq``), which the SDK would also run."""
    media, *parameters = content_type.split(";")
    if media.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _read_message(body: bytes) -> dict[str, Any]:
    """The one JSON-RPC object in ``body``, read strictly enough that the SDK's parsers (both)
    read the same object: else a refusal."""
    if body.startswith(b"\xef\xbb\xbf"):
        # RFC 8259 §8.1: no BOM. Python's json reads past one, pydantic_core refuses it.
        raise _Refused.parse("a byte order mark")
    try:
        message = _strict_json(body)
    except UnicodeDecodeError:
        raise _Refused.parse("the body is not UTF-8") from None
    except ValueError as exc:
        raise _Refused.parse(f"not strict JSON: {exc}") from None
    except RecursionError:
        raise _Refused.parse("nested too deep") from None
    if _SURROGATE_ESCAPE.search(body) is not None and _has_lone_surrogate(message):
        # RFC 8259 §8.2: such a string means what each parser decides (json keeps it,
        # pydantic_core refuses the body).
        raise _Refused.parse("a lone UTF-16 surrogate")
    if not isinstance(message, dict):
        # A batch (JSON-RPC §6) or a bare value: neither of the SDK's paths runs one (MCP
        # dropped batching in 2025-06-18), so no batch member is ever decided on its own.
        raise _Refused.invalid("not one JSON-RPC object")
    return message


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    """The whole body, refused past ``limit``; ``None`` when the client left before its end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused(413, -32600, "Request too large", "the body is over the limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
