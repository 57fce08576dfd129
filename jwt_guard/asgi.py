"""Pure ASGI middleware for Starlette and FastAPI (no ``BaseHTTPMiddleware``).

The adapter's part of the request path: the RFC 9728 document, excluded paths and CORS
preflights; then it hands the request to the guard (``Guard.aauthenticate(ASGIRequest(scope))``,
``_http.guard``), which extracts, verifies and raises the error to answer, and it places the
principal in the scope or writes the guard's answer. A plain Bearer request takes a shorter
path (``_header_token``): the verified-token cache answers it without leaving ``__call__``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Final

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from ._core.certificates import check_certificate_binding
from ._core.errors import ConfigurationError, JWTGuardError
from ._core.log import DEFAULT_LOG_LIMIT
from ._core.principal import FrozenList, Principal
from ._http.answer import Answer, ErrorHandler
from ._http.client_cert import ClientCertificate
from ._http.extract import CSRF, Credentials, override_params
from ._http.guard import (
    EXCLUDED_KEY,
    GUARD_KEY,
    NOT_A_CORS_ANSWER,
    PRINCIPAL_KEY,
    SOURCE_KEY,
    VERIFIER_KEY,
    Guard,
)
from ._http.metadata import ProtectedResource
from ._http.order import check, owner_of, watch
from ._http.request import OVERRIDE_HEADERS as _OVERRIDE_HEADERS
from ._http.request import ASGIRequest
from ._http.types import ASGIApp, Message, Receive, Scope, Send
from ._sources.verifier import Verifier

__all__ = [
    "JWTGuardMiddleware",
    "authenticate",
    "authenticate_sync",
    "credentials",
    "place",
    "response",
    "send_answer",
]

logger = logging.getLogger("jwt_guard")

#: RFC 6455 §7.4.1: 1008 "policy violation", for servers without the HTTP denial extension.
WS_POLICY_VIOLATION = 1008


_NONCE_MESSAGES: Final = ("http.response.start", "websocket.accept")


class _Auth(AuthCredentials):
    """Starlette ``AuthCredentials`` made once per principal and shared by every request that
    presents the same token (the principal is shared the same way): read-only, so one
    request cannot change another's ``request.auth.scopes``."""

    def __init__(self, scopes: Sequence[str] = ()) -> None:
        object.__setattr__(self, "scopes", FrozenList(scopes))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("request.auth is read-only (set scope['auth'] to replace it)")


# Byte values, for "in" on bytes: an int is a memchr, while a one-byte bytes needle first fails
# an int conversion inside CPython (an exception object made and cleared on every test).
_SP, _TAB, _COMMA = b" \t,"

#: What an anonymous request gets: no state, so one object serves every request.
_ANONYMOUS = UnauthenticatedUser()
_NO_AUTH = _Auth()


def _auth_of(principal: Principal) -> AuthCredentials:
    """``"authenticated"`` plus the principal's scopes, made on the principal's first request."""
    auth: AuthCredentials | None = principal._auth
    if auth is None:
        # The scopes implied too (scope_implies): Starlette's @requires decides on these.
        auth = _Auth(["authenticated", *principal.effective_scopes])
        object.__setattr__(principal, "_auth", auth)  # a memo, derived from the scopes only
    return auth


def route_path(scope: Scope) -> str:
    """The path as the app's routes see it: ``path`` without the ``root_path`` prefix.

    ASGI's ``path`` includes the prefix the app is mounted under (a Starlette ``Mount``, a
    proxy's ``--root-path``); WSGI's ``PATH_INFO`` never does. ``exclude`` means the app's own
    paths under both adapters.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :] or "/"
    return path


def _is_preflight(scope: Scope) -> bool:
    """A CORS preflight (Fetch §4.8 "CORS-preflight fetch", §3.2.2): ``OPTIONS`` with both
    ``Origin`` and ``Access-Control-Request-Method``, and no method override (a header or
    ``_method``, :func:`override_params`) that a framework could read as another method.
    Only such a request may go to a CORS layer without a token (:class:`JWTGuardMiddleware`).
    """
    if scope["method"] != "OPTIONS":
        return False
    origin = request_method = False
    for name, _ in scope["headers"]:
        if name == b"origin":
            origin = True
        elif name == b"access-control-request-method":
            request_method = True
        elif name in _OVERRIDE_HEADERS:
            return False
    if origin and request_method:
        # _method as the app reads it (percent-decoded), blank or not.
        return not override_params(scope.get("query_string", b"").decode("latin-1"))
    return False


#: How deep :func:`_cors_within` looks through ``.app`` attributes of wrapped middleware.
_MAX_LAYERS = 32


def _answers_preflights(app: object) -> bool:
    """Whether ``app`` answers every CORS preflight itself, running no other code: Starlette's
    ``CORSMiddleware`` (that class, not a subclass, which may answer otherwise), for a request
    :func:`_is_preflight` accepts (the same three facts it tests)."""
    return type(app) is CORSMiddleware


def _cors_within(app: object) -> bool:
    """Whether a ``CORSMiddleware`` sits somewhere inside ``app`` (middleware that keep their
    inner app at ``.app``, and a Starlette app's middleware list): for the start-up warning."""
    for _ in range(_MAX_LAYERS):
        if isinstance(app, CORSMiddleware):
            return True
        if isinstance(app, Starlette):
            return any(
                isinstance(m.cls, type) and issubclass(m.cls, CORSMiddleware)
                for m in app.user_middleware
            )
        app = getattr(app, "app", None)
        if app is None:
            return False
    return False


#: What makes a refused preflight pass (the warnings and the error's detail say it).
_PREFLIGHT_FIX: Final = (
    "no CORS layer answers it before the guard; add Starlette's CORSMiddleware outside "
    "JWTGuardMiddleware (or directly inside it)"
)
_PREFLIGHT_PLACEMENT: Final = (
    "CORSMiddleware is inside JWTGuardMiddleware but not directly, so CORS preflights are "
    "answered 401; add CORSMiddleware outside JWTGuardMiddleware (last with "
    "app.add_middleware, first in middleware=[...]), or directly inside it"
)


def credentials(guard: Guard, scope: Scope) -> Credentials | None:
    """The token of an HTTP request or WebSocket handshake, with the CSRF check done.

    Read under ``guard``'s settings, with no I/O: the caller verifies with its driver."""
    return guard.credentials(ASGIRequest(scope))


async def authenticate(guard: Guard, scope: Scope) -> Principal | None:
    """Extract, check CSRF and verify an ASGI request with the async driver.

    The middleware's steps (:meth:`Guard.aauthenticate`), shared by the per-route guards.
    ``None`` for an anonymous request ``guard`` allows; raises the :class:`JWTGuardError` to
    answer."""
    return await guard.aauthenticate(ASGIRequest(scope))


def authenticate_sync(guard: Guard, scope: Scope) -> Principal | None:
    """:func:`authenticate` with the sync driver, for sync endpoints (run in a thread)."""
    return guard.authenticate(ASGIRequest(scope))


def place(scope: Scope, principal: Principal | None, verifier: Verifier) -> None:
    """Put the principal where ``request.user``, ``request.auth`` and the requirements read it."""
    if principal is None:
        scope["user"] = _ANONYMOUS
        scope["auth"] = _NO_AUTH
        return
    scope["user"] = principal
    scope["auth"] = _auth_of(principal)
    scope[PRINCIPAL_KEY] = principal
    scope[VERIFIER_KEY] = verifier


def response(answer: Answer) -> Response:
    """A Starlette response for an error answer."""
    result = Response(answer.body, status_code=answer.status)
    result.raw_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers)
    return result


async def send_answer(send: Send, answer: Answer, *, head: bool = False) -> None:
    """Send an error answer as an ASGI response (no body for a ``HEAD`` request)."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if answer.status != 304 and answer.status != 204:  # RFC 9110 §8.6: none on these
        headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


class _StartupRefused(Exception):
    """Raised into the app's lifespan when the order check after its start-up fails."""


class JWTGuardMiddleware:
    """Verify the request's JWT and put the :class:`Principal` in ``scope["user"]``.

    ``scope["auth"]`` gets Starlette ``AuthCredentials`` holding ``"authenticated"`` plus the
    token's scopes, so ``request.user``, ``request.auth`` and Starlette's ``@requires`` work
    unchanged. Errors become RFC 6750 answers; :class:`JWTGuardError` raised further down
    (by ``require_roles``/``require_scopes``) is answered the same way.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        cookie: str | None = None,
        header: bool = True,
        optional: bool = False,
        exclude: Sequence[str] = (),
        websocket_query_param: str | None = None,
        csrf: bool | CSRF = True,
        realm: str | None = None,
        on_error: ErrorHandler | None = None,
        debug: bool = False,
        log_rejections: int | None = logging.INFO,
        log_limit: int = DEFAULT_LOG_LIMIT,
        prefetch: bool = True,
        protected_resource: ProtectedResource | None = None,
        unsafe_preflight_to_app: bool = False,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        if isinstance(client_certificate, ClientCertificate):
            client_certificate.check_adapter(asgi=True)
        self.guard = Guard(
            verifier=verifier,
            cookie=cookie,
            header=header,
            optional=optional,
            exclude=exclude,
            csrf=csrf,
            realm=realm,
            on_error=on_error,
            debug=debug,
            log_rejections=log_rejections,
            log_limit=log_limit,
            websocket_query_param=websocket_query_param,
            protected_resource=protected_resource,
            unsafe_preflight_to_app=unsafe_preflight_to_app,
            client_certificate=client_certificate,
        )
        self._placement_checked = False
        if not isinstance(app, Starlette):
            # A Starlette app's middleware may still change (add_middleware, or this guard
            # installed inside it): checked at lifespan start-up instead.
            self._check_cors_placement()
        self.prefetch = prefetch
        # The fast path (see __call__ and _header_token): a header token, verified without
        # after-steps, or with the certificate binding only (checked there on every hit).
        self._certificates = client_certificate if verifier._mtls_only else None
        self._fast = header and (verifier._hit is not None or self._certificates is not None)
        self._hit = verifier._cache.hit
        #: The same for an opaque token's cached introspection answer (None: no such path).
        self._opaque_hit = verifier._opaque_hit
        self._cookies_matter = cookie is not None
        self._metrics = verifier.metrics
        self._header_source = ("header", self.guard.csrf)  # SOURCE_KEY, as Guard.accepted sets it
        #: Whether the app's routes still need the decorator-order check (``_http.order``):
        #: a Starlette app wrapped from outside is checked now and at each later decoration;
        #: one this middleware sits inside (``add_middleware``: built at the first request) at
        #: lifespan start-up, and before the first request reaches it either way.
        self._order_pending = True
        if isinstance(app, Starlette):
            watch(app)
        if isinstance(app, Starlette) and app.middleware_stack is None:
            # Wrapping a Starlette/FastAPI app from outside: its ServerErrorMiddleware would
            # turn a JWTGuardError raised by an endpoint or a dependency into a 500 before it
            # reaches us, so its ExceptionMiddleware answers it (an app's own handler wins).
            app.exception_handlers.setdefault(JWTGuardError, self._handle_error)

    def _check_cors_placement(self) -> None:
        """Say at start-up when a CORSMiddleware sits inside but not directly: it answered
        preflights before any app code ran, and now the guard answers them 401."""
        if self._placement_checked:
            return
        self._placement_checked = True
        guard = self.guard
        if guard.optional or guard.unsafe_preflight_to_app or _answers_preflights(self.app):
            return
        if _cors_within(self.app):
            logger.warning("%s", _PREFLIGHT_PLACEMENT)

    def _handle_error(self, request: Request, exc: Exception) -> Response:
        if request.scope["type"] != "http" or not isinstance(exc, JWTGuardError):
            raise exc  # a WebSocket handshake: __call__ refuses it with its own answer
        return response(self.guard.answer(exc, request.scope))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                try:
                    # Before the app's start-up code; the check that counts is the one after
                    # it (_lifespan_send), so requests stay checked until that one passes.
                    self._check_order(scope, done=False)
                except ConfigurationError as exc:
                    # The server stops: "Application startup failed" with the reason
                    # (ASGI lifespan spec), rather than serving an unprotected view.
                    await receive()  # lifespan.startup
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                receive = self._lifespan_receive(receive)
                with contextlib.suppress(_StartupRefused):  # reported: lifespan.startup.failed
                    await self.app(scope, receive, self._lifespan_send(scope, send))
                return
            await self.app(scope, receive, send)
            return
        if self._order_pending:
            try:
                self._check_order(scope)
            except ConfigurationError as exc:  # fail closed: no route runs unprotected
                await self._reject(scope, send, exc)
                return
        guard = self.guard
        nonce_header: tuple[bytes, bytes] | None = None
        metadata = guard.metadata
        if (
            metadata is not None
            and kind == "http"
            # The full path, or the app's own (a proxy that strips a prefix: root_path).
            and (metadata.matches(scope["path"]) or metadata.matches(route_path(scope)))
        ):
            # RFC 9728 §3: the metadata document is public; no token is looked for.
            method = scope["method"]
            if_none_match = request_headers = None
            for name, value in scope["headers"]:
                if name == b"if-none-match":
                    if_none_match = value.decode("latin-1")
                elif name == b"access-control-request-headers":
                    request_headers = value.decode("latin-1")
            answer = metadata.answer(method, if_none_match, request_headers)
            await send_answer(send, answer, head=method == "HEAD")
            return
        if guard.excludes and guard.is_excluded(route_path(scope)):
            # Public path: no token is read, and request.user is a plain anonymous user. A
            # dependency or decorator that needs a principal here authenticates on demand
            # with these settings (GUARD_KEY), instead of answering token_missing.
            scope["user"] = _ANONYMOUS
            scope["auth"] = _NO_AUTH
            scope[EXCLUDED_KEY] = True
        elif kind == "http" and scope["method"] == "OPTIONS" and _is_preflight(scope):
            # A CORS preflight carries no credentials (Fetch §4.8). It reaches no app code
            # without a token: a CORSMiddleware directly inside answers it itself, and
            # anything else (a route or middleware that handles OPTIONS, which may stamp
            # Access-Control-Allow-Origin on every answer) gets our 401.
            scope["user"] = _ANONYMOUS
            scope["auth"] = _NO_AUTH
            if not guard.optional:
                if _answers_preflights(self.app):
                    await self.app(scope, receive, send)
                    return
                if not guard.unsafe_preflight_to_app:
                    fix = _PREFLIGHT_PLACEMENT if _cors_within(self.app) else _PREFLIGHT_FIX
                    await send_answer(send, guard.answer(guard.preflight_refused(fix), scope))
                    return
                # Explicitly unsafe: the app runs without a token; only a CORS answer leaves.
                send = self._cors_only(scope, send)
        else:
            principal = None
            token = self._header_token(scope) if kind == "http" else None
            if token is not None:
                # The common request, in the bytes the server handed us: one Authorization
                # header "Bearer <token>" (see _header_token). A token this verifier already
                # accepted is answered from the cache with no coroutine and no decoding; a
                # new one is verified as bytes. Anything the cache cannot settle here (a time
                # edge, a key set to refresh) and every failure go through the verifier's
                # full path, which decides and raises the error to answer.
                certificates = self._certificates
                metrics = self._metrics
                try:
                    thumbprint = None
                    if certificates is None:
                        principal = self._hit(token)
                    else:
                        # RFC 8705 §3: the request's certificate, checked on a hit too.
                        thumbprint = certificates.from_scope(scope)
                        principal = self._hit(token)
                        if principal is not None:
                            check_certificate_binding(principal.claims, thumbprint)
                    if principal is not None:
                        if metrics is not None:
                            metrics.lookups[1] += 1
                    elif self._opaque_hit is not None and (principal := self._opaque_hit(token)):
                        # None with mTLS on (an after-step): the binding is never skipped.
                        if metrics is not None:
                            metrics.introspection_lookups[1] += 1
                    else:
                        principal = await self.verifier.averify(
                            token, certificate_thumbprint=thumbprint
                        )
                except JWTGuardError as exc:
                    found = Credentials(token.decode("latin-1"), "header")
                    await self._reject(scope, send, guard.failed(found, exc))
                    return
                if metrics is not None:
                    metrics.valid["header"] += 1
                scope["user"] = principal
                scope["auth"] = principal._auth or _auth_of(principal)
                scope[PRINCIPAL_KEY] = principal
                scope[VERIFIER_KEY] = self.verifier
                scope[SOURCE_KEY] = self._header_source
            else:
                try:
                    principal = await guard.aauthenticate(ASGIRequest(scope))
                except JWTGuardError as exc:
                    await self._reject(scope, send, exc)
                    return
                place(scope, principal, self.verifier)
                if principal is not None and guard.dpop is not None:
                    nonce = guard.dpop_nonce()
                    if nonce is not None:
                        nonce_header = (b"dpop-nonce", nonce.encode("ascii"))
        scope[GUARD_KEY] = guard

        started = False

        # Plain functions returning send's awaitable: no coroutine of our own per message.
        if nonce_header is None:

            def send_tracking(message: Message) -> Awaitable[None]:
                nonlocal started
                started = True
                return send(message)

        else:
            header = nonce_header

            def send_tracking(message: Message) -> Awaitable[None]:
                nonlocal started
                started = True
                # The nonce also goes on a WebSocket's accept (ASGI 2.1 "headers"): the
                # handshake response is the client's only chance to see it before its next
                # connection.
                if message["type"] in _NONCE_MESSAGES:
                    message = {**message, "headers": [*message.get("headers", ()), header]}
                return send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except JWTGuardError as exc:
            # Raised by require_roles/require_scopes or a FastAPI dependency before the
            # response started: answer it like our own errors.
            if started:
                raise
            await self._reject(scope, send, exc)

    def _check_order(self, scope: Scope, *, done: bool = True) -> None:
        """Raise while a route of the app serves a view bare that a jwt_guard decorator
        wrapped (``_http.order``); once it passes (``done``), requests are not checked again."""
        owner = owner_of(scope.get("app")) or owner_of(self.app)
        if owner is not None:
            check(owner)
        if done:
            self._order_pending = False

    def _lifespan_send(self, scope: Scope, send: Send) -> Send:
        """``send`` for the lifespan: the app's own start-up code may add routes
        (``app.include_router`` in its lifespan), so the order is checked again when the app
        reports ``lifespan.startup.complete``, and a failure is reported in its place."""
        refused = False

        async def checked(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the app reporting the refusal raised into it: already reported
            if message["type"] == "lifespan.startup.complete":
                try:
                    self._check_order(scope)
                except ConfigurationError as exc:
                    refused = True
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise _StartupRefused from exc  # unwinds the app's start-up
            await send(message)

        return checked

    def _cors_only(self, scope: Scope, send: Send) -> Send:
        """``send`` for a preflight that passed without a token: an answer without
        ``Access-Control-Allow-Origin`` is no CORS answer (Fetch §4.8: the browser fails the
        preflight without it), so the client gets our 401 instead and the app's body is
        dropped. A route that handles ``OPTIONS`` itself cannot answer anonymously."""
        refused = False

        async def only_cors(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                if not any(
                    name.lower() == b"access-control-allow-origin"
                    for name, _ in message.get("headers", ())
                ):
                    refused = True
                    await send_answer(
                        send,
                        self.guard.answer(self.guard.preflight_refused(NOT_A_CORS_ANSWER), scope),
                    )
                    return
            elif refused:
                return
            await send(message)

        return only_cors

    def _header_token(self, scope: Scope) -> bytes | None:
        """The token of a plain Bearer request, as bytes, when the guard would take exactly
        that token from it too; ``None`` sends the request through :func:`authenticate`.

        Plain: exactly one ``Authorization`` header, spelled ``Bearer`` and one space, followed
        by a token with no space, tab or comma (RFC 6750 §2.1; anything else is for
        :func:`bearer_token` to accept or refuse with its 400), and no ``Cookie`` header when
        a token cookie is configured (then both places count). Only for a verifier without
        DPoP or a denylist (their steps need the full path; the certificate binding is checked
        here) and with the header enabled.
        """
        if not self._fast:
            return None
        value = None
        for name, header_value in scope["headers"]:
            if name == b"authorization":
                if value is not None:
                    return None
                value = header_value
            elif name == b"cookie" and self._cookies_matter:
                return None
        if value is None or value[:7] != b"Bearer ":
            return None
        token: bytes = value[7:]
        if not token or _SP in token or _TAB in token or _COMMA in token:
            return None
        return token

    async def _reject(self, scope: Scope, send: Send, exc: JWTGuardError) -> None:
        answer = self.guard.answer(exc, scope)
        if scope["type"] == "websocket":
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
            # A server may send ``"extensions": None`` (or leave it out).
            if "websocket.http.response" in (scope.get("extensions") or {}):
                # ASGI WebSocket Denial Response: a real 401/403 for the handshake.
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": answer.status,
                        "headers": headers,
                    }
                )
                await send({"type": "websocket.http.response.body", "body": answer.body})
            else:
                await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return
        await send_answer(send, answer)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._check_cors_placement()
            if message["type"] == "lifespan.startup" and self.prefetch:
                # Warm the key cache; a provider that is down must not stop the app from
                # starting (requests will get 503 until keys can be fetched).
                await self.verifier.aprefetch(required=False)
            elif message["type"] == "lifespan.shutdown":
                await self.verifier.aclose()
            return message

        return wrapped
