"""WSGI middleware: the same guard as the ASGI middleware, driven synchronously.

The adapter's part of the request path: the RFC 9728 document, excluded paths and CORS
preflights; then it hands the request to the guard (``Guard.authenticate(WSGIRequest(environ))``,
``_http.guard``), which extracts, verifies and raises the error to answer, and it stores the
principal in the environ or writes the guard's answer.

No event loop is hidden in here: the verifier's sync driver fetches keys with ``httpx.Client``
in one thread per fetch, the other threads waiting for it (single flight; ``_sources.jwks_sync``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._core.errors import ConfigurationError, JWTGuardError
from ._core.log import DEFAULT_LOG_LIMIT
from ._core.principal import Principal
from ._http.answer import Answer, ErrorHandler, reason_phrase
from ._http.client_cert import ClientCertificate
from ._http.extract import (
    CSRF,
    override_params,
)
from ._http.guard import (
    EXCLUDED_KEY,
    GUARD_KEY,
    NOT_A_CORS_ANSWER,
    PREFLIGHT_KEY,
    PRINCIPAL_KEY,
    REJECTION_KEY,
    VERIFIER_KEY,
    Guard,
)
from ._http.metadata import ProtectedResource
from ._http.order import check, owners_of, watch
from ._http.request import OVERRIDE_KEYS as _OVERRIDE_KEYS
from ._http.request import WSGIRequest
from ._http.types import Environ, StartResponse, WSGIApp
from ._sources.verifier import Verifier

__all__ = ["JWTGuardWSGIMiddleware", "authenticate"]


def route_path(environ: Environ) -> str:
    """The path as the app's routes see it, decoded like ASGI's ``path``.

    ``PATH_INFO`` is already without the mount prefix (``SCRIPT_NAME``), but PEP 3333 hands
    it over as the raw bytes decoded as latin-1; ASGI decodes them as UTF-8, so ``exclude``
    re-decodes them the same way to mean the same paths under both adapters.
    """
    return _utf8(environ.get("PATH_INFO", "") or "/")


def _utf8(path: str) -> str:
    if path.isascii():
        return path
    try:
        return path.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a server that already decoded it
        return path


def _is_preflight(environ: Environ) -> bool:
    """A CORS preflight (Fetch §4.8 "CORS-preflight fetch", §3.2.2): ``OPTIONS`` with both
    ``Origin`` and ``Access-Control-Request-Method``, and no method override (a header or
    ``_method``, :func:`override_params`). Only such a request may reach Flask's automatic
    ``OPTIONS`` answer without a token (the Flask extension), or the app under
    ``unsafe_preflight_to_app``."""
    return (
        environ.get("REQUEST_METHOD") == "OPTIONS"
        and "HTTP_ORIGIN" in environ
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        and not any(key in environ for key in _OVERRIDE_KEYS)
        and not override_params(environ.get("QUERY_STRING", ""))
    )


#: What makes a refused preflight pass (the warning and the error's detail say it).
_PREFLIGHT_FIX = (
    "no CORS layer answers it before JWTGuardWSGIMiddleware; put one outside it, or with "
    "Flask use the jwt_guard.flask.JWTGuard extension and flask-cors"
)


def authenticate(guard: Guard, environ: Environ) -> Principal | None:
    """Extract, check CSRF and verify a WSGI request with the sync driver.

    The middleware's steps (:meth:`Guard.authenticate`), shared by the per-view guards. ``None``
    for an anonymous request ``guard`` allows; raises the :class:`JWTGuardError` to answer."""
    return guard.authenticate(WSGIRequest(environ))


def _always() -> bool:
    return True


class JWTGuardWSGIMiddleware:
    """WSGI middleware: verify the request's JWT and store its :class:`Principal`.

    The principal is at ``environ["jwt_guard.principal"]`` (``None`` for anonymous requests
    when ``optional``)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        verifier: Verifier,
        cookie: str | None = None,
        header: bool = True,
        optional: bool = False,
        exclude: Sequence[str] = (),
        csrf: bool | CSRF = True,
        realm: str | None = None,
        on_error: ErrorHandler | None = None,
        protected_resource: ProtectedResource | None = None,
        debug: bool = False,
        log_rejections: int | None = logging.INFO,
        log_limit: int = DEFAULT_LOG_LIMIT,
        unsafe_preflight_to_app: bool = False,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        if isinstance(client_certificate, ClientCertificate):
            client_certificate.check_adapter(asgi=False)
        self.guard = Guard(
            verifier=verifier,
            cookie=cookie,
            header=header,
            optional=optional,
            exclude=exclude,
            csrf=csrf,
            realm=realm,
            on_error=on_error,
            protected_resource=protected_resource,
            debug=debug,
            log_rejections=log_rejections,
            log_limit=log_limit,
            unsafe_preflight_to_app=unsafe_preflight_to_app,
            client_certificate=client_certificate,
        )
        #: Set by the Flask extension: a rejection is left in the environ (REJECTION_KEY)
        #: and raised inside Flask, so the app's after_request hooks (CORS headers) apply.
        self.defer_rejections = False
        #: Set by the Flask extension too: whether the app has code that would shape a
        #: rejection's answer if Flask made it (after_request hooks, error handlers of its
        #: own). Without any, the middleware answers itself: a refusal then costs what it
        #: cost before Flask answered them (a Flask dispatch is several times the refusal).
        self.app_shapes_answers: Callable[[], bool] = _always
        #: The Flask apps behind ``app`` (werkzeug's ``DispatcherMiddleware``: each mounted
        #: one; none for another WSGI app): their views are checked for a requirement written
        #: above the route decorator (``_http.order``), now, at each later decoration, and
        #: before the first request reaches the app.
        self._views = owners_of(app)
        for owner in self._views:
            watch(owner)
        #: Set by the Flask extension: more checks of the app's set-up that must pass before
        #: the first request reaches the app, with the order check (a setting written to
        #: app.config after init_app).
        self.first_request_checks: list[Callable[[], None]] = []
        self._pending = True

    def _check_set_up(self) -> None:
        """The order check and ``first_request_checks``, until they pass once (Flask takes no
        route after its first request)."""
        for owner in self._views:
            check(owner)
        for extra in self.first_request_checks:
            extra()
        self._pending = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self._pending:
            try:
                self._check_set_up()
            except ConfigurationError as exc:  # fail closed: no view runs unprotected
                return self.reject(exc, start_response, environ)
        metadata = self.guard.metadata
        if metadata is not None:
            # RFC 9728 §3: the metadata document is public; no token is looked for. Its URL is
            # host-relative, so the full path counts (SCRIPT_NAME + PATH_INFO), or the app's
            # own (PATH_INFO: a proxy that strips a prefix and sets SCRIPT_NAME).
            path = _utf8(environ.get("SCRIPT_NAME", "") + (environ.get("PATH_INFO", "") or "/"))
            if metadata.matches(path) or metadata.matches(route_path(environ)):
                method = environ.get("REQUEST_METHOD", "GET")
                answer = metadata.answer(
                    method,
                    environ.get("HTTP_IF_NONE_MATCH"),
                    environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"),
                )
                return _send(answer, start_response, head=method == "HEAD")
        nonce: str | None = None
        # For the framework-neutral require_roles/require_scopes on a Flask view without the
        # Flask extension: Flask answers a view's exceptions itself, so they answer with this.
        environ[GUARD_KEY] = self.guard
        if self.guard.excludes and self.guard.is_excluded(route_path(environ)):
            # Public path: no token is read. A requirement on the view authenticates on
            # demand with this guard (EXCLUDED_KEY) instead of answering token_missing.
            environ[PRINCIPAL_KEY] = None
            environ[EXCLUDED_KEY] = True
        elif _is_preflight(environ):
            # A CORS preflight carries no credentials (Fetch §4.8), and no app code runs
            # without them: the Flask extension lets only Flask's automatic OPTIONS answer it
            # (PREFLIGHT_KEY); a plain WSGI app is not called.
            environ[PRINCIPAL_KEY] = None
            if not self.guard.optional:
                if self.defer_rejections and not self.guard.unsafe_preflight_to_app:
                    environ[PREFLIGHT_KEY] = True
                elif not self.guard.unsafe_preflight_to_app:
                    return self.reject(
                        self.guard.preflight_refused(_PREFLIGHT_FIX), start_response, environ
                    )
                # Only a CORS answer leaves (Flask's, with flask-cors's headers; or under the
                # unsafe option, the app's).
                return self._cors_only(environ, start_response)
        else:
            try:
                principal = environ[PRINCIPAL_KEY] = self.guard.authenticate(WSGIRequest(environ))
            except JWTGuardError as exc:
                if not self.defer_rejections or not self.app_shapes_answers():
                    return self.reject(exc, start_response, environ)
                # Kept without its traceback and context: their frames hold this environ, and
                # an environ -> error -> frame -> environ cycle is garbage only the cycle
                # collector frees (about 75 objects per refused request, its pauses the p99).
                exc.__context__ = None
                environ[REJECTION_KEY] = exc.with_traceback(None)
                principal = environ[PRINCIPAL_KEY] = None
            environ[VERIFIER_KEY] = self.verifier
            if principal is not None and self.guard.dpop is not None:
                nonce = self.guard.dpop_nonce()

        started = False

        def start_tracking(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            nonlocal started
            started = True
            if nonce is not None:
                headers = [*headers, ("DPoP-Nonce", nonce)]
            return start_response(status, headers, *args)

        try:
            return self.app(environ, start_tracking)
        except JWTGuardError as exc:
            # Raised by require_roles/require_scopes in a plain WSGI app (Flask answers these
            # itself through the extension's error handler).
            if started:
                raise
            return self.reject(exc, start_response, environ)

    def _cors_only(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The app's answer to a preflight that passed without a token, if it is a CORS
        answer (with ``Access-Control-Allow-Origin``, Fetch §4.8); else our 401 and the app's
        body is dropped, so a view that handles ``OPTIONS`` cannot answer anonymously."""
        called = cors = False

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            nonlocal called, cors
            called = True
            cors = any(name.lower() == "access-control-allow-origin" for name, _ in headers)
            if cors:
                return start_response(status, headers, *args)
            return lambda data: None  # PEP 3333 write(): swallowed

        result = self.app(environ, capture)
        if not called:
            # PEP 3333 lets an app call start_response on its first item: read the (small)
            # preflight body to see the status and headers.
            iterable = result
            try:
                result = list(iterable)
            finally:
                _close(iterable)
        if cors:
            return result
        _close(result)
        return self.reject(self.guard.preflight_refused(NOT_A_CORS_ANSWER), start_response, environ)

    def reject(
        self, exc: JWTGuardError, start_response: StartResponse, environ: Environ | None = None
    ) -> Iterable[bytes]:
        """Answer ``exc`` as the middleware does: its status, challenge and JSON body."""
        return _send(self.guard.answer(exc, environ), start_response)


def _send(answer: Answer, start_response: StartResponse, *, head: bool = False) -> Iterable[bytes]:
    headers = list(answer.headers)
    if answer.status != 304 and answer.status != 204:  # RFC 9110 §8.6: none on these
        headers.append(("Content-Length", str(len(answer.body))))
    start_response(f"{answer.status} {reason_phrase(answer.status)}", headers)
    return [b"" if head else answer.body]


def _close(result: Iterable[bytes]) -> None:
    """PEP 3333: the server calls ``close()`` on the app's iterable; so do we when we drop it."""
    close = getattr(result, "close", None)
    if close is not None:
        close()
