"""Turning an error into the HTTP answer (RFC 6750 §3), the same for ASGI and WSGI.

The body and headers carry only fixed texts and the route's configured scope names: never the
token, a claim, a kid or a URL. This layer cannot fail: whatever the error (ours or one the app
raised with its own text) and whatever ``on_error`` returns, the adapter gets an answer it can
send. Only with ``debug=True`` (development) does the body also carry the error's ``detail``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from .._core.dpop import DPoP
from .._core.errors import (
    DPoPKeyMismatch,
    DPoPNonceRequired,
    Forbidden,
    InsufficientUserAuthentication,
    InvalidDPoPProof,
    JWTGuardError,
    ServiceUnavailable,
    TooManyRequests,
)
from .._core.scopes import OFFLINE_ACCESS, SCOPE_TOKEN

__all__ = ["SCOPE_TOKEN", "Answer", "ErrorHandler", "Responder", "reason_phrase"]

logger = logging.getLogger("jwt_guard")

# RFC 6750 §3: realm is a quoted-string; error_description and scope are restricted to
# %x20-21 / %x23-5B / %x5D-7E (printable ASCII without '"' and '\').
_QUOTED_SAFE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# RFC 9110 §5.5: a field value is visible ASCII/obs-text, spaces and tabs; no CR, LF or NUL.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.1: a token

#: Errors about the proof or the key binding: their challenge is DPoP's whatever the scheme.
_DPOP_ERRORS = (InvalidDPoPProof, DPoPKeyMismatch)

#: Errors whose answer carries values of the error's own (RFC 6750 §3 scope, RFC 9470 §3
#: acr_values and max_age, RFC 9449 §9 nonce): built for each one.
_PER_ERROR = (Forbidden, InsufficientUserAuthentication, DPoPNonceRequired)

_BODY_ERROR = {400: "invalid_request", 401: "unauthorized", 403: "forbidden"}
_ANSWERED = (400, 401, 403, 429, 503)
#: The body of a 500: our bug or the operator's (a request-time ConfigurationError), never
#: the client's, and its message is for the log only.
_INTERNAL_BODY = (
    b'{"error":"server_error","error_description":"Internal error.","code":"server_error"}'
)

#: Distinct error answers kept ready per adapter (``Responder``). Ours are a few dozen (code x
#: scheme); an app raising errors with texts of its own past this gets its answers built each
#: time, so the memory stays bounded whatever it raises.
MAX_READY_ANSWERS: Final = 256


@dataclass
class Answer:
    """An HTTP answer an adapter sends: status, headers and a JSON body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


ErrorHandler = Callable[[JWTGuardError, Answer], Answer]


def _quoted(value: str) -> str:
    if not _QUOTED_SAFE.fullmatch(value):
        raise ValueError("value has characters RFC 6750 does not allow in a quoted string")
    return f'"{value}"'


def _scope_list(names: object) -> list[str]:
    """The names that may stand in a challenge's ``scope``, in order, each once: scope tokens
    (RFC 6749 §3.3), never ``offline_access`` (MCP authorization: SHOULD NOT)."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        return []
    return list(
        dict.fromkeys(
            n
            for n in names
            if isinstance(n, str) and n != OFFLINE_ACCESS and SCOPE_TOKEN.fullmatch(n)
        )
    )


def _asks_for_a_token(exc: JWTGuardError) -> bool:
    """A 401 the client answers by getting a token (none was sent, or it was not accepted),
    not by fixing a DPoP proof or signing the user in again (RFC 9470 step-up)."""
    return (
        exc.status_code == 401
        and exc.error in (None, "invalid_token")
        and not isinstance(exc, _DPOP_ERRORS)
    )


def reason_phrase(status: int) -> str:
    """The reason phrase for a status line; any status ``on_error`` may choose has one."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"  # RFC 9112 §4: the reason phrase carries no meaning


def _fixed_description(cls: type[JWTGuardError]) -> str:
    """The fixed text of an error class for ``error_description``: the nearest class in the
    hierarchy whose own text RFC 6750 §3 allows (an app's subclass may use any text)."""
    for klass in cls.__mro__:
        text = vars(klass).get("description")
        if isinstance(text, str) and _QUOTED_SAFE.fullmatch(text):
            return text
    return JWTGuardError.description


def _sendable(answer: object) -> bool:
    """Whether an adapter can send ``answer`` as it is (``on_error`` returns app data)."""
    return (
        isinstance(answer, Answer)
        and type(answer.status) is int
        and 100 <= answer.status <= 599
        and isinstance(answer.body, bytes)
        and isinstance(answer.headers, list)
        and all(
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
            and _FIELD_NAME.fullmatch(item[0]) is not None
            and _FIELD_VALUE.fullmatch(item[1]) is not None
            for item in answer.headers
        )
    )


class Responder:
    """Builds answers for one adapter configuration; constant parts computed once."""

    def __init__(
        self,
        realm: str | None,
        on_error: ErrorHandler | None,
        resource_metadata: str | None = None,
        debug: bool = False,
        *,
        dpop: DPoP | None = None,
        challenge_scopes: Sequence[str] | None = (),
    ) -> None:
        self._realm_param = f"realm={_quoted(realm)}" if realm is not None else None
        self._on_error = on_error
        self._debug = debug
        # RFC 9728 §5.1: every challenge points to the protected resource metadata.
        self._metadata_param = (
            f"resource_metadata={_quoted(resource_metadata)}"
            if resource_metadata is not None
            else None
        )
        # RFC 9449 §7.1: a DPoP challenge names the proof algorithms (ours, from the table).
        self._dpop_algs = f"algs={_quoted(dpop.algs)}" if dpop is not None else None
        self._bearer_accepted = dpop is None or not dpop.required
        #: What a 401 asking for a token names in ``scope`` when the route names nothing
        #: (``ProtectedResource.challenge_scopes``, else its ``scopes_supported``); ``None``:
        #: 401s name no scope at all, not even the route's.
        self._scopes_401 = None if challenge_scopes is None else _scope_list(challenge_scopes)
        # A refusal's answer depends only on a few fields of its error (``_ready_key``): made
        # once per kind, then copied, so a flood of bad tokens costs no JSON encoding and no
        # challenge building per request.
        self._ready: dict[tuple[Any, ...], tuple[int, tuple[tuple[str, str], ...], bytes]] = {}

    def challenge(self, exc: JWTGuardError, scopes: Sequence[str] = ()) -> str:
        """The ``WWW-Authenticate`` value for ``exc``: only fixed texts, so it cannot fail.

        ``scope`` (RFC 6750 §3) names what the client should ask the authorization server for:
        on a 403 ``insufficient_scope``, every scope the operation needs, in one challenge
        (``exc.required``: the route's requirements together); on a 401 that asks for a token
        (none, or an invalid one), ``scopes`` (the route's, or the MCP tool's) or else the
        configured default (MCP authorization, "scope selection strategy": a client asks for
        what the first 401 names). Never ``offline_access``, never on a role refusal or a
        step-up (neither is fixed by asking for a scope).

        ``error_description`` is the fixed text of the error's class: an error raised with its
        own words (``InsufficientRole("Réservé aux administrateurs")``) shows them in the JSON
        body, where any character is fine, not in the header.

        With DPoP on, the answer challenges both schemes (RFC 9449 §7.1-7.2): the error goes in
        the challenge of the scheme the client used (``exc.dpop_scheme``) or the proof broke, and
        the other challenge names only the realm (and the proof ``algs``). With
        ``DPoP(required=True)`` there is no Bearer challenge.
        """
        realm = [self._realm_param] if self._realm_param else []
        params = list(realm)
        error = exc.error
        if error is not None:
            if not SCOPE_TOKEN.fullmatch(error):
                error = type(exc).error if isinstance(type(exc).error, str) else None
            if error is not None and SCOPE_TOKEN.fullmatch(error):
                params.append(f'error="{error}"')
                params.append(f'error_description="{_fixed_description(type(exc))}"')
        named: list[str] = []
        if isinstance(exc, Forbidden) and exc.error == "insufficient_scope":
            named = _scope_list(exc.required)
        elif self._scopes_401 is not None and _asks_for_a_token(exc):
            named = _scope_list(scopes) or self._scopes_401
        if named:
            params.append(f'scope="{" ".join(named)}"')
        if isinstance(exc, InsufficientUserAuthentication):
            # RFC 9470 §3: what the client asks the authorization server for on its next try.
            values = [v for v in exc.acr_values if isinstance(v, str) and SCOPE_TOKEN.fullmatch(v)]
            if values:
                params.append(f'acr_values="{" ".join(values)}"')
            if type(exc.max_age) is int and exc.max_age >= 0:
                params.append(f'max_age="{exc.max_age}"')
        if self._metadata_param:
            # RFC 9728 §5.1: each challenge points to the protected resource metadata.
            params.append(self._metadata_param)
            realm.append(self._metadata_param)
        if self._dpop_algs is None:
            return "Bearer " + ", ".join(params) if params else "Bearer"
        if exc.dpop_scheme or not self._bearer_accepted or isinstance(exc, _DPOP_ERRORS):
            dpop = "DPoP " + ", ".join([*params, self._dpop_algs])
            if not self._bearer_accepted:
                return dpop
            return dpop + ", Bearer" + (" " + ", ".join(realm) if realm else "")
        bearer = "Bearer " + ", ".join(params) if params else "Bearer"
        return f"{bearer}, DPoP " + ", ".join([*realm, self._dpop_algs])

    def answer(self, exc: JWTGuardError, scopes: Sequence[str] = ()) -> Answer:
        """The answer to ``exc``; ``scopes``: what the route (or MCP tool) needs, named in a
        401's ``scope``."""
        status = exc.status_code
        if status not in _ANSWERED:
            # A ConfigurationError at request time (or an app's error with another status) is
            # not the client's fault: a fixed 500, and the reason in the log.
            logger.error(
                "%s while answering a request: %s",
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            answer = Answer(
                500,
                [("content-type", "application/json"), ("cache-control", "no-store")],
                _INTERNAL_BODY,
            )
        else:
            answer = self._ready_answer(exc, status, tuple(scopes))
        if self._on_error is None:
            return answer
        fallback = Answer(answer.status, list(answer.headers), answer.body)
        try:
            shaped = self._on_error(exc, answer)
        except Exception:
            logger.exception("on_error raised; sending the default answer")
            return fallback
        if not _sendable(shaped):
            logger.error("on_error returned an answer that cannot be sent; ignored")
            return fallback
        return shaped

    def _ready_answer(self, exc: JWTGuardError, status: int, scopes: tuple[str, ...]) -> Answer:
        """The default answer, from the ready ones when ``exc`` is of a kind seen before."""
        key = self._ready_key(exc, status)
        if key is None:
            return self._default(exc, status, scopes)
        if scopes:
            key += scopes  # the route's scopes, named in a 401: a few per app
        ready = self._ready.get(key)
        if ready is None:
            made = self._default(exc, status, scopes)
            ready = (made.status, tuple(made.headers), made.body)
            if len(self._ready) < MAX_READY_ANSWERS:
                self._ready[key] = ready
        # A new Answer with its own header list: on_error may change what it is given.
        return Answer(ready[0], list(ready[1]), ready[2])

    def _ready_key(self, exc: JWTGuardError, status: int) -> tuple[Any, ...] | None:
        """What the default answer to ``exc`` depends on, or ``None`` when it is built each
        time: with ``debug`` (the body holds the detail), for errors that carry values of their
        own (scopes, acr values, a nonce), and for attributes an app set to something else
        than text."""
        if self._debug or isinstance(exc, _PER_ERROR):
            return None
        code, description, error = exc.code, exc.description, exc.error
        if type(code) is not str or type(description) is not str:
            return None
        if error is not None and type(error) is not str:
            return None
        # Retry-After differs from one refusal to the next (a 429's is when the share frees up).
        retry_after = (
            exc.retry_after if isinstance(exc, (ServiceUnavailable, TooManyRequests)) else None
        )
        if retry_after is not None and type(retry_after) is not int:
            return None
        return (type(exc), status, code, description, error, exc.dpop_scheme is True, retry_after)

    def _default(self, exc: JWTGuardError, status: int, scopes: tuple[str, ...] = ()) -> Answer:
        description = exc.description if isinstance(exc.description, str) else ""
        error = exc.error if isinstance(exc.error, str) else None
        body: dict[str, Any] = {
            "error": error or _BODY_ERROR.get(status, "temporarily_unavailable"),
            # json.dumps escapes every non-ASCII character: the app's own text is safe here.
            "error_description": description,
            "code": exc.code if isinstance(exc.code, str) else JWTGuardError.code,
        }
        detail = getattr(exc, "detail", None)
        if self._debug and isinstance(detail, Mapping):
            # Development only (debug=True): the detail's safe facts, never the token.
            body["detail"] = detail
        headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),  # RFC 6750 §5.3 / RFC 9111: never cache auth errors
        ]
        if status in (400, 401, 403):
            headers.append(("www-authenticate", self.challenge(exc, scopes)))
        if isinstance(exc, DPoPNonceRequired):
            # RFC 9449 §9: the nonce to put in the next proof (made by DPoPNonces: safe).
            headers.append(("dpop-nonce", exc.nonce))
        if isinstance(exc, (ServiceUnavailable, TooManyRequests)):
            # RFC 9110 §10.2.3; RFC 6585 §4 for a 429.
            headers.append(("retry-after", str(exc.retry_after)))
        # default=str: an app's own detail may hold values JSON does not know.
        return Answer(
            status, headers, json.dumps(body, separators=(",", ":"), default=str).encode()
        )
