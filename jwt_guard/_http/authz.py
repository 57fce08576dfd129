"""Role, scope and step-up requirements: one object that is a decorator and a FastAPI dependency.

    @require_roles("admin")                      # Starlette endpoint, HTTPEndpoint method,
    async def endpoint(request): ...             # or Flask view

    @app.get("/x", dependencies=[Depends(require_scopes("orders:read"))])   # FastAPI

The requirement only *reads* the principal the middleware placed; it raises
:class:`AuthenticationRequired` (401) when there is none, and :class:`InsufficientRole` /
:class:`InsufficientScope` (403) when it falls short. Scopes are decided by
``Principal.has_scopes``, so a broader scope the issuer's ``scope_implies`` says implies the
needed one will do. A scope refusal names every scope the route needs, from all its
requirements, in one challenge (the outermost decorator on an endpoint passes the route's list
to those inside it; a FastAPI route's dependencies are read from the route on a refusal), and
so does a 401 there.
``require_authorization_details`` needs an RFC 9396 entry of a type (with some actions,
locations...): :class:`InsufficientAuthorizationDetails`, a 403 ``insufficient_scope`` like a
scope refusal (RFC 6750 §3.1), naming the route's scopes, if any, in the challenge.
``require_acr`` and ``require_auth_age`` (RFC 9470 step-up) raise
:class:`InsufficientUserAuthentication` (401): the token is fine, the login behind it is too
weak or too old. The adapters turn those into answers.

A requirement decorator goes under the route decorator; above it, it wraps a copy no route
serves, and the middlewares refuse the app (``_http.order``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from starlette.requests import HTTPConnection
from starlette.responses import Response

from .._core.authorization_details import DetailsNeed
from .._core.errors import (
    AuthenticationRequired,
    AuthenticationTooOld,
    ConfigurationError,
    InsufficientAuthorizationDetails,
    InsufficientRole,
    InsufficientScope,
    InsufficientUserAuthentication,
    JWTGuardError,
    safe_value,
)
from .._core.principal import Principal
from .._core.scopes import SCOPE_TOKEN, required_scopes
from .._sources.verifier import Verifier
from .answer import Answer
from .guard import GUARD_KEY, VERIFIER_KEY
from .order import record
from .resolve import (
    answer_for,
    asgi_response,
    endpoint_check,
    flask_abort,
    flask_environ,
    reject,
    resolve,
    resolve_sync,
    resolve_wsgi,
)

if TYPE_CHECKING:
    from fastapi.security import HTTPBearer

__all__ = [
    "ROUTE_SCOPES",
    "Requirement",
    "needed_scopes",
    "openapi_bearer_scheme",
    "require_acr",
    "require_auth_age",
    "require_authorization_details",
    "require_roles",
    "require_scopes",
    "route_scopes",
    "served_scopes",
]


F = TypeVar("F", bound=Callable[..., Any])

#: The attribute of an endpoint decorated by requirements: the scopes it and the decorators
#: inside it need. Each decorator has its own list (the inner one's and its own): one view
#: decorated once more for each of two routes must not name one route's scopes on the other.
ROUTE_SCOPES: Final = "__jwt_guard_scopes__"
#: Where the outermost requirement of the endpoint serving a request leaves its list (the whole
#: route's scopes) for the requirements inside it, which run after it.
_SERVED_SCOPES: Final = "jwt_guard.route_scopes"


#: The refusals whose challenge names the route's scopes (RFC 6750 §3.1 insufficient_scope).
_NAMES_ROUTE_SCOPES: Final = (InsufficientScope, InsufficientAuthorizationDetails)

#: A route's scopes as ``route_scopes`` found them, kept on the route object.
_KNOWN_SCOPES: Final = "__jwt_guard_route_scopes__"


def needed_scopes(
    func: Callable[..., Any], wrapped: Callable[..., Any], own: Sequence[str]
) -> list[str]:
    """A new list of the scopes ``func``'s route needs, with ``own`` added, set on ``wrapped``
    (the decorated endpoint) for the decorators outside it. ``func``'s list is copied, never
    extended: ``functools.wraps`` put that very object on ``wrapped``, and ``func`` may serve
    other routes with other decorators (review H7-1)."""
    inner = getattr(func, ROUTE_SCOPES, None)
    names = list(inner) if isinstance(inner, list) else []
    names.extend(n for n in own if n not in names)
    setattr(wrapped, ROUTE_SCOPES, names)
    return names


def served_scopes(where: MutableMapping[str, Any], route: list[str]) -> list[str]:
    """Every scope the route serving this request needs: the list of its outermost requirement
    (ASGI scope or WSGI environ), which checks first and leaves it for those inside it."""
    found = where.setdefault(_SERVED_SCOPES, route)
    return found if isinstance(found, list) else route


def route_scopes(request: Mapping[str, Any]) -> list[str]:
    """Every scope the request's route needs (all of them) from its jwt_guard requirements:
    the endpoint's decorators, and a FastAPI route's dependencies (``require_scopes`` and
    ``Security(JWTBearer, scopes=[...])``, at any depth). Read on a refusal only."""
    route = request.get("route")  # Starlette's router puts the matched route in the scope
    known = getattr(route, _KNOWN_SCOPES, None)
    if isinstance(known, tuple):
        return list(known)
    names: list[str] = list(getattr(getattr(route, "endpoint", None), ROUTE_SCOPES, None) or ())
    for found in _dependency_scopes(getattr(route, "dependant", None)):
        names.extend(n for n in found if n not in names)
    if route is not None:
        # A route's endpoint and dependencies are fixed once it is built: walked once.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(route, _KNOWN_SCOPES, tuple(names))
    return names


def _dependency_scopes(dependant: object) -> Iterator[Sequence[str]]:
    stack = list(getattr(dependant, "dependencies", None) or ())
    while stack:
        dependency = stack.pop()
        call = getattr(dependency, "call", None)
        requirement = call if isinstance(call, Requirement) else getattr(call, "requirement", None)
        if isinstance(requirement, Requirement):
            yield requirement.declared_scopes()
        elif getattr(call, "requires_security_scopes", False):
            # JWTBearer: it requires the Security scopes of its whole chain (FastAPI's
            # SecurityScopes: the parents' and its own).
            parents = getattr(dependency, "parent_oauth_scopes", None) or ()
            yield [*parents, *(getattr(dependency, "own_oauth_scopes", None) or ())]
        stack.extend(getattr(dependency, "dependencies", None) or ())


@functools.cache
def openapi_bearer_scheme() -> HTTPBearer:
    """The HTTP Bearer security scheme of the OpenAPI docs (raises ImportError without FastAPI).

    One object for every dependency, so the docs list one scheme. ``auto_error=False``: the
    middleware, not FastAPI, answers missing or invalid tokens, with RFC 6750 errors.
    """
    from fastapi.security import HTTPBearer

    return HTTPBearer(
        bearerFormat="JWT",
        description="An access token (JWT) in the Authorization header.",
        auto_error=False,
    )


def _bearer_parameter(scopes: tuple[str, ...] = ()) -> inspect.Parameter | None:
    # With FastAPI installed, the dependency also declares the HTTP Bearer scheme, so the
    # OpenAPI docs show the lock icon on every protected route (and the required scopes in
    # the operation's ``security``).
    try:
        from fastapi import Security

        scheme = openapi_bearer_scheme()
    except ImportError:
        return None
    return inspect.Parameter(
        "_bearer",
        inspect.Parameter.KEYWORD_ONLY,
        default=Security(scheme, scopes=list(scopes)),
    )


class Requirement:
    """Roles or scopes a route requires (all of them, or ``any_of`` them)."""

    def __init__(self, kind: str, names: tuple[str, ...], any_of: bool) -> None:
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigurationError(f"require_{kind} needs at least one non-empty name")
        if kind == "scopes":
            required_scopes(names, "require_scopes")  # at start-up (review H7-3)
        self.kind = kind
        self.names = names
        self.any_of = any_of
        self._declare_signature()

    def _declare_signature(self) -> None:
        params = [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=HTTPConnection
            )
        ]
        bearer = _bearer_parameter(self.declared_scopes())
        if bearer is not None:
            params.append(bearer)
        self.__signature__ = inspect.Signature(params)

    def declared_scopes(self) -> tuple[str, ...]:
        """The scopes to list in the OpenAPI operation's ``security``.

        Every required one (a list there means all of them, so an ``any_of`` choice is not
        declared)."""
        return self.names if self.kind == "scopes" and not self.any_of else ()

    def __repr__(self) -> str:
        mode = "any_of=True" if self.any_of else "all"
        return f"require_{self.kind}({', '.join(map(repr, self.names))}, {mode})"

    def check(self, user: object, verifier: object = None, route: Sequence[str] = ()) -> Principal:
        """The principal if it satisfies the requirement; raises otherwise.

        ``verifier`` is the one that accepted the principal (its clock judges time rules);
        ``route`` the scopes the whole route needs, named with ours in a scope refusal.
        """
        if not isinstance(user, Principal):
            # Not authenticated at all: 401, not 403 (RFC 6750 §3.1).
            raise AuthenticationRequired(
                detail={"reason": f"require_{self.kind} found no verified principal"}
            )
        names = self.names
        if self.kind == "roles":
            held = user.roles
            if (not held.isdisjoint(names)) if self.any_of else held.issuperset(names):
                return user
            raise InsufficientRole(
                required=names, detail=self._detail(held, sorted(set(names) - held))
            )
        held = user.scopes
        # The token's own scopes first: the issuer's hierarchy is asked only for a scope the
        # token does not name (has_scopes).
        if self.any_of:
            if not held.isdisjoint(names) or any(user.has_scopes(n) for n in names):
                return user
        elif held.issuperset(names) or user.has_scopes(*names):
            return user
        missing = [n for n in names if not user.has_scopes(n)]
        detail = self._detail(held, missing)
        if user.effective_scopes != held:
            detail["implied"] = safe_value(user.effective_scopes - held)
        # RFC 6750 §3.1, MCP "scope challenge handling": one challenge naming every scope the
        # operation needs (those held too, so a client that replaces its scopes keeps them).
        # Of alternatives (any_of) one is needed: the first listed, never all of them, which
        # would send a client that wanted "a reader" to come back holding the admin scope too
        # (review H7-4). The route's other requirements are all needed.
        asked = names[:1] if self.any_of else names
        raise InsufficientScope(required=dict.fromkeys([*asked, *route]), detail=detail)

    def _detail(self, held: frozenset[str], missing: Sequence[str]) -> dict[str, Any]:
        return {
            "required": list(self.names),
            "mode": "any_of" if self.any_of else "all",
            "present": safe_value(held),
            "missing": sorted(missing),
        }

    def challenge_scopes(self, route: Sequence[str] = ()) -> list[str]:
        """What a 401 on this route names: the scopes it needs (ours first)."""
        return list(dict.fromkeys([*self.declared_scopes(), *route]))

    def refusal(
        self,
        where: MutableMapping[str, Any],
        exc: JWTGuardError,
        user: object,
        route: Sequence[str],
    ) -> Answer:
        """The answer to ``exc``, naming every scope the route needs.

        In a scope refusal (checked again with the route's scopes) and in a 401."""
        if isinstance(exc, _NAMES_ROUTE_SCOPES) and route:
            try:
                self.check(user, where.get(VERIFIER_KEY), route)
            except _NAMES_ROUTE_SCOPES as wider:
                exc = wider
        return answer_for(where, exc, self.challenge_scopes(route))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            len(args) == 1
            and not kwargs
            and callable(args[0])
            and not isinstance(args[0], HTTPConnection)
        ):
            return self.decorate(args[0])
        # FastAPI dependency: called with the connection (sync: FastAPI runs it in a thread).
        conn = kwargs.get("request", args[0] if args else None)
        if not isinstance(conn, HTTPConnection):
            raise TypeError("a requirement is called with a request, or used as a decorator")
        scope = conn.scope
        user: object = None
        try:
            user = resolve_sync(scope)
            return self.check(user, scope.get(VERIFIER_KEY))
        except JWTGuardError as exc:
            # Answered here, with the middleware's (or the route guard's) settings: a
            # middleware wrapped around the app from outside never sees what a dependency
            # raises (Starlette's error middleware makes it a 500 first).
            reject(scope, self.refusal(scope, exc, user, route_scopes(scope)))

    def _flask_check(self, route: list[str]) -> None:
        environ = flask_environ()
        route = served_scopes(environ, route)
        try:
            self.check(resolve_wsgi(environ), environ.get(VERIFIER_KEY), route)
        except JWTGuardError as exc:
            # Flask answers a view's exceptions itself (a 500 for ours, unless the Flask
            # extension registered its handler), so answer here with the WSGI middleware's
            # settings: the same 401/403 with or without the extension.
            flask_abort(answer_for(environ, exc, self.challenge_scopes(route)))

    async def _check_async(self, conn: HTTPConnection, route: list[str]) -> Response | None:
        route = served_scopes(conn.scope, route)
        try:
            self.check(await resolve(conn.scope), conn.scope.get(VERIFIER_KEY), route)
        except JWTGuardError as exc:
            return self._refuse(conn, exc, route)
        return None

    def _check_sync(self, conn: HTTPConnection, route: list[str]) -> Response | None:
        route = served_scopes(conn.scope, route)
        try:
            self.check(resolve_sync(conn.scope), conn.scope.get(VERIFIER_KEY), route)
        except JWTGuardError as exc:
            return self._refuse(conn, exc, route)
        return None

    def _refuse(self, conn: HTTPConnection, exc: JWTGuardError, route: Sequence[str]) -> Response:
        if conn.scope["type"] == "websocket" and GUARD_KEY in conn.scope:
            raise exc  # the middleware refuses the handshake (denial response or close)
        # Answered here rather than raised: a middleware outside the app would only see a 500.
        return asgi_response(answer_for(conn.scope, exc, self.challenge_scopes(route)))

    def decorate(self, func: F) -> F:
        """Wrap an endpoint (sync or async, Starlette or Flask) to check this requirement first."""
        route: list[str] = []  # set below: this endpoint's scopes and those inside it

        async def check_async(conn: HTTPConnection) -> Response | None:
            return await self._check_async(conn, route)

        def check_sync(conn: HTTPConnection) -> Response | None:
            return self._check_sync(conn, route)

        wrapped = endpoint_check(func, check_async, check_sync, lambda: self._flask_check(route))
        route = needed_scopes(func, wrapped, self.declared_scopes())
        record(func, f"@{self.as_written()}")  # a route serving func bare is refused
        return wrapped

    def as_written(self) -> str:
        """The call that made this requirement, as a user writes it."""
        names = ", ".join(map(repr, self.names))
        return f"require_{self.kind}({names}{', any_of=True' if self.any_of else ''})"


def require_roles(*roles: str, any_of: bool = False) -> Requirement:
    """Require every role (or, with ``any_of=True``, at least one)."""
    return Requirement("roles", roles, any_of)


def require_scopes(*scopes: str, any_of: bool = False) -> Requirement:
    """Require every scope (or, with ``any_of=True``, at least one)."""
    return Requirement("scopes", scopes, any_of)


class StepUp(Requirement):
    """A login strong enough (``acr``) or recent enough (``auth_time``) for the route (RFC 9470)."""

    def __init__(self, acr_values: tuple[str, ...] = (), max_age: int | None = None) -> None:
        if acr_values:
            # RFC 9470 §3: acr_values is a space-separated list in a quoted string.
            if not all(isinstance(v, str) and SCOPE_TOKEN.fullmatch(v) for v in acr_values):
                raise ConfigurationError("require_acr values must be names without spaces, quotes")
            self.kind, self.names = "acr", acr_values
        elif max_age is None:
            raise ConfigurationError("require_acr needs at least one acr value")
        else:
            if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
                raise ConfigurationError("require_auth_age needs a whole number of seconds >= 0")
            self.kind, self.names = "auth_age", (str(max_age),)
        self.any_of = True
        self.acr_values = acr_values
        self.max_age = max_age
        self._declare_signature()

    def __repr__(self) -> str:
        if self.acr_values:
            return f"require_acr({', '.join(map(repr, self.acr_values))})"
        return f"require_auth_age({self.max_age})"

    def as_written(self) -> str:
        return repr(self)

    def check(self, user: object, verifier: object = None, route: Sequence[str] = ()) -> Principal:
        if not isinstance(user, Principal):
            raise AuthenticationRequired(detail={"reason": f"{self!r} found no verified principal"})
        if self.acr_values:
            # acr values (OIDC Core §2, RFC 9470 §6.1) are compared as exact strings; any
            # listed one will do.
            if user.acr not in self.acr_values:
                raise InsufficientUserAuthentication(
                    acr_values=self.acr_values,
                    # acr names a level of login, not a person: safe to show.
                    detail={"required_acr": list(self.acr_values), "acr": safe_value(user.acr)},
                )
            return user
        max_age = self.max_age
        if max_age is None:  # __init__ sets acr_values or max_age: never both missing
            raise ConfigurationError("a step-up requirement needs acr values or max_age")
        auth_time = user.auth_time
        if isinstance(verifier, Verifier):
            now, leeway = verifier.now(), verifier.leeway
        else:
            now, leeway = time.time(), 0.0
        # No auth_time: the age of the login is unknown, so it cannot be recent enough.
        if auth_time is None or now - leeway > auth_time + max_age:
            detail: dict[str, Any] = {"max_age": max_age, "auth_time": auth_time}
            if auth_time is None:
                detail["reason"] = "no auth_time claim: the age of the login is unknown"
            else:
                detail.update(now=round(now, 3), leeway=leeway, age_seconds=round(now - auth_time))
            raise AuthenticationTooOld(max_age=max_age, detail=detail)
        return user


def require_acr(*values: str) -> Requirement:
    """Require a login whose ``acr`` is one of ``values`` (in order of preference).

    Otherwise the answer is a 401 ``insufficient_user_authentication`` asking for
    ``acr_values`` (RFC 9470 §3)."""
    return StepUp(acr_values=values)


def require_auth_age(max_age: int) -> Requirement:
    """Require a login at most ``max_age`` seconds old (the ``auth_time`` claim).

    Otherwise the answer is a 401 ``insufficient_user_authentication`` asking for ``max_age``
    (RFC 9470 §3)."""
    return StepUp(max_age=max_age)


class DetailsRequirement(Requirement):
    """An RFC 9396 authorization details entry the route needs (``_core.authorization_details``)."""

    def __init__(self, need: DetailsNeed) -> None:
        self.kind, self.names, self.any_of = "authorization_details", (need.type,), False
        self.need = need
        self._declare_signature()

    def __repr__(self) -> str:
        return self.need.as_written()

    def as_written(self) -> str:
        return self.need.as_written()

    def check(self, user: object, verifier: object = None, route: Sequence[str] = ()) -> Principal:
        if not isinstance(user, Principal):
            raise AuthenticationRequired(detail={"reason": f"{self!r} found no verified principal"})
        detail = self.need.missing(user.authorization_details)
        if detail is None:
            return user
        # RFC 6750 §3.1 (RFC 9396 names no error for a resource server): 403 insufficient_scope;
        # the challenge names the route's scopes, so a client asking again keeps them.
        raise InsufficientAuthorizationDetails(required=dict.fromkeys(route), detail=detail)


def require_authorization_details(
    type: str,
    *,
    actions: str | Sequence[str] = (),
    locations: str | Sequence[str] = (),
    datatypes: str | Sequence[str] = (),
    privileges: str | Sequence[str] = (),
    identifier: str | None = None,
) -> Requirement:
    """Require an RFC 9396 ``authorization_details`` entry of ``type``.

    The entry must list every given action, location, datatype and privilege (one entry, all
    of them) and, when given, carry ``identifier``; otherwise a 403
    ``insufficient_authorization_details``."""
    need = DetailsNeed.of(
        type,
        identifier=identifier,
        actions=actions,
        locations=locations,
        datatypes=datatypes,
        privileges=privileges,
    )
    return DetailsRequirement(need)
