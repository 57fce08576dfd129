"""Token introspection (RFC 7662) without I/O: the request, the response, the cache policy.

    opaque token ─► hash (the cache key: never the token) ─► cached entry? ─► principal / refusal
                                       └─► miss: the driver POSTs :func:`request_for` (one call
                                           per token in flight) ─► :func:`read_response` ─► entry

* **The request** (RFC 7662 §2.1): ``token`` and ``token_type_hint=access_token`` in a form
  body, the client authenticated by ``client_secret_basic`` (RFC 6749 §2.3.1, the id and the
  secret form-urlencoded before base64), ``client_secret_post`` or ``private_key_jwt`` (RFC 7523
  §2.2, an assertion signed for this endpoint, valid for a minute).
* **The response** (RFC 7662 §2.2): ``application/json``, an object whose ``active`` is a
  boolean. Anything else is the endpoint failing (503), never the token (401).
* **The cache** (:class:`IntrospectionCache`: an expiry per entry, lookups without a lock):
  an active token's principal until the earliest of its ``exp``, ``iat + max_token_age`` and
  the positive TTL; an inactive (or refused) one for the short negative TTL. An entry is never
  served past its expiry, not even while the endpoint is down: the next request asks again,
  and gets 503 if the endpoint cannot answer.

The drivers (``jwt_guard._sources.introspection``) do the HTTP call, the single flight and the
deadline; the verifier checks the response's claims with the rules of its tokens
(``_core.steps``).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import math
import re
import secrets
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from .errors import (
    ClaimInvalid,
    ClaimMissing,
    ConfigurationError,
    InvalidToken,
    MalformedToken,
    TokenInactive,
)
from .jwks_policy import FetchFailed
from .keyset import KeySet, KeySource
from .metrics import Metrics
from .parse import parse_json

__all__ = [
    "ASSERTION_LIFETIME",
    "AUTH_METHODS",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_NEGATIVE_TTL",
    "DEFAULT_POSITIVE_TTL",
    "MAX_POSITIVE_TTL",
    "TOKEN_KEY_SIZE",
    "ClientAuth",
    "Introspected",
    "IntrospectionCache",
    "IntrospectionSource",
    "NoKeys",
    "check_access_token",
    "check_agreement",
    "check_opaque_token",
    "check_token_type",
    "read_response",
    "token_key",
]

#: RFC 7591 §2 names of the client authentication methods supported.
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "private_key_jwt")
#: RFC 7523 §2.2 / §3: the client assertion's type, and how long one is valid (it is made for
#: one call; a minute covers clock skew between us and the server).
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME: Final = 60
#: How long an active token is answered from the cache at most. The server's answer can change
#: before ``exp`` (a revocation, a logout): this bounds how long a revoked token still passes,
#: the one thing introspection is chosen for, while a client making a request a second makes
#: one call a minute instead of sixty. Lower it for a tighter bound (0 < ttl <= 3600).
DEFAULT_POSITIVE_TTL: Final = 60.0
MAX_POSITIVE_TTL: Final = 3600.0
#: How long an inactive (or refused) token is answered from the cache: short, since a token the
#: server did not know yet (a replica behind) may become active, but long enough that a client
#: retrying a dead token in a loop does not make the endpoint's load.
DEFAULT_NEGATIVE_TTL: Final = 5.0
#: Tokens remembered. Each entry is a principal made of one answer: about 1 KiB for a typical
#: answer (some 10 MiB in all), but an answer may be up to ``max_bytes`` (64 KiB by default),
#: so the bound is ``cache_size`` x ``max_bytes``: 640 MiB of JSON at the defaults.
DEFAULT_CACHE_SIZE: Final = 10_000
_HINT: Final = "access_token"  # RFC 7662 §2.1 token_type_hint


#: RFC 6750 §2.1 b64token (the token68 of RFC 7235 §2.1): the only bytes an access token is
#: made of. Anything else is never sent to the endpoint (nor its call broken by a byte that
#: is not ASCII: a 503 any client could cause).
_B64TOKEN: Final = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
#: RFC 7662 §2.2 token_type values that name an access token: RFC 6750 Bearer, RFC 9449 §6.2
#: DPoP (case-insensitive, RFC 6749 §7.1), and the RFC 7009 hint / RFC 8693 URI for one.
_ACCESS_TOKEN_TYPES: Final = frozenset(
    {"bearer", "dpop", "access_token", "urn:ietf:params:oauth:token-type:access_token"}
)


def check_opaque_token(token: bytes) -> None:
    """Refuse a token that is no RFC 6750 b64token before it is introspected."""
    if _B64TOKEN.fullmatch(token) is None:
        raise MalformedToken(
            detail={"reason": "not an RFC 6750 b64token: never sent to the endpoint"}
        )


#: Members other than ``token_type`` in which servers say what kind of token they found (their
#: token's own claims echoed): Keycloak's ``typ`` ("Bearer"; "Refresh", "Offline", "ID"), Ory
#: Hydra / fosite's ``token_use`` ("access_token"; "refresh_token"), AWS Cognito's
#: ``token_use`` ("access"; "id"). The values naming an access token, and those naming another.
_ACCESS_MARKS: Final = {"typ": frozenset({"bearer"}), "token_use": _ACCESS_TOKEN_TYPES | {"access"}}
_OTHER_KINDS: Final = frozenset(
    {
        "refresh", "refresh_token", "offline", "id", "id_token", "logout",
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:id_token",
    }
)  # fmt: skip


def _not_an_access_token(claim: str, reason: str) -> ClaimInvalid:
    return ClaimInvalid(detail={"claim": claim, "reason": reason})


def check_token_type(claims: Mapping[str, Any]) -> None:
    """RFC 7662 §2.2 ``token_type``, when the response has one, must name an access token:
    the endpoint may find a refresh token under any hint (§2.1), and a refresh token is never
    for a resource server (RFC 6749 §1.5). A ``typ`` or ``token_use`` that names a refresh or
    ID token is refused too (review R27B-6: servers that say it there, not in token_type)."""
    if "token_type" in claims:
        value = claims["token_type"]
        if not isinstance(value, str) or value.lower() not in _ACCESS_TOKEN_TYPES:
            raise _not_an_access_token(
                "token_type", "not an access token type (RFC 7662 §2.2): Bearer or DPoP"
            )
    for name in _ACCESS_MARKS:
        value = claims.get(name)
        if isinstance(value, str) and value.lower() in _OTHER_KINDS:
            raise _not_an_access_token(
                name, "names a refresh or ID token, never for a resource server (RFC 6749 §1.5)"
            )


def check_access_token(claims: Mapping[str, Any], untyped: bool) -> None:
    """An opaque token's answer must say it is an access token (review R27B-6, R27B-3).

    :func:`check_token_type`, and unless ``untyped`` (``Introspection(
    untyped_answers_are_access_tokens=True)``) a member that names an access token:
    ``token_type`` (RFC 7662 §2.2 makes it optional, and oidc-provider leaves it out for
    refresh tokens, and only for them), else ``typ`` Bearer or ``token_use`` access_token. A
    ``token_type`` of DPoP needs ``cnf.jkt`` (RFC 9449 §6.2): without the key a DPoP-bound
    token would pass as a bearer token."""
    check_token_type(claims)
    kind = claims.get("token_type")
    if isinstance(kind, str) and kind.lower() == "dpop":
        cnf = claims.get("cnf")
        if not isinstance(cnf, Mapping) or not isinstance(cnf.get("jkt"), str):
            raise _not_an_access_token(
                "cnf", "token_type DPoP without cnf.jkt: the key it is bound to is unknown "
                "(RFC 9449 §6.2)",
            )  # fmt: skip
    if untyped or kind is not None:
        return
    for name, marks in _ACCESS_MARKS.items():
        value = claims.get(name)
        if isinstance(value, str) and value.lower() in marks:
            return
    raise ClaimMissing(
        detail={
            "claim": "token_type",
            "reason": "the answer does not say it is an access token (no token_type Bearer or "
            "DPoP, typ Bearer or token_use access_token; a refresh token's answer often has "
            "none): for a server that never says, Introspection("
            "untyped_answers_are_access_tokens=True)",
        }
    )


#: The members of an introspection response that describe a JWT's own claims (RFC 7662 §2.2
#: gives them the meaning of RFC 7519 §4.1, RFC 8705 §3.2 / RFC 9449 §6.2 that of ``cnf``):
#: when the response has one, the JWT verified locally must say the same.
_AGREEING: Final = ("iss", "sub", "exp", "aud", "cnf")


def _audiences(value: object) -> frozenset[str] | None:
    """``aud`` as a set (RFC 7519 §4.1.3: a string or an array of strings), else ``None``."""
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return None


def _same_claim(name: str, ours: object, theirs: object) -> bool:
    if name == "aud":
        return _audiences(ours) is not None and _audiences(ours) == _audiences(theirs)
    if name == "exp":
        numbers = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ours, theirs)
        )
        return numbers and ours == theirs
    return _kind(ours) == _kind(theirs) and ours == theirs


def _kind(value: object) -> str:
    """The JSON type of a claim's value (a principal's arrays and objects are read-only
    subclasses of list and dict; ``True == 1`` in Python, not in JSON)."""
    for kind in (bool, str, int, float, list, dict):
        if isinstance(value, kind):
            return "number" if kind in (int, float) else kind.__name__
    return type(value).__name__


def check_agreement(response: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """An introspection response about a JWT already verified locally (``introspect_jwts``):
    the question is only "still active?" (RFC 7662 §2.2: ``active`` is the one REQUIRED
    member), so the response is not judged again by the JWT rules (a minimal ``{"active":
    true}`` passes). But a member it does carry (``iss``, ``sub``, ``exp``, ``aud``, ``cnf``,
    ``client_id``) describes the token: one that disagrees with the JWT's claim means the
    server describes another token, and the token is refused (:class:`ClaimInvalid`).

    ``client_id`` is compared with the JWT's ``client_id`` (RFC 9068 §2.2), else its ``azp``
    (OpenID Connect Core §2), when it has either: many JWTs name their client in neither.
    ``token_type`` must name an access token, as for an opaque token (:func:`check_token_type`).
    """
    check_token_type(response)
    for name in _AGREEING:
        if name in response and (
            name not in claims or not _same_claim(name, claims[name], response[name])
        ):
            raise _disagrees(name)
    if "client_id" in response:
        ours = claims.get("client_id", claims.get("azp"))
        if ours is not None and not _same_claim("client_id", ours, response["client_id"]):
            raise _disagrees("client_id")


def _disagrees(name: str) -> ClaimInvalid:
    return ClaimInvalid(
        detail={
            "claim": name,
            "reason": "the introspection response says otherwise than the verified JWT "
            "(RFC 7662 §2.2: its members describe this token)",
        }
    )


#: The length of ``token_key``: a cache key begins with it (the judge's number follows).
TOKEN_KEY_SIZE: Final = 32


def token_key(token: bytes) -> bytes:
    """The cache key of a token: its SHA-256, so the cache (and a shared store) never holds a
    token someone could replay."""
    return hashlib.sha256(token).digest()


class ClientAuth:
    """How the resource server authenticates to the introspection endpoint (RFC 7662 §2.1:
    the endpoint requires it). Validated here; the secret is never shown in ``repr``."""

    def __init__(
        self,
        method: str,
        client_id: str,
        client_secret: str | None,
        private_key: Any,
        algorithm: str | None,
        key_id: str | None,
    ) -> None:
        if method not in AUTH_METHODS:
            raise ConfigurationError(f"auth_method must be one of {list(AUTH_METHODS)}")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        self.method = method
        self.client_id = client_id
        self._secret: str | None = None
        self._key: Any = None
        self._algorithm = ""
        self._kid = key_id
        if method == "private_key_jwt":
            if client_secret is not None:
                raise ConfigurationError(
                    "auth_method='private_key_jwt' signs with private_key=: drop client_secret="
                )
            self._key, self._algorithm = _signing_key(private_key, algorithm)
            if key_id is not None and (not isinstance(key_id, str) or not key_id):
                raise ConfigurationError("private_key_id must be a non-empty string")
        else:
            if private_key is not None:
                raise ConfigurationError(
                    f"private_key= is for auth_method='private_key_jwt', not {method!r}"
                )
            if not isinstance(client_secret, str) or not client_secret:
                raise ConfigurationError(
                    f"auth_method={method!r} needs client_secret= (the secret the authorization "
                    "server issued to this resource server), or auth_method='private_key_jwt' "
                    "with private_key="
                )
            self._secret = client_secret

    def __repr__(self) -> str:
        return f"ClientAuth({self.method!r}, client_id={self.client_id!r}, secret=**********)"

    def request(self, token: bytes, audience: str, now: float) -> tuple[bytes, dict[str, str]]:
        """The form body and headers of one introspection call for ``token``."""
        form: dict[str, str] = {"token": token.decode("ascii"), "token_type_hint": _HINT}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.method == "client_secret_basic":
            assert self._secret is not None
            # RFC 6749 §2.3.1: each is form-urlencoded (Appendix B) before the Basic scheme, so
            # a ':' in a client id, or a '%' in a secret, reaches the server as it is.
            user = urllib.parse.quote_plus(self.client_id)
            password = urllib.parse.quote_plus(self._secret)
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {encoded}"
        elif self.method == "client_secret_post":
            assert self._secret is not None
            form["client_id"] = self.client_id
            form["client_secret"] = self._secret
        else:
            form["client_id"] = self.client_id
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self.assertion(audience, now)
        return urllib.parse.urlencode(form).encode("ascii"), headers

    def assertion(self, audience: str, now: float) -> str:
        """RFC 7523 §3: iss = sub = the client id, aud = the endpoint, a fresh jti, a short exp."""
        # PyJWT makes it (never imported on the verification path of a JWT: only here).
        import jwt

        issued = int(now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(16),
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        headers = {"kid": self._kid} if self._kid is not None else None
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)


def _signing_key(key: Any, algorithm: str | None) -> tuple[Any, str]:
    """A private key for client assertions (a PEM or a ``cryptography`` private key) and its
    algorithm (given, else the one its type implies)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if key is None:
        raise ConfigurationError(
            "auth_method='private_key_jwt' needs private_key= (a PEM or a cryptography "
            "private key; its public key registered with the authorization server)"
        )
    if isinstance(key, (str, bytes)):
        data = key.encode() if isinstance(key, str) else key
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "private_key must be an unencrypted PEM private key (or a cryptography key)"
            ) from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigurationError("an RSA private_key must have at least 2048 bits")
        allowed: tuple[str, ...]
        implied, allowed = "RS256", ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name not in by_curve:
            raise ConfigurationError(f"EC curve {key.curve.name} is not supported for JWS")
        implied = by_curve[key.curve.name]
        allowed = (implied,)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        implied, allowed = "EdDSA", ("EdDSA",)
    else:
        raise ConfigurationError("private_key must be an RSA, EC or Ed25519 private key")
    chosen = implied if algorithm is None else algorithm
    if chosen not in allowed:
        raise ConfigurationError(
            f"private_key_algorithm={algorithm!r} does not fit the key: use one of {list(allowed)}"
        )
    return key, chosen


def read_response(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The response object of RFC 7662 §2.2, or :class:`FetchFailed` (the endpoint failing:
    503). ``active`` must be a JSON boolean: ``"true"`` is no answer we can stand behind."""
    mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime != "application/json":
        shown = mime[:60] or "none"
        raise FetchFailed(f"content type {shown}, not application/json (RFC 7662 §2.2)")
    try:
        # The token's own strict reading (_core.parse): a duplicate member ("active" twice:
        # json.loads takes the last, another reader the first) or NaN/Infinity is no answer.
        document = parse_json(body)
    except MalformedToken as exc:
        raise FetchFailed(f"response is not a JSON object: {exc.detail['reason']}") from exc
    if not isinstance(document.get("active"), bool):
        raise FetchFailed("response has no boolean 'active' (RFC 7662 §2.2)")
    return document


class Introspected(NamedTuple):
    """One cached answer: an accepted token's principal, or a refusal (its class, code and
    detail: raised anew on every hit, never the same exception object twice)."""

    principal: Any  # a Principal, or None for a refusal
    refusal: type[InvalidToken] | None
    code: str
    detail: Mapping[str, Any]
    #: The epoch second after which it must not be used (set by ``IntrospectionCache.put``).
    expires: float

    def outcome(self) -> Any:
        """The principal, or the refusal raised."""
        if self.refusal is not None:
            raise self.refusal(code=self.code, detail=dict(self.detail))
        return self.principal


def refusal_entry(exc: InvalidToken) -> Introspected:
    return Introspected(None, type(exc), exc.code, dict(exc.detail), 0.0)


def inactive_entry(detail: Mapping[str, Any]) -> Introspected:
    return Introspected(None, TokenInactive, TokenInactive.code, dict(detail), 0.0)


class IntrospectionCache:
    """Introspection answers by token hash, each until its own expiry, at most ``size``.

    Built like the verified-token cache (``_core.cache``): a C ``OrderedDict``, first in first
    out, so a lookup is one dict probe and a comparison with the clock, without a lock (only
    insertions and removals take it); an entry past its expiry is never returned, and is
    dropped when met. cachetools' ``TLRUCache``, made for an expiry per entry, cost 1.4 µs a
    lookup (its lock, its Python-level expiry and LRU bookkeeping), more than half of a cached
    answer's whole cost through the middleware; an answer that outlives its place is simply
    asked again, as a JWT is verified again."""

    def __init__(
        self,
        size: int,
        positive_ttl: float,
        negative_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._size = size
        self._entries: OrderedDict[bytes, Introspected] | None = OrderedDict() if size > 0 else None
        empty: dict[bytes, Introspected] = {}
        #: ``dict.get`` of the store, bound once.
        self._lookup: Callable[[bytes], Introspected | None] = (
            self._entries.get if self._entries is not None else empty.get
        )
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Introspected | None:
        """The entry for ``key`` if it is there and not past its expiry."""
        entry = self._lookup(key)
        if entry is None or self._clock() < entry.expires:
            return entry
        self._drop(key, entry)
        return None

    def _drop(self, key: bytes, entry: Introspected) -> None:
        entries = self._entries
        assert entries is not None
        with self._lock:
            if entries.get(key) is entry:  # not replaced by another thread meanwhile
                del entries[key]

    def _store(self, key: bytes, entry: Introspected) -> None:
        entries = self._entries
        assert entries is not None
        with self._lock:
            entries[key] = entry
            entries.move_to_end(key)  # a new answer for a known token is the newest entry
            if len(entries) > self._size:
                entries.popitem(last=False)

    def expiry(self, entry: Introspected, max_age: float | None) -> float:
        """Until when ``entry`` may answer: a refusal for the negative TTL; a principal until
        its ``exp``, ``iat + max_age`` or the positive TTL, whichever is first."""
        now = self._clock()
        if entry.principal is None:
            return now + self.negative_ttl
        claims = entry.principal.claims
        until = now + self.positive_ttl
        exp = claims.get("exp")
        if _number(exp):
            until = min(until, float(exp))
        iat = claims.get("iat")
        if max_age is not None and _number(iat):
            until = min(until, float(iat) + max_age)
        return until

    def put(self, key: bytes, entry: Introspected, max_age: float | None) -> Introspected:
        """Remember ``entry`` (with its expiry set); returns it."""
        entry = entry._replace(expires=self.expiry(entry, max_age))
        if self._entries is not None and entry.expires > self._clock():
            self._store(key, entry)
        return entry

    def cap(self, key: bytes, entry: Introspected, until: float) -> Introspected:
        """``entry`` (cached by ``put``) used until ``until`` at the latest."""
        if entry.expires <= until:
            return entry
        entry = entry._replace(expires=until)
        if self._entries is not None:
            if until > self._clock():
                self._store(key, entry)
            else:
                with self._lock:
                    self._entries.pop(key, None)
        return entry

    def clear(self) -> None:
        """Forget every answer."""
        if self._entries is not None:
            with self._lock:
                self._entries.clear()

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)

    def reset(self) -> None:
        """A fresh lock (in a forked child, where the parent's may be held for ever)."""
        self._lock = threading.Lock()


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


class IntrospectionSource(abc.ABC):
    """What the verifier asks an introspection endpoint (``jwt_guard.Introspection``): the
    cache, and one call per token in flight, sync and async."""

    #: Introspect compact JWTs too, after their local verification (see Introspection).
    introspect_jwts: bool = False
    cache: IntrospectionCache
    #: The endpoint for logs and details (no query, no user info).
    shown: str
    #: The ``iss`` a verifier without ``issuer=`` expects (from discovery), ``None``: any.
    pinned_issuers: tuple[str, ...] | None = None
    #: An answer that names no kind of token is taken for an access token's (see
    #: ``check_access_token``): only for a server that never says.
    untyped_answers_are_access_tokens: bool = False

    @abc.abstractmethod
    def introspect(
        self, token: bytes, key: bytes, admit: Callable[[dict[str, Any]], Introspected]
    ) -> Introspected:
        """The entry for ``token``: one call per token in flight, its answer cached.

        Others wait for the call in flight; its response is turned into an entry by ``admit``
        and cached. Raises ``IntrospectionUnavailable`` when the endpoint gives no usable answer
        in time."""

    @abc.abstractmethod
    async def aintrospect(
        self, token: bytes, key: bytes, admit: Callable[[dict[str, Any]], Introspected]
    ) -> Introspected:
        """:meth:`introspect` without blocking the event loop."""

    #: The verifier's instruments, when metrics are on (see ``use_metrics``).
    _metrics: Metrics | None = None

    def use_metrics(self, metrics: Metrics) -> None:
        """Count calls, their outcomes and durations on ``metrics`` (the verifier calls this)."""
        self._metrics = metrics

    def use_clock(self, clock: Callable[[], float]) -> None:  # noqa: B027 - optional hook
        """The verifier's clock (its time checks and the cache's expiries must agree)."""

    def use_issuer(  # noqa: B027 - optional hook
        self,
        keys: KeySource | None,
        issuers: frozenset[str] | None,
        algorithms: frozenset[str],
        own: bool,
        leeway: float,
    ) -> None:
        """The issuer the verifier introspects for (its keys verify RFC 9701 answers)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""

    async def aclose(self) -> None:  # noqa: B027
        """Release this loop's network resources."""


class NoKeys(KeySource):
    """The key source of a verifier that introspects every token (``keys`` not given): a JWT
    never reaches it (every token is introspected), and asking it is a bug."""

    published = True  # no algorithms are named either: none is ever checked

    def keys(self, kid: str | None) -> KeySet:
        raise AssertionError("a verifier without keys introspects every token")

    async def akeys(self, kid: str | None) -> KeySet:
        raise AssertionError("a verifier without keys introspects every token")

    def __repr__(self) -> str:
        return "NoKeys()"
