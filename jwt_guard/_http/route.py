"""Authentication on one route, with or without a middleware.

    guard = RouteGuard(verifier, cookie="access_token")

    @guard.protect(roles=["admin"])          # Starlette endpoint (sync or async) or Flask view
    async def admin(request): ...

A guard extracts, checks CSRF and verifies with the middleware's own steps
(:meth:`Guard.aauthenticate` / :meth:`Guard.authenticate` on an ``ASGIRequest`` or
``WSGIRequest``) and answers with the same :class:`Responder`, so a route guarded here and a
route behind the middleware give the same answers. When a middleware already verified the
request, its principal is reused: no second verification.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Collection, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar, cast

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from .. import asgi
from .._core.errors import AuthenticationRequired, ConfigurationError, JWTGuardError
from .._core.log import DEFAULT_LOG_LIMIT
from .._core.principal import Principal
from .._sources.verifier import Verifier
from .answer import Answer, ErrorHandler
from .authz import Requirement, needed_scopes, served_scopes
from .client_cert import ClientCertificate
from .extract import CSRF
from .guard import GUARD_KEY, PRINCIPAL_KEY, ROUTE_GUARD_KEY, SOURCE_KEY, VERIFIER_KEY, Guard
from .metadata import ProtectedResource
from .order import record
from .request import ASGIRequest, WSGIRequest
from .resolve import asgi_response, connection_of, endpoint_check, flask_abort, flask_environ
from .types import Environ

__all__ = ["RouteGuard"]

F = TypeVar("F", bound=Callable[..., Any])


class RouteGuard:
    """Verify the token on the routes it decorates; no middleware needed.

    The options are the middleware's (``cookie``, ``header``, ``csrf``, ``realm``,
    ``on_error``, ``debug``, ``log_rejections``, ``log_limit``, ``client_certificate``).
    :meth:`protect` makes a decorator for Starlette endpoints (sync or async, ``HTTPEndpoint``
    methods) and Flask views; ``jwt_guard.fastapi.JWTBearer`` is the FastAPI dependency form.
    Where a middleware with the same verifier already verified the request, its principal is
    used.

    ``protected_resource`` (RFC 9728) makes every challenge name the metadata document
    (``resource_metadata``, §5.1), as the middleware's do; the document itself is served by a
    :class:`JWTGuardMiddleware` given the same ``protected_resource``. Where a middleware with
    the same verifier ran, refusals are answered with its settings (realm, ``on_error``,
    ``resource_metadata``): one API, one kind of answer.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        cookie: str | None = None,
        header: bool = True,
        csrf: bool | CSRF = True,
        realm: str | None = None,
        on_error: ErrorHandler | None = None,
        debug: bool = False,
        log_rejections: int | None = logging.INFO,
        log_limit: int = DEFAULT_LOG_LIMIT,
        protected_resource: ProtectedResource | None = None,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        # optional=True: "no token" is decided per route (protect(optional=...)).
        self.guard = Guard(
            verifier=verifier,
            cookie=cookie,
            header=header,
            optional=True,
            csrf=csrf,
            realm=realm,
            on_error=on_error,
            debug=debug,
            log_rejections=log_rejections,
            log_limit=log_limit,
            protected_resource=protected_resource,
            client_certificate=client_certificate,
        )
        self.verifier = verifier

    def _verified(self, where: MutableMapping[str, Any]) -> Principal | None:
        """The middleware's principal, when this guard's own verifier accepted it: no second
        verification. A middleware with another verifier (another issuer, audience or
        rules) does not vouch for this route; nor does one whose CSRF check of a cookie
        token differs from this guard's (unbound where this guard binds, or none at all):
        then this guard extracts and checks the request itself."""
        principal = where.get(PRINCIPAL_KEY)
        if not isinstance(principal, Principal) or where.get(VERIFIER_KEY) is not self.verifier:
            return None
        source, csrf = where.get(SOURCE_KEY, (None, None))
        if source == "cookie" and self.guard.csrf is not None and csrf != self.guard.csrf:
            return None
        return principal

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The request's principal (``None`` when it carries no token), placed on ``request.user``.

        Raises :class:`JWTGuardError` for a bad one."""
        scope = conn.scope
        principal = self._verified(scope)
        if principal is not None:
            return principal
        scope[ROUTE_GUARD_KEY] = self.guard  # later requirements answer with these settings
        principal = await self.guard.aauthenticate(ASGIRequest(scope))
        asgi.place(scope, principal, self.verifier)
        return principal

    def authenticate_sync(self, conn: HTTPConnection) -> Principal | None:
        """:meth:`authenticate` with the sync driver (sync endpoints run in a thread)."""
        scope = conn.scope
        principal = self._verified(scope)
        if principal is not None:
            return principal
        scope[ROUTE_GUARD_KEY] = self.guard
        principal = self.guard.authenticate(ASGIRequest(scope))
        asgi.place(scope, principal, self.verifier)
        return principal

    def authenticate_wsgi(self, environ: Environ) -> Principal | None:
        """:meth:`authenticate` for a WSGI request; the principal goes to the environ."""
        principal = self._verified(environ)
        if principal is not None:
            return principal
        environ[ROUTE_GUARD_KEY] = self.guard
        principal = self.guard.authenticate(WSGIRequest(environ))
        environ[PRINCIPAL_KEY] = principal
        environ[VERIFIER_KEY] = self.verifier
        return principal

    def answer(
        self,
        exc: JWTGuardError,
        request: Mapping[str, Any] | None = None,
        scopes: Sequence[str] = (),
    ) -> Answer:
        """The answer to ``exc``, in the scheme the client used (DPoP or Bearer).

        With the settings of the middleware with this guard's verifier that ran on ``request``
        (its scope or environ), else this guard's. ``scopes``: the route's, named in a 401."""
        middleware = request.get(GUARD_KEY) if request is not None else None
        if isinstance(middleware, Guard) and middleware.verifier is self.verifier:
            return middleware.answer(exc, request, scopes)
        # No middleware, or one for another API (its own verifier): this guard's answer.
        return self.guard.answer(exc, request, scopes)

    def protect(
        self,
        func: F | None = None,
        /,
        *,
        roles: Collection[str] = (),
        scopes: Collection[str] = (),
        any_of: bool = False,
        optional: bool = False,
    ) -> Any:
        """A decorator requiring a valid token, and ``roles`` and ``scopes`` when given.

        All of them, or with ``any_of`` at least one of each list. ``optional=True`` lets
        requests without a token through (the principal is then ``None``); a bad token is still
        refused."""
        checks = _checks(roles, scopes, any_of)
        if optional and checks:
            raise ConfigurationError("an optional route cannot require roles or scopes")

        def decorate(func: F) -> F:
            # Every scope the endpoint needs, from this guard and the requirements inside it
            # (set below; the outermost one's for the route serving the request): named in a
            # 401 and in a scope refusal's one challenge.
            route: list[str] = []

            def judge(principal: Principal | None, needed: Sequence[str]) -> None:
                if principal is None:
                    if not optional:
                        raise AuthenticationRequired()
                    return
                for check in checks:
                    check.check(principal, self.verifier, needed)

            async def check_async(conn: HTTPConnection) -> Response | None:
                needed = served_scopes(conn.scope, route)
                try:
                    judge(await self.authenticate(conn), needed)
                except JWTGuardError as exc:
                    return await self._refuse(conn, exc, needed)
                return None

            def check_sync(conn: HTTPConnection) -> Response | None:
                needed = served_scopes(conn.scope, route)
                try:
                    judge(self.authenticate_sync(conn), needed)
                except JWTGuardError as exc:
                    return asgi_response(self.answer(exc, conn.scope, needed))
                return None

            answering = self._answering(func)
            wrapped = endpoint_check(
                answering, check_async, check_sync, lambda: self._flask_check(judge, route)
            )
            own = [n for c in checks for n in c.declared_scopes()]
            route = needed_scopes(func, wrapped, own)
            record(func, written)  # a route serving func bare is refused
            return wrapped

        given = [f"{k}={v!r}" for k, v in (("roles", roles), ("scopes", scopes)) if v]
        given += [f"{k}=True" for k, v in (("any_of", any_of), ("optional", optional)) if v]
        written = f"@guard.protect({', '.join(given)})" if given else "@guard.protect"

        return decorate(func) if func is not None else decorate

    def _answering(self, func: F) -> F:
        """``func``, with our errors it raises (``claims_as``, a requirement under the guard)
        answered where no middleware is there to answer them (else a 500)."""

        def answer(exc: JWTGuardError, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            conn = connection_of(args, kwargs)
            if conn is None:
                # Flask answers a view's exceptions itself: answer with the middleware's
                # settings when one ran (as the requirements do), else with ours.
                flask_abort(self.answer(exc, flask_environ()))
            if isinstance(conn, WebSocket):
                raise exc  # the middleware refuses a handshake; an accepted socket is past HTTP
            # Answered here, with the middleware's settings when one ran: a middleware wrapped
            # around the app from outside would only see the 500 Starlette made of it.
            return asgi_response(self.answer(exc, conn.scope))

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_answering(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except JWTGuardError as exc:
                    return answer(exc, args, kwargs)

            return cast(F, async_answering)

        @functools.wraps(func)
        def answering(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except JWTGuardError as exc:
                return answer(exc, args, kwargs)

        return cast(F, answering)

    def _flask_check(
        self, judge: Callable[[Principal | None, Sequence[str]], None], route: list[str]
    ) -> None:
        environ = flask_environ()
        needed = served_scopes(environ, route)
        try:
            judge(self.authenticate_wsgi(environ), needed)
        except JWTGuardError as exc:
            flask_abort(self.answer(exc, environ, needed))

    async def _refuse(
        self, conn: HTTPConnection, exc: JWTGuardError, route: Sequence[str] = ()
    ) -> Response:
        response = asgi_response(self.answer(exc, conn.scope, route))
        if isinstance(conn, WebSocket):
            # The middleware's answer to a handshake: a real 401/403 where the server has the
            # ASGI denial-response extension, else a close with 1008 "policy violation"
            # (RFC 6455 §7.4.1). A WebSocket endpoint's return value is unused.
            if "websocket.http.response" in (conn.scope.get("extensions") or {}):
                await conn.send_denial_response(response)
            else:
                await conn.close(code=asgi.WS_POLICY_VIOLATION)
        return response


def _checks(roles: Collection[str], scopes: Collection[str], any_of: bool) -> list[Requirement]:
    if isinstance(roles, str) or isinstance(scopes, str):
        raise ConfigurationError("roles and scopes are lists of names, not one string")
    checks = []
    if roles:
        checks.append(Requirement("roles", tuple(roles), any_of))
    if scopes:
        checks.append(Requirement("scopes", tuple(scopes), any_of))
    return checks
