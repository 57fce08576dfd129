"""Turning an error into the HTTP answer (RFC 6750 §3), the same for ASGI and WSGI.

The body and headers carry only the error's fixed texts and the route's configured scope
names: never the token, a claim, a kid or a URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ._errors import Forbidden, JWTGuardError, ServiceUnavailable

__all__ = ["Answer", "ErrorHandler", "Responder"]

# RFC 6750 §3: realm is a quoted-string; error_description and scope are restricted to
# %x20-21 / %x23-5B / %x5D-7E (printable ASCII without '"' and '\').
_QUOTED_SAFE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

_BODY_ERROR = {400: "invalid_request", 401: "unauthorized", 403: "forbidden"}


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


class Responder:
    """Builds answers for one adapter configuration; constant parts computed once."""

    def __init__(self, realm: str | None, on_error: ErrorHandler | None) -> None:
        self._realm_param = f"realm={_quoted(realm)}" if realm is not None else None
        self._on_error = on_error

    def challenge(self, exc: JWTGuardError) -> str:
        """The ``WWW-Authenticate`` value for ``exc``."""
        params = [self._realm_param] if self._realm_param else []
        if exc.error is not None:
            params.append(f"error={_quoted(exc.error)}")
            params.append(f"error_description={_quoted(exc.description)}")
        if isinstance(exc, Forbidden) and exc.error == "insufficient_scope":
            names = [n for n in exc.required if _SCOPE_TOKEN.fullmatch(n)]
            if names:
                params.append(f"scope={_quoted(' '.join(names))}")
        return "Bearer " + ", ".join(params) if params else "Bearer"

    def answer(self, exc: JWTGuardError) -> Answer:
        status = exc.status_code if exc.status_code in (400, 401, 403, 503) else 401
        body = {
            "error": exc.error or _BODY_ERROR.get(status, "temporarily_unavailable"),
            "error_description": exc.description,
            "code": exc.code,
        }
        headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),  # RFC 6750 §5.3 / RFC 9111: never cache auth errors
        ]
        if status in (400, 401, 403):
            headers.append(("www-authenticate", self.challenge(exc)))
        if isinstance(exc, ServiceUnavailable):
            headers.append(("retry-after", str(exc.retry_after)))
        answer = Answer(status, headers, json.dumps(body, separators=(",", ":")).encode())
        if self._on_error is not None:
            answer = self._on_error(exc, answer)
        return answer
