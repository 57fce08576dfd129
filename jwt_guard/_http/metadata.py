"""OAuth 2.0 Protected Resource Metadata (RFC 9728): the document and where it is served.

    guard = JWTGuardMiddleware(
        app,
        verifier=verifier,
        protected_resource=ProtectedResource(
            "https://api.example.com/orders",
            ["https://login.example.com"],
            scopes_supported=["orders:read", "orders:write"],
        ),
    )

The middleware then answers ``GET /.well-known/oauth-protected-resource/orders`` (the §3.1
form, path inserted after the host) and, unless ``root_fallback=False``,
``GET /.well-known/oauth-protected-resource`` with the document, without looking for a token,
and every challenge it sends names the document's URL
in ``resource_metadata`` (§5.1), so a client that only knows the API's URL learns which
authorization server to ask, for which scopes and for which audience.

The document is built once, when the middleware is: serving it costs a set lookup on the path.

The same object configures the verifier (:meth:`ProtectedResource.verifier`): its
``authorization_servers`` become the trusted issuers, their keys found by discovery, and its
``resource`` the audience every token must carry.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .._core.errors import ConfigurationError
from .._core.policy import TrustedIssuer
from .._core.scopes import OFFLINE_ACCESS, SCOPE_TOKEN
from .._sources.discovery import OIDCDiscovery
from .._sources.fetch import check_url
from .._sources.verifier import Verifier
from .answer import Answer

__all__ = ["WELL_KNOWN", "MetadataEndpoint", "ProtectedResource"]

#: RFC 9728 §3: the well-known URI suffix.
WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"
#: How long clients and caches may keep the document, by default (seconds).
DEFAULT_MAX_AGE: Final = 3600

# Fetch: Access-Control-Request-Headers is a list of header names (RFC 9110 §5.1 tokens).
_HEADER_NAME = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_LIST = re.compile(rf"{_HEADER_NAME}(?:[ \t]*,[ \t]*{_HEADER_NAME})*")
_DEFAULT_ALLOWED_HEADERS: Final = "MCP-Protocol-Version, If-None-Match"
#: What :meth:`ProtectedResource.verifier` sets from the document itself.
_FROM_THE_DOCUMENT: Final = frozenset({"keys", "issuer", "issuers", "audience"})
#: RFC 9728 §2: set when the verifier checks certificate-bound tokens (RFC 8705).
_MTLS_MEMBER: Final = "tls_client_certificate_bound_access_tokens"
# The members this class fills itself; ``extra`` may not override them.
_OWN_MEMBERS: Final = frozenset(
    {
        "resource",
        "authorization_servers",
        "scopes_supported",
        "bearer_methods_supported",
        "resource_name",
        "resource_documentation",
        "resource_policy_uri",
        "resource_tos_uri",
        "resource_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",
        "dpop_bound_access_tokens_required",
    }
)


def _url(value: object, allow_http: bool, what: str) -> str:
    url = check_url(value, allow_http, what)  # type: ignore[arg-type]
    # What a URL placed in a quoted string (the resource_metadata parameter) may hold.
    if not SCOPE_TOKEN.fullmatch(url):
        raise ConfigurationError(f"{what} has characters a URL must percent-encode")
    return url


def _names(value: Sequence[str] | None, what: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(
        isinstance(v, str) and pattern.fullmatch(v) for v in value
    ):
        raise ConfigurationError(f"{what} must be a list of names without spaces or quotes")
    return tuple(value)


@dataclass(frozen=True)
class ProtectedResource:
    """What this API publishes about itself (RFC 9728 §2).

    ``resource`` is the API's identifier: the URL clients call and the audience its tokens
    carry (RFC 8707), so it must be one of the verifier's audiences. ``authorization_servers``
    are the issuer identifiers of the servers that grant tokens for it (RFC 8414).
    ``bearer_methods_supported`` comes from the middleware's settings and the DPoP members from
    the verifier's; ``extra`` adds other registered members (it cannot replace these).

    ``challenge_scopes`` is the ``scope`` a 401 names when the route (or MCP tool) asks for no
    scope of its own: ``None`` (default) names ``scopes_supported``; a list names those (the
    least a client should ask for at its first login); ``[]`` puts no ``scope`` in any 401.
    ``offline_access`` is refused in both (MCP authorization: SHOULD NOT be in a challenge or
    in ``scopes_supported``; it asks the authorization server for a refresh token and grants
    nothing here).
    """

    resource: str
    authorization_servers: Sequence[str]
    scopes_supported: Sequence[str] | None = None
    resource_name: str | None = None
    resource_documentation: str | None = None
    resource_policy_uri: str | None = None
    resource_tos_uri: str | None = None
    #: Only for an API that signs its *responses* (RFC 9728 §2): this is not the list of
    #: algorithms accepted on access tokens, so it is never derived from the verifier.
    resource_signing_alg_values_supported: Sequence[str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds clients and shared caches may keep the document (``Cache-Control: max-age``).
    max_age: int = DEFAULT_MAX_AGE
    allow_http: bool = False
    #: Also serve the document at the plain ``/.well-known/oauth-protected-resource`` when the
    #: resource has a path, for clients that do not insert it (some MCP clients try the plain
    #: path). A client that follows RFC 9728 §3.3 refuses a document whose ``resource`` is not
    #: the URL it derived the address from, so this only helps clients that do not check, and
    #: on a host serving several resources the plain path belongs to one of them at most:
    #: ``root_fallback=False`` serves the §3.1 path only.
    root_fallback: bool = True
    challenge_scopes: Sequence[str] | None = None

    def __post_init__(self) -> None:
        resource = _url(self.resource, self.allow_http, "resource")
        parts = urllib.parse.urlsplit(resource)
        # RFC 9728 §1.2 / RFC 8707 §2: no fragment; a query would make the §3.1 URL ambiguous.
        if parts.fragment or "#" in resource:
            raise ConfigurationError("resource must not have a fragment (RFC 9728 §1.2)")
        if parts.query or "?" in resource:
            # RFC 8707 §2: a resource SHOULD NOT have a query; refused here, since the §3.1
            # address (suffix inserted before the path, the query kept) serves one resource.
            raise ConfigurationError("resource must not have a query (RFC 8707 §2, SHOULD NOT)")
        servers = self.authorization_servers
        if isinstance(servers, str) or not isinstance(servers, Sequence):
            raise ConfigurationError("authorization_servers must be a list of issuer URLs")
        for server in servers:
            _url(server, self.allow_http, "authorization_servers")
        for option in ("scopes_supported", "challenge_scopes"):
            if OFFLINE_ACCESS in _names(getattr(self, option), option, SCOPE_TOKEN):
                raise ConfigurationError(
                    f"{option} must not list {OFFLINE_ACCESS!r}: it asks the authorization "
                    "server for a refresh token and grants nothing at this resource (MCP "
                    "authorization: SHOULD NOT be in scopes_supported or a challenge)"
                )
        algs = _names(
            self.resource_signing_alg_values_supported,
            "resource_signing_alg_values_supported",
            SCOPE_TOKEN,
        )
        if any(alg.lower() == "none" for alg in algs):
            raise ConfigurationError("'none' is never a signing algorithm (RFC 9728 §2)")
        if self.resource_name is not None and not isinstance(self.resource_name, str):
            raise ConfigurationError("resource_name must be a string")
        for name in ("resource_documentation", "resource_policy_uri", "resource_tos_uri"):
            value = getattr(self, name)
            if value is not None:
                _url(value, self.allow_http, name)
        if not isinstance(self.extra, Mapping) or not all(isinstance(k, str) for k in self.extra):
            raise ConfigurationError("extra must be a mapping of member names to JSON values")
        if _OWN_MEMBERS.intersection(self.extra):
            raise ConfigurationError("extra cannot replace a member ProtectedResource fills")
        try:
            json.dumps(dict(self.extra))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError("extra must hold JSON values") from exc
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0:
            raise ConfigurationError("max_age must be a non-negative number of seconds")
        if not isinstance(self.root_fallback, bool):
            raise ConfigurationError("root_fallback must be True or False")

    def verifier(
        self,
        *,
        algorithms: str | Sequence[str] | None = None,
        discovery: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Verifier:
        """A :class:`Verifier` for the tokens this resource accepts, from this document alone.

        Each of ``authorization_servers`` becomes a :class:`TrustedIssuer` whose keys are found
        by discovery (:class:`OIDCDiscovery`: its OpenID configuration or its RFC 8414
        metadata, the document's ``issuer`` pinned), and ``resource`` is the audience every
        token must carry (RFC 8707; RFC 9728 §7.4: a token issued for another resource is
        refused). ``algorithms``, when given, win; left out, each authorization server's
        published keys verify their own (RFC 8725 §3.1). ``discovery`` holds options for each
        discovery source (``timeout``, ``client``, ...; ``allow_http`` defaults to this
        document's), ``options`` the :class:`Verifier`'s others (``leeway``, ``denylist``,
        ``dpop``, ...).
        """
        given = sorted(_FROM_THE_DOCUMENT.intersection(options))
        if given:
            raise ConfigurationError(
                f"ProtectedResource.verifier() sets {given} from the document (its "
                "authorization_servers and resource): build a Verifier yourself to choose them"
            )
        if not self.authorization_servers:
            raise ConfigurationError(
                "ProtectedResource.verifier() needs authorization_servers: the issuers whose "
                "tokens this resource accepts"
            )
        if discovery is not None and "issuer" in discovery:
            raise ConfigurationError(
                "ProtectedResource.verifier(discovery=...) cannot set issuer: each of the "
                "document's authorization_servers is one (build a Verifier yourself to choose)"
            )
        sources = {"allow_http": self.allow_http, **(discovery or {})}
        try:
            issuers = [
                TrustedIssuer(issuer, OIDCDiscovery(issuer, **sources), audience=self.resource)
                for issuer in dict.fromkeys(self.authorization_servers)
            ]
        except TypeError as exc:  # a name OIDCDiscovery does not take
            raise ConfigurationError(
                f"ProtectedResource.verifier(discovery=...) takes OIDCDiscovery's options: {exc}"
            ) from None
        return Verifier(algorithms=algorithms, issuers=issuers, **options)

    @property
    def scopes_for_401(self) -> tuple[str, ...] | None:
        """What a 401 names in ``scope`` where the route asks for none of its own.

        ``None`` when 401s name no scope at all (``challenge_scopes=[]``)."""
        if self.challenge_scopes is None:
            return tuple(self.scopes_supported or ())
        return tuple(self.challenge_scopes) or None

    @property
    def metadata_url(self) -> str:
        """Where the document lives: the well-known suffix inserted after the host (§3.1)."""
        parts = urllib.parse.urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}{self.metadata_paths[0]}"

    @property
    def metadata_paths(self) -> tuple[str, ...]:
        """The paths the metadata document is served at (as in the URL, percent-encoded).

        The §3.1 form first, then the plain well-known path (unless ``root_fallback=False``).

        §3.1: a terminating slash after the host is removed before inserting, so
        ``https://a.example/`` and ``https://a.example`` both publish at the plain path. A
        resource path's own trailing slash is kept (``/orders/`` publishes at
        ``…/oauth-protected-resource/orders/``); the adapters serve it with and without.
        """
        path = urllib.parse.urlsplit(self.resource).path
        if not path.rstrip("/"):
            return (WELL_KNOWN,)
        if not self.root_fallback:
            return (WELL_KNOWN + path,)
        return (WELL_KNOWN + path, WELL_KNOWN)


class MetadataEndpoint:
    """The built document and its answers, for one middleware."""

    def __init__(
        self,
        resource: ProtectedResource,
        *,
        issuer_audiences: Sequence[tuple[str | None, frozenset[str] | None]],
        bearer_methods: Sequence[str],
        dpop_algorithms: Sequence[str] | None = None,
        dpop_required: bool = False,
        mtls: bool = False,
    ) -> None:
        if not isinstance(resource, ProtectedResource):
            raise ConfigurationError("protected_resource must be a jwt_guard.ProtectedResource")
        for issuer, audiences in issuer_audiences:
            # RFC 9728 §7.4 / RFC 8707: tokens for this resource carry aud = resource, and a
            # token for another resource must be refused. Every trusted issuer must check it:
            # one whose policy has no audience would have its tokens for any API accepted here.
            if audiences is None or resource.resource not in audiences:
                who = f"trusted issuer {issuer!r}" if issuer else "verifier"
                found = sorted(audiences) if audiences is not None else "none"
                raise ConfigurationError(
                    f"protected_resource.resource {resource.resource!r} must be one of the "
                    f"audiences of the {who} (found: {found}); RFC 9728 §7.4"
                )
        document: dict[str, Any] = {"resource": resource.resource}
        if resource.authorization_servers:
            document["authorization_servers"] = list(resource.authorization_servers)
        if resource.scopes_supported is not None:
            document["scopes_supported"] = list(resource.scopes_supported)
        # RFC 9728 §2: [] says no RFC 6750 method is supported (a cookie-only API).
        document["bearer_methods_supported"] = list(bearer_methods)
        if resource.resource_signing_alg_values_supported is not None:
            document["resource_signing_alg_values_supported"] = list(
                resource.resource_signing_alg_values_supported
            )
        for name in (
            "resource_name",
            "resource_documentation",
            "resource_policy_uri",
            "resource_tos_uri",
        ):
            value = getattr(resource, name)
            if value is not None:
                document[name] = value
        if dpop_algorithms is not None:
            document["dpop_signing_alg_values_supported"] = list(dpop_algorithms)
            document["dpop_bound_access_tokens_required"] = bool(dpop_required)
        document.update(resource.extra)
        if mtls:
            # RFC 9728 §2: this resource supports certificate-bound tokens (RFC 8705).
            if resource.extra.get(_MTLS_MEMBER, True) is not True:
                raise ConfigurationError(
                    f"protected_resource.extra says {_MTLS_MEMBER} is not true, and the "
                    "verifier has mtls=True: drop it from extra"
                )
            document[_MTLS_MEMBER] = True
        self.document: Mapping[str, Any] = document
        self.url = resource.metadata_url
        #: The paths served, percent-decoded (as ASGI's ``path`` and WSGI's ``PATH_INFO``, read
        #: as UTF-8, give them), each with and without a trailing slash.
        self.paths = frozenset(
            form
            for path in resource.metadata_paths
            for decoded in [urllib.parse.unquote(path).rstrip("/")]
            for form in (decoded, decoded + "/")
        )
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        common = [
            ("cache-control", f"public, max-age={resource.max_age}"),
            ("etag", etag),
            # A public document: browser-based clients on other origins may read it.
            ("access-control-allow-origin", "*"),
        ]
        self._etag = etag
        self._ok = Answer(200, [("content-type", "application/json"), *common], body)
        self._not_modified = Answer(304, common, b"")
        self._not_allowed = Answer(
            405,
            [("allow", "GET, HEAD, OPTIONS"), ("content-type", "application/json")],
            b'{"error":"method_not_allowed"}',
        )
        # Fetch §3.2.3: a browser-based client's preflight before a GET with its own headers
        # (the MCP client sends MCP-Protocol-Version): the document answers it itself, as it
        # answers every other request for it (nothing behind the middleware serves this path).
        self._preflight = [
            ("allow", "GET, HEAD, OPTIONS"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET, HEAD"),
            ("access-control-max-age", "86400"),
        ]

    def matches(self, path: str) -> bool:
        """Whether ``path`` (percent-decoded) is one where the document is served."""
        return path in self.paths

    def answer(
        self, method: str, if_none_match: str | None, request_headers: str | None = None
    ) -> Answer:
        """The answer to a request for the document (the body is dropped for HEAD).

        ``request_headers`` is a preflight's ``Access-Control-Request-Headers``.
        """
        if method == "OPTIONS":
            headers = list(self._preflight)
            allowed = _DEFAULT_ALLOWED_HEADERS
            if request_headers is not None and _HEADER_LIST.fullmatch(request_headers):
                allowed = request_headers  # a public document: any header may be sent
            headers.append(("access-control-allow-headers", allowed))
            return Answer(204, headers, b"")
        if method != "GET" and method != "HEAD":
            return self._not_allowed
        if if_none_match is not None and _etag_matches(if_none_match, self._etag):
            return self._not_modified  # RFC 9110 §13.1.2
        return self._ok


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §8.8.3.2): W/ prefixes are ignored for If-None-Match.
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))
