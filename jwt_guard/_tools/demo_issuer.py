"""The demo's identity provider: its users and the scopes they may have, signing keys
with rotation, access and refresh tokens. Its OAuth endpoints' flow is
:mod:`.demo_oauth`; the app that serves both is ``jwt_guard.demo``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from .._sources.config import DEFAULT_ALGORITHM
from .signing import PrivateKey, encode, generate_key, public_jwk

__all__ = [
    "ACCESS_TTL",
    "ALGORITHM",
    "AUDIENCE",
    "REFRESH_TTL",
    "SCOPES",
    "USERS",
    "DemoIssuer",
    "allowed_scopes",
]


#: Demo users: name -> (password, roles). Printed at start: this is a demo, not a user store.
USERS: Final = {"alice": ("alice", ("admin",)), "bob": ("bob", ("user",))}

ACCESS_TTL: Final = 300

REFRESH_TTL: Final = 3600

AUDIENCE: Final = "demo-api"

ALGORITHM: Final = DEFAULT_ALGORITHM

#: The scopes the demo knows, and who may have them.
SCOPES: Final = {
    "profile": "your name and roles",
    "orders:read": "read orders",
    "orders:write": "change orders (admins only)",
}


def allowed_scopes(username: str) -> list[str]:
    admin = "admin" in USERS[username][1]
    return [scope for scope in SCOPES if admin or scope != "orders:write"]


class _Refresh(NamedTuple):
    """What a refresh token stands for."""

    username: str
    scope: str
    expires_at: float
    jkt: str | None  # the DPoP key it is bound to
    family: str | None  # the authorization code it descends from (RFC 6749 §4.1.2)


class DemoIssuer:
    """A tiny token issuer: signing keys with rotation, access and refresh tokens."""

    def __init__(self, issuer: str, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.clock = clock
        self._lock = threading.Lock()
        # kid -> (key, retire_at): a replaced key stays published until its tokens expire.
        self._keys: dict[str, tuple[PrivateKey, float]] = {}
        self._current = ""
        self._refresh: dict[str, _Refresh] = {}
        self.rotate()

    @property
    def kid(self) -> str:
        """The ``kid`` of the key tokens are signed with now."""
        return self._current

    def rotate(self) -> str:
        """Sign with a new key from now on and return its ``kid``.

        The old key stays published until the tokens it signed have expired."""
        with self._lock:
            now = self.clock()
            if self._current:
                key, _ = self._keys[self._current]
                self._keys[self._current] = (key, now + ACCESS_TTL + 60)
            self._current = f"demo-{uuid.uuid4().hex[:8]}"
            self._keys[self._current] = (generate_key(ALGORITHM), float("inf"))
            self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            return self._current

    def jwks(self) -> dict[str, Any]:
        """The JWKS document of the keys still published."""
        now = self.clock()
        return {
            "keys": [
                public_jwk(key, kid=kid, alg=ALGORITHM)
                for kid, (key, retire) in self._keys.items()
                if retire > now
            ]
        }

    def published_kids(self) -> list[str]:
        """The ``kid`` of each key still published."""
        return [key["kid"] for key in self.jwks()["keys"]]

    def access_token(
        self, username: str, scope: str | None = None, *, jkt: str | None = None
    ) -> str:
        """A signed access token; ``jkt`` binds it to a client's DPoP key (RFC 9449 §6.1)."""
        now = int(self.clock())
        roles = list(USERS[username][1])
        claims = {
            "iss": self.issuer,
            "sub": username,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ACCESS_TTL,
            "jti": uuid.uuid4().hex,
            "roles": roles,
            "scope": scope if scope is not None else " ".join(allowed_scopes(username)),
            "preferred_username": username.title(),
        }
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        key = self._keys[self._current][0]
        # RFC 9068 §2.1: access tokens are typed "at+jwt".
        return encode(claims, key, ALGORITHM, header={"typ": "at+jwt", "kid": self._current})

    def refresh_token(
        self,
        username: str,
        scope: str | None = None,
        *,
        jkt: str | None = None,
        family: str | None = None,
    ) -> str:
        """A refresh token, bound to a DPoP key with ``jkt``.

        A bound one can only be used with a proof of that key (RFC 9449 §5: a public client's
        refresh token is bound to its key). ``family`` names the grant it descends from (the
        authorization code), which can end it."""
        token = secrets.token_urlsafe(32)
        granted = scope if scope is not None else " ".join(allowed_scopes(username))
        with self._lock:
            self._refresh[token] = _Refresh(
                username, granted, self.clock() + REFRESH_TTL, jkt, family
            )
        return token

    def use_refresh_token(self, token: str, jkt: str | None = None) -> _Refresh | None:
        """What a refresh token grants; it is used up (rotation).

        The tokens issued for it carry on its ``family``. A bound one needs a proof of its key
        (``jkt``, from the request's DPoP proof)."""
        with self._lock:
            entry = self._refresh.get(token)
            if entry is None or (entry.jkt is not None and entry.jkt != jkt):
                return None
            del self._refresh[token]
        if entry.expires_at <= self.clock():
            return None
        return entry

    def end_family(self, family: str) -> None:
        """Drop every refresh token issued with ``family`` or refreshed from one that was."""
        with self._lock:
            self._refresh = {t: v for t, v in self._refresh.items() if v.family != family}

    def forget_user(self, username: str) -> None:
        """Drop every refresh token of ``username`` (at logout)."""
        with self._lock:
            self._refresh = {t: v for t, v in self._refresh.items() if v.username != username}

    def check_password(self, username: object, password: object) -> str | None:
        """The user's name when the password is right, else ``None`` (compared in constant time)."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        expected = USERS.get(username, ("\x00invalid", ()))[0]
        ok = hmac.compare_digest(password.encode(), expected.encode())
        return username if ok and username in USERS else None
