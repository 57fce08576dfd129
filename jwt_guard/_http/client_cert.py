"""Where a request's client certificate comes from (RFC 8705 certificate-bound tokens).

    ClientCertificate.tls()                      ASGI ``tls`` extension, ``client_cert_chain[0]``
    ClientCertificate.environ("SSL_CLIENT_CERT") WSGI environ (mod_wsgi / mod_ssl), PEM
    ClientCertificate.header(trusted_proxies=)   RFC 9440 ``Client-Cert: :base64-DER:``
    ClientCertificate.nginx(trusted_proxies=)    nginx ``$ssl_client_escaped_cert`` in a header
    ClientCertificate.envoy_xfcc(trusted_proxies=)  Envoy ``x-forwarded-client-cert``

Each is configured explicitly on a middleware or route guard (``client_certificate=``), and
reads a request to the certificate's thumbprint (``_core.certificates``), or ``None`` when the
request presented none. A header is believed only from a configured proxy: the direct peer
(ASGI ``scope["client"]``, WSGI ``REMOTE_ADDR``) must be one of ``trusted_proxies``; from
anyone else it is ignored (logged at DEBUG, once per source), so a bound token then fails.
A header that does not parse is a 400 (``client_certificate_invalid``), never a 500.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Sequence
from typing import Final

from .._core.certificates import (
    invalid_certificate,
    thumbprint_from_client_cert,
    thumbprint_from_escaped_pem,
    thumbprint_from_pem,
    thumbprint_from_xfcc,
)
from .._core.errors import ConfigurationError
from .._core.log import logger
from .types import Environ, Scope

__all__ = ["ClientCertificate"]

#: Distinct certificate texts remembered with their thumbprint: a client presents the same
#: certificate on every request, so a hit costs a dict lookup instead of a decode and a hash.
#: Cleared when full, so a flood of made-up certificates cannot grow memory.
THUMBPRINT_CACHE_SIZE: Final = 1024
#: Distinct peer addresses remembered as trusted or not.
PEER_CACHE_SIZE: Final = 1024

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(trusted_proxies: object) -> tuple[_Network, ...]:
    if isinstance(trusted_proxies, str) or not isinstance(trusted_proxies, Sequence):
        raise ConfigurationError(
            "trusted_proxies must be a list of addresses or networks (['10.0.0.0/8', "
            "'127.0.0.1']): the proxies whose certificate header is believed"
        )
    if not trusted_proxies:
        raise ConfigurationError(
            "trusted_proxies is empty: a client certificate header is believed only from the "
            "proxy that terminated TLS; name its address"
        )
    networks = []
    for entry in trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"trusted_proxies: {entry!r} is not an address or network"
            ) from exc
    return tuple(networks)


class ClientCertificate:
    """One configured source of the client certificate; make it with a class method."""

    __slots__ = (
        "_cache",
        "_forwarded_said",
        "_peers",
        "_read",
        "_said",
        "kind",
        "name",
        "networks",
    )

    def __init__(
        self,
        kind: str,
        name: str,
        read: Callable[[str], str | None],
        trusted_proxies: Sequence[str] | None = None,
    ) -> None:
        #: ``"tls"``, ``"environ"`` or ``"header"``.
        self.kind = kind
        #: The environ key, or the header name (lowercase).
        self.name = name
        self._read = read
        self.networks = _networks(trusted_proxies) if kind == "header" else ()
        self._cache: dict[str, str | None] = {}
        self._peers: dict[str, bool] = {}
        self._said = False
        self._forwarded_said = False

    def __repr__(self) -> str:
        return f"ClientCertificate({self.kind}, {self.name!r})"

    # -- the sources -----------------------------------------------------------------------------

    @classmethod
    def tls(cls) -> ClientCertificate:
        """The ASGI server's own TLS connection's client certificate (ASGI only).

        ``scope["extensions"]["tls"]["client_cert_chain"][0]``: the ASGI TLS extension, a PEM."""
        return cls("tls", "tls", thumbprint_from_pem)

    @classmethod
    def environ(cls, key: str = "SSL_CLIENT_CERT") -> ClientCertificate:
        """A PEM in the WSGI environ, as mod_wsgi exports mod_ssl's ``SSL_CLIENT_CERT`` (WSGI only).

        With ``SSLOptions +ExportCertData``."""
        if not isinstance(key, str) or not key:
            raise ConfigurationError("ClientCertificate.environ: key must be an environ key")
        if key.upper().startswith("HTTP_"):
            # PEP 3333: an HTTP_* key is a request header, written by whoever connects; read
            # here it would skip the trusted_proxies check (review R28 F1).
            raise ConfigurationError(
                f"ClientCertificate.environ({key!r}): an HTTP_* key is a request header that any "
                "client can send; for a certificate a proxy puts in a header use "
                "ClientCertificate.header/nginx/envoy_xfcc(..., trusted_proxies=[...])"
            )
        return cls("environ", key, thumbprint_from_pem)

    @classmethod
    def header(
        cls, name: str = "Client-Cert", *, trusted_proxies: Sequence[str]
    ) -> ClientCertificate:
        """RFC 9440 §2: ``Client-Cert: :<base64 DER>:``, set by a TLS-terminating proxy.

        The proxy must be at one of ``trusted_proxies`` (addresses or networks)."""
        return cls("header", _header_name(name), thumbprint_from_client_cert, trusted_proxies)

    @classmethod
    def nginx(
        cls, header: str = "X-SSL-Client-Cert", *, trusted_proxies: Sequence[str]
    ) -> ClientCertificate:
        """nginx's ``$ssl_client_escaped_cert`` (the URL-escaped PEM) in ``header``.

        Set with ``proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;``."""
        return cls("header", _header_name(header), thumbprint_from_escaped_pem, trusted_proxies)

    @classmethod
    def envoy_xfcc(
        cls,
        *,
        trusted_proxies: Sequence[str],
        header: str = "X-Forwarded-Client-Cert",
        last_element: bool = False,
    ) -> ClientCertificate:
        """Envoy's ``x-forwarded-client-cert`` (its ``Hash=``, and ``Cert=`` when present).

        Several elements are refused unless ``last_element=True`` takes the one the trusted proxy
        appended (``forward_client_cert_details: APPEND_FORWARD``)."""
        if not isinstance(last_element, bool):
            raise ConfigurationError("last_element must be True or False")

        def read(value: str) -> str | None:
            return thumbprint_from_xfcc(value, last_element=last_element)

        return cls("header", _header_name(header), read, trusted_proxies)

    # -- reading a request -----------------------------------------------------------------------

    def check_adapter(self, asgi: bool) -> None:
        """Refuse at start-up a source the adapter cannot read.

        A WSGI environ has no ASGI ``tls`` extension; an ASGI scope has no environ."""
        if asgi and self.kind == "environ":
            raise ConfigurationError(
                "ClientCertificate.environ() is for WSGI; under ASGI use ClientCertificate.tls() "
                "or a proxy header (ClientCertificate.header/nginx/envoy_xfcc)"
            )
        if not asgi and self.kind == "tls":
            raise ConfigurationError(
                "ClientCertificate.tls() is for ASGI; under WSGI use "
                "ClientCertificate.environ('SSL_CLIENT_CERT') or a proxy header"
            )

    def _thumbprint(self, text: str) -> str | None:
        cache = self._cache
        try:
            return cache[text]
        except KeyError:
            pass
        thumbprint = self._read(text)  # raises the 400 for what does not parse: not cached
        if len(cache) >= THUMBPRINT_CACHE_SIZE:
            cache.clear()
        cache[text] = thumbprint
        return thumbprint

    def _trusted(self, peer: str | None) -> bool:
        if not peer or not isinstance(peer, str):
            return False  # a Unix socket, or a server that does not say
        trusted = self._peers.get(peer)
        if trusted is None:
            try:
                address = ipaddress.ip_address(peer)
            except ValueError:
                trusted = False
            else:
                mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d (dual stack)
                trusted = any(
                    a in n for n in self.networks for a in (address, mapped) if a is not None
                )
            if len(self._peers) >= PEER_CACHE_SIZE:
                self._peers.clear()
            self._peers[peer] = trusted
        return trusted

    def _no_tls_extension(self) -> None:
        # Silence would look like clients presenting no certificate: say it, once.
        if not self._said:
            self._said = True
            logger.warning(
                "ClientCertificate.tls(): the ASGI server gives no 'tls' extension in the "
                "scope, so no request has a client certificate (certificate-bound tokens are "
                "refused); use a server that provides it, or terminate TLS in a proxy and use "
                "ClientCertificate.header/nginx/envoy_xfcc(trusted_proxies=...)"
            )

    def _untrusted(self, peer: str | None) -> None:
        if not self._said:
            self._said = True
            logger.debug(
                "client certificate header %r from %s ignored: not one of trusted_proxies "
                "(logged once)",
                self.name,
                peer or "an unnamed peer",
            )

    def _forwarded_peer(self, peer: str | None, forwarded: list[str]) -> bool:
        """Whether the peer's address is one a forwarding header names: then the server
        (uvicorn's ``proxy_headers``, Hypercorn's or werkzeug's ProxyFix) may have made it from
        that header, which any caller writes, and it is not believed (review R28 F7)."""
        if not peer or not forwarded or peer not in _forwarded_addresses(forwarded):
            return False
        if not self._forwarded_said:
            self._forwarded_said = True
            logger.warning(
                "client certificate header %r ignored: the peer address %s is named by the "
                "request's X-Forwarded-For/Forwarded, so the server may have taken it from that "
                "header (uvicorn/Hypercorn proxy headers, werkzeug ProxyFix) and any caller can "
                "claim to be a trusted proxy; run uvicorn with --no-proxy-headers (Hypercorn, "
                "gunicorn: no proxy-header rewriting; Flask: no ProxyFix) so the peer is the "
                "connection's, and have the proxy not send X-Forwarded-For (logged once)",
                self.name,
                peer,
            )
        return True

    def from_scope(self, scope: Scope) -> str | None:
        """The thumbprint of the client certificate of an ASGI request, or ``None``."""
        if self.kind == "environ":
            self.check_adapter(asgi=True)
        if self.kind == "tls":
            tls = (scope.get("extensions") or {}).get("tls")
            if tls is None:
                # The extension is there only on TLS connections (ASGI TLS extension spec):
                # over https without it, the server does not provide it at all.
                if scope.get("scheme") in ("https", "wss"):
                    self._no_tls_extension()
                return None
            # An iterable, the client's certificate first (ASGI TLS extension spec).
            first = next(iter(tls.get("client_cert_chain") or ()), None)
            if first is None:
                return None
            if not isinstance(first, str):
                raise invalid_certificate("the server's client_cert_chain is not PEM text")
            return self._thumbprint(first)
        wanted = self.name.encode("latin-1")
        values = [value for name, value in scope["headers"] if name == wanted]
        if not values:
            return None
        client = scope.get("client")
        peer = client[0] if client else None
        if not self._trusted(peer):
            self._untrusted(peer)
            return None
        forwarded = [
            value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"x-forwarded-for", b"forwarded")
        ]
        if self._forwarded_peer(peer, forwarded):
            return None
        if len(values) > 1:
            raise invalid_certificate("the client certificate header is repeated")
        return self._header_value(values[0].decode("latin-1"))

    def from_environ(self, environ: Environ) -> str | None:
        """The thumbprint of the client certificate of a WSGI request, or ``None``."""
        if self.kind == "tls":
            self.check_adapter(asgi=False)
        if self.kind == "environ":
            value = environ.get(self.name)
            if not value:
                return None
            return self._thumbprint(value)
        software = environ.get("SERVER_SOFTWARE")
        if isinstance(software, str) and software.startswith(_CONFLATING_SERVERS):
            # PEP 3333 leaves "_" and "-" to the server: wsgiref writes a client's
            # "X-Forwarded-Client_Cert" as HTTP_X_FORWARDED_CLIENT_CERT, the proxy's header,
            # which a proxy passing underscore names on (Envoy's default) lets through
            # (review R28 F4). Refuse rather than read a header the client may have named.
            raise ConfigurationError(
                f"the client certificate header {self.name!r} under {software}: this WSGI "
                "server reads a header spelled with '_' as the one spelled with '-', so a "
                "client can send the certificate header past the proxy; serve the app with "
                "gunicorn (>= 22), waitress or mod_wsgi, which drop such names"
            )
        value = environ.get("HTTP_" + self.name.upper().replace("-", "_"))
        if value is None:
            return None
        peer = environ.get("REMOTE_ADDR")
        if not self._trusted(peer):
            self._untrusted(peer)
            return None
        forwarded = [
            environ[key] for key in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED") if key in environ
        ]
        if self._forwarded_peer(peer, forwarded):
            return None
        return self._header_value(value)

    def _header_value(self, value: str) -> str | None:
        value = value.strip(" \t")
        if not value:
            return None  # the proxy's variable was empty: no certificate presented
        return self._thumbprint(value)


#: SERVER_SOFTWARE prefixes of WSGI servers that map a header name's "_" like its "-": the
#: standard library's wsgiref (``WSGIServer/0.2 CPython/3.x``).
_CONFLATING_SERVERS: Final = ("WSGIServer/",)


def _forwarded_addresses(values: list[str]) -> set[str]:
    """The addresses named by X-Forwarded-For and Forwarded (RFC 7239 §4 ``for=``), as a
    server that rewrites the peer from them would write it: no quotes, brackets or port."""
    found: set[str] = set()
    for value in values:
        for item in value.replace(";", ",").split(","):
            item = item.strip()
            if item[:4].lower() == "for=":
                item = item[4:]
            elif "=" in item:
                continue  # Forwarded's by=, host=, proto=
            item = item.strip().strip('"')
            if item.startswith("["):
                item = item[1:].split("]", 1)[0]  # [v6] or [v6]:port
            elif item.count(":") == 1:
                item = item.split(":", 1)[0]  # v4:port
            if item:
                found.add(item)
                with contextlib.suppress(ValueError):
                    found.add(str(ipaddress.ip_address(item)))
    return found


def _header_name(name: object) -> str:
    if (
        not isinstance(name, str)
        or not name
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    ):
        raise ConfigurationError("the certificate header must be a header name")
    return name.lower()
