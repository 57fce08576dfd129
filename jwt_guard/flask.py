"""Flask integration (``pip install jwt_guard[flask]``).

    from jwt_guard.flask import JWTGuard, current_principal, require_roles

    guard = JWTGuard(app)        # settings from app.config["JWT_GUARD_*"], or verifier=...

    @app.get("/api/admin")
    @require_roles("admin")
    def admin():
        return {"sub": current_principal.subject}

Config keys: ``JWT_GUARD_ISSUER``, ``JWT_GUARD_AUDIENCE`` (string or list), ``JWT_GUARD_JWKS_URL``
or ``JWT_GUARD_DISCOVERY_URL``, ``JWT_GUARD_ALGORITHMS``, ``JWT_GUARD_LEEWAY``, ``JWT_GUARD_TYP``,
``JWT_GUARD_PROFILE``, ``JWT_GUARD_ROLES_CLAIM``, ``JWT_GUARD_SCOPES_CLAIM``,
``JWT_GUARD_ALLOW_HTTP``, ``JWT_GUARD_MTLS``, and for the middleware ``JWT_GUARD_COOKIE``,
``JWT_GUARD_OPTIONAL``, ``JWT_GUARD_EXCLUDE``, ``JWT_GUARD_REALM``, ``JWT_GUARD_CSRF``,
``JWT_GUARD_DEBUG``. Any other ``JWT_GUARD_*`` key is a ``ConfigurationError`` naming the
closest one (``JWT_GUARD_EXCLUDES``: did you mean ``JWT_GUARD_EXCLUDE``?), and so is a key
that is not read because ``verifier=`` or a keyword argument gives that setting;
``JWTGuard(app, ignore_unknown=("JWT_GUARD_OTHER_*",))`` lets keys another extension reads
under the prefix pass. ``init_app`` reads ``app.config`` once: a ``JWT_GUARD_*`` key set,
changed or removed after it is a ``ConfigurationError`` at the first request (refused until
fixed), naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, cast

from ._core.extras import MissingExtra
from ._http.authz import require_authorization_details, require_roles, require_scopes

try:
    from flask import Flask, Response, abort, current_app, request
    from werkzeug.local import LocalProxy
except ImportError as exc:  # only without the flask extra
    raise MissingExtra("jwt_guard.flask", "flask", "flask") from exc

from ._core.errors import AuthenticationRequired, ConfigurationError, JWTGuardError
from ._core.principal import Principal
from ._http.cookies import clear_token_cookies, set_token_cookies
from ._http.guard import GUARD_KEY, PREFLIGHT_KEY, PRINCIPAL_KEY, REJECTION_KEY, Guard
from ._http.resolve import flask_environ, flask_response
from ._http.route import RouteGuard
from ._sources.config import ENV_NAMES, options_from_env, unknown_settings
from ._sources.verifier import Verifier
from .wsgi import JWTGuardWSGIMiddleware

__all__ = [
    "JWTGuard",
    "RouteGuard",
    "clear_token_cookies",
    "current_principal",
    "get_principal",
    "require_authorization_details",
    "require_roles",
    "require_scopes",
    "set_token_cookies",
]

#: The config keys' prefix.
PREFIX: Final = "JWT_GUARD_"

#: The middleware's options read from ``app.config`` (key after the prefix → the
#: ``JWTGuardWSGIMiddleware`` argument and how the value is read); the verifier's are
#: ``config.ENV_NAMES``. The unknown-key check trusts these two lists, and init_app reads no
#: other key.
MIDDLEWARE_KEYS: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "COOKIE": ("cookie", lambda value: value),
    "OPTIONAL": ("optional", bool),
    "EXCLUDE": ("exclude", lambda value: _paths(value)),
    "REALM": ("realm", lambda value: value),
    "CSRF": ("csrf", lambda value: value),
    "DEBUG": ("debug", bool),
}


def _paths(value: Any) -> tuple[str, ...]:
    """``JWT_GUARD_EXCLUDE``: a list of paths, or one string (``"/health"``, or several
    separated by commas as in the environment: ``from_prefixed_env`` gives a string)."""
    if isinstance(value, str):
        return tuple(path.strip() for path in value.split(",") if path.strip())
    return tuple(value)


def get_principal() -> Principal | None:
    """The verified principal of the current request, or ``None`` when anonymous."""
    value = request.environ.get(PRINCIPAL_KEY)
    return value if isinstance(value, Principal) else None


#: A proxy to the current request's principal (``None`` when anonymous).
current_principal = cast(Principal, LocalProxy(get_principal))


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        # str(b"...") would be "b'...'": a JWT_GUARD_SHARED_CACHE_KEY of bytes became another
        # key than the environment's, without a word.
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigurationError(
                "a JWT_GUARD_* value given as bytes in app.config must be UTF-8 text: give a "
                "str (e.g. secrets.token_hex(32) for JWT_GUARD_SHARED_CACHE_KEY)"
            ) from None
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
        self,
        app: Flask | None = None,
        *,
        verifier: Verifier | None = None,
        ignore_unknown: Collection[str] = (),
        **options: Any,
    ) -> None:
        self.verifier = verifier
        self.ignore_unknown = tuple(ignore_unknown)
        self.options = options
        self.middleware: JWTGuardWSGIMiddleware | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Protect ``app``: read its ``JWT_GUARD_*`` config and put the middleware in front."""
        config = app.config
        verifier = self.verifier
        self._check_keys(config)
        at_init = self._settings(config)  # compared at the first request
        if verifier is None:
            algorithms = config.get(PREFIX + "ALGORITHMS")
            if algorithms is not None and not _as_text(algorithms).replace(",", "").strip():
                # [] or " " is not "unset" (then the keys would decide): refused, as
                # Verifier(algorithms=[]) is.
                raise ConfigurationError(
                    f"{PREFIX}ALGORITHMS (app.config): algorithms must be a non-empty string "
                    "or list of strings; leave the key out to accept each published key's own"
                )
            env = {
                PREFIX + key: _as_text(config[PREFIX + key])
                for key in ENV_NAMES
                if config.get(PREFIX + key) is not None
            }
            verifier = Verifier(**options_from_env(PREFIX, env))
        options = {
            option: read(config[PREFIX + key])
            for key, (option, read) in MIDDLEWARE_KEYS.items()
            if config.get(PREFIX + key) is not None
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

        def settings_unchanged() -> None:
            # A key written after init_app (app.config.from_prefixed_env() after JWTGuard(app))
            # is read by nothing: say so, rather than run without the setting it names.
            now = self._settings(config)
            problems = [
                f"{key} (app.config) was {_change(key, at_init, now)} after JWTGuard(app) "
                "(init_app), which read app.config once, so it is not in force; set it before "
                "JWTGuard(app) or guard.init_app(app)"
                for key in sorted(at_init.keys() | now.keys())
                if at_init.get(key, _ABSENT) != now.get(key, _ABSENT)
            ]
            if problems:
                raise ConfigurationError("invalid configuration: " + "; ".join(problems))

        middleware.first_request_checks.append(settings_unchanged)

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

    def _settings(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The ``JWT_GUARD_*`` keys of ``config`` that are this extension's (known, or unknown
        but not left to another extension by ``ignore_unknown``), each value a copy."""
        known = (*ENV_NAMES, *MIDDLEWARE_KEYS)
        theirs = {
            key
            for key in config
            if isinstance(key, str)
            and key.upper().startswith(PREFIX)
            and (
                key[len(PREFIX) :] in known
                or unknown_settings((key,), PREFIX, known, self.ignore_unknown)
            )
        }
        return {key: _copy(config[key]) for key in theirs}

    def _check_keys(self, config: Mapping[str, Any]) -> None:
        """Every ``JWT_GUARD_*`` key of ``config`` is read: a typo (``JWT_GUARD_EXCLUDES``) or a
        key that ``verifier=`` or a keyword argument overrides would otherwise leave a setting
        other than the one written in force, without a word."""
        problems = []
        for key in ENV_NAMES if self.verifier is not None else ():
            if config.get(PREFIX + key) is not None:
                problems.append(
                    f"{PREFIX}{key} (app.config) is not read: JWTGuard was given verifier=..., "
                    "which decides it; drop the key, or verifier= to configure from app.config"
                )
        for key, (option, _) in MIDDLEWARE_KEYS.items():
            if option in self.options and config.get(PREFIX + key) is not None:
                problems.append(
                    f"{PREFIX}{key} (app.config) is not read: JWTGuard was given {option}=..., "
                    "which wins; drop one of them"
                )
        known = (*ENV_NAMES, *MIDDLEWARE_KEYS)
        unknown = unknown_settings(
            config, PREFIX, known, self.ignore_unknown, where=" (app.config)"
        )
        if unknown:
            problems += unknown
            problems.append(
                "if another extension reads such a key, pass JWTGuard(app, ignore_unknown="
                f"({PREFIX + 'OTHER_*'!r},)) with its names or patterns"
            )
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))


#: A key missing from one of the two readings of app.config.
_ABSENT: Final = object()


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # a value that cannot be copied: compared as it is
        return value


def _change(key: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    if key not in before:
        return "set"
    return "removed" if key not in after else "changed"
