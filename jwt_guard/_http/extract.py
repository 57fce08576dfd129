"""Reading the token from a request (RFC 6750 §2) and the CSRF check for cookie authentication.

Framework-neutral: the ASGI and WSGI adapters each build a :class:`RequestView` from their own
request representation and call :func:`extract` and :func:`check_csrf`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from .._core.errors import ConfigurationError, CSRFFailed, InvalidRequest, safe_value

__all__ = [
    "CSRF",
    "Credentials",
    "RequestView",
    "bearer_token",
    "bound_csrf_value",
    "check_csrf",
    "dpop_token",
    "extract",
    "is_token68",
    "joined_authorization",
    "override_methods",
    "override_params",
    "parse_cookies",
]

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; b64token is token68 (RFC 7235 §2.1).
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; the start of
# one with content: a scheme token, spaces, then something.
_CREDENTIALS_START = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]+[^ \t]")
#: Domain separation for the bound CSRF HMAC: the server key may serve other purposes too.
_CSRF_CONTEXT: Final = b"jwt_guard csrf v1\x00"
#: RFC 9110 §9.2.1: only these methods are safe; anything else needs a CSRF proof when the
#: browser sent the credentials by itself (a cookie).
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Headers and parameters some frameworks honour to change the method; their presence with an
#: unsafe value makes the request unsafe (so they cannot be used to skip the CSRF check).
METHOD_OVERRIDE_HEADERS: Final = ("x-http-method-override", "x-http-method", "x-method-override")


@dataclass(frozen=True)
class CSRF:
    """Settings of the CSRF check for cookie-authenticated requests.

    A request passes with a double-submit token (the ``cookie`` value echoed in ``header``,
    compared in constant time; with a ``secret``, only the value bound to the request's
    token), or when the browser says it is same-origin (``Sec-Fetch-Site:
    same-origin``, or an ``Origin`` equal to the request's own origin or one of
    ``trusted_origins``). No claim inside the JWT is needed, so tokens from any identity
    provider work.
    """

    cookie: str = "csrf_token"
    header: str = "x-csrf-token"
    trusted_origins: Sequence[str] = field(default=())
    #: A server key (>= 32 bytes) that binds the CSRF value to the token: the header must then
    #: carry ``bound_csrf_value(token, secret)`` (what ``set_token_cookies`` sets), so a value
    #: from another session or planted by a sibling subdomain fails. Never printed.
    secret: bytes | str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.secret is not None:
            secret = self.secret.encode() if isinstance(self.secret, str) else self.secret
            if not isinstance(secret, bytes) or len(secret) < 32:
                raise ConfigurationError("CSRF secret must be at least 32 bytes")
            object.__setattr__(self, "secret", secret)
        if not isinstance(self.cookie, str) or not self.cookie:
            raise ConfigurationError("CSRF cookie must be a cookie name")
        if not isinstance(self.header, str) or not self.header:
            raise ConfigurationError("CSRF header must be a header name")
        if isinstance(self.trusted_origins, str) or not all(
            isinstance(o, str) and "://" in o for o in self.trusted_origins
        ):
            raise ConfigurationError("trusted_origins must be a list of origins like https://a.b")
        object.__setattr__(self, "header", self.header.lower())
        object.__setattr__(
            self, "trusted_origins", tuple(o.rstrip("/").lower() for o in self.trusted_origins)
        )


class RequestView(NamedTuple):
    """What the guard needs from a request, in plain strings."""

    method: str
    scheme: str
    host: str | None
    path: str
    authorization: Sequence[str]
    cookie_headers: Sequence[str]
    headers: dict[str, str]  # other single-valued headers, lower-case names
    query_string: str = ""


class Credentials(NamedTuple):
    token: str
    #: "header" (Authorization: Bearer), "dpop" (Authorization: DPoP, RFC 9449 §7.1),
    #: "cookie" or "query".
    source: str


def parse_cookies(headers: Sequence[str]) -> dict[str, list[str]]:
    """All values of each cookie name (a name seen twice may be a cookie-tossing attempt)."""
    cookies: dict[str, list[str]] = {}
    for header in headers:
        for chunk in header.split(";"):
            name, sep, value = chunk.partition("=")
            if not sep:
                continue
            name = name.strip()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if name:
                cookies.setdefault(name, []).append(value)
    return cookies


def _malformed_header() -> InvalidRequest:
    return InvalidRequest(
        code="header_malformed",
        description="The Authorization header is malformed.",
        detail={"reason": "expected 'Bearer' followed by one space and one token (RFC 6750 §2.1)"},
    )


def _multiple(reason: str) -> InvalidRequest:
    return InvalidRequest(
        code="multiple_tokens", description="Send exactly one token.", detail={"reason": reason}
    )


def bearer_token(value: str) -> str | None:
    """The token of one ``Authorization`` value, ``None`` for another scheme.

    RFC 6750 §2.1: ``"Bearer" 1*SP b64token``, the scheme case-insensitive. Plain string
    operations, no regex over the token: the token's full syntax is checked by the verifier
    (and :func:`is_token68` on the failure path decides between 400 and 401).
    """
    if value[:6].lower() != "bearer":
        return None
    rest = value[6:]
    if rest and rest[0] not in " \t":
        return None  # a scheme that merely starts with "bearer"
    token = rest.lstrip(" ")
    if not rest.startswith(" ") or not token or " " in token or "\t" in token or "," in token:
        raise _malformed_header()
    return token


def _is_bearer(value: str) -> bool:
    """Whether an ``Authorization`` value uses the Bearer scheme (case-insensitive)."""
    return value[:6].lower() == "bearer" and (len(value) == 6 or value[6] in " \t")


def _is_dpop(value: str) -> bool:
    """Whether an ``Authorization`` value uses the DPoP scheme (RFC 9449 §7.1)."""
    return value[:4].lower() == "dpop" and (len(value) == 4 or value[4] in " \t")


def dpop_token(value: str) -> str | None:
    """The token of one ``Authorization: DPoP <token>`` value, ``None`` for another scheme.

    RFC 9449 §7.1: ``"DPoP" 1*SP token68``, the same grammar as Bearer's, so the same checks.
    """
    if not _is_dpop(value):
        return None
    return bearer_token("Bearer" + value[4:])


def joined_authorization(value: str) -> list[str]:
    """The Bearer credentials in a WSGI ``HTTP_AUTHORIZATION`` value.

    WSGI servers join repeated headers with commas (RFC 9110 §5.3), so commas are how a second
    ``Authorization`` header shows. Only Bearer credentials count: another scheme's own commas
    (Digest parameters, AWS SigV4's ``Credential=…, SignedHeaders=…``) are not a second token,
    as they are not under ASGI, which sees the headers apart. A comma cannot occur in a bearer
    token (token68), so text after one that does not start other credentials was part of the
    same header, and that header is malformed (400, as under ASGI).
    """
    if "," not in value:
        return [value]
    bearers: list[str] = []
    in_bearer = False
    for part in value.split(","):
        start = part.lstrip(" \t")
        if _is_bearer(start) or _is_dpop(start):
            bearers.append(start)
            in_bearer = True
        elif in_bearer and not _CREDENTIALS_START.match(start):
            bearers[-1] += "," + part
        else:
            in_bearer = False
    return bearers


def is_token68(token: str) -> bool:
    """RFC 7235 §2.1 token68 syntax (used only once a token has failed verification)."""
    return _TOKEN68.fullmatch(token) is not None


def _one_token(found: Credentials | None, values: set[str], source: str) -> Credentials | None:
    """Add the token values seen in one more place; a second, different token is a 400."""
    if len(values) > 1:
        raise _multiple(f"several different tokens in the {source}")
    if not values:
        return found
    value = values.pop()
    if found is None:
        return Credentials(value, source)
    if found.token != value:
        raise _multiple(f"different tokens in the {found.source} and the {source}")
    # The same token in the header and the cookie: the header wins, so no CSRF check is
    # needed (a cross-site page cannot set an Authorization header).
    return found


def extract(
    authorization: Sequence[str],
    cookie_headers: Sequence[str],
    query_string: str = "",
    *,
    header: bool,
    cookie: str | None,
    query_param: str | None = None,
    dpop: bool = False,
) -> Credentials | None:
    """The request's token and where it came from; ``None`` when it carries none.

    Raises :class:`InvalidRequest` (400) for two Bearer credentials, a malformed Bearer
    header, or different tokens in different places (RFC 6750 §2: one method per request).
    With ``dpop``, ``Authorization: DPoP`` credentials count too (source ``"dpop"``), and
    Bearer plus DPoP credentials are two methods (RFC 9449 §7.2).
    """
    found: Credentials | None = None
    if header and authorization:
        # Another scheme (Basic, Digest, DPoP without dpop=...) is not ours: as if no token
        # was sent, and it does not count as a second token either.
        ours = [v for v in authorization if _is_bearer(v) or (dpop and _is_dpop(v))]
        if len(ours) > 1:
            raise _multiple("several Bearer or DPoP Authorization headers")
        if ours:
            token = bearer_token(ours[0])
            if token is not None:
                found = Credentials(token, "header")
            else:
                token = dpop_token(ours[0])
                if token is not None:
                    found = Credentials(token, "dpop")
    if cookie is not None and cookie_headers:
        values = set(parse_cookies(cookie_headers).get(cookie, ()))
        values.discard("")
        found = _one_token(found, values, "cookie")
    if query_param is not None and query_string:
        values = {
            v
            for k, v in urllib.parse.parse_qsl(query_string, keep_blank_values=True)
            if k == query_param and v
        }
        found = _one_token(found, values, "query")
    return found


def override_params(query_string: str) -> list[str]:
    """The values of every ``_method`` query parameter, blank ones included.

    A parameter's name counts as the app will read it: percent-decoded, ``+`` as a space, by
    ``urllib.parse.parse_qsl`` (what Starlette's ``query_params`` and Werkzeug's ``args``
    use), then stripped and compared case-insensitively. ``%5Fmethod`` and ``_%4Dethod`` are
    ``_method`` too; a gate reading the raw text would let them past what the app obeys.
    """
    # A name that decodes to _method is either spelled so or holds a percent-escape: other
    # query strings skip the parse.
    if not query_string or ("%" not in query_string and "_method" not in query_string.lower()):
        return []
    return [
        value
        for name, value in urllib.parse.parse_qsl(query_string, keep_blank_values=True)
        if name.strip().lower() == "_method"
    ]


def override_methods(headers: Sequence[str], query_string: str) -> list[str]:
    """The methods that method-override headers (their values: ``headers``) and a ``_method``
    query parameter (:func:`override_params`) name, upper-cased; frameworks that honour them
    act on these instead."""
    values = [*headers, *override_params(query_string)]
    return [v.strip().upper() for v in values if v.strip()]


def _effective_method(view: RequestView) -> str:
    headers = [view.headers.get(name, "") for name in METHOD_OVERRIDE_HEADERS]
    for method in override_methods(headers, view.query_string):
        if method not in SAFE_METHODS:
            return method
    return view.method.upper()


def _origin(view: RequestView) -> str | None:
    if view.host is None:
        return None
    return f"{view.scheme}://{view.host}".lower()


def bound_csrf_value(token: str, secret: bytes) -> str:
    """The CSRF value for the session of ``token``.

    HMAC-SHA256 under the server's key over the token's hash: only the server can compute it,
    and it changes with every token."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    mac = hmac.new(secret, _CSRF_CONTEXT + digest, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def check_csrf(
    view: RequestView, csrf: CSRF, *, websocket: bool = False, token: str | None = None
) -> None:
    """Raise :class:`CSRFFailed` unless a cookie-authenticated request proves same-site intent.

    For a WebSocket handshake (always a GET) the Origin is what matters: a cross-site page
    can open a socket with the user's cookies (cross-site WebSocket hijacking). ``token`` is
    the request's token, for a ``CSRF(secret=...)`` bound value.
    """
    if not websocket and _effective_method(view) in SAFE_METHODS:
        return
    if not websocket:
        sent = view.headers.get(csrf.header)
        if sent:
            if isinstance(csrf.secret, bytes):
                # Bound: only the value derived from this request's token passes; the cookie
                # (which a sibling subdomain can plant) is not consulted.
                expected = [bound_csrf_value(token, csrf.secret)] if token is not None else []
            else:
                expected = parse_cookies(view.cookie_headers).get(csrf.cookie, [])
            if (
                len(expected) == 1
                and expected[0]
                and hmac.compare_digest(
                    sent.encode("utf-8", "surrogateescape"),
                    expected[0].encode("utf-8", "surrogateescape"),
                )
            ):
                return
        if view.headers.get("sec-fetch-site", "").lower() == "same-origin":
            return
    origin = view.headers.get("origin")
    if websocket and origin is None:
        # Browsers always send Origin on a WebSocket handshake (RFC 6455 §4.1); a client that
        # sends none is not a browser a cross-site page could drive.
        return
    own = _origin(view)
    if origin and origin.lower() != "null":
        normalized = origin.rstrip("/").lower()
        if (own is not None and normalized == own) or normalized in csrf.trusted_origins:
            return
    # The origins are not secret; they show whether trusted_origins needs an entry.
    detail = {"origin": safe_value(origin), "own_origin": safe_value(own)}
    if websocket:
        detail["reason"] = "a cookie-authenticated WebSocket handshake from another origin"
    else:
        detail["reason"] = (
            f"a cookie-authenticated {_effective_method(view)} needs the {csrf.cookie!r} cookie "
            f"echoed in {csrf.header!r}, or a same-origin Origin or Sec-Fetch-Site"
        )
    raise CSRFFailed(detail=detail)
