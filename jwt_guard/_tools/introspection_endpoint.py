"""The test kit's token introspection endpoint (RFC 7662): opaque tokens, client authentication,
RFC 9701 JWT responses.

:class:`IntrospectionEndpoint` holds the opaque tokens a :class:`~jwt_guard.testing.LocalIssuer`
issued, the tokens it revoked and the clients allowed to introspect, and answers one HTTP request
as plain data (method, URL, headers and body in; status, headers and body out), so the same
answer comes in-process (an httpx transport) and from the loopback server
(:class:`~jwt_guard.testing.JWKSServer`). It is an authorization server for tests, strict where
a real one is: every caller authenticates (RFC 7662 §2.1) by the one method it registered,
``client_secret_basic``, ``client_secret_post`` or ``private_key_jwt`` (RFC 7523 §2.2), and a
bad client is a 401 ``invalid_client`` (RFC 7662 §2.3, RFC 6749 §5.2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote_plus

import jwt

from .signing import dpop_jwk

__all__ = [
    "AUTH_METHODS",
    "CLIENT_ASSERTION_TYPE",
    "INTROSPECTION_JWT",
    "Answer",
    "IntrospectionClient",
    "IntrospectionEndpoint",
]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
#: RFC 7523 §2.2.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: RFC 9701 §4 (the Accept header) and §5 (the response's Content-Type; ``typ`` without the
#: ``application/`` prefix).
INTROSPECTION_JWT = "application/token-introspection+jwt"
#: A form with a token and a client assertion is a few KiB; anything bigger is refused (413).
MAX_REQUEST_BODY = 64 * 1024
#: The clock skew a client assertion's ``exp`` and ``nbf`` are allowed (seconds).
ASSERTION_LEEWAY = 30
# The signature algorithms a client's key may sign its assertion with, by key type.
_ASSERTION_ALGS = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}


class Answer(NamedTuple):
    """An HTTP answer as plain data."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class IntrospectionClient:
    """A client allowed to introspect, and the one way it authenticates."""

    client_id: str
    auth_method: str
    client_secret: str | None = field(default=None, repr=False)
    jwk: Mapping[str, Any] | None = None  # private_key_jwt: the client's public key


def _json(status: int, document: Mapping[str, Any], **headers: str) -> Answer:
    body = json.dumps(document, separators=(",", ":")).encode()
    # RFC 6749 §5.1 and RFC 7662 §2.2: answers about tokens are never cached.
    return Answer(
        status,
        {"Content-Type": "application/json", "Cache-Control": "no-store", **headers},
        body,
    )


def _error(status: int, code: str) -> Answer:
    if status == 401:
        # RFC 6749 §5.2: a 401 for a failed client authentication names the scheme.
        return _json(401, {"error": code}, **{"WWW-Authenticate": 'Basic realm="introspection"'})
    return _json(status, {"error": code})


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _token_key(token: str) -> str:
    # Revoked tokens are remembered by hash: the set never holds a usable token.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class IntrospectionEndpoint:
    """Opaque tokens, revocations and clients, and the RFC 7662 answer to one request.

    ``issuer`` and ``clock`` are read at each use (a served issuer changes its URL; tests move
    the clock). ``sign`` makes a JWT with the issuer's current key from a payload and a ``typ``;
    ``jwt_claims`` gives the claims of a JWT the issuer signed (signature checked only), else
    ``None``: such a JWT is introspected as well, as real authorization servers do.
    """

    def __init__(
        self,
        *,
        issuer: Callable[[], str],
        clock: Callable[[], float],
        sign: Callable[[Mapping[str, Any], str], str],
        jwt_claims: Callable[[str], Mapping[str, Any] | None],
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        self._sign = sign
        self._jwt_claims = jwt_claims
        self._tokens: dict[str, dict[str, Any]] = {}
        self._revoked: set[str] = set()
        self._clients: dict[str, IntrospectionClient] = {}
        #: jti of the client assertions seen (one use each), with when each may be forgotten:
        #: once its assertion expired, which the exp check refuses anyway.
        self._assertions: dict[str, float] = {}
        self._lock = threading.Lock()
        #: Introspection requests answered (every status), in-process and served.
        self.requests = 0

    # -- tokens ---------------------------------------------------------------------------

    def issue(self, claims: Mapping[str, Any]) -> str:
        """A new opaque token standing for ``claims`` (random, 256 bits)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = dict(claims)
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._revoked.add(_token_key(token))

    def response(self, token: str) -> dict[str, Any]:
        """The RFC 7662 §2.2 response for ``token``: its claims with ``active: true``, or only
        ``active: false`` for a token unknown, revoked, expired or not yet valid (§2.2: no more
        is said about an inactive token)."""
        claims: Mapping[str, Any] | None
        with self._lock:
            claims = self._tokens.get(token)
            revoked = _token_key(token) in self._revoked
        if claims is None and token.count(".") == 2:
            claims = self._jwt_claims(token)
        if claims is None or revoked:
            return {"active": False}
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, (int, float)) and exp <= now:
            return {"active": False}
        if isinstance(nbf, (int, float)) and nbf > now:
            return {"active": False}
        # RFC 9449 §6.2: a DPoP-bound token (cnf.jkt) is said to be of type DPoP, as
        # oidc-provider says it; "active" is the endpoint's own, never a claim's (review R27B).
        cnf = claims.get("cnf")
        bound = isinstance(cnf, Mapping) and "jkt" in cnf
        response = {"token_type": "DPoP" if bound else "Bearer", **claims}
        response["active"] = True
        return response

    # -- clients --------------------------------------------------------------------------

    def register(
        self,
        client_id: str,
        *,
        client_secret: str | None = None,
        public_key: Any = None,
        auth_method: str | None = None,
    ) -> IntrospectionClient:
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("client_id must be a non-empty string")
        if auth_method is None:
            auth_method = "private_key_jwt" if public_key is not None else "client_secret_basic"
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {AUTH_METHODS}")
        jwk: dict[str, Any] | None = None
        if auth_method == "private_key_jwt":
            if public_key is None or client_secret is not None:
                raise ValueError("private_key_jwt takes public_key= (a key or a JWK), no secret")
            try:
                jwk = dict(public_key) if isinstance(public_key, Mapping) else dpop_jwk(public_key)
            except (TypeError, AttributeError):
                jwk = {}
            if jwk.get("kty") not in _ASSERTION_ALGS:
                raise ValueError("public_key must be an RSA, EC or OKP key, or its public JWK")
            for private in ("d", "p", "q", "dp", "dq", "qi", "oth"):
                jwk.pop(private, None)  # a private JWK given: only its public part is kept
        elif not client_secret or public_key is not None:
            raise ValueError(f"{auth_method} takes client_secret= (a non-empty string), no key")
        client = IntrospectionClient(client_id, auth_method, client_secret, jwk)
        with self._lock:
            self._clients[client_id] = client
        return client

    # -- HTTP -----------------------------------------------------------------------------

    def answer(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The answer to one HTTP request at the endpoint ``url`` (``headers``: lower-case
        names)."""
        with self._lock:
            self.requests += 1
        if method != "POST":  # RFC 7662 §2.1
            return Answer(405, {"Allow": "POST", "Content-Length": "0"}, b"")
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded" or len(body) > MAX_REQUEST_BODY:
            return _error(400, "invalid_request")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return _error(400, "invalid_request")
        form = dict(pairs)
        if len(form) != len(pairs):  # RFC 6749 §3.2: no parameter more than once
            return _error(400, "invalid_request")
        try:
            client = self._authenticate(url, headers, form)
        except _Refused as refused:
            return refused.answer
        token = form.get("token")
        if not token:  # RFC 7662 §2.1: token is required
            return _error(400, "invalid_request")
        document = self.response(token)
        if not _accepts_jwt(headers.get("accept", "")):
            return _json(200, document)
        # RFC 9701 §5: a JWT signed by the authorization server, the response in
        # token_introspection, for the client that asked (aud); no sub or exp at the top.
        payload = {
            "iss": self._issuer(),
            "aud": client.client_id,
            "iat": int(self._clock()),
            "token_introspection": document,
        }
        signed = self._sign(payload, "token-introspection+jwt").encode("ascii")
        return Answer(200, {"Content-Type": INTROSPECTION_JWT, "Cache-Control": "no-store"}, signed)

    def _authenticate(
        self, url: str, headers: Mapping[str, str], form: Mapping[str, str]
    ) -> IntrospectionClient:
        """The client that authenticated, by exactly one method (RFC 6749 §2.3)."""
        authorization = headers.get("authorization", "")
        basic = authorization[:6].lower() == "basic "
        used = [
            name
            for name, present in (
                ("client_secret_basic", basic),
                ("client_secret_post", "client_secret" in form),
                ("private_key_jwt", "client_assertion" in form or "client_assertion_type" in form),
            )
            if present
        ]
        if len(used) > 1:
            raise _Refused(_error(400, "invalid_request"))
        if not used:
            raise _Refused(_error(401, "invalid_client"))
        method = used[0]
        if method == "client_secret_basic":
            client_id, secret = _basic_credentials(authorization[6:].strip())
            if "client_id" in form and form["client_id"] != client_id:
                raise _Refused(_error(401, "invalid_client"))
        elif method == "client_secret_post":
            client_id, secret = form.get("client_id", ""), form["client_secret"]
        else:
            client_id, secret = self._assertion_client(url, form), None
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or client.auth_method != method:
            raise _Refused(_error(401, "invalid_client"))
        if secret is not None:
            expected = (client.client_secret or "").encode("utf-8")
            if not hmac.compare_digest(secret.encode("utf-8", "surrogatepass"), expected):
                raise _Refused(_error(401, "invalid_client"))
        return client

    def _assertion_client(self, url: str, form: Mapping[str, str]) -> str:
        """The client a valid RFC 7523 §3 client assertion names, else a 401."""
        refused = _Refused(_error(401, "invalid_client"))
        assertion = form.get("client_assertion", "")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not assertion:
            raise refused
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise refused from None
        client_id = unverified.get("sub")
        if not isinstance(client_id, str):
            raise refused
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or client.jwk is None:
            raise refused
        if "client_id" in form and form["client_id"] != client_id:
            raise refused
        jwk = client.jwk
        allowed = [jwk["alg"]] if "alg" in jwk else list(_ASSERTION_ALGS[jwk["kty"]])
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=allowed[0]).key
            claims = jwt.decode(
                assertion,
                key,
                algorithms=allowed,
                # RFC 7523 §3: aud identifies the authorization server: its issuer or the
                # endpoint's URL.
                audience=[self._issuer(), url],
                issuer=client_id,
                options={
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                    "verify_exp": False,  # checked below, with the endpoint's clock
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise refused from None
        now = self._clock()
        exp, nbf, jti = claims["exp"], claims.get("nbf"), claims["jti"]
        if not isinstance(exp, (int, float)) or exp + ASSERTION_LEEWAY <= now:
            raise refused
        if isinstance(nbf, (int, float)) and nbf - ASSERTION_LEEWAY > now:
            raise refused
        if not isinstance(jti, str):
            raise refused
        with self._lock:
            if jti in self._assertions:  # RFC 7523 §3 item 7: one use per assertion
                raise refused
            # RFC 7523 §3 item 7: the server may keep the jti only until the assertion
            # expires. Without forgetting, memory grew with every call for ever.
            for seen in [j for j, until in self._assertions.items() if until <= now]:
                del self._assertions[seen]
            self._assertions[jti] = float(exp) + ASSERTION_LEEWAY
        return client_id


def _basic_credentials(encoded: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: ``client_id:client_secret``, each form-urlencoded, in base64."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _Refused(_error(401, "invalid_client")) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _Refused(_error(401, "invalid_client"))
    return unquote_plus(client_id), unquote_plus(secret)


def _accepts_jwt(accept: str) -> bool:
    """Whether the Accept header asks for an RFC 9701 JWT response (not with ``q=0``)."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != INTROSPECTION_JWT:
            continue
        q = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(q) > 0:
                return True
        except ValueError:
            continue
    return False
