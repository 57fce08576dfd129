"""The one error tree of jwt_guard.

Every error carries a stable machine ``code``, the RFC 6750 §3.1 ``error`` it maps to (or
``None``), the HTTP ``status_code`` an adapter answers with, and a fixed ``description``. The
description never contains the token, a claim value, a key id or a URL: it is safe to send to the
client as it is.

``detail`` is for the developer and the operator (log lines, ``on_error``, the CLI, and the error
body only with ``debug=True``): a mapping of safe facts about *why* — which claim, expected versus
found for values that are not secret (``iss``, ``aud``, ``alg``, ``typ``, ``kid``, the key set's
kids), time claims against the clock and the leeway, needed versus present roles and scopes. It
never holds the token, a signature, a secret or other claim values. It costs nothing until it is
read: an error may be given a callable that builds it, called on the first read of ``detail``
only (a flood of refusals whose log lines are rate-limited away builds none).

    JWTGuardError
    ├── ConfigurationError            (also ValueError)  raised at start-up; per request: 500
    ├── AuthenticationRequired        401, no ``error``   token_missing
    ├── InvalidRequest                400 invalid_request multiple_tokens, header_malformed,
    │                                                     client_certificate_invalid
    ├── InvalidToken                  401 invalid_token
    │   ├── MalformedToken                                token_malformed
    │   ├── TokenTooLarge                                 token_too_large
    │   ├── AlgorithmNotAllowed                           algorithm_not_allowed
    │   ├── CriticalHeaderUnsupported                     critical_header_unsupported
    │   ├── TypeInvalid                                   type_invalid
    │   ├── KeyNotFound                                   key_not_found
    │   ├── InvalidSignature                              signature_invalid
    │   ├── TokenRevoked                                  token_revoked
    │   ├── TokenInactive                                 token_inactive
    │   ├── DPoPKeyMismatch                               dpop_key_mismatch
    │   ├── DPoPBoundTokenAsBearer                        dpop_bound_token_as_bearer
    │   ├── TokenBindingUnsupported                       token_binding_unsupported
    │   ├── TokenNotSenderConstrained                     token_not_sender_constrained
    │   ├── ClientCertificateMissing                      client_certificate_missing
    │   ├── CertificateBindingMismatch                    certificate_binding_mismatch
    │   ├── InvalidDPoPProof          invalid_dpop_proof  dpop_proof_invalid
    │   │   ├── DPoPProofMissing                          dpop_proof_missing
    │   │   ├── DPoPProofReplayed                         dpop_proof_replayed
    │   │   └── DPoPNonceRequired     use_dpop_nonce      dpop_nonce_required
    │   └── ClaimError
    │       ├── TokenExpired                              token_expired, token_too_old
    │       ├── TokenNotYetValid                          token_not_yet_valid
    │       ├── TokenIssuedInFuture                       token_issued_in_future
    │       ├── IssuerInvalid                             issuer_invalid
    │       ├── AudienceInvalid                           audience_invalid
    │       ├── ClaimMissing                              claim_missing
    │       └── ClaimInvalid                              claim_invalid
    ├── InsufficientUserAuthentication  401 insufficient_user_authentication  acr_not_satisfied
    │   └── AuthenticationTooOld                          authentication_too_old
    ├── TooManyRequests               429 + Retry-After
    │   └── DPoPRateLimited                               dpop_rate_limited
    ├── Forbidden                     403
    │   ├── InsufficientRole          (no ``error``)      insufficient_role
    │   ├── InsufficientScope         insufficient_scope  insufficient_scope
    │   ├── InsufficientAuthorizationDetails  insufficient_scope  insufficient_authorization_details
    │   └── CSRFFailed                (no ``error``)      csrf_failed
    └── ServiceUnavailable            503 + Retry-After
        ├── KeySourceUnavailable                          jwks_unavailable
        ├── DenylistUnavailable                           denylist_unavailable
        ├── IntrospectionUnavailable                      introspection_unavailable
        └── DPoPReplayUnavailable                         dpop_replay_unavailable
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

__all__ = [
    "AlgorithmNotAllowed",
    "AudienceInvalid",
    "AuthenticationRequired",
    "AuthenticationTooOld",
    "CSRFFailed",
    "CertificateBindingMismatch",
    "ClaimError",
    "ClaimInvalid",
    "ClaimMissing",
    "ClientCertificateMissing",
    "ConfigurationError",
    "CriticalHeaderUnsupported",
    "DPoPBoundTokenAsBearer",
    "DPoPKeyMismatch",
    "DPoPNonceRequired",
    "DPoPProofMissing",
    "DPoPProofReplayed",
    "DPoPRateLimited",
    "DPoPReplayUnavailable",
    "DenylistUnavailable",
    "Forbidden",
    "InsufficientRole",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "IntrospectionUnavailable",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "IssuerInvalid",
    "JWTGuardError",
    "KeyNotFound",
    "KeySourceUnavailable",
    "MalformedToken",
    "ServiceUnavailable",
    "TokenBindingUnsupported",
    "TokenExpired",
    "TokenInactive",
    "TokenIssuedInFuture",
    "TokenNotYetValid",
    "TokenRevoked",
    "TokenTooLarge",
    "TooManyRequests",
    "TypeInvalid",
]


#: Longest text kept from a token-supplied value in a detail (an ``iss`` or ``kid`` is short;
#: a long one is an attack or a bug, and a log line must stay a line).
MAX_DETAIL_TEXT: Final = 200
#: Most items kept from a list in a detail (kids of a key set, roles present...).
MAX_DETAIL_ITEMS: Final = 20

_JSON_TYPES: Final = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


#: What an error is given as its ``detail``: the facts, or a callable that builds them when
#: something reads them (the log line, ``debug``, ``on_error``, the CLI).
Detail: TypeAlias = "Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None"


def json_type(value: Any) -> str:
    """The JSON type of a parsed value: a safe fact about a claim whose value is not."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def safe_value(value: Any) -> Any:
    """A JSON-ready, bounded copy of a non-secret value for a ``detail``."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_DETAIL_TEXT else value[:MAX_DETAIL_TEXT] + "..."
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
        kept = [safe_value(v) for v in items[:MAX_DETAIL_ITEMS]]
        if len(items) > MAX_DETAIL_ITEMS:
            kept.append(f"... {len(items) - MAX_DETAIL_ITEMS} more")
        return kept
    # An object or anything else from a token: its JSON type is the safe fact.
    return f"<{json_type(value)}>"


def format_detail(detail: Mapping[str, Any]) -> str:
    """``key=value`` pairs for a log line or a terminal."""
    return " ".join(f"{key}={value!r}" for key, value in detail.items())


class JWTGuardError(Exception):
    """Base of every error jwt_guard raises."""

    code: str = "jwt_guard_error"
    error: str | None = None
    status_code: int = 500
    description: str = "The request could not be authenticated."
    #: Set by the adapters on an error of a request that used the DPoP scheme (RFC 9449
    #: §7.1): its answer carries the error in the ``DPoP`` challenge, not the ``Bearer`` one.
    dpop_scheme: bool = False

    #: The facts once built (``detail``), else ``None`` and ``_source`` says how to build them
    #: (class defaults: an app's subclass that skips ``__init__`` still has an empty detail).
    _built: dict[str, Any] | None = None
    _source: Detail = None

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        detail: Detail = None,
    ) -> None:
        # Only fixed, code-chosen texts are passed as the description; never data from the
        # token. Reasons go to ``detail``, built only from safe facts (see the module docstring).
        if description is not None:
            self.description = description
        if code is not None:
            self.code = code
        self._source = detail
        super().__init__(self.description)

    @property
    def detail(self) -> dict[str, Any]:
        """The safe facts of why (see the module docstring), built on the first read."""
        built = self._built
        if built is None:
            source = self._source
            try:
                if callable(source):
                    source = source()
                built = dict(source) if source else {}
            except Exception as exc:
                # Read inside the answer layer (the log line, debug, on_error): a builder that
                # trips (an app's, over a claim the token lacks) must not make the refusal a 500.
                built = {"detail_error": f"the detail builder raised {type(exc).__name__}"}
            self._built = built
        return built

    @detail.setter
    def detail(self, value: Mapping[str, Any] | None) -> None:
        self._built = dict(value) if value else {}

    def add_detail(self, key: str, value: Any) -> None:
        """``detail.setdefault(key, value)``, without building the detail before it is read."""
        if self._built is not None:
            self._built.setdefault(key, value)
            return
        source = self._source

        def built() -> Mapping[str, Any]:
            facts = dict((source() if callable(source) else source) or {})
            facts.setdefault(key, value)
            return facts

        self._source = built

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r})"


class ConfigurationError(JWTGuardError, ValueError):
    """A setting is missing or invalid; raised when the verifier or a key source is built."""

    code = "configuration_invalid"
    status_code = 500
    description = "jwt_guard is misconfigured."


class AuthenticationRequired(JWTGuardError):
    """No credentials in the request (RFC 6750 §3.1: no ``error`` attribute)."""

    code = "token_missing"
    status_code = 401
    description = "Authentication is required."


class InvalidRequest(JWTGuardError):
    """The request is malformed, e.g. it carries more than one token (RFC 6750 §2)."""

    code = "invalid_request"
    error = "invalid_request"
    status_code = 400
    description = "The request is malformed."


class InvalidToken(JWTGuardError):
    """The token is expired, revoked, malformed or otherwise not acceptable."""

    code = "token_invalid"
    error = "invalid_token"
    status_code = 401
    description = "The access token is invalid."


class MalformedToken(InvalidToken):
    """The token is not a well-formed compact JWS (RFC 7515 §7.1)."""

    code = "token_malformed"
    description = "The access token is malformed."


class TokenTooLarge(InvalidToken):
    """The token is longer than the configured limit; rejected before decoding."""

    code = "token_too_large"
    description = "The access token is too large."


class AlgorithmNotAllowed(InvalidToken):
    """The header ``alg`` is not one of the configured algorithms (RFC 8725 §3.1)."""

    code = "algorithm_not_allowed"
    description = "The token's signing algorithm is not allowed."


class CriticalHeaderUnsupported(InvalidToken):
    """The header lists a ``crit`` extension we do not implement (RFC 7515 §4.1.11)."""

    code = "critical_header_unsupported"
    description = "The token uses an unsupported critical header."


class TypeInvalid(InvalidToken):
    """The header ``typ`` does not match the expected type (RFC 8725 §3.11)."""

    code = "type_invalid"
    description = "The token type is not accepted."


class KeyNotFound(InvalidToken):
    """No trusted key fits the token's ``kid`` and ``alg``."""

    code = "key_not_found"
    description = "No trusted key matches the token."


class InvalidSignature(InvalidToken):
    """The signature does not verify with the selected key."""

    code = "signature_invalid"
    description = "The token signature is invalid."


class TokenRevoked(InvalidToken):
    """The token, or every token of its subject issued before a time, was revoked."""

    code = "token_revoked"
    description = "The token has been revoked."


class TokenInactive(InvalidToken):
    """The authorization server says the token is not active (RFC 7662 §2.2)."""

    code = "token_inactive"
    description = "The access token is not active."


class ClaimError(InvalidToken):
    """A registered claim is missing, of the wrong type, or has an unacceptable value."""

    code = "claim_invalid"
    description = "The token claims are invalid."


class TokenExpired(ClaimError):
    """``exp`` is in the past beyond the leeway, or ``iat`` is older than ``max_token_age``."""

    code = "token_expired"
    description = "The token has expired."


class TokenNotYetValid(ClaimError):
    """``nbf`` is in the future beyond the leeway."""

    code = "token_not_yet_valid"
    description = "The token is not valid yet."


class TokenIssuedInFuture(ClaimError):
    """``iat`` is in the future beyond the leeway."""

    code = "token_issued_in_future"
    description = "The token was issued in the future."


class IssuerInvalid(ClaimError):
    """``iss`` is not a configured issuer."""

    code = "issuer_invalid"
    description = "The token issuer is not trusted."


class AudienceInvalid(ClaimError):
    """``aud`` does not contain a configured audience."""

    code = "audience_invalid"
    description = "The token audience is not accepted."


class ClaimMissing(ClaimError):
    """A required claim is absent."""

    code = "claim_missing"
    description = "A required claim is missing from the token."


class ClaimInvalid(ClaimError):
    """A claim has the wrong JSON type or an out-of-range value."""

    code = "claim_invalid"
    description = "A token claim has an invalid value."


class InsufficientUserAuthentication(JWTGuardError):
    """The login behind the token is too weak or too old for the route (RFC 9470 §3)."""

    # A 401: the client gets a new token by signing the user in again, asking the
    # authorization server for ``acr_values`` and/or ``max_age`` (from the route's settings).

    code = "acr_not_satisfied"
    error = "insufficient_user_authentication"
    status_code = 401
    description = "A different authentication level is required."

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        acr_values: Iterable[str] = (),
        max_age: int | None = None,
        detail: Detail = None,
    ) -> None:
        super().__init__(description, code=code, detail=detail)
        self.acr_values: tuple[str, ...] = tuple(acr_values)
        self.max_age = max_age


class AuthenticationTooOld(InsufficientUserAuthentication):
    """The user's login (``auth_time``) is older than the route allows, or unknown."""

    code = "authentication_too_old"
    description = "More recent authentication is required."


class Forbidden(JWTGuardError):
    """The token is valid but does not grant what the resource needs."""

    code = "forbidden"
    error: str | None = "insufficient_scope"
    status_code = 403
    description = "The token does not grant access to this resource."

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        required: Iterable[str] = (),
        detail: Detail = None,
    ) -> None:
        super().__init__(description, code=code, detail=detail)
        # Names the route requires (configured by the app, not taken from the token):
        # RFC 6750 §3 lets the server advertise them in the ``scope`` attribute.
        self.required: tuple[str, ...] = tuple(required)


class InsufficientRole(Forbidden):
    """The principal lacks a role the route requires."""

    # No RFC 6750 error: ``insufficient_scope`` (§3.1) tells an OAuth client to ask the
    # authorization server for more scope (MCP's step-up does so at once), and no scope grants
    # a role: an administrator does. A plain 403 (RFC 9110 §15.5.4: do not repeat the request
    # with the same credentials); the code says which refusal it was.
    code = "insufficient_role"
    error = None
    description = "The token lacks a required role."


class InsufficientScope(Forbidden):
    """The principal lacks a scope the route requires (RFC 6750 §3.1)."""

    code = "insufficient_scope"
    description = "The token lacks a required scope."


class InsufficientAuthorizationDetails(Forbidden):
    """The token has no RFC 9396 authorization details entry granting what the route needs."""

    # RFC 9396 defines no error for a resource server; RFC 6750 §3.1's insufficient_scope is
    # "the request requires higher privileges than provided by the access token", which a
    # client answers by asking the authorization server again (with authorization_details).
    code = "insufficient_authorization_details"
    description = "The token lacks the required authorization details."


class CSRFFailed(Forbidden):
    """A cookie-authenticated unsafe request came without a valid CSRF proof."""

    code = "csrf_failed"
    error = None
    description = "The request failed the CSRF check."


class TooManyRequests(JWTGuardError):
    """The client sent more than its share; it may retry after ``retry_after`` seconds."""

    # RFC 6585 §4: 429, with Retry-After (RFC 9110 §10.2.3). Not a 503: the service is up, and
    # only this client is asked to slow down. No challenge: the credentials were fine.
    code = "too_many_requests"
    status_code = 429
    description = "Too many requests."

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        retry_after: int = 1,
        detail: Detail = None,
    ) -> None:
        super().__init__(description, code=code, detail=detail)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(JWTGuardError):
    """A dependency needed to decide (key source, denylist) is not reachable."""

    code = "service_unavailable"
    status_code = 503
    description = "Authentication is temporarily unavailable."

    def __init__(
        self,
        description: str | None = None,
        *,
        code: str | None = None,
        retry_after: int = 5,
        detail: Detail = None,
    ) -> None:
        super().__init__(description, code=code, detail=detail)
        self.retry_after = max(1, int(retry_after))


class KeySourceUnavailable(ServiceUnavailable):
    """No usable key set: the JWKS could not be fetched and nothing fresh enough is cached."""

    code = "jwks_unavailable"
    description = "The signing keys are temporarily unavailable."


class DenylistUnavailable(ServiceUnavailable):
    """The revocation store did not answer in time."""

    code = "denylist_unavailable"
    description = "The revocation list is temporarily unavailable."


class IntrospectionUnavailable(ServiceUnavailable):
    """The token introspection endpoint (RFC 7662) gave no usable answer in time."""

    code = "introspection_unavailable"
    description = "Token introspection is temporarily unavailable."


# -- DPoP (RFC 9449) ----------------------------------------------------------------------------


class DPoPKeyMismatch(InvalidToken):
    """The proof's key is not the key the token is bound to (``cnf.jkt``, RFC 9449 §6.1)."""

    code = "dpop_key_mismatch"
    description = "Invalid DPoP key binding."


class DPoPBoundTokenAsBearer(InvalidToken):
    """A DPoP-bound token sent with the ``Bearer`` scheme: a downgrade (RFC 9449 §7.2)."""

    code = "dpop_bound_token_as_bearer"
    description = "A DPoP-bound token must be sent with the DPoP scheme."


class TokenBindingUnsupported(InvalidToken):
    """The token's ``cnf`` binding (mTLS ``x5t#S256``, RFC 8705 §3.1) is not checked here."""

    # Accepting it would make a sender-constrained token a bearer token again (RFC 7800 §3.1).
    code = "token_binding_unsupported"
    description = "The token's key binding cannot be checked here."


class TokenNotSenderConstrained(InvalidToken):
    """A bearer token where a profile accepts only sender-constrained ones (FAPI 2.0 §5.3.4)."""

    # A bearer token is usable by whoever holds it: the profile asks for a token bound to the
    # client's key (DPoP "cnf.jkt", RFC 9449 §6) or certificate (mTLS "cnf.x5t#S256", RFC 8705).
    code = "token_not_sender_constrained"
    description = "The token must be sender-constrained."


# -- certificate-bound tokens (RFC 8705) --------------------------------------------------------


class ClientCertificateMissing(InvalidToken):
    """A certificate-bound token (``cnf.x5t#S256``, RFC 8705 §3) came without a certificate."""

    code = "client_certificate_missing"
    description = "The access token is bound to a client certificate."


class CertificateBindingMismatch(InvalidToken):
    """The client certificate presented is not the one the token is bound to (RFC 8705 §3)."""

    code = "certificate_binding_mismatch"
    description = "The access token is bound to another client certificate."


class InvalidDPoPProof(InvalidToken):
    """The DPoP proof breaks a rule of RFC 9449 §4.3."""

    code = "dpop_proof_invalid"
    error = "invalid_dpop_proof"
    description = "The DPoP proof is invalid."


class DPoPProofMissing(InvalidDPoPProof):
    """The request needs a DPoP proof and carries none, or more than one."""

    code = "dpop_proof_missing"
    description = "A single DPoP proof is required."


class DPoPProofReplayed(InvalidDPoPProof):
    """The proof's ``jti`` was already used within its validity window (RFC 9449 §11.1)."""

    code = "dpop_proof_replayed"
    description = "The DPoP proof has already been used."


class DPoPNonceRequired(InvalidDPoPProof):
    """The proof lacks a current server nonce; ``nonce`` is the one to use (RFC 9449 §9)."""

    code = "dpop_nonce_required"
    error = "use_dpop_nonce"
    description = "The resource server requires a nonce in the DPoP proof."

    def __init__(
        self,
        description: str | None = None,
        *,
        nonce: str,
        code: str | None = None,
        detail: Detail = None,
    ) -> None:
        super().__init__(description, code=code, detail=detail)
        # Made by the server (DPoPNonces), never taken from the request: safe to send back.
        self.nonce = nonce


class DPoPReplayUnavailable(ServiceUnavailable):
    """The DPoP replay cache did not answer in time."""

    code = "dpop_replay_unavailable"
    description = "DPoP replay protection is temporarily unavailable."


class DPoPRateLimited(TooManyRequests):
    """The proof's key holds its whole share of the DPoP replay cache (RFC 9449 §11.1)."""

    code = "dpop_rate_limited"
    description = "Too many DPoP proofs from this key; retry later."
