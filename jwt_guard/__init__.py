"""jwt_guard: JWT verification middleware for ASGI and WSGI, strict by default."""

from __future__ import annotations

from ._core.dpop import DPoP
from ._core.dpop_replay import DPoPNonces, MemoryReplayCache, ReplayCache
from ._core.errors import (
    AlgorithmNotAllowed,
    AudienceInvalid,
    AuthenticationRequired,
    AuthenticationTooOld,
    CertificateBindingMismatch,
    ClaimError,
    ClaimInvalid,
    ClaimMissing,
    ClientCertificateMissing,
    ConfigurationError,
    CriticalHeaderUnsupported,
    CSRFFailed,
    DenylistUnavailable,
    DPoPBoundTokenAsBearer,
    DPoPKeyMismatch,
    DPoPNonceRequired,
    DPoPProofMissing,
    DPoPProofReplayed,
    DPoPRateLimited,
    DPoPReplayUnavailable,
    Forbidden,
    InsufficientAuthorizationDetails,
    InsufficientRole,
    InsufficientScope,
    InsufficientUserAuthentication,
    IntrospectionUnavailable,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidSignature,
    InvalidToken,
    IssuerInvalid,
    JWTGuardError,
    KeyNotFound,
    KeySourceUnavailable,
    MalformedToken,
    ServiceUnavailable,
    TokenBindingUnsupported,
    TokenExpired,
    TokenInactive,
    TokenIssuedInFuture,
    TokenNotSenderConstrained,
    TokenNotYetValid,
    TokenRevoked,
    TokenTooLarge,
    TooManyRequests,
    TypeInvalid,
)
from ._core.keys import JWK
from ._core.keyset import KeySet, KeySource, StaticKeys
from ._core.metrics import Metrics
from ._core.policy import TrustedIssuer
from ._core.principal import Principal
from ._core.revocation import Denylist, MemoryDenylist, RevocationKeys
from ._core.tenants import TenantIssuer
from ._http.answer import Answer
from ._http.authz import (
    Requirement,
    require_acr,
    require_auth_age,
    require_authorization_details,
    require_roles,
    require_scopes,
)
from ._http.client_cert import ClientCertificate
from ._http.cookies import clear_token_cookies, set_token_cookies
from ._http.extract import CSRF, bound_csrf_value
from ._http.metadata import ProtectedResource
from ._http.route import RouteGuard
from ._sources.discovery import OIDCDiscovery
from ._sources.introspection import Introspection
from ._sources.jwks import JWKSKeys, JWKSStats
from ._sources.redis_cache import RedisCache
from ._sources.redis_stores import RedisDenylist, RedisReplayCache
from ._sources.tenant_keys import TenantKeys
from ._sources.verifier import Verifier
from .asgi import JWTGuardMiddleware
from .wsgi import JWTGuardWSGIMiddleware

__version__ = "0.1.0"

__all__ = [
    "CSRF",
    "JWK",
    "AlgorithmNotAllowed",
    "Answer",
    "AudienceInvalid",
    "AuthenticationRequired",
    "AuthenticationTooOld",
    "CSRFFailed",
    "CertificateBindingMismatch",
    "ClaimError",
    "ClaimInvalid",
    "ClaimMissing",
    "ClientCertificate",
    "ClientCertificateMissing",
    "ConfigurationError",
    "CriticalHeaderUnsupported",
    "DPoP",
    "DPoPBoundTokenAsBearer",
    "DPoPKeyMismatch",
    "DPoPNonceRequired",
    "DPoPNonces",
    "DPoPProofMissing",
    "DPoPProofReplayed",
    "DPoPRateLimited",
    "DPoPReplayUnavailable",
    "Denylist",
    "DenylistUnavailable",
    "Forbidden",
    "InsufficientAuthorizationDetails",
    "InsufficientRole",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "Introspection",
    "IntrospectionUnavailable",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "IssuerInvalid",
    "JWKSKeys",
    "JWKSStats",
    "JWTGuardError",
    "JWTGuardMiddleware",
    "JWTGuardWSGIMiddleware",
    "KeyNotFound",
    "KeySet",
    "KeySource",
    "KeySourceUnavailable",
    "MalformedToken",
    "MemoryDenylist",
    "MemoryReplayCache",
    "Metrics",
    "OIDCDiscovery",
    "Principal",
    "ProtectedResource",
    "RedisCache",
    "RedisDenylist",
    "RedisReplayCache",
    "ReplayCache",
    "Requirement",
    "RevocationKeys",
    "RouteGuard",
    "ServiceUnavailable",
    "StaticKeys",
    "TenantIssuer",
    "TenantKeys",
    "TokenBindingUnsupported",
    "TokenExpired",
    "TokenInactive",
    "TokenIssuedInFuture",
    "TokenNotSenderConstrained",
    "TokenNotYetValid",
    "TokenRevoked",
    "TokenTooLarge",
    "TooManyRequests",
    "TrustedIssuer",
    "TypeInvalid",
    "Verifier",
    "bound_csrf_value",
    "clear_token_cookies",
    "require_acr",
    "require_auth_age",
    "require_authorization_details",
    "require_roles",
    "require_scopes",
    "set_token_cookies",
]
