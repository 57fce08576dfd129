"""Flask integration (``pip install jwt_guard[flask]``).

    from jwt_guard.flask import JWTGuard, current_principal, require_roles

    guard = JWTGuard(app)        # settings from app.config["JWT_GUARD_*"], or verifier=...

    @app.get("/api/admin")
    @require_roles("admin")
    def admin():
        return {"sub": current_principal.subject}

Config keys: ``JWT_GUARD_ISSUER``, ``JWT_GUARD_AUDIENCE`` (string or list), ``JWT_GUARD_JWKS_URL``
or ``JWT_GUARD_DISCOVERY_URL``, ``JWT_GUARD_ALGORITHMS``, ``JWT_GUARD_LEEWAY``, ``JWT_GUARD_TYP``,
``JWT_GUARD_ROLES_CLAIM``, ``JWT_GUARD_SCOPES_CLAIM``, ``JWT_GUARD_ALLOW_HTTP``, and for the
middleware ``JWT_GUARD_COOKIE``, ``JWT_GUARD_OPTIONAL``, ``JWT_GUARD_EXCLUDE``,
``JWT_GUARD_REALM``, ``JWT_GUARD_CSRF``, ``JWT_GUARD_DEBUG``.
"""

from __future__ import annotations

from typing import Any, cast

from ._core.extras import MissingExtra
from ._http.authz import require_roles, require_scopes

try:
    from flask import Flask, Response, abort, current_app, request
    from werkzeug.local import LocalProxy
except ImportError as exc:  # only without the flask extra
    raise MissingExtra("jwt_guard.flask", "flask", "flask") from exc

from ._core.errors import AuthenticationRequired, JWTGuardError
from ._core.principal import Principal
from ._http.cookies import clear_token_cookies, set_token_cookies
from ._http.guard import GUARD_KEY, PREFLIGHT_KEY, PRINCIPAL_KEY, REJECTION_KEY, Guard
from ._http.resolve import flask_environ, flask_response
from ._http.route import RouteGuard
from ._sources.config import options_from_env
from ._sources.verifier import Verifier
from .wsgi import JWTGuardWSGIMiddleware

__all__ = [
    "JWTGuard",
    "RouteGuard",
    "clear_token_cookies",
    "current_principal",
    "get_principal",
    "require_roles",
    "require_scopes",
    "set_token_cookies",
]

_VERIFIER_KEYS = (
    "ISSUER",
    "AUDIENCE",
    "JWKS_URL",
    "DISCOVERY_URL",
    "ALGORITHMS",
    "LEEWAY",
    "TYP",
    "ROLES_CLAIM",
    "SCOPES_CLAIM",
    "ALLOW_HTTP",
)


def get_principal() -> Principal | None:
    """The verified principal of the current request, or ``None`` when anonymous."""
    value = request.environ.get(PRINCIPAL_KEY)
    return value if isinstance(value, Principal) else None


#: A proxy to the current request's principal (``None`` when anonymous).
current_principal = cast(Principal, LocalProxy(get_principal))


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _raise_rejection(endpoint: str | None = None, values: dict[str, Any] | None = None) -> None:
    """The app's first ``url_value_preprocessor``: Flask runs those before any
    ``before_request`` hook (the app's, then each blueprint's), and they are the app's code.
    Raising here is answered inside Flask like a view's error, so the ``after_request`` hooks
    (flask-cors) still run on the answer."""
    environ = request.environ
    if environ.get(PREFLIGHT_KEY):
        # An HTTPException carrying a response: Flask answers with it as it is.
        abort(_preflight(environ[GUARD_KEY]))
    # Taken out of the environ: raised, the error gets a traceback through Flask's frames,
    # which hold the environ (a cycle, garbage for the cycle collector, if it stayed there).
    rejection = environ.pop(REJECTION_KEY, None)
    if isinstance(rejection, JWTGuardError):
        try:
            raise rejection
        finally:
            rejection = None  # this frame, in the error's traceback, must not hold the error


def _preflight(guard: Guard) -> Response:
    """Flask's automatic ``OPTIONS`` answer to a CORS preflight (Fetch §4.8), which runs no
    view: the app's CORS layer (flask-cors's ``after_request``) turns it into the preflight's
    answer. Only where Flask itself would answer (the matched rule's
    ``provide_automatic_options``, what ``Flask.dispatch_request`` reads); a view that declares
    ``OPTIONS`` (or ``@cross_origin``, which does so) would run without a token: 401 instead.
    """
    rule = request.url_rule
    if request.routing_exception is None and getattr(rule, "provide_automatic_options", False):
        return current_app.make_default_options_response()
    if rule is None:
        # No route (404, 405, a redirect): the 401 of any request without a token.
        raise AuthenticationRequired()
    raise guard.preflight_refused(
        f"the view of {rule.rule!r} ({rule.endpoint}) declares OPTIONS (or is wrapped in "
        "flask-cors's @cross_origin) and would run without a token; drop OPTIONS from its "
        "methods and use CORS(app, ...), so Flask answers the preflight and flask-cors adds "
        "its headers"
    )


class JWTGuard:
    """The Flask extension: wraps ``app.wsgi_app`` and answers jwt_guard errors."""

    def __init__(
        self, app: Flask | None = None, *, verifier: Verifier | None = None, **options: Any
    ) -> None:
        self.verifier = verifier
        self.options = options
        self.middleware: JWTGuardWSGIMiddleware | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = app.config
        verifier = self.verifier
        if verifier is None:
            env = {
                f"JWT_GUARD_{key}": _as_text(config[f"JWT_GUARD_{key}"])
                for key in _VERIFIER_KEYS
                if config.get(f"JWT_GUARD_{key}") is not None
            }
            verifier = Verifier(**options_from_env(environ=env))
        options = {
            "cookie": config.get("JWT_GUARD_COOKIE"),
            "optional": bool(config.get("JWT_GUARD_OPTIONAL", False)),
            "exclude": tuple(config.get("JWT_GUARD_EXCLUDE", ())),
            "realm": config.get("JWT_GUARD_REALM"),
            "csrf": config.get("JWT_GUARD_CSRF", True),
            "debug": bool(config.get("JWT_GUARD_DEBUG", False)),
        }
        options.update(self.options)
        middleware = JWTGuardWSGIMiddleware(app.wsgi_app, verifier=verifier, **options)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        self.middleware = middleware
        app.extensions["jwt_guard"] = self

        def handle(exc: JWTGuardError) -> Response:
            environ = flask_environ()
            return cast(Response, flask_response(middleware.guard.answer(exc, environ)))

        app.register_error_handler(JWTGuardError, handle)

        def app_shapes_answers() -> bool:
            # Read at each refusal: hooks may be added after init_app (CORS(app) after
            # JWTGuard(app)); Flask takes none once it has served a request. Blueprints' hooks
            # and handlers live in these dicts too, under the blueprint's name.
            if any(app.after_request_funcs.values()):
                return True  # flask-cors: its headers on our 401, for the page to read
            return any(
                handler is not handle
                for by_code in app.error_handler_spec.values()
                for by_class in by_code.values()
                for handler in by_class.values()
            )

        middleware.app_shapes_answers = app_shapes_answers

        # The middleware leaves its rejection for Flask to answer, so that the app's
        # after_request hooks run on it too: flask-cors adds its headers to our 401, which
        # the browser then shows to the page. First of all url_value_preprocessors (Flask
        # runs them before the before_request hooks): no app code runs for a rejected
        # request. An app with no after_request hook and no error handler of its own gets
        # the same answer from the middleware, without a Flask dispatch
        # (app_shapes_answers). A CORS preflight is decided inside Flask always, once Flask
        # has matched its rule (_preflight).
        middleware.defer_rejections = True
        app.url_value_preprocessors.setdefault(None, []).insert(0, _raise_rejection)
