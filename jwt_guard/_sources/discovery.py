"""Discovery: a JWKS found through the issuer's metadata, the document's ``issuer`` checked
before any key is fetched. Either document will do: OpenID Connect Discovery 1.0
(``openid-configuration``) or OAuth 2.0 Authorization Server Metadata (RFC 8414,
``oauth-authorization-server``), tried in the order Spring Security's
``JwtDecoders.fromIssuerLocation`` tries them. The fetching and caching are :class:`JWKSKeys`'s.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Final

from .._core.errors import ConfigurationError
from .._core.jwks_policy import DiscoveryMismatch, FetchFailed
from .fetch import AsyncGet, SyncGet, check_url, display_url
from .jwks import JWKSKeys

__all__ = [
    "OAUTH_WELL_KNOWN",
    "WELL_KNOWN",
    "OIDCDiscovery",
    "metadata_documents",
    "metadata_urls",
    "read_metadata_async",
    "read_metadata_sync",
]


#: The path of the discovery document under an issuer (OpenID Connect Discovery 1.0 §4).
WELL_KNOWN: Final = "/.well-known/openid-configuration"
#: The well-known suffix of authorization server metadata (RFC 8414 §3, §7.3).
OAUTH_WELL_KNOWN: Final = "/.well-known/oauth-authorization-server"
#: HTTP statuses that say "no document here, try the next address" (a 4xx: the issuer's origin
#: does not serve it; S3 and CloudFront say 403 for a missing object). 408 and 429 are not an
#: answer about the document but about the server's state: an outage, like a 5xx or a timeout.
_NOT_HERE_EXCEPT: Final = frozenset({408, 429})


def metadata_urls(issuer: str) -> tuple[str, ...]:
    """Where an issuer's metadata may be, in the order they are tried (duplicates dropped).

    1. OpenID Connect Discovery 1.0 §4: ``{issuer}/.well-known/openid-configuration``;
    2. the same suffix inserted between the host and the issuer's path (RFC 8414 §5, for an
       issuer with a path: the form RFC 8414 asks OpenID providers to publish as well);
    3. RFC 8414 §3.1: ``{origin}/.well-known/oauth-authorization-server{path}``.

    RFC 8414 §3.1: a terminating ``/`` of the issuer's path is removed before inserting. For an
    issuer without a path, 1 and 2 are one address.
    """
    parts = urllib.parse.urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = (
        issuer.rstrip("/") + WELL_KNOWN,
        origin + WELL_KNOWN + path,
        origin + OAUTH_WELL_KNOWN + path,
    )
    return tuple(dict.fromkeys(urls))


def metadata_documents(issuer: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The addresses to read ``issuer``'s metadata from, in order, and the ``issuer`` values
    the document may name.

    From a document's own URL (an ``openid-configuration`` appended to the issuer or inserted
    after the host, or an ``oauth-authorization-server`` one): that document only, whose issuer
    is what the suffix was appended to or inserted before, with or without the slash that is
    dropped first (OpenID Connect Discovery 1.0 §4, RFC 8414 §3.1). From an issuer: the
    addresses of :func:`metadata_urls`, and the issuer exactly.
    """
    parts = urllib.parse.urlsplit(issuer)
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        # RFC 8414 §2: an issuer has no query or fragment; a metadata URL with one would
        # not be the one its issuer's document is published at.
        raise ConfigurationError("issuer must not have a query or a fragment (RFC 8414 §2)")
    base = _issuer_of_document(issuer)
    if base is not None:
        return (issuer,), (base, base + "/")
    return metadata_urls(issuer), (issuer,)


def read_metadata_sync(get: SyncGet, documents: tuple[str, ...]) -> tuple[str, bytes]:
    """The first metadata document found at ``documents`` (its URL and body): a 4xx moves on
    to the next address, an outage stops the search (see :class:`OIDCDiscovery`)."""
    absent: list[FetchFailed] = []
    while True:
        url = _next_document(documents, absent)
        try:
            body, _ = get(url)
        except FetchFailed as exc:
            absent.append(_absent(exc))
            continue
        return url, body


async def read_metadata_async(get: AsyncGet, documents: tuple[str, ...]) -> tuple[str, bytes]:
    """:func:`read_metadata_sync` for the async driver."""
    absent: list[FetchFailed] = []
    while True:
        url = _next_document(documents, absent)
        try:
            body, _ = await get(url)
        except FetchFailed as exc:
            absent.append(_absent(exc))
            continue
        return url, body


def _next_document(documents: tuple[str, ...], absent: list[FetchFailed]) -> str:
    """The next address to try, after ``absent`` said "not here"; raises after the last."""
    if len(absent) < len(documents):
        return documents[len(absent)]
    # Public addresses of the issuer's origin, for the log and the developer's detail.
    tried = ", ".join(f"{display_url(e.url or '')} (HTTP {e.status})" for e in absent)
    raise FetchFailed(f"no metadata document at {tried}"[:400], documents[0])


def _issuer_of_document(url: str) -> str | None:
    """The issuer whose metadata ``url`` names (any of the three forms), or ``None`` when
    ``url`` is not a metadata document's URL."""
    parts = urllib.parse.urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path
    for suffix in (OAUTH_WELL_KNOWN, WELL_KNOWN):
        if path == suffix or path.startswith(suffix + "/"):
            return origin + path[len(suffix) :]  # inserted after the host
    if path.endswith(WELL_KNOWN):
        return url[: url.rindex(WELL_KNOWN)]  # appended to the issuer
    return None


class OIDCDiscovery(JWKSKeys):
    """Keys of an authorization server found through its metadata.

    The metadata is OpenID Connect discovery or RFC 8414, whichever the server publishes.

    ``issuer`` is the issuer, or a metadata document's own URL (what IdP consoles show): an
    ``openid-configuration`` (appended to the issuer or inserted after the host) or an
    ``oauth-authorization-server`` one. From an issuer, the addresses of :func:`metadata_urls`
    are tried in turn: a 4xx answer moves on to the next; anything else that is not a usable
    document (a 5xx, a timeout, a body that is not a document) is an outage and stops there.
    All of them are on the issuer's own origin and the document's ``issuer`` must equal the
    configured one in any case, so the order decides only which document is read when several
    exist, never whose keys are trusted; an outage does not fall through because a server
    answering 5xx on one address may well answer an old document on another.

    The document's ``issuer`` must equal the configured issuer exactly (OpenID Connect
    Discovery 1.0 §4.3, RFC 8414 §3.3; from a document URL, with or without a trailing slash);
    its ``jwks_uri`` is then fetched and cached like :class:`JWKSKeys`. A failed JWKS fetch
    makes the next attempt re-read the metadata (from the first address again).

    A :class:`Verifier` built on it without ``issuer=`` expects tokens from this issuer only:
    providers share keys between tenants. ``allow_any_issuer=True`` turns that off (then no
    ``iss`` check at all unless ``issuer=`` is given).
    """

    _shared_kind = "discovery"  # its shared entry: the keys of the configured issuer

    def __init__(self, issuer: str, *, allow_any_issuer: bool = False, **options: Any) -> None:
        allow_http = bool(options.get("allow_http", False))
        check_url(issuer, allow_http, "issuer")
        self._documents, self._issuers = metadata_documents(issuer)
        self._discovery_url = self._documents[0]
        self.issuer = self._issuers[0]
        self.allow_any_issuer = bool(allow_any_issuer)
        super().__init__(self._discovery_url, **options)
        self._url = None

    @property
    def pinned_issuers(self) -> tuple[str, ...] | None:
        """The ``iss`` values a verifier without ``issuer=`` accepts (``None``: any)."""
        return None if self.allow_any_issuer else self._issuers

    def _jwks_uri(self, body: bytes, url: str) -> str:
        try:
            document = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise FetchFailed("discovery document is not JSON") from exc
        if not isinstance(document, dict):
            raise FetchFailed("discovery document is not a JSON object")
        found = document.get("issuer")
        if not isinstance(found, str) or found not in self._issuers:
            raise DiscoveryMismatch(url, found, self._issuers)
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise FetchFailed("discovery document has no jwks_uri")
        try:
            return check_url(uri, self._allow_http, "jwks_uri")
        except ConfigurationError as exc:
            raise FetchFailed("discovery document has no usable jwks_uri") from exc

    # The drivers' twins: GET each address in turn until a document (see the class).

    def _jwks_url_sync(self, get: SyncGet) -> str:
        if self._url is None:
            url, body = read_metadata_sync(get, self._documents)
            self._url = self._jwks_uri(body, url)
        return self._url

    async def _jwks_url_async(self, get: AsyncGet) -> str:
        if self._url is None:
            url, body = await read_metadata_async(get, self._documents)
            self._url = self._jwks_uri(body, url)
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
        return "Discovery document" if url in self._documents else "JWKS"

    def _failed(self, reason: str, url: str, *, log: bool = True) -> None:
        self._url = None
        super()._failed(reason, url, log=log)


def _absent(exc: FetchFailed) -> FetchFailed:
    """``exc`` when the failed GET says the document is not at this address (a 4xx, see the
    class); else (an outage) it is raised again, and the search stops."""
    if exc.status is not None and 400 <= exc.status < 500 and exc.status not in _NOT_HERE_EXCEPT:
        return exc
    raise exc
