"""OpenID Connect discovery (OIDC Discovery 1.0, RFC 8414): a JWKS found through the
issuer's ``/.well-known/openid-configuration``, the document's ``issuer`` checked before
any key is fetched. The fetching and caching are :class:`JWKSKeys`'s.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Final

from .._core.errors import ConfigurationError
from .._core.jwks_policy import DiscoveryMismatch, FetchFailed
from .fetch import AsyncGet, SyncGet, check_url
from .jwks import JWKSKeys

__all__ = ["WELL_KNOWN", "OIDCDiscovery"]


#: The path of the discovery document under an issuer (OpenID Connect Discovery 1.0 §4).
WELL_KNOWN: Final = "/.well-known/openid-configuration"


class OIDCDiscovery(JWKSKeys):
    """Keys of an OpenID Provider found through ``{issuer}/.well-known/openid-configuration``.

    ``issuer`` is the issuer, or the discovery document's own URL (what IdP consoles show). The
    document's ``issuer`` must equal the configured issuer exactly (OpenID Connect Discovery 1.0
    §4.3; from a document URL, with or without a trailing slash); its ``jwks_uri`` is then
    fetched and cached like :class:`JWKSKeys`. A failed JWKS fetch makes the next attempt re-read
    the discovery document.

    A :class:`Verifier` built on it without ``issuer=`` expects tokens from this issuer only:
    providers share keys between tenants. ``allow_any_issuer=True`` turns that off (then no
    ``iss`` check at all unless ``issuer=`` is given).
    """

    def __init__(self, issuer: str, *, allow_any_issuer: bool = False, **options: Any) -> None:
        allow_http = bool(options.get("allow_http", False))
        check_url(issuer, allow_http, "issuer")
        path = urllib.parse.urlsplit(issuer).path
        if path.endswith(WELL_KNOWN):
            # The document's URL: its issuer is the prefix, with or without the slash that
            # §4 says to drop before appending the well-known path.
            self._discovery_url = issuer
            base = issuer[: issuer.rindex(WELL_KNOWN)]
            self._issuers: tuple[str, ...] = (base, base + "/")
        else:
            self._discovery_url = issuer.rstrip("/") + WELL_KNOWN
            self._issuers = (issuer,)
        self.issuer = self._issuers[0]
        self.allow_any_issuer = bool(allow_any_issuer)
        super().__init__(self._discovery_url, **options)
        self._url = None

    @property
    def pinned_issuers(self) -> tuple[str, ...] | None:
        """The ``iss`` values a verifier without ``issuer=`` accepts (``None``: any)."""
        return None if self.allow_any_issuer else self._issuers

    def _jwks_uri(self, body: bytes) -> str:
        try:
            document = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise FetchFailed("discovery document is not JSON") from exc
        if not isinstance(document, dict):
            raise FetchFailed("discovery document is not a JSON object")
        found = document.get("issuer")
        if not isinstance(found, str) or found not in self._issuers:
            raise DiscoveryMismatch(self._discovery_url, found, self._issuers)
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise FetchFailed("discovery document has no jwks_uri")
        try:
            return check_url(uri, self._allow_http, "jwks_uri")
        except ConfigurationError as exc:
            raise FetchFailed("discovery document has no usable jwks_uri") from exc

    def _jwks_url_sync(self, get: SyncGet) -> str:
        if self._url is None:
            body, _ = get(self._discovery_url)
            self._url = self._jwks_uri(body)
        return self._url

    async def _jwks_url_async(self, get: AsyncGet) -> str:
        if self._url is None:
            body, _ = await get(self._discovery_url)
            self._url = self._jwks_uri(body)
        return self._url

    def _source_url(self) -> str:
        return self._url or self._discovery_url

    def check_policy(self, algorithms: frozenset[str], issuers: frozenset[str] | None) -> None:
        super().check_policy(algorithms, issuers)
        if issuers is not None and issuers.isdisjoint(self._issuers):
            # The discovery document must say self.issuer, and tokens must say one of issuers:
            # when they differ (a trailing slash...), no token could ever verify.
            raise ConfigurationError(
                f"OIDCDiscovery({self.issuer!r}) is for another issuer than issuer="
                f"{sorted(issuers)}: give both the exact 'iss' of your tokens"
            )

    def _fetch_kind(self, url: str) -> str:
        return "Discovery document" if url == self._discovery_url else "JWKS"

    def _failed(self, reason: str, url: str, *, log: bool = True) -> None:
        self._url = None
        super()._failed(reason, url, log=log)
