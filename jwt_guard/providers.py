"""Ready-made trust settings for common identity providers.

Each function returns a :class:`TrustedIssuer` with the provider's issuer URL, its JWKS URL,
where it puts roles and scopes, and the checks its documentation asks a resource server to make
beyond ``iss``, ``aud``, ``exp`` and the signature; pass one or several to
``Verifier(issuers=[...])``::

    verifier = Verifier(
        algorithms=["RS256"],
        issuers=[keycloak("https://sso.example.com", "acme", audience="orders-api")],
    )

Every preset also takes ``jwks_url=`` (fetch the keys from another URL than the public one:
a Keycloak in docker-compose whose tokens say ``http://localhost:8080/...`` while the API reaches
it as ``http://keycloak:8080/...``) or ``keys=`` (any key source, e.g. ``LocalIssuer.keys()`` in
tests), and ``claims=`` / ``validate=`` for more rules. The :class:`TrustedIssuer` options
``profile``, ``algorithms``, ``roles_claim``, ``scopes_claim`` and ``validate_each_request`` go to
the issuer (yours replace the preset's); the :class:`JWKSKeys` options (``timeout``,
``cooldown``, ``allow_http``...) to its key source. Any other name is a
:class:`ConfigurationError` naming what the preset takes (with the closest name), never a bare
``TypeError`` from deep inside.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, overload

from ._core.claims import Validator
from ._core.errors import ConfigurationError
from ._core.keyset import KeySource
from ._core.policy import TrustedIssuer
from ._core.tenants import TenantIssuer
from ._sources.jwks import JWKSKeys
from ._sources.tenant_keys import TenantKeys

__all__ = ["ENTRA_CONSUMERS_TENANT", "auth0", "cognito", "entra_id", "google", "keycloak", "okta"]

_LABEL = re.compile(r"[A-Za-z0-9.-]+")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Entra ID's multi-tenant aliases: tokens never carry them in ``iss``.
_ENTRA_ALIASES: Final = frozenset({"common", "organizations", "consumers"})
#: The tenant of personal Microsoft accounts (what ``consumers`` stands for): not an
#: organization, so never accepted by ``entra_id("organizations")``.
ENTRA_CONSUMERS_TENANT: Final = "9188040d-6c67-4c5b-b112-36a304b66dad"
#: A tenant in an Entra token's ``iss``: its GUID, in lower case.
_ENTRA_TENANT = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _host(value: str, what: str) -> str:
    # Values are spliced into URLs: refuse anything that could change the URL's meaning.
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise ConfigurationError(f"{what} must be a bare host name or identifier")
    return value


def _names(value: str | Sequence[str], what: str) -> frozenset[str]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(f"{what} must be a non-empty string or list of strings")
    return frozenset(items)


#: The :class:`TrustedIssuer` (and :class:`TenantIssuer`) options a preset passes on to the
#: issuer it returns, the caller's value replacing the preset's; a preset's own parameters
#: (``audience``, ``claims``, ``validate``...) are in its signature.
_ISSUER_OPTIONS: Final = (
    "algorithms",
    "profile",
    "roles_claim",
    "scopes_claim",
    "validate_each_request",
)
#: The options of the :class:`JWKSKeys` a preset makes (its URL is the preset's).
_FETCH_OPTIONS: Final = tuple(
    name for name in inspect.signature(JWKSKeys).parameters if name != "url"
)
#: Names a user may reach for that a preset sets from its own arguments: what to pass instead.
_INSTEAD: Final = {
    "issuer": "the preset makes the issuer from its arguments; for another issuer use "
    "TrustedIssuer(issuer, keys, ...)",
    "url": "jwks_url= fetches the keys from another URL",
}


def _split(
    preset: Callable[..., Any],
    options: Mapping[str, Any],
    *,
    issuer_options: Sequence[str] = _ISSUER_OPTIONS,
    instead: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A preset's extra keyword arguments as (issuer options, JWKS fetch options); any other
    name is a :class:`ConfigurationError` naming what the preset takes (a ``TypeError`` from
    ``JWKSKeys`` named neither the preset nor the fix)."""
    to_issuer: dict[str, Any] = {}
    to_fetch: dict[str, Any] = {}
    problems = []
    own = [n for n, p in inspect.signature(preset).parameters.items() if p.kind is p.KEYWORD_ONLY]
    takes = [*own, *(n for n in issuer_options if n not in own)]
    hints = {**_INSTEAD, **(instead or {})}
    for name, value in options.items():
        if name in issuer_options:
            to_issuer[name] = value
        elif name in _FETCH_OPTIONS:
            to_fetch[name] = value
        elif name in hints:
            problems.append(f"{name}= ({hints[name]})")
        else:
            close = difflib.get_close_matches(name, [*takes, *_FETCH_OPTIONS], n=1, cutoff=0.6)
            problems.append(f"{name}=" + (f" (did you mean {close[0]}=?)" if close else ""))
    if problems:
        raise ConfigurationError(
            f"{preset.__name__}() does not take {', '.join(problems)}; it takes "
            f"{', '.join(n + '=' for n in takes)}, and for its JWKS fetch "
            f"{', '.join(n + '=' for n in _FETCH_OPTIONS)}"
        )
    return to_issuer, to_fetch


def _trusted(
    preset: Callable[..., Any],
    issuer: str,
    default_jwks_url: str,
    *,
    jwks_url: str | None,
    keys: KeySource | None,
    options: Mapping[str, Any],
    claims: Mapping[str, Any] | None = None,
    rules: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    instead: Mapping[str, str] | None = None,
    **settings: Any,
) -> TrustedIssuer:
    """The preset's TrustedIssuer; ``rules`` are the preset's own claim checks, ``claims`` the
    caller's (which win for a claim both name); ``options`` the caller's other keyword
    arguments (:func:`_split`)."""
    to_issuer, to_fetch = _split(preset, options, instead=instead)
    if keys is not None:
        if jwks_url is not None:
            raise ConfigurationError("give jwks_url= or keys=, not both")
        if to_fetch:
            raise ConfigurationError(
                f"{sorted(to_fetch)} configure the JWKS fetch: they do not apply with keys="
            )
        source = keys
    else:
        source = JWKSKeys(jwks_url if jwks_url is not None else default_jwks_url, **to_fetch)
    if source.published:
        # The provider's JWKS says what each key is for (issue 25): a realm that signs with
        # ES256 or PS256 works too. The preset's RS256 is for keys of your own (keys=), and
        # the Verifier's algorithms= win over both.
        settings["algorithms"] = None
    merged = {**(rules or {}), **(claims or {})}
    return TrustedIssuer(
        issuer,
        source,
        claims=merged or None,
        validate=validate,
        **{**settings, **to_issuer},
    )


def auth0(
    domain: str,
    *,
    audience: str | Sequence[str],
    roles_claim: str | Sequence[str] = "permissions",
    jwks_url: str | None = None,
    keys: KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer:
    """Auth0: a trusted issuer for the tenant at ``domain``.

    Issuer ``https://{domain}/`` (with its trailing slash), ``aud`` the API identifier,
    RS256. Roles are usually a namespaced custom claim
    (``roles_claim="https://example.com/roles"``); RBAC permissions land in ``permissions``."""
    issuer = f"https://{_host(domain, 'domain')}/"
    return _trusted(
        auth0,
        issuer,
        f"{issuer}.well-known/jwks.json",
        jwks_url=jwks_url,
        keys=keys,
        options=options,
        claims=claims,
        validate=validate,
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
    jwks_url: str | None = None,
    keys: KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer:
    """Keycloak: a trusted issuer for one realm, ``{base_url}/realms/{realm}``.

    Realm roles in ``realm_access.roles``, client roles (``client_id``) in
    ``resource_access.<client>.roles``.

    Checks ``typ`` (the claim) is ``Bearer``: Keycloak's ID tokens (``ID``) and refresh tokens
    (``Refresh``) are signed by the same keys and may carry the same ``aud``; only access
    tokens are accepted. ``aud`` needs an audience mapper in Keycloak (the default is
    ``account``)."""
    if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
        raise ConfigurationError("base_url must be the Keycloak URL, e.g. https://sso.example.com")
    issuer = f"{base_url.rstrip('/')}/realms/{_host(realm, 'realm')}"
    roles = ["realm_access.roles"]
    if client_id is not None:
        roles.append(f"resource_access.{client_id}.roles")
    return _trusted(
        keycloak,
        issuer,
        f"{issuer}/protocol/openid-connect/certs",
        jwks_url=jwks_url,
        keys=keys,
        options=options,
        rules={"typ": "Bearer"},
        claims=claims,
        validate=validate,
        audience=audience,
        algorithms=("RS256",),
        roles_claim=tuple(roles),
    )


@overload
def entra_id(
    tenant_id: Literal["common", "organizations"],
    *,
    audience: str | Sequence[str],
    version: int = 2,
    tenants: Sequence[str] | None = None,
    any_tenant: bool = False,
    validate_tenant: Callable[[str], bool] | None = None,
    max_tenants: int | None = None,
    jwks_url: str | None = None,
    keys: Callable[[str], KeySource] | KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TenantIssuer: ...


@overload
def entra_id(
    tenant_id: str,
    *,
    audience: str | Sequence[str],
    version: int = 2,
    jwks_url: str | None = None,
    keys: KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer: ...


def entra_id(
    tenant_id: str,
    *,
    audience: str | Sequence[str],
    version: int = 2,
    tenants: Sequence[str] | None = None,
    any_tenant: bool = False,
    validate_tenant: Callable[[str], bool] | None = None,
    max_tenants: int | None = None,
    jwks_url: str | None = None,
    keys: Any = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer | TenantIssuer:
    """Microsoft Entra ID: app roles in ``roles``, delegated scopes in ``scp``.

    ``tenant_id`` is the directory's GUID (tokens carry it in ``iss`` and ``tid``, never a
    domain name); ``tid`` is checked against it. ``version=2`` expects v2.0 tokens (issuer
    ``https://login.microsoftonline.com/{tid}/v2.0``); ``version=1`` the v1.0 tokens an API
    gets when its manifest leaves ``accessTokenAcceptedVersion`` unset (issuer
    ``https://sts.windows.net/{tid}/``). ``audience`` is the application (client) id or its
    Application ID URI (``api://...``), whichever your tokens carry.

    A multi-tenant app: ``entra_id("organizations", tenants=[...])`` (work and school
    accounts of the tenants listed) or ``entra_id("common", tenants=[...])`` (the personal
    accounts' tenant may be listed too), or ``any_tenant=True`` with ``validate_tenant=`` (a
    callable: tenant GUID -> ``True`` to accept). Returns a :class:`TenantIssuer`: each tenant's
    keys come from its own JWKS (``jwks_url=`` a template with ``{tid}``; ``keys=`` a callable
    taking the tenant, or one key source for every tenant), made when its first token comes,
    ``max_tenants`` kept at most; ``tid`` must be the tenant in ``iss`` (Microsoft's guidance
    for multi-tenant validation)."""
    alias = tenant_id.lower() if isinstance(tenant_id, str) else None
    if alias in ("common", "organizations"):
        assert alias is not None
        return _entra_tenants(
            alias,
            audience=audience,
            version=version,
            tenants=tenants,
            any_tenant=any_tenant,
            validate_tenant=validate_tenant,
            max_tenants=max_tenants,
            jwks_url=jwks_url,
            keys=keys,
            claims=claims,
            validate=validate,
            **options,
        )
    if tenants is not None or any_tenant or validate_tenant is not None:
        raise ConfigurationError(
            "tenants=, any_tenant= and validate_tenant= are for entra_id('organizations') or "
            "entra_id('common'); one tenant's GUID needs none"
        )
    if not isinstance(tenant_id, str) or alias in _ENTRA_ALIASES:
        raise ConfigurationError(
            "tenant_id must be your tenant's GUID, or 'organizations'/'common' with tenants= "
            f"for a multi-tenant app (personal accounts only: {ENTRA_CONSUMERS_TENANT!r})"
        )
    if not _GUID.fullmatch(tenant_id):
        raise ConfigurationError(
            "tenant_id must be the directory (tenant) GUID, e.g. "
            "'72f988bf-86f1-41af-91ab-2d7cd011db47' (tokens carry the GUID, not a domain)"
        )
    tenant = tenant_id.lower()
    issuer, default_jwks = _entra_urls(version)
    return _trusted(
        entra_id,
        issuer.replace("{tid}", tenant),
        default_jwks.replace("{tid}", tenant),
        jwks_url=jwks_url,
        keys=keys,
        options=options,
        rules={"tid": tenant},
        claims=claims,
        validate=validate,
        audience=audience,
        algorithms=("RS256",),
        roles_claim="roles",
        scopes_claim=("scp",),
    )


def _entra_urls(version: int) -> tuple[str, str]:
    """The issuer and JWKS URL templates of Entra's v2.0 or v1.0 tokens."""
    if version == 2:
        return (
            "https://login.microsoftonline.com/{tid}/v2.0",
            "https://login.microsoftonline.com/{tid}/discovery/v2.0/keys",
        )
    if version == 1:
        return (
            "https://sts.windows.net/{tid}/",
            "https://login.microsoftonline.com/{tid}/discovery/keys",
        )
    raise ConfigurationError("version must be 2 (v2.0 tokens) or 1 (v1.0 tokens)")


def _entra_tenants(
    alias: str,
    *,
    audience: str | Sequence[str],
    version: int,
    jwks_url: str | None,
    keys: Callable[[str], KeySource] | KeySource | None,
    claims: Mapping[str, Any] | None,
    validate: Validator | None,
    tenants: Sequence[str] | None,
    any_tenant: bool,
    validate_tenant: Callable[[str], bool] | None,
    max_tenants: int | None,
    **options: Any,
) -> TenantIssuer:
    """``entra_id("organizations" | "common", ...)``: one :class:`TenantIssuer`."""
    issuer, default_jwks = _entra_urls(version)
    pattern = _ENTRA_TENANT
    if alias == "organizations":
        # Work and school accounts only: the personal accounts' tenant is not an organization.
        pattern = f"(?!{ENTRA_CONSUMERS_TENANT}$){pattern}"
    if tenants is not None:
        listed = (tenants,) if isinstance(tenants, str) else tuple(tenants)
        for tenant in listed:
            if not isinstance(tenant, str) or not _GUID.fullmatch(tenant):
                raise ConfigurationError(
                    f"tenants: each must be a tenant GUID (tokens carry the GUID, not a "
                    f"domain): {tenant!r}"
                )
            if alias == "organizations" and tenant.lower() == ENTRA_CONSUMERS_TENANT:
                raise ConfigurationError(
                    "tenants: the personal accounts' tenant is not an organization: use "
                    "entra_id('common', ...) to accept personal accounts"
                )
        # Tokens carry the GUID in lower case.
        tenants = tuple(t.lower() for t in listed)
    to_issuer, to_fetch = _split(entra_id, options)
    if keys is not None:
        if jwks_url is not None:
            raise ConfigurationError("give jwks_url= or keys=, not both")
        if to_fetch:
            raise ConfigurationError(
                f"{sorted(to_fetch)} configure the JWKS fetch: they do not apply with keys="
            )
        factory = _Shared(keys) if isinstance(keys, KeySource) else keys
    else:
        factory = TenantKeys.jwks(jwks_url if jwks_url is not None else default_jwks, **to_fetch)
    settings: dict[str, Any] = {
        # As in a single tenant's preset, published keys decide (the default JWKS, TenantKeys,
        # a published source); RS256 is for keys of your own, and for a factory of your own
        # (it may make either, and a tenant's unpublished source needs algorithms named).
        "algorithms": None
        if isinstance(factory, TenantKeys) or (isinstance(keys, KeySource) and keys.published)
        else ("RS256",),
        "roles_claim": "roles",
        "scopes_claim": ("scp",),
        **to_issuer,  # yours win
    }
    return TenantIssuer(
        issuer,
        factory,
        tenants=tenants,
        any_tenant=any_tenant,
        validate_tenant=validate_tenant,
        tenant_pattern=pattern,
        tenant_claim="tid",
        max_tenants=max_tenants,
        audience=audience,
        claims=claims,
        validate=validate,
        **settings,
    )


class _Shared:
    """One key source for every tenant (a test's ``LocalIssuer.keys()``, a provider's common
    JWKS): never closed when a tenant leaves the LRU while another tenant uses it."""

    def __init__(self, source: KeySource) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"shared({self.source!r})"

    def __call__(self, tenant: str) -> KeySource:
        return self.source


def cognito(
    region: str,
    user_pool_id: str,
    *,
    client_id: str | Sequence[str],
    token_use: str = "access",  # noqa: S107 - Cognito's name for the kind of token
    jwks_url: str | None = None,
    keys: KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer:
    """AWS Cognito user pool: groups in ``cognito:groups``, scopes in ``scope``.

    As AWS documents: ``token_use`` must be ``access`` (or ``id`` with ``token_use="id"``), and
    the token must belong to one of your app clients — ``client_id`` for access tokens (which
    carry no ``aud``), ``aud`` for ID tokens. Without these checks a pool accepts the tokens of
    every app client in it."""
    if not isinstance(user_pool_id, str) or not re.fullmatch(r"[\w-]+_[\w]+", user_pool_id):
        raise ConfigurationError("user_pool_id must look like 'eu-west-1_AbCdEf123'")
    clients = _names(client_id, "client_id")
    if token_use not in ("access", "id"):
        raise ConfigurationError("token_use must be 'access' or 'id'")
    issuer = f"https://cognito-idp.{_host(region, 'region')}.amazonaws.com/{user_pool_id}"
    rules: dict[str, Any] = {"token_use": token_use}
    if token_use == "access":  # noqa: S105
        rules["client_id"] = clients
    return _trusted(
        cognito,
        issuer,
        f"{issuer}/.well-known/jwks.json",
        jwks_url=jwks_url,
        keys=keys,
        options=options,
        rules=rules,
        claims=claims,
        validate=validate,
        instead={
            "audience": "client_id= names your app clients: an access token's client_id, an "
            "ID token's aud"
        },
        # ID tokens name the app client in "aud"; access tokens have none.
        audience=tuple(sorted(clients)) if token_use == "id" else None,  # noqa: S105
        algorithms=("RS256",),
        roles_claim="cognito:groups",
        scopes_claim=("scope",),
    )


def okta(
    domain: str,
    *,
    audience: str | Sequence[str],
    authorization_server: str = "default",
    client_id: str | Sequence[str] | None = None,
    jwks_url: str | None = None,
    keys: KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer:
    """Okta: a trusted issuer for a custom authorization server.

    Issuer ``https://{domain}/oauth2/{server}`` (the org server's access tokens are not for
    your APIs): groups in ``groups``, scopes in ``scp``. ``client_id`` checks ``cid``, the app
    the access token was issued to."""
    issuer = (
        f"https://{_host(domain, 'domain')}/oauth2/"
        f"{_host(authorization_server, 'authorization_server')}"
    )
    rules = {"cid": _names(client_id, "client_id")} if client_id is not None else None
    return _trusted(
        okta,
        issuer,
        f"{issuer}/v1/keys",
        jwks_url=jwks_url,
        keys=keys,
        options=options,
        rules=rules,
        claims=claims,
        validate=validate,
        audience=audience,
        algorithms=("RS256",),
        roles_claim="groups",
        scopes_claim=("scp",),
    )


def google(
    *,
    audience: str | Sequence[str],
    hosted_domain: str | None = None,
    jwks_url: str | None = None,
    keys: KeySource | None = None,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    **options: Any,
) -> TrustedIssuer:
    """Google: a trusted issuer for Google ID tokens.

    ``aud`` is your OAuth client id. ``hosted_domain`` checks ``hd``, the
    Google Workspace domain of the account (without it, any Google account passes). Google
    also issues tokens with the bare issuer ``accounts.google.com``; add a second
    TrustedIssuer for it if you need it."""
    rules = {"hd": _host(hosted_domain, "hosted_domain")} if hosted_domain is not None else None
    return _trusted(
        google,
        "https://accounts.google.com",
        "https://www.googleapis.com/oauth2/v3/certs",
        jwks_url=jwks_url,
        keys=keys,
        options=options,
        rules=rules,
        claims=claims,
        validate=validate,
        audience=audience,
        algorithms=("RS256",),
    )
