"""FastAPI helpers (``pip install jwt_guard[fastapi]``).

    from jwt_guard.fastapi import CurrentPrincipal

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str | None]:
        return {"sub": principal.subject}

The dependencies read what :class:`JWTGuardMiddleware` verified; they are declared as an HTTP
Bearer security scheme, so the OpenAPI docs show the Authorize button and the lock icons.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from ._authz import Requirement, StepUp, openapi_bearer_scheme
from ._errors import AuthenticationRequired
from ._guard import VERIFIER_KEY
from ._principal import Principal

__all__ = [
    "CurrentPrincipal",
    "OptionalPrincipal",
    "bearer_scheme",
    "get_optional_principal",
    "get_principal",
    "require_acr",
    "require_auth_age",
    "require_roles",
    "require_scopes",
]

#: The OpenAPI security scheme. ``auto_error=False``: the middleware, not FastAPI, answers
#: missing or invalid tokens, with RFC 6750 errors.
bearer_scheme = openapi_bearer_scheme()


async def get_principal(
    request: HTTPConnection,
    _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Principal:
    """The verified principal; 401 when the request is anonymous."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise AuthenticationRequired(detail={"reason": "no verified principal on this request"})
    return user


async def get_optional_principal(
    request: HTTPConnection,
    _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Principal | None:
    """The verified principal, or ``None`` on routes the middleware lets through anonymously."""
    user = request.scope.get("user")
    return user if isinstance(user, Principal) else None


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


def _dependency(requirement: Requirement) -> Callable[..., Awaitable[Principal]]:
    async def check(
        request: HTTPConnection,
        _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    ) -> Principal:
        return requirement.check(request.scope.get("user"), request.scope.get(VERIFIER_KEY))

    check.__qualname__ = check.__name__ = repr(requirement)
    return check


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
