"""Setting and clearing the token cookies on a response (Starlette/FastAPI or Flask).

    set_token_cookies(response, access_token, refresh_token=refresh, request=request, csrf=csrf)
    clear_token_cookies(response, csrf=csrf)

The access token goes in an HttpOnly cookie (page scripts, and XSS, cannot read it); the refresh
token in another, on its own path; the CSRF cookie is readable by the page, which echoes it in
``X-CSRF-Token``. With ``CSRF(secret=...)`` its value is bound to the access token
(:func:`bound_csrf_value`): a value from another session, or one planted by a sibling subdomain,
does not pass the middleware's check.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

from .._core.errors import ConfigurationError, JWTGuardError
from .._core.parse import b64url_decode, parse_json, split_compact
from .extract import CSRF, bound_csrf_value

__all__ = ["bound_csrf_value", "clear_token_cookies", "set_token_cookies"]

_SAMESITE: Final = ("strict", "lax", "none")
#: A token longer than this is not parsed for its ``exp`` (the verifier's default limit).
_MAX_TOKEN_BYTES: Final = 64 * 1024


def _expires_at(token: str) -> float | None:
    """The ``exp`` of a JWT we are about to hand out (not verified: it is our own token), or
    ``None`` for an opaque token or one without ``exp``."""
    try:
        payload = parse_json(b64url_decode(split_compact(token, _MAX_TOKEN_BYTES)[1]))
    except JWTGuardError:
        return None
    exp = payload.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True  # RFC 6761 §6.3
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _request_origin(request: Any) -> tuple[str, str] | None:
    """(scheme, hostname) of a Starlette or Werkzeug request; the current Flask request when
    none is given; ``None`` when there is no request to look at."""
    if request is None:
        try:
            import flask
        except ImportError:  # pragma: no cover - only without the flask extra
            return None
        if not flask.has_request_context():
            return None
        request = flask.request
    url: Any = getattr(request, "url", None)
    if hasattr(url, "scheme") and hasattr(url, "hostname"):  # Starlette's URL
        return str(url.scheme), str(url.hostname or "")
    scheme, host = getattr(request, "scheme", None), getattr(request, "host", None)
    if isinstance(scheme, str) and isinstance(host, str):  # Werkzeug
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return scheme, hostname
    raise TypeError("request must be a Starlette or Werkzeug/Flask request")


def _secure(secure: bool, insecure_loopback: bool, request: Any) -> bool:
    """``Secure`` always (RFC 6265 §4.1.2.5), whatever the request looks like: behind a reverse
    proxy (``proxy_pass http://127.0.0.1:8000``) the app sees plain http on loopback while the
    browser is on https. Only ``secure=False``, or ``insecure_loopback=True`` for a request
    that is really plain http on the developer's own machine, drops it."""
    if secure is False:  # only an explicit False: None (the old "decide for me") stays Secure
        return False
    if not insecure_loopback:
        return True
    origin = _request_origin(request)
    return not (origin is not None and origin[0] == "http" and _is_loopback(origin[1]))


def _max_age(token: str, fallback: int | None, clock: Callable[[], float]) -> int | None:
    exp = _expires_at(token)
    if exp is None:
        return fallback
    return max(0, int(exp - clock()))


def set_token_cookies(
    response: Any,
    access_token: str,
    *,
    refresh_token: str | None = None,
    request: Any = None,
    access_cookie: str = "access_token",
    refresh_cookie: str = "refresh_token",
    path: str = "/",
    refresh_path: str = "/",
    domain: str | None = None,
    samesite: str = "lax",
    secure: bool = True,
    insecure_loopback: bool = False,
    csrf: CSRF | None = None,
    refresh_max_age: int | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Set the token cookies and the CSRF cookie on a Starlette/FastAPI or Flask response.

    Three cookies: the access token (HttpOnly), the refresh token (HttpOnly, on
    ``refresh_path``) and the CSRF cookie.

    - ``Max-Age`` follows each token's ``exp`` (an opaque refresh token uses
      ``refresh_max_age``; without either, a session cookie).
    - ``Secure`` always, also when the app sees plain http behind a reverse proxy.
      ``insecure_loopback=True`` drops it for a request that is plain http on a loopback host
      (a developer's machine; ``request``: the Starlette request, or the current Flask request
      by default); ``secure=False`` drops it everywhere.
    - ``csrf``: the middleware's :class:`CSRF` settings (cookie name, ``secret``); with a
      ``secret`` the CSRF value is bound to the access token, else it is random. ``None``
      uses ``CSRF()``; the CSRF cookie lives as long as the access token.
    """
    csrf = CSRF() if csrf is None else csrf
    samesite = samesite.lower() if isinstance(samesite, str) else samesite
    if samesite not in _SAMESITE:
        raise ConfigurationError("samesite must be 'strict', 'lax' or 'none'")
    is_secure = _secure(secure, insecure_loopback, request)
    if samesite == "none" and not is_secure:
        # RFC 6265bis §4.1.2.7: browsers drop SameSite=None cookies without Secure.
        raise ConfigurationError("samesite='none' needs a Secure cookie")
    common: dict[str, Any] = {"domain": domain, "secure": is_secure, "samesite": samesite}
    access_age = _max_age(access_token, None, clock)
    response.set_cookie(
        access_cookie, access_token, max_age=access_age, path=path, httponly=True, **common
    )
    if refresh_token is not None:
        response.set_cookie(
            refresh_cookie,
            refresh_token,
            max_age=_max_age(refresh_token, refresh_max_age, clock),
            path=refresh_path,
            httponly=True,
            **common,
        )
    value = (
        bound_csrf_value(access_token, csrf.secret)
        if isinstance(csrf.secret, bytes)  # __post_init__ made a str secret bytes
        else secrets.token_urlsafe(32)
    )
    # Not HttpOnly: the page reads it and echoes it in the CSRF header.
    response.set_cookie(csrf.cookie, value, max_age=access_age, path="/", httponly=False, **common)


def clear_token_cookies(
    response: Any,
    *,
    request: Any = None,
    access_cookie: str = "access_token",
    refresh_cookie: str = "refresh_token",
    path: str = "/",
    refresh_path: str = "/",
    domain: str | None = None,
    samesite: str = "lax",
    secure: bool = True,
    insecure_loopback: bool = False,
    csrf: CSRF | None = None,
) -> None:
    """Expire the cookies :func:`set_token_cookies` set (same names, paths and domain)."""
    csrf = CSRF() if csrf is None else csrf
    common: dict[str, Any] = {
        "domain": domain,
        "secure": _secure(secure, insecure_loopback, request),
        "samesite": samesite.lower(),
    }
    response.delete_cookie(access_cookie, path=path, httponly=True, **common)
    response.delete_cookie(refresh_cookie, path=refresh_path, httponly=True, **common)
    response.delete_cookie(csrf.cookie, path="/", **common)
