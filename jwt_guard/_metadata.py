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
form, path inserted after the host) and ``GET /.well-known/oauth-protected-resource`` with the
document, without looking for a token, and every challenge it sends names the document's URL
in ``resource_metadata`` (§5.1), so a client that only knows the API's URL learns which
authorization server to ask, for which scopes and for which audience.

The document is built once, when the middleware is: serving it costs a set lookup on the path.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ._answer import Answer
from ._errors import ConfigurationError
from ._jwks import check_url

__all__ = ["WELL_KNOWN", "MetadataEndpoint", "ProtectedResource"]

#: RFC 9728 §3: the well-known URI suffix.
WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"
#: How long clients and caches may keep the document, by default (seconds).
DEFAULT_MAX_AGE: Final = 3600

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# What a URL placed in a quoted-string (the resource_metadata challenge parameter) may hold.
_QUOTED_SAFE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
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
    if not _QUOTED_SAFE.fullmatch(url):
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

    def __post_init__(self) -> None:
        resource = _url(self.resource, self.allow_http, "resource")
        parts = urllib.parse.urlsplit(resource)
        # RFC 9728 §1.2 / RFC 8707 §2: no fragment; a query would make the §3.1 URL ambiguous.
        if parts.fragment or "#" in resource:
            raise ConfigurationError("resource must not have a fragment (RFC 9728 §1.2)")
        if parts.query or "?" in resource:
            raise ConfigurationError("resource must not have a query (RFC 8707 §2)")
        servers = self.authorization_servers
        if isinstance(servers, str) or not isinstance(servers, Sequence):
            raise ConfigurationError("authorization_servers must be a list of issuer URLs")
        for server in servers:
            _url(server, self.allow_http, "authorization_servers")
        _names(self.scopes_supported, "scopes_supported", _SCOPE_TOKEN)
        algs = _names(
            self.resource_signing_alg_values_supported,
            "resource_signing_alg_values_supported",
            _SCOPE_TOKEN,
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

    @property
    def metadata_url(self) -> str:
        """Where the document lives: the well-known suffix inserted after the host (§3.1)."""
        parts = urllib.parse.urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}{self.metadata_paths[0]}"

    @property
    def metadata_paths(self) -> tuple[str, ...]:
        """The paths served: the §3.1 form first, then the plain well-known path.

        §3.1: a terminating slash after the host is removed before inserting, so
        ``https://a.example/`` and ``https://a.example`` both publish at the plain path.
        """
        path = urllib.parse.urlsplit(self.resource).path.rstrip("/")
        if not path:
            return (WELL_KNOWN,)
        return (WELL_KNOWN + path, WELL_KNOWN)


class MetadataEndpoint:
    """The built document and its answers, for one middleware."""

    def __init__(
        self,
        resource: ProtectedResource,
        *,
        audiences: frozenset[str],
        bearer_methods: Sequence[str],
        dpop_algorithms: Sequence[str] | None = None,
        dpop_required: bool = False,
    ) -> None:
        if not isinstance(resource, ProtectedResource):
            raise ConfigurationError("protected_resource must be a jwt_guard.ProtectedResource")
        if resource.resource not in audiences:
            # RFC 9728 §7.3 / RFC 8707: a client asks for tokens with aud = resource; a verifier
            # that expects another audience would refuse every one of them.
            raise ConfigurationError(
                f"protected_resource.resource {resource.resource!r} must be one of the "
                f"verifier's audiences {sorted(audiences)!r}"
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
        for name in ("resource_name", "resource_documentation"):
            value = getattr(resource, name)
            if value is not None:
                document[name] = value
        for name in ("resource_policy_uri", "resource_tos_uri"):
            value = getattr(resource, name)
            if value is not None:
                document[name] = value
        if dpop_algorithms is not None:
            document["dpop_signing_alg_values_supported"] = list(dpop_algorithms)
            document["dpop_bound_access_tokens_required"] = bool(dpop_required)
        document.update(resource.extra)
        self.document: Mapping[str, Any] = document
        self.url = resource.metadata_url
        self.paths = frozenset(resource.metadata_paths)
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
            [("allow", "GET, HEAD"), ("content-type", "application/json")],
            b'{"error":"method_not_allowed"}',
        )

    def answer(self, method: str, if_none_match: str | None) -> Answer:
        """The answer to a request for the document (the body is dropped for HEAD)."""
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
