"""Finding a route's principal, and answering without a middleware.

Every dependency and decorator that needs a principal asks :func:`resolve` (async),
:func:`resolve_sync` (sync code in a thread) or :func:`resolve_wsgi`: the principal the
middleware placed; or, on a path the middleware excludes, one verified on demand with the
middleware's own settings (so ``exclude`` means "no token needed", not "a token is ignored");
or, with no middleware at all, :class:`NoGuard`, a plain 401 and a warning in the log, never a
500.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, NoReturn, TypeVar, cast

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from .. import asgi
from .._core.errors import AuthenticationRequired, JWTGuardError
from .._core.log import RejectionLog
from .._core.principal import Principal
from .answer import Answer, Responder
from .guard import (
    EXCLUDED_KEY,
    GUARD_KEY,
    PRINCIPAL_KEY,
    ROUTE_GUARD_KEY,
    VERIFIER_KEY,
    Guard,
    in_request_scheme,
)
from .request import ASGIRequest, WSGIRequest
from .types import Environ, Scope

__all__ = [
    "NoGuard",
    "Rejection",
    "answer_errors",
    "answer_for",
    "asgi_response",
    "connection_of",
    "default_answer",
    "endpoint_check",
    "flask_abort",
    "flask_environ",
    "flask_response",
    "reject",
    "resolve",
    "resolve_sync",
    "resolve_wsgi",
]


#: Answers for a route that needs a principal where neither a middleware nor a guard ran.
_DEFAULT_RESPONDER = Responder("api", None)


class NoGuard(AuthenticationRequired):
    """A route needs a principal, but no middleware ran and the route has no guard.

    Answered as a plain 401 (the client sees ``token_missing``); the reason is for the log.
    """

    def __init__(self) -> None:
        super().__init__(
            detail={
                "reason": "no JWTGuardMiddleware ran and the route has no guard: add the "
                "middleware, or use RouteGuard / jwt_guard.fastapi.JWTBearer on the route"
            }
        )


#: A deployment mistake, so a warning; rate-limited like every rejection line.
_DEFAULT_LOG = RejectionLog(logging.WARNING)


def default_answer(exc: JWTGuardError, scopes: Sequence[str] = ()) -> Answer:
    """The answer where no middleware or guard configured one (realm ``api``); logged."""
    _DEFAULT_LOG(exc)
    return _DEFAULT_RESPONDER.answer(exc, scopes)


def answer_for(
    where: MutableMapping[str, Any], exc: JWTGuardError, scopes: Sequence[str] = ()
) -> Answer:
    """The answer to ``exc`` for a request (scope or environ): with the middleware's settings
    when it ran, else (or when the middleware has another verifier) those of the per-route
    guard that verified the request, else the default. A requirement answers through this
    itself rather than raising for a middleware that may sit outside the framework's error
    handling (where a raised error is a 500). ``scopes``: what the route needs, named in a
    401's challenge."""
    guard = where.get(GUARD_KEY)
    route = where.get(ROUTE_GUARD_KEY)
    if isinstance(route, Guard) and not (
        isinstance(guard, Guard) and guard.verifier is route.verifier
    ):
        guard = route  # no middleware, or one for another API (its own verifier)
    if isinstance(guard, Guard):
        return guard.answer(exc, where, scopes)  # in the scheme the client used (DPoP or Bearer)
    return default_answer(exc, scopes)


def _on_demand(where: MutableMapping[str, Any]) -> Guard | None:
    """The middleware's guard when the principal must be verified now (a path it excludes,
    first ask); ``None`` when ``where`` (scope or environ) already holds the answer. Raises
    :class:`NoGuard` when no middleware ran."""
    if isinstance(where.get(PRINCIPAL_KEY), Principal):
        return None
    guard: Guard | None = where.get(GUARD_KEY)
    if guard is None:
        raise NoGuard()
    return guard if where.pop(EXCLUDED_KEY, False) else None


def _placed(where: MutableMapping[str, Any]) -> Principal | None:
    principal = where.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


async def resolve(scope: Scope) -> Principal | None:
    """The principal for an ASGI request: the middleware's, or one verified on demand on a
    path the middleware excludes (with its settings). Raises :class:`NoGuard` when no
    middleware ran."""
    guard = _on_demand(scope)
    if guard is not None:
        asgi.place(scope, await guard.aauthenticate(ASGIRequest(scope)), guard.verifier)
    return _placed(scope)


def resolve_sync(scope: Scope) -> Principal | None:
    """:func:`resolve` for sync code (a sync endpoint or dependency, run in a thread)."""
    guard = _on_demand(scope)
    if guard is not None:
        asgi.place(scope, guard.authenticate(ASGIRequest(scope)), guard.verifier)
    return _placed(scope)


def resolve_wsgi(environ: Environ) -> Principal | None:
    """:func:`resolve` for a WSGI request (``environ``)."""
    guard = _on_demand(environ)
    if guard is not None:
        environ[PRINCIPAL_KEY] = guard.authenticate(WSGIRequest(environ))
        environ[VERIFIER_KEY] = guard.verifier
    return _placed(environ)


asgi_response = asgi.response


def connection_of(args: tuple[Any, ...], kwargs: MutableMapping[str, Any]) -> HTTPConnection | None:
    """The Starlette request (or WebSocket) among a decorated endpoint's arguments; ``None``
    for a Flask view."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    return None


def flask_environ() -> Environ:
    """The current Flask request's environ (a decorator with no ASGI connection in its call)."""
    try:
        import flask
    except ImportError:  # pragma: no cover - only without the flask extra
        flask = None  # type: ignore[assignment]
    if flask is None or not flask.has_request_context():
        raise RuntimeError(
            "jwt_guard decorators found no request: use them on Starlette endpoints, "
            "FastAPI dependencies or Flask views"
        )
    environ: Environ = flask.request.environ
    return environ


def flask_response(answer: Answer) -> Any:
    """A Flask response for an error answer."""
    from flask import Response as FlaskResponse

    return FlaskResponse(answer.body, status=answer.status, headers=answer.headers)


def flask_abort(answer: Answer) -> NoReturn:
    """Stop a Flask view with an error answer (Flask answers a view's exceptions itself: a
    500 for ours, unless the Flask extension registered its handler)."""
    from werkzeug.exceptions import abort

    abort(flask_response(answer))


class Rejection(HTTPException):
    """An error answer raised from a dependency, where no middleware is there to answer it.

    An ``HTTPException``, so any Starlette or FastAPI app answers it with its status and
    ``WWW-Authenticate`` even without our handler; :func:`reject` registers the handler that
    sends the exact answer (body included), the same as the middleware's.
    """

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status, headers=dict(answer.headers))
        self.answer = answer


async def _send_rejection(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejection)
    return asgi_response(exc.answer)


def reject(scope: Scope, answer: Answer) -> NoReturn:
    """Raise ``answer`` from a dependency so that the app sends it as it is."""
    # Starlette's ExceptionMiddleware puts its handler table in the scope; the table is the
    # app's (one per app), so registering once serves every later request. setdefault keeps
    # a handler the app registered for Rejection itself.
    handlers = scope.get("starlette.exception_handlers")
    if handlers is not None:
        handlers[0].setdefault(Rejection, _send_rejection)
    raise Rejection(answer)


F = TypeVar("F", bound=Callable[..., Any])


def endpoint_check(
    func: F,
    check_async: Callable[[HTTPConnection], Awaitable[Response | None]],
    check_sync: Callable[[HTTPConnection], Response | None],
    check_flask: Callable[[], None],
) -> F:
    """Wrap a Starlette endpoint (sync or async, ``HTTPEndpoint`` methods) or a Flask view so
    that a check runs first. A Starlette check returns a response to send instead of calling
    the endpoint (or raises for the middleware to answer); a Flask check aborts."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            conn = connection_of(args, kwargs)
            if conn is None:  # an async Flask view
                check_flask()
            else:
                refused = await check_async(conn)
                if refused is not None:
                    return refused
            return await func(*args, **kwargs)

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        conn = connection_of(args, kwargs)
        if conn is None:
            check_flask()
        else:
            refused = check_sync(conn)
            if refused is not None:
                return refused
        return func(*args, **kwargs)

    return cast(F, wrapper)


#: Where a per-route guard leaves how to answer our errors raised later in its route.
_ROUTE_ANSWER_KEY = "jwt_guard.route_answer"


async def _answer_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JWTGuardError)
    answer: Callable[[JWTGuardError], Answer] = request.scope.get(_ROUTE_ANSWER_KEY, default_answer)
    return asgi_response(answer(in_request_scheme(exc, request.scope)))


def answer_errors(scope: Scope, answer: Callable[[JWTGuardError], Answer]) -> None:
    """Where no middleware ran, have the app answer our errors raised later in the route (a
    ``claims_as`` misfit, a requirement) with ``answer`` instead of a 500."""
    if scope.get(GUARD_KEY) is not None:
        return  # the middleware answers them, with its settings
    handlers = scope.get("starlette.exception_handlers")
    if handlers is not None:
        handlers[0].setdefault(JWTGuardError, _answer_error)
        scope[_ROUTE_ANSWER_KEY] = answer
