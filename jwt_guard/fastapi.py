"""FastAPI helpers (``pip install jwt_guard[fastapi]``).

    from jwt_guard.fastapi import CurrentPrincipal

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str | None]:
        return {"sub": principal.subject}

The dependencies read what :class:`JWTGuardMiddleware` verified, or :class:`JWTBearer` verifies
the token itself on the routes that use it (no middleware). They are declared as an HTTP Bearer
security scheme, so the OpenAPI docs show the Authorize button and the lock icons.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar, cast

from starlette.requests import HTTPConnection

from ._core.errors import (
    AuthenticationRequired,
    ConfigurationError,
    InsufficientScope,
    JWTGuardError,
)
from ._core.extras import MissingExtra
from ._core.log import DEFAULT_LOG_LIMIT
from ._core.principal import Principal
from ._core.scopes import required_scopes
from ._http import authz
from ._http.answer import ErrorHandler
from ._http.authz import Requirement, StepUp, openapi_bearer_scheme, route_scopes
from ._http.client_cert import ClientCertificate
from ._http.extract import CSRF
from ._http.guard import GUARD_KEY, PRINCIPAL_KEY, VERIFIER_KEY
from ._http.metadata import ProtectedResource
from ._http.resolve import answer_errors, answer_for, reject, resolve
from ._http.route import RouteGuard
from ._http.types import Scope
from ._sources.verifier import Verifier

try:
    from fastapi import Depends, Security
    from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes
except ImportError as exc:  # only without the fastapi extra
    raise MissingExtra("jwt_guard.fastapi", "fastapi", "fastapi") from exc

from ._integrations.docs_login import OAuth2Login, serve_swagger_ui

__all__ = [
    "CurrentPrincipal",
    "JWTBearer",
    "OAuth2Login",
    "OptionalPrincipal",
    "bearer_scheme",
    "claims_as",
    "get_optional_principal",
    "get_principal",
    "require_acr",
    "require_auth_age",
    "require_authorization_details",
    "require_roles",
    "require_scopes",
    "serve_swagger_ui",
]

T = TypeVar("T")

#: The OpenAPI security scheme. ``auto_error=False``: the middleware, not FastAPI, answers
#: missing or invalid tokens, with RFC 6750 errors.
bearer_scheme = openapi_bearer_scheme()


async def get_principal(
    request: HTTPConnection,
    _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Principal:
    """The principal the middleware verified: a dependency.

    Verified on demand on a path the middleware excludes; 401 when the request is anonymous,
    or when no middleware ran."""
    principal = await _resolve(request.scope)
    if principal is None:
        exc = AuthenticationRequired(detail={"reason": "no verified principal on this request"})
        reject(request.scope, answer_for(request.scope, exc))
    return principal


async def get_optional_principal(
    request: HTTPConnection,
    _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Principal | None:
    """The verified principal, or ``None`` on routes the middleware lets through anonymously."""
    if request.scope.get(GUARD_KEY) is None and not isinstance(
        request.scope.get(PRINCIPAL_KEY), Principal
    ):
        return None  # no middleware: nobody verified anything
    return await _resolve(request.scope)


async def _resolve(scope: Scope) -> Principal | None:
    """The principal, or the error answered here: the app's exception handling answers a
    dependency's :class:`Rejection` whether the middleware sits inside the app or outside it
    (where a raised JWTGuardError would become a 500)."""
    try:
        return await resolve(scope)
    except JWTGuardError as exc:
        reject(scope, answer_for(scope, exc))


#: A route parameter annotated ``CurrentPrincipal`` receives the verified principal
#: (:func:`get_principal`): a request without a valid token never reaches the route.
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
#: A route parameter annotated ``OptionalPrincipal`` receives the principal, or ``None`` for an
#: anonymous request (:func:`get_optional_principal`).
OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


class JWTBearer(RouteGuard):
    """A FastAPI dependency that verifies the request's token itself: no middleware needed.

        guard = JWTBearer(verifier, cookie="access_token")

        @app.get("/me")
        async def me(principal: Annotated[Principal, Depends(guard)]): ...

        @app.get("/orders", dependencies=[Security(guard, scopes=["orders:read"])])

    ``Security(guard, scopes=[...])`` requires every scope and declares them in the OpenAPI
    operation's ``security``. With ``auto_error=False`` a request without a token gets
    ``None`` (a bad token is still refused). Where :class:`JWTGuardMiddleware` already
    verified the request, its principal is used, and refusals get the middleware's answers
    (its realm, ``on_error`` and ``resource_metadata``); without one, this guard's
    (``protected_resource=`` puts ``resource_metadata`` in its challenges, RFC 9728 §5.1).
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
        auto_error: bool = True,
        debug: bool = False,
        log_rejections: int | None = logging.INFO,
        log_limit: int = DEFAULT_LOG_LIMIT,
        protected_resource: ProtectedResource | None = None,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        super().__init__(
            verifier,
            cookie=cookie,
            header=header,
            csrf=csrf,
            realm=realm,
            on_error=on_error,
            debug=debug,
            log_rejections=log_rejections,
            log_limit=log_limit,
            protected_resource=protected_resource,
            client_certificate=client_certificate,
        )
        self.auto_error = auto_error
        #: One requirement per list of scopes, made (and its names checked) at the first
        #: request needing it: a refusal costs no more than an acceptance.
        self._requirements: dict[tuple[str, ...], Requirement] = {}

    #: Read by ``route_scopes``: this dependency requires its ``Security`` scopes.
    requires_security_scopes = True

    def _requirement(self, scopes: Sequence[str]) -> Requirement:
        key = tuple(scopes)
        found = self._requirements.get(key)
        if found is None:
            # Security(guard, scopes=[...]) names are checked here (no start-up hook runs
            # for a dependency): a name no challenge can carry is a ConfigurationError.
            required_scopes(key, "Security(JWTBearer, scopes=...)")
            found = self._requirements[key] = Requirement("scopes", key, False)
        return found

    async def __call__(
        self,
        request: HTTPConnection,
        security_scopes: SecurityScopes,
        _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    ) -> Principal | None:
        principal: Principal | None = None
        own = self._requirement(security_scopes.scopes) if security_scopes.scopes else None
        try:
            principal = await self.authenticate(request)
            if principal is None:
                if self.auto_error or own is not None:
                    raise AuthenticationRequired()
                return None
            if own is not None:
                own.check(principal)
        except JWTGuardError as exc:
            # Every scope the route needs (its other dependencies' too), in a 401 or a scope
            # refusal's one challenge.
            route = list(dict.fromkeys([*security_scopes.scopes, *route_scopes(request.scope)]))
            if route and isinstance(exc, InsufficientScope):
                try:
                    self._requirement(route).check(principal, None, route)
                except InsufficientScope as wider:
                    exc = wider
            reject(request.scope, self.answer(exc, request.scope, route))
        answer_errors(request.scope, self.answer)
        return principal


def claims_as(model: type[T], guard: JWTBearer | None = None) -> Callable[..., Awaitable[T]]:
    """A dependency handing the route the token's claims as ``model``.

    ``model`` is a pydantic model or a dataclass (see :meth:`Principal.claims_as`); the token
    is verified by ``guard``, or else by the middleware.

        User = Annotated[UserClaims, Depends(claims_as(UserClaims, guard))]

    Claims that do not fit the model are a 401 ``claim_invalid`` (the reason in the error's
    ``detail``: the log, ``on_error``). With ``JWTBearer(auto_error=False)`` and no token,
    the route gets ``None``.
    """
    source: Callable[..., Any] = guard if guard is not None else get_principal

    async def dependency(
        request: HTTPConnection, principal: Principal | None = Depends(source)
    ) -> Any:
        if principal is None:
            return None
        try:
            return principal.claims_as(model)
        except JWTGuardError as exc:
            answer = guard.answer(exc, request.scope) if guard is not None else None
            reject(request.scope, answer or answer_for(request.scope, exc))

    dependency.__qualname__ = dependency.__name__ = f"claims_as({model.__name__})"
    return dependency


def _dependency(requirement: Requirement) -> Callable[..., Awaitable[Principal]]:
    declared = list(requirement.declared_scopes())

    async def check(request: HTTPConnection) -> Principal:
        principal = await _resolve(request.scope)
        try:
            return requirement.check(principal, request.scope.get(VERIFIER_KEY))
        except JWTGuardError as exc:
            # With JWTBearer and no middleware, the guard that verified the request answers;
            # a scope refusal names every scope the route's dependencies need.
            scope = request.scope
            reject(scope, requirement.refusal(scope, exc, principal, route_scopes(scope)))

    def dependency(
        request: HTTPConnection,
        _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme, scopes=declared),
    ) -> Awaitable[Principal]:
        # Called by FastAPI with the connection, and awaited (_awaited). Called with anything
        # else, it is used as a decorator: above the route decorator the route would serve
        # the view unprotected, below it the route would serve a coroutine. Say so now.
        if not isinstance(request, HTTPConnection):
            raise ConfigurationError(_not_a_decorator(requirement, request))
        return check(request)

    dependency.__qualname__ = dependency.__name__ = repr(requirement)
    dependency.requirement = requirement  # type: ignore[attr-defined]  # read by route_scopes
    return _awaited(dependency)


def _not_a_decorator(requirement: Requirement, used_on: object) -> str:
    written = requirement.as_written()
    view = getattr(used_on, "__name__", None)
    what = f"def {view}" if isinstance(view, str) and callable(used_on) else repr(used_on)[:80]
    return (
        f"jwt_guard.fastapi.{written} is a FastAPI dependency, not a decorator (it was applied "
        f"to {what}): declare it on the route, @app.get(..., dependencies=[Depends({written})]), "
        f"or take it as a parameter, principal: Annotated[Principal, Depends({written})]; "
        f"jwt_guard.{written} is the decorator form"
    )


def _awaited(func: Callable[..., Any]) -> Callable[..., Awaitable[Principal]]:
    """Mark ``func`` (a plain function returning a coroutine, so that a wrong call raises
    before any awaiting) as a coroutine function: FastAPI then awaits its result on the event
    loop instead of calling it in its threadpool. Python 3.12+ has a marker for this
    (``inspect.markcoroutinefunction``); before, ``asyncio.iscoroutinefunction`` reads its own
    (what FastAPI asks on 3.11)."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        return cast(Callable[..., Awaitable[Principal]], mark(func))
    func._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return cast(Callable[..., Awaitable[Principal]], func)


def require_roles(*roles: str, any_of: bool = False) -> Callable[..., Awaitable[Principal]]:
    """An async FastAPI dependency (no threadpool hop) requiring roles; returns the principal.

    ``jwt_guard.require_roles`` works as a FastAPI dependency too, but FastAPI runs it in a
    thread because it must also be a plain decorator.
    """
    return _dependency(Requirement("roles", roles, any_of))


def require_scopes(*scopes: str, any_of: bool = False) -> Callable[..., Awaitable[Principal]]:
    """An async FastAPI dependency requiring scopes; returns the principal."""
    return _dependency(Requirement("scopes", scopes, any_of))


def require_acr(*values: str) -> Callable[..., Awaitable[Principal]]:
    """An async FastAPI dependency requiring a login with one of the ``acr`` values (RFC 9470)."""
    return _dependency(StepUp(acr_values=values))


def require_auth_age(max_age: int) -> Callable[..., Awaitable[Principal]]:
    """An async FastAPI dependency requiring a login at most ``max_age`` seconds old."""
    return _dependency(StepUp(max_age=max_age))


def require_authorization_details(type: str, **fields: Any) -> Callable[..., Awaitable[Principal]]:
    """An async FastAPI dependency requiring an RFC 9396 authorization details entry.

    The arguments are ``jwt_guard.require_authorization_details``'s; returns the principal."""
    return _dependency(authz.require_authorization_details(type, **fields))
