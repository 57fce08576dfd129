"""Decorator order: a requirement written above the route decorator guards nothing.

    @require_roles("admin")      # 2. wraps the function: a copy no route serves
    @app.get("/admin")           # 1. registers the bare function
    def admin(): ...

The route serves the bare view, unprotected. Every jwt_guard decorator that guards a view (the
requirements, ``RouteGuard.protect``) records here the function it wrapped (:func:`record`);
:func:`check` looks at an app's registered views (Flask's ``view_functions``, the routes of a
Starlette or FastAPI app, mounts included, a mounted app behind its own middleware too, and the
apps werkzeug's ``DispatcherMiddleware`` mounts) and raises :class:`ConfigurationError` naming each
one that is such a function, and the right order. The middlewares check their app before they
let a request reach it (fail closed: until the order is fixed every request is refused), the
ASGI middleware again when the app's own lifespan start-up is complete (it may add routes), the
Flask extension at ``init_app``, and an app a middleware guards (:func:`watch`) is checked again
by every later decoration, so the mistake usually stops the import.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Collection, Iterator
from typing import Any

from .._core.errors import ConfigurationError

__all__ = ["check", "owner_of", "owners_of", "record", "watch"]

#: A function a jwt_guard decorator wrapped → the decorator as written (``@require_roles(...)``).
#: Weak: a function nobody serves or calls any more goes with its entry.
_WRAPPED: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()

#: The apps a middleware or the Flask extension guards: every decoration checks them.
_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()

#: How far :func:`owner_of` follows ``.app`` / a bound method's ``__self__`` (middleware chains).
_MAX_DEPTH = 8


def record(func: Callable[..., Any], decorator: str) -> None:
    """Note that ``decorator`` wrapped ``func``, and each function ``func`` wraps in turn
    (``__wrapped__``: a ``functools.wraps`` decorator between the requirement and the route
    decorator, ``@require_roles(...)`` / ``@logged`` / ``@app.get(...)``, hands the requirement
    a wrapper of the function the route serves); raises when a watched app already serves one
    of them bare (the requirement was written above the route decorator)."""
    noted = set()
    for inner in _unwrapped(func):
        try:
            _WRAPPED[inner] = decorator
        except TypeError:  # not weak-referenceable (a builtin): no route decorator returns one
            continue
        noted.add(id(inner))
    if noted:
        for app in list(_WATCHED):
            check(app, only=noted)


def _unwrapped(func: Any) -> Iterator[Any]:
    """``func``, then what it wraps (``__wrapped__``), at most ``_MAX_DEPTH`` deep."""
    for _ in range(_MAX_DEPTH):
        yield func
        func = getattr(func, "__wrapped__", None)
        if func is None:
            return


def watch(app: Any) -> None:
    """Check ``app`` now, and again at each later decoration."""
    check(app)
    _WATCHED.add(app)


def owner_of(app: Any) -> Any:
    """The Flask or Starlette app behind a WSGI/ASGI callable (``app.wsgi_app`` is a bound
    method of the Flask app; a middleware keeps the next one in ``.app``), or ``None``."""
    owners = owners_of(app)
    return owners[0] if owners else None


def owners_of(app: Any) -> list[Any]:
    """Every Flask or Starlette app behind a WSGI/ASGI callable: along ``.app`` and bound
    methods' ``__self__`` (:func:`owner_of`'s first), and into each app werkzeug's
    ``DispatcherMiddleware`` mounts (``.mounts``), at most ``_MAX_DEPTH`` deep."""
    owners: list[Any] = []
    seen: set[int] = set()
    todo = [(app, 0)]
    while todo:
        app, depth = todo.pop(0)
        if app is None or id(app) in seen or depth >= _MAX_DEPTH:
            continue
        seen.add(id(app))
        if _is_flask(app) or _is_starlette(app):
            owners.append(app)
            continue
        todo.append((getattr(app, "__self__", None) or getattr(app, "app", None), depth + 1))
        mounts = getattr(app, "mounts", None)
        if isinstance(mounts, dict):
            todo.extend((mounted, depth + 1) for mounted in mounts.values())
    return owners


def check(app: Any, *, only: Collection[int] | None = None) -> None:
    """Raise :class:`ConfigurationError` naming every view of ``app`` served bare while a
    jwt_guard decorator wrapped it (only the views whose ``id`` is in ``only``, when given)."""
    problems = []
    for view, where in _views(app):
        if only is not None and id(view) not in only:
            continue
        decorator = _decorated(view)
        if decorator is None:
            continue
        name = getattr(view, "__name__", repr(view))
        route = "@app.get(...)/@app.route(...)" if _is_flask(app) else "@app.get(...)"
        problems.append(
            f"{where()} serves {name}() unprotected: {decorator} was written above the route "
            f"decorator, so it wrapped a copy no route serves; put the route decorator on top "
            f"({route}, then {decorator}, then def {name})"
        )
    if problems:
        raise ConfigurationError("decorator order: " + "; ".join(problems))


def _decorated(view: Any) -> str | None:
    try:
        return _WRAPPED.get(view)
    except TypeError:  # unhashable, or not weak-referenceable: nothing recorded it
        return None


def _is_flask(app: Any) -> bool:
    return isinstance(getattr(app, "view_functions", None), dict) and hasattr(app, "url_map")


def _is_starlette(app: Any) -> bool:
    # A Starlette or FastAPI app, or its router (what a middleware inside the app reaches).
    return isinstance(getattr(app, "routes", None), list)


def _views(app: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[Any, Callable[[], str]]]:
    """Each view ``app`` serves, with how to name it (built only for a view to report)."""
    if _is_flask(app):
        for endpoint, view in app.view_functions.items():
            yield view, functools.partial(_flask_view, app, endpoint)
    elif _is_starlette(app):
        yield from _routes(app.routes, prefix, depth)


def _flask_view(app: Any, endpoint: str) -> str:
    rules = sorted(rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)
    return f"the view {endpoint!r} ({', '.join(rules) or 'no rule'})"


def _route(path: str) -> str:
    return f"the route {path or '/'!r}"


def _routes(routes: list[Any], prefix: str, depth: int) -> Iterator[tuple[Any, Callable[[], str]]]:
    for route in routes:
        path = prefix + str(getattr(route, "path", ""))
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None:
            yield endpoint, functools.partial(_route, path)
        inner = getattr(route, "routes", None)  # Mount, Host: their routes, a mounted app's
        included = getattr(route, "original_router", None)
        if included is not None:
            # FastAPI's include_router (newer releases keep the router, older copy its routes).
            inner = getattr(included, "routes", None)
            path += str(getattr(getattr(route, "include_context", None), "prefix", ""))
        if depth >= _MAX_DEPTH or not isinstance(inner, list):
            continue
        mounted = getattr(route, "app", None)
        if not inner and mounted is not None:
            # Mount("/v1", app=GZipMiddleware(inner)): a mount's routes are its app's, and a
            # middleware has none; the app behind it (a WSGI app's too) has them.
            for owner in owners_of(mounted):
                yield from _views(owner, path, depth + 1)
        else:
            yield from _routes(inner, path, depth + 1)
