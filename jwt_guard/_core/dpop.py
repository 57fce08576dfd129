"""DPoP (RFC 9449): access tokens bound to a key the client proves it holds, on every request.

    Authorization: DPoP <token>   DPoP: <proof>
      ─► the token: the verifier's usual steps (the verified-token cache still serves it)
      ─► the proof, on every request (it is new each time):
           strict compact JWS parse (``parse``) ─► header: typ, alg, jwk (public only; parsed
           once per distinct header) ─► signature with that jwk ─► claims: jti, htm, htu, iat,
           ath, nonce
      ─► binding: the token's ``cnf.jkt`` == RFC 7638 thumbprint of the proof's jwk
      ─► replay: the proof's jti is accepted once (I/O: the verifier's drivers)

:meth:`DPoP.check` is sans-IO, like the rest of the core: it returns what the replay cache must
record, and ``Verifier.verify``/``averify`` do that I/O, as they consult the denylist. The
replay caches and the server nonces are in :mod:`.dpop_replay` (``MemoryReplayCache``,
``DPoPNonces``) and ``_sources.redis_stores`` (``RedisReplayCache``: every instance, one
``SET NX EX`` round trip).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import re
import urllib.parse
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .algorithms import ALGORITHMS
from .certificates import CERTIFICATE_CONFIRMATION, check_confirmation_value
from .claims import normalize_typ, numeric_date
from .dpop_replay import DPoPNonces, MemoryReplayCache, ReplayCache
from .errors import (
    ClaimError,
    ClaimInvalid,
    ConfigurationError,
    DPoPBoundTokenAsBearer,
    DPoPKeyMismatch,
    DPoPNonceRequired,
    DPoPProofMissing,
    DPoPProofReplayed,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    TokenBindingUnsupported,
    safe_value,
)
from .keys import JWK
from .parse import (
    DEFAULT_MAX_TOKEN_BYTES,
    b64url_decode,
    b64url_encode,
    parse_header,
    parse_json,
    split_compact,
)

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "DPoP",
    "Proof",
    "access_token_hash",
    "bound_thumbprint",
    "check_confirmation",
    "jwk_thumbprint",
    "normalize_htu",
    "quote_path",
    "request_url",
]

logger = logging.getLogger("jwt_guard")

#: RFC 9449 §4.3 (5), §11.6: asymmetric algorithms only. The default list is what the
#: identity providers that issue DPoP-bound tokens accept from clients.
DEFAULT_DPOP_ALGORITHMS: Final = ("ES256", "EdDSA", "Ed25519", "PS256", "RS256")
#: A proof is a header with a public key, five short claims and a signature: about 0.5 KiB with
#: an EC key, 2 KiB with a 4096-bit RSA key. The token's own limit bounds it before decoding.
MAX_PROOF_BYTES: Final = DEFAULT_MAX_TOKEN_BYTES
#: RFC 9449 §11.1: reject "unnecessarily large jti values". Real ones are 16-43 characters.
MAX_JTI_LENGTH: Final = 256
#: Distinct proof headers remembered after their checks passed. A client signs every proof
#: with the same key, so its header segment repeats: the key is loaded once, not per request.
HEADER_CACHE_SIZE: Final = 1024
#: RFC 9449 §11.1: accept proofs "only for a limited time after their creation (preferably
#: ... seconds or minutes)".
DEFAULT_MAX_AGE: Final = 60
MAX_MAX_AGE: Final = 600

#: RFC 7638 §3.2: the required members of each key type, the only ones hashed.
_THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
_DPOP_TYP: Final = "dpop+jwt"
# RFC 3986 §6.2.2.2: percent-encoded octets; those of unreserved characters are decoded.
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: RFC 6455 §3: a WebSocket URI names the same origin server as its http(s) twin; a handshake
#: is an HTTP GET to it (see docs/guides/dpop.md).
_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: RFC 3986 §2: a URI has no space and no control character (percent-encoded they are fine).
_SPACE_OR_CONTROL: Final = re.compile(r"[\x00-\x20\x7f-\x9f]")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url (``cnf.jkt``, RFC 9449 §6.1).

    Only the required members of the key type, in lexicographic order, without whitespace
    (RFC 7638 §3.2-3.3); raises ``ValueError`` for a key type it does not know.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError("unsupported key type for a thumbprint")
    required: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"JWK member {name!r} is missing")
        required[name] = value
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(token: str | bytes) -> str:
    """``ath``: base64url SHA-256 of the access token's ASCII (RFC 9449 §4.2)."""
    data = token if isinstance(token, bytes) else token.encode("ascii", "surrogateescape")
    return b64url_encode(hashlib.sha256(data).digest())


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 §5.2.4, on an absolute path.
    segments = path.split("/")
    output: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
            continue
        if i == last:
            output.append("")
    return "/".join(output)


# Memoized: a client names the same few URLs in its proofs, and the request's own URL repeats;
# bounded, as an htu is the client's to choose (a proof is at most MAX_PROOF_BYTES).
@functools.lru_cache(maxsize=512)
def normalize_htu(url: str) -> str | None:
    """An http(s) URL without query and fragment, normalized for comparison; ``None`` if it
    is not one.

    RFC 9449 §4.3: syntax-based (RFC 3986 §6.2.2: case, percent-encoding, dot segments) and
    scheme-based (§6.2.3: default port, empty path) normalization before comparing ``htu``.
    ``ws``/``wss`` count as ``http``/``https`` (a WebSocket handshake is an HTTP GET).
    """
    if _SPACE_OR_CONTROL.search(url):
        # urlsplit strips leading and trailing blanks and drops tabs and newlines anywhere
        # (WHATWG URL): "https://a/b\n" would pass as "https://a/b". A URL never holds them.
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or a broken IPv6 literal
        return None
    scheme = _SCHEMES.get(parts.scheme.lower())
    host = parts.hostname
    if scheme is None or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = _remove_dot_segments(_PERCENT.sub(_percent, parts.path)) if parts.path else "/"
    return f"{scheme}://{host}{path or '/'}"


#: RFC 3986 §3.3: characters a path segment may hold as they are (pchar without the
#: unreserved ones, which ``quote`` leaves alone anyway), plus the "/" between segments.
_PATH_SAFE: Final = "/:@!$&'()*+,;="


def quote_path(raw: bytes) -> str:
    """A decoded path (ASGI ``path`` as UTF-8, WSGI ``PATH_INFO`` as latin-1 bytes) encoded
    back for the ``htu`` comparison, when the server did not hand over the path as received."""
    return urllib.parse.quote(raw, safe=_PATH_SAFE)


def request_url(scheme: str, host: str, path: str, external_url: str | None = None) -> str:
    """The target URI of a request for the ``htu`` check (RFC 9110 §7.1): ``path`` is the
    path as received (query dropped); ``external_url`` replaces scheme and host behind a
    proxy, and its own path is put in front."""
    path = path.split("?", 1)[0] or "/"
    if external_url is not None:
        return external_url.rstrip("/") + path
    return f"{scheme}://{host}{path}"


def bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The token's ``cnf.jkt`` (RFC 9449 §6.1, RFC 7800 §3.1), ``None`` when not DPoP-bound."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, Mapping):
        raise ClaimInvalid()  # RFC 7800 §3.1: "cnf" is a JSON object
    jkt = cnf.get("jkt")
    if jkt is None:
        return None  # bound by another method (mTLS "x5t#S256", ...): not ours to judge
    if not isinstance(jkt, str) or not jkt:
        raise ClaimInvalid()
    return jkt


def check_confirmation(cnf: object, dpop: bool, mtls: bool = False) -> None:
    """Refuse a token bound to a key (``cnf``) when this verifier cannot check the binding.

    RFC 7800 §3.1, RFC 9449 §7.2: a sender-constrained token accepted without its proof of
    possession is a bearer token again, whoever stole it. ``jkt`` is checked with ``dpop``
    (RFC 9449 §6.1), ``x5t#S256`` with ``mtls`` (RFC 8705 §3.1, against the client certificate
    on every request: ``_core.certificates``); any other member is refused. A token carrying
    both is held to both: each is a constraint its issuer put on it. Run once, at fresh
    verification.
    """
    if not isinstance(cnf, Mapping):
        raise ClaimInvalid(detail={"claim": "cnf", "reason": "not a JSON object (RFC 7800 §3.1)"})
    if not dpop and "jkt" in cnf:
        raise DPoPBoundTokenAsBearer(
            detail={"reason": "the token has cnf.jkt and this verifier has no dpop=DPoP()"}
        )
    checked = ("jkt",) * dpop + (CERTIFICATE_CONFIRMATION,) * mtls
    unchecked = sorted(name for name in cnf if name not in checked)
    if unchecked:
        reason = "cnf names a binding this verifier cannot check"
        if CERTIFICATE_CONFIRMATION in unchecked:
            reason += " (x5t#S256: Verifier(mtls=True) and a client certificate source)"
        raise TokenBindingUnsupported(detail={"reason": reason, "cnf": safe_value(unchecked)})
    if mtls and CERTIFICATE_CONFIRMATION in cnf:
        check_confirmation_value(cnf[CERTIFICATE_CONFIRMATION])


# -- the proof (RFC 9449 §4.3) -------------------------------------------------------------------


_REPLAYED: Final = {"reason": "this proof's jti was already accepted (RFC 9449 §11.1)"}


class Proof(NamedTuple):
    """A proof that passed every check but replay: what the replay cache must record."""

    jkt: str
    replay_key: str
    ttl: int
    #: When no instance accepts it any more (``iat + max_age + 2 * leeway``): the same for
    #: every check of one proof, whenever it is made.
    expires: float = 0.0

    def ttl_at(self, now: float) -> int:
        """The replay entry's ttl when recorded at ``now``."""
        return _replay_ttl(self.expires, now)


def _replay_ttl(expires: float, now: float) -> int:
    """Whole seconds from ``now`` to strictly past ``expires`` (floor + 1, not ceil: an entry
    is gone at its ``until``, and with leeway=0 the last accepted instant is ``expires``)."""
    return max(1, math.floor(expires - now) + 1)


def _check_replay_signature(replay: ReplayCache) -> None:
    """A ReplayCache of your own written before the ``jkt`` argument fails at start-up, not
    with a 500 on the first DPoP request."""
    for method in (replay.first_use, replay.afirst_use):
        try:
            inspect.signature(method).bind("key", 1, "jkt")
        except TypeError as exc:
            raise ConfigurationError(
                f"{type(replay).__name__}.{method.__name__} must take (key, ttl, jkt): "
                "jkt is the proof key's thumbprint, whose share the proof counts in"
            ) from exc
        except ValueError:  # no signature to read (a builtin): let it be
            pass


class _ProofHeader(NamedTuple):
    alg: str
    key: JWK
    jkt: str


def _origin(normalized: str) -> str:
    # "https://h:8443/p" -> "https://h:8443" (a normalize_htu result always has a path)
    return normalized[: normalized.index("/", normalized.index("//") + 2)]


def _allowed_hosts(hosts: object) -> frozenset[str]:
    """The origins the ``allowed_hosts`` names give with http and https, as
    :func:`normalize_htu` spells them (a default port is dropped for its own scheme only)."""
    if isinstance(hosts, str) or not isinstance(hosts, Collection) or not hosts:
        raise ConfigurationError("allowed_hosts must be a non-empty list of host names")
    allowed: set[str] = set()
    for host in hosts:
        urls = [normalize_htu(f"{s}://{host}/") if isinstance(host, str) else None for s in _PORTS]
        if None in urls or "/" in host or "@" in host:
            raise ConfigurationError(f"allowed_hosts: {host!r} is not a host name[:port]")
        allowed.update(_origin(url) for url in urls if url is not None)
    return frozenset(allowed)


_PORTS: Final = ("http", "https")


def _invalid(reason: str, **facts: Any) -> InvalidDPoPProof:
    # ``reason`` names the rule broken (a fixed text); ``facts`` are safe, non-secret values
    # (the request's method, a header's alg). The developer sees them (log, on_error); the
    # client gets the fixed description only, and nothing of the proof.
    return InvalidDPoPProof(detail={"reason": reason, **facts})


@dataclass(frozen=True, eq=False)
class DPoP:
    """DPoP settings of a :class:`Verifier` (RFC 9449); ``Verifier(..., dpop=DPoP())``.

    ``required``: refuse Bearer tokens altogether (otherwise both schemes are accepted, and a
    DPoP-bound token is still refused as Bearer, RFC 9449 §7.2). ``algorithms``: the proof
    algorithms accepted, asymmetric only. ``max_age``: how old a proof's ``iat`` may be, in
    seconds (plus the verifier's leeway). ``replay``: a :class:`MemoryReplayCache` (the
    default) or a :class:`RedisReplayCache`. ``nonce``: a :class:`DPoPNonces` to require
    server nonces. ``external_url``: the public base URL (``https://api.example.com``) when the
    app sits behind a proxy, for the ``htu`` check. ``allowed_hosts``: without
    ``external_url``, the request URL is built from the client's ``Host`` header; this lists
    the names (``"api.example.com"``, ``"api.example.com:8443"``) that are accepted there.
    """

    required: bool = False
    algorithms: Sequence[str] = DEFAULT_DPOP_ALGORITHMS
    max_age: float = DEFAULT_MAX_AGE
    replay: ReplayCache | None = None
    nonce: DPoPNonces | None = None
    external_url: str | None = None
    allowed_hosts: Collection[str] | None = None
    _headers: dict[str, _ProofHeader] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.required, bool):
            raise ConfigurationError("required must be True or False")
        algs = (self.algorithms,) if isinstance(self.algorithms, str) else self.algorithms
        try:
            algs = tuple(algs)
        except TypeError:
            algs = ()
        if not algs:
            raise ConfigurationError("DPoP algorithms must list at least one algorithm")
        for alg in algs:
            spec = ALGORITHMS.get(alg) if isinstance(alg, str) else None
            if spec is None or spec.family == "HMAC":
                # RFC 9449 §4.3 (5), §11.6: a registered asymmetric algorithm, never "none".
                raise ConfigurationError(
                    f"DPoP algorithm {alg!r} is not an asymmetric algorithm jwt_guard supports"
                )
        object.__setattr__(self, "algorithms", tuple(dict.fromkeys(algs)))
        if (
            isinstance(self.max_age, bool)
            or not isinstance(self.max_age, (int, float))
            or not 0 < self.max_age <= MAX_MAX_AGE
        ):
            raise ConfigurationError(
                f"max_age must be a positive number of seconds, at most {MAX_MAX_AGE}"
            )
        if self.replay is None:
            object.__setattr__(self, "replay", MemoryReplayCache())
        elif not isinstance(self.replay, ReplayCache):
            raise ConfigurationError("replay must be a MemoryReplayCache or a RedisReplayCache")
        else:
            _check_replay_signature(self.replay)
        if self.nonce is not None and not isinstance(self.nonce, DPoPNonces):
            raise ConfigurationError("nonce must be a DPoPNonces")
        if self.external_url is not None:
            base = normalize_htu(self.external_url) if isinstance(self.external_url, str) else None
            if base is None or urllib.parse.urlsplit(self.external_url).query:
                raise ConfigurationError("external_url must be an http(s) URL like https://a.b")
            object.__setattr__(self, "external_url", base.rstrip("/"))
        if self.allowed_hosts is not None:
            object.__setattr__(self, "allowed_hosts", _allowed_hosts(self.allowed_hosts))
            if self.external_url is not None:
                raise ConfigurationError("give external_url or allowed_hosts, not both")

    @property
    def algs(self) -> str:
        """The ``algs`` parameter of a ``DPoP`` challenge (RFC 9449 §7.1)."""
        return " ".join(self.algorithms)

    @property
    def replay_cache(self) -> ReplayCache:
        """The cache that remembers each proof's ``jti`` while the proof is fresh."""
        assert self.replay is not None  # set in __post_init__
        return self.replay

    # -- the checks (no I/O) -------------------------------------------------------------------

    def check(
        self,
        claims: Mapping[str, Any],
        token: str | bytes,
        proof: str | None,
        method: str | None,
        url: str | None,
        now: float,
        leeway: float,
    ) -> Proof | None:
        """The DPoP step for one verified access token (its ``claims``).

        ``proof is None`` means the token came with the ``Bearer`` scheme: refused when it is
        DPoP-bound (RFC 9449 §7.2) or when DPoP is ``required``. Otherwise the proof must pass
        RFC 9449 §4.3 and carry the key the token is bound to. Returns what the replay cache
        must record (``None`` for an accepted Bearer token).
        """
        jkt = bound_thumbprint(claims)
        if proof is None:
            if jkt is not None:
                raise DPoPBoundTokenAsBearer(  # RFC 9449 §7.2: no downgrade to Bearer
                    detail={"reason": "the token has cnf.jkt; send it with the DPoP scheme"}
                )
            if self.required:
                raise DPoPProofMissing(detail={"reason": "DPoP is required; Bearer is refused"})
            return None
        checked = self.check_proof(proof, token, method, url, now, leeway)
        if jkt is None or jkt != checked.jkt:
            # RFC 9449 §4.3 (12), §6: the proof's key must be the one the token is bound to;
            # a token bound to no key cannot be used with the DPoP scheme.
            reason = "the token is not DPoP-bound" if jkt is None else "cnf.jkt != proof key"
            raise DPoPKeyMismatch(detail={"reason": reason})
        return checked

    def check_proof(
        self,
        proof: str,
        token: str | bytes | None,
        method: str | None,
        url: str | None,
        now: float,
        leeway: float,
    ) -> Proof:
        """RFC 9449 §4.3 (2)-(12, ath) for one proof; the binding and replay are the caller's.

        ``token`` is the access token the proof goes with (its ``ath`` is checked); ``None``
        at a token endpoint, where the proof comes before any token (RFC 9449 §5).
        """
        if method is None or url is None:
            raise ConfigurationError("a DPoP proof is checked against method= and url=")
        try:
            # §4.3 (2): a single, well-formed JWT, through the same strict parser as tokens.
            h64, p64, s64 = split_compact(proof, MAX_PROOF_BYTES)
            header = self._headers.get(h64)
            if header is None:
                header = self._check_header(h64)
            claims = parse_json(b64url_decode(p64))
            signature = b64url_decode(s64)
        except InvalidDPoPProof:
            raise
        except InvalidToken as exc:
            raise _invalid("not a well-formed compact JWS (RFC 9449 §4.3 (2))") from exc
        signing_input = proof[: len(h64) + 1 + len(p64)].encode("ascii")
        try:
            ok = header.key.verify(header.alg, signing_input, signature)
        except (ValueError, TypeError) as exc:
            raise _invalid("the signature does not verify with the jwk") from exc
        if not ok:
            raise _invalid("the signature does not verify with the jwk")  # §4.3 (6)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise _invalid(f"jti must be a string of 1 to {MAX_JTI_LENGTH} characters")  # §11.1
        if claims.get("htm") != method:
            raise _invalid("htm is not the request method", expected=method)  # §4.3 (8)
        expected = normalize_htu(url)
        if expected is None:
            # The request's own URL is no http(s) URL (a Host header such as "x:99999" or
            # "[::1"): nothing to compare htu with, so never "equal" (None == None).
            raise InvalidRequest(
                code="request_url_invalid",
                description="The request URL is invalid.",
                detail={"reason": "the request URL is not an http(s) URL; check the Host header"},
            )
        if self.allowed_hosts is not None and _origin(expected) not in self.allowed_hosts:
            # The Host header is the client's to choose: only the configured names count.
            raise InvalidRequest(
                code="host_not_allowed",
                description="The request's host is not allowed.",
                detail={"reason": "the Host header is not in DPoP(allowed_hosts=...)"},
            )
        htu = claims.get("htu")
        got = normalize_htu(htu) if isinstance(htu, str) else None
        if got is None or got != expected:
            raise _invalid("htu is not the request URL", expected=url)  # §4.3 (9)
        try:
            iat = numeric_date(claims, "iat")
        except ClaimError as exc:
            raise _invalid("iat is not a NumericDate") from exc
        # §4.3 (11), §11.1: created within max_age (plus the leeway for clock skew).
        if iat is None:
            raise _invalid("iat is missing")
        if iat > now + leeway or iat < now - leeway - self.max_age:
            raise _invalid(
                "iat is outside the accepted window",
                age=round(now - iat, 3),
                max_age=self.max_age,
                leeway=leeway,
            )
        if token is not None and claims.get("ath") != access_token_hash(token):
            raise _invalid("ath is not the hash of this access token")  # §4.3 (12), §7
        if self.nonce is not None and not self.nonce.valid(claims.get("nonce"), now, leeway):
            # §4.3 (10), §9, §11.3: a nonce we issued, still fresh; the answer carries a new one.
            reason = "nonce missing" if "nonce" not in claims else "nonce unknown or stale"
            raise DPoPNonceRequired(nonce=self.nonce.issue(now), detail={"reason": reason})
        # §11.1: remember the jti while the proof could be accepted, hashed (bounded key, no
        # client character reaches the store) and scoped by the key, so one client's jti
        # never blocks another's. One more leeway as margin: another instance sharing the
        # store, whose clock is up to that much behind ours, still accepts it that long.
        expires = iat + self.max_age + 2 * leeway
        digest = hashlib.sha256(f"{header.jkt}\x00{jti}".encode("utf-8", "surrogatepass"))
        key = "dpop:" + digest.hexdigest()
        return Proof(header.jkt, key, _replay_ttl(expires, now), expires)

    def _check_header(self, h64: str) -> _ProofHeader:
        header = parse_header(h64)
        typ = header.get("typ")
        if not isinstance(typ, str) or normalize_typ(typ) != _DPOP_TYP:
            raise _invalid("typ must be dpop+jwt")  # §4.3 (4), §11.5: explicit typing
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _invalid(  # §4.3 (5), §11.6: asymmetric, configured, never "none"
                "alg is not an accepted proof algorithm", accepted=list(self.algorithms)
            )
        if "crit" in header or ("b64" in header and header["b64"] is not True):
            raise _invalid("crit or b64 in the header (no extension is understood)")
        jwk = header.get("jwk")
        if not isinstance(jwk, Mapping):
            raise _invalid("jwk (the public key) is missing")
        try:
            # The same loading as configured keys: private members refused (§4.3 (7)), RSA
            # size and exponent, EC point on the curve, no symmetric key (§4.3 (5)).
            key = JWK.from_dict(jwk, allow_symmetric=False)
            jkt = jwk_thumbprint(jwk)
        except ValueError as exc:
            raise _invalid(f"jwk is not an acceptable public key: {exc}") from exc
        if not key.fits(alg):
            raise _invalid("the jwk does not fit alg", alg=alg)
        parsed = _ProofHeader(alg, key, jkt)
        headers = self._headers
        if len(headers) >= HEADER_CACHE_SIZE:
            headers.clear()
        headers[h64] = parsed
        return parsed

    # -- the replay step (the drivers' I/O) ----------------------------------------------------

    # ``now``: the time of the record, when steps that take time (a denylist round trip, an
    # event loop behind) came between the check and it. The ttl is then reckoned from it, so
    # the entry's ``until`` is the proof's own (``expires``, rounded up) whenever it is made:
    # the memory cache's refusal of a dropped proof's replay compares these untils.

    def record(self, proof: Proof, now: float | None = None) -> None:
        """Accept the proof's jti once (sync driver); raises :class:`DPoPProofReplayed`."""
        ttl = proof.ttl if now is None else proof.ttl_at(now)
        if not self.replay_cache.first_use(proof.replay_key, ttl, proof.jkt):
            raise DPoPProofReplayed(detail=_REPLAYED)

    async def arecord(self, proof: Proof, now: float | None = None) -> None:
        """Async twin of :meth:`record`."""
        ttl = proof.ttl if now is None else proof.ttl_at(now)
        if not await self.replay_cache.afirst_use(proof.replay_key, ttl, proof.jkt):
            raise DPoPProofReplayed(detail=_REPLAYED)
