"""The demo issuer's authorization-code flow with PKCE for public clients (no I/O here).

What ``/docs`` of an API needs to log in against the demo: RFC 6749 §4.1 (authorization code),
RFC 7636 (PKCE, ``S256`` only, as OAuth 2.1 and RFC 9700 §2.1.1 ask), RFC 8252 §7.3 (loopback
redirect URIs: any port, the rest exact). Codes are random, short-lived and used once; a code
presented twice revokes every token it bought: the access tokens, the refresh token and every
token refreshed from it (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "PUBLIC_CLIENTS",
    "AuthorizationRequest",
    "CodeStore",
    "Grant",
    "OAuthError",
    "parse_authorization_request",
    "s256",
]

#: Registered public clients: client_id -> redirect path, allowed on any loopback port
#: (RFC 8252 §7.3). ``jwt-guard-docs`` is FastAPI's Swagger UI (``/docs/oauth2-redirect``).
PUBLIC_CLIENTS: Final = {"jwt-guard-docs": "/docs/oauth2-redirect"}
CODE_TTL: Final = 60  # seconds; RFC 6749 §4.1.2 recommends at most 10 minutes
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# RFC 7636 §4.1/§4.2: 43-128 characters of the unreserved set.
_PKCE_VALUE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_MAX_PARAM: Final = 512


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 §4.1.2.1, §5.2).

    ``redirect`` is False when the client or its redirect URI cannot be trusted: then the
    user sees the error and is never sent anywhere (RFC 6749 §4.1.2.1).
    """

    def __init__(
        self, error: str, description: str, *, redirect: bool = True, status: int = 400
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect
        self.status = status
        # A replayed code: the access tokens it bought, and the code itself, which names the
        # family of refresh tokens issued with it (RFC 6749 §4.1.2).
        self.revoke: tuple[str, ...] = ()
        self.revoke_family: str | None = None


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    code_challenge: str


@dataclass(frozen=True)
class Grant:
    username: str
    scope: str


def s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def redirect_uri_allowed(client_id: str, uri: str) -> bool:
    path = PUBLIC_CLIENTS.get(client_id)
    if path is None or len(uri) > _MAX_PARAM:
        return False
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in _LOOPBACK
        and parts.username is None
        and parts.path == path
        and not parts.query
        and not parts.fragment
    )


def parse_authorization_request(params: Mapping[str, str]) -> AuthorizationRequest:
    """Check an authorization request; raise :class:`OAuthError` when it is refused."""
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    if client_id not in PUBLIC_CLIENTS:
        raise OAuthError("invalid_request", "unknown client_id", redirect=False)
    if not redirect_uri_allowed(client_id, redirect_uri):
        raise OAuthError("invalid_request", "redirect_uri not registered", redirect=False)
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code")
    challenge = params.get("code_challenge", "")
    if params.get("code_challenge_method") != "S256" or not _PKCE_VALUE.fullmatch(challenge):
        raise OAuthError("invalid_request", "PKCE with code_challenge_method=S256 is required")
    scope, state = params.get("scope", ""), params.get("state", "")
    if len(scope) > _MAX_PARAM or len(state) > _MAX_PARAM:
        raise OAuthError("invalid_request", "scope or state too long")
    return AuthorizationRequest(client_id, redirect_uri, scope, state, challenge)


@dataclass
class _Code:
    request: AuthorizationRequest
    grant: Grant
    expires_at: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


class CodeStore:
    """One-time authorization codes, bound to the client, redirect URI and PKCE challenge."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}

    def issue(self, request: AuthorizationRequest, grant: Grant) -> str:
        code = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            # Used codes are kept until they expire, so that a replay is recognised.
            self._codes = {c: v for c, v in self._codes.items() if v.expires_at > now}
            self._codes[code] = _Code(request, grant, now + CODE_TTL)
        return code

    def redeem(self, code: str, *, client_id: str, redirect_uri: str, code_verifier: str) -> Grant:
        """The grant of a code (RFC 6749 §4.1.3, RFC 7636 §4.6); a code works once."""
        with self._lock:
            entry = self._codes.get(code)
            if entry is None or entry.expires_at <= self._clock():
                raise OAuthError("invalid_grant", "unknown or expired code")
            if entry.used:
                error = OAuthError("invalid_grant", "code already used")
                # RFC 6749 §4.1.2: revoke all tokens issued with this code
                error.revoke, error.revoke_family = tuple(entry.tokens), code
                raise error
            entry.used = True
        request = entry.request
        if client_id != request.client_id or redirect_uri != request.redirect_uri:
            raise OAuthError("invalid_grant", "client_id or redirect_uri does not match")
        if not _PKCE_VALUE.fullmatch(code_verifier) or not hmac.compare_digest(
            s256(code_verifier), request.code_challenge
        ):
            raise OAuthError("invalid_grant", "code_verifier does not match")
        return entry.grant

    def bind(self, code: str, token: str) -> None:
        """Remember an access token bought with ``code`` (or refreshed from a refresh token
        bought with it), to revoke it if the code is replayed."""
        with self._lock:
            entry = self._codes.get(code)
            if entry is not None:
                entry.tokens.append(token)
