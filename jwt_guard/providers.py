"""Ready-made trust settings for common identity providers.

Each function returns a :class:`TrustedIssuer` with the provider's issuer URL, its JWKS URL and
where it puts roles and scopes; pass one or several to ``Verifier(issuers=[...])``::

    verifier = Verifier(
        algorithms=["RS256"],
        issuers=[keycloak("https://sso.example.com", "acme", audience="orders-api")],
    )

Keyword arguments not listed are passed to :class:`JWKSKeys` (``timeout``, ``cooldown``...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ._errors import ConfigurationError
from ._jwks import JWKSKeys
from ._policy import TrustedIssuer

__all__ = ["auth0", "cognito", "entra_id", "google", "keycloak", "okta"]

_LABEL = re.compile(r"[A-Za-z0-9.-]+")


def _host(value: str, what: str) -> str:
    # Values are spliced into URLs: refuse anything that could change the URL's meaning.
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise ConfigurationError(f"{what} must be a bare host name or identifier")
    return value


def auth0(
    domain: str,
    *,
    audience: str | Sequence[str],
    roles_claim: str | Sequence[str] = "permissions",
    **options: Any,
) -> TrustedIssuer:
    """Auth0: issuer ``https://{domain}/``. Roles are usually a namespaced custom claim
    (``roles_claim="https://example.com/roles"``); RBAC permissions land in ``permissions``."""
    issuer = f"https://{_host(domain, 'domain')}/"
    return TrustedIssuer(
        issuer,
        JWKSKeys(f"{issuer}.well-known/jwks.json", **options),
        audience=audience,
        algorithms=("RS256",),
        roles_claim=roles_claim,
        scopes_claim=("scope", "permissions"),
    )


def keycloak(
    base_url: str,
    realm: str,
    *,
    audience: str | Sequence[str],
    client_id: str | None = None,
    **options: Any,
) -> TrustedIssuer:
    """Keycloak: realm roles in ``realm_access.roles``, client roles (``client_id``) in
    ``resource_access.<client>.roles``."""
    issuer = f"{base_url.rstrip('/')}/realms/{_host(realm, 'realm')}"
    roles = ["realm_access.roles"]
    if client_id is not None:
        roles.append(f"resource_access.{client_id}.roles")
    return TrustedIssuer(
        issuer,
        JWKSKeys(f"{issuer}/protocol/openid-connect/certs", **options),
        audience=audience,
        algorithms=("RS256",),
        roles_claim=tuple(roles),
    )


def entra_id(tenant_id: str, *, audience: str | Sequence[str], **options: Any) -> TrustedIssuer:
    """Microsoft Entra ID (v2.0 tokens): app roles in ``roles``, delegated scopes in ``scp``."""
    tenant = _host(tenant_id, "tenant_id")
    issuer = f"https://login.microsoftonline.com/{tenant}/v2.0"
    return TrustedIssuer(
        issuer,
        JWKSKeys(f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys", **options),
        audience=audience,
        algorithms=("RS256",),
        roles_claim="roles",
        scopes_claim=("scp",),
    )


def cognito(
    region: str,
    user_pool_id: str,
    *,
    audience: str | Sequence[str] | None = None,
    **options: Any,
) -> TrustedIssuer:
    """AWS Cognito: groups in ``cognito:groups``. Access tokens carry ``client_id`` and no
    ``aud``; give ``audience`` only for ID tokens."""
    if not isinstance(user_pool_id, str) or not re.fullmatch(r"[\w-]+", user_pool_id):
        raise ConfigurationError("user_pool_id must look like 'eu-west-1_AbCdEf123'")
    issuer = f"https://cognito-idp.{_host(region, 'region')}.amazonaws.com/{user_pool_id}"
    return TrustedIssuer(
        issuer,
        JWKSKeys(f"{issuer}/.well-known/jwks.json", **options),
        audience=audience,
        algorithms=("RS256",),
        roles_claim="cognito:groups",
    )


def okta(
    domain: str,
    *,
    audience: str | Sequence[str],
    authorization_server: str = "default",
    **options: Any,
) -> TrustedIssuer:
    """Okta custom authorization server: groups in ``groups``, scopes in ``scp``."""
    issuer = (
        f"https://{_host(domain, 'domain')}/oauth2/"
        f"{_host(authorization_server, 'authorization_server')}"
    )
    return TrustedIssuer(
        issuer,
        JWKSKeys(f"{issuer}/v1/keys", **options),
        audience=audience,
        algorithms=("RS256",),
        roles_claim="groups",
        scopes_claim=("scp",),
    )


def google(*, audience: str | Sequence[str], **options: Any) -> TrustedIssuer:
    """Google ID tokens (``aud`` is your OAuth client id). Google also issues tokens with the
    bare issuer ``accounts.google.com``; add a second TrustedIssuer for it if you need it."""
    return TrustedIssuer(
        "https://accounts.google.com",
        JWKSKeys("https://www.googleapis.com/oauth2/v3/certs", **options),
        audience=audience,
        algorithms=("RS256",),
    )
