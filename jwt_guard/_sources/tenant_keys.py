"""Key sources made per tenant from a URL template: :class:`TenantKeys`, the ``keys=`` of a
:class:`~jwt_guard.TenantIssuer`.

``TenantKeys.jwks("https://login.microsoftonline.com/{tid}/discovery/v2.0/keys")`` makes a
:class:`JWKSKeys` for each tenant; ``TenantKeys.discovery("https://sso.example.com/realms/{realm}")``
an :class:`OIDCDiscovery`, whose document must name that tenant's issuer exactly (OpenID Connect
Discovery 1.0 §4.3, RFC 8414 §3.3). The tenant routing (``_core.tenants``) calls it only for a
tenant it accepted; the tenant is checked again here before it goes into a URL.
"""

from __future__ import annotations

from typing import Any

from .._core.errors import ConfigurationError
from .._core.keyset import KeySource
from .._core.tenants import host_in, host_problem, split_template, tenant_problem
from .discovery import OIDCDiscovery
from .fetch import check_url
from .jwks import JWKSKeys

__all__ = ["TenantKeys"]


class TenantKeys:
    """Makes each tenant's key source for a :class:`TenantIssuer`.

    ``TenantKeys.jwks(url_template, **options)`` or
    ``TenantKeys.discovery(issuer_template, **options)``; the options are :class:`JWKSKeys`'s
    (``timeout``, ``cooldown``, ``allow_http``, ``client``...), the same for every tenant.
    Each source made is the tenant's own (its cache, its fetches), closed when its tenant
    leaves the verifier's LRU."""

    def __init__(self, template: str, *, discovery: bool = False, **options: Any) -> None:
        self.template = template
        self._prefix, self.placeholder, self._suffix = split_template(template, "template")
        self._discovery = bool(discovery)
        # A tenant in the host (an Auth0 custom domain): it names the server we connect to.
        self._in_host = host_in(template)
        self._options = options
        # Start-up, not first request: the URL rules and every option checked on one sample
        # (making a source does no I/O).
        sample = "tenant.example" if self._in_host else "tenant"
        check_url(self._url(sample), bool(options.get("allow_http", False)), "template")
        self._made(sample)

    @classmethod
    def jwks(cls, url_template: str, **options: Any) -> TenantKeys:
        """A :class:`JWKSKeys` per tenant, at ``url_template`` with the tenant filled in."""
        return cls(url_template, **options)

    @classmethod
    def discovery(cls, issuer_template: str, **options: Any) -> TenantKeys:
        """An :class:`OIDCDiscovery` per tenant, for ``issuer_template`` with the tenant filled in.

        The template is the issuer, or its discovery document's URL."""
        return cls(issuer_template, discovery=True, **options)

    def __repr__(self) -> str:
        kind = "discovery" if self._discovery else "jwks"
        return f"TenantKeys.{kind}({self.template!r})"

    def _url(self, tenant: str) -> str:
        return self._prefix + tenant + self._suffix

    def _made(self, tenant: str) -> KeySource:
        if self._discovery:
            return OIDCDiscovery(self._url(tenant), **self._options)
        return JWKSKeys(self._url(tenant), **self._options)

    def tenant_problem(self, tenant: str) -> str | None:
        """Why ``tenant`` cannot go into this template's URL, or ``None``.

        The routing asks this too, so a tenant refused here is a refused token, never a fetch."""
        if not isinstance(tenant, str):
            return "not a string"
        problem = tenant_problem(tenant, None)
        if problem is None and self._in_host:
            # Server-side request forgery: "localhost", "169.254.169.254" (cloud metadata),
            # "127.0.0x1" (inet_aton's hex and octal forms).
            problem = host_problem(tenant)
        return problem

    def __call__(self, tenant: str) -> KeySource:
        # The routing accepted this tenant already; checked again because it goes into a URL
        # (a direct caller gets the same guarantee).
        problem = self.tenant_problem(tenant)
        if problem is not None:
            raise ConfigurationError(f"a tenant must be a plain name to go into a URL ({problem})")
        return self._made(tenant)
