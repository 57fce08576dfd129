"""One bounded HTTP GET, the same for both drivers of a remote key source (JWKS, discovery),
or POST (token introspection, RFC 7662).

httpx, status 200 only, no redirects, ``Accept-Encoding`` limited to what can be decoded with a
bounded output, the body streamed with its compressed *and* decoded size capped, and a deadline
that a slow drip cannot outlast. The whole fetch (discovery and JWKS together) runs under one
total deadline (:mod:`.deadline`). For the sync driver, a :class:`Flight` is one fetch that
waiters wait on, and its :class:`Sockets` are shut down when the deadline passes. Also the URL
rules of every outgoing call (https unless loopback or ``allow_http``) and the URL as logs show
it (no user info, no query).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import socket
import threading
import time
import urllib.parse
import zlib
from collections.abc import Mapping
from typing import Any, Final

import httpx

from .._core.errors import ConfigurationError
from .._core.jwks_policy import FetchFailed

__all__ = [
    "AsyncGet",
    "Flight",
    "Sockets",
    "SyncGet",
    "check_url",
    "display_url",
    "loop_client",
    "new_client",
    "retry_after",
]

#: Only what we can decode with a bounded output (see _Decoder): no br, no zstd.
_ACCEPT_ENCODING: Final = "gzip, deflate"


def display_url(url: str) -> str:
    """A URL for logs and details: without user info or query, which could hold credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_url(url: str, allow_http: bool, what: str = "url") -> str:
    """HTTPS only, unless ``allow_http`` or the host is loopback (development and tests)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"{what} must be a string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an absolute http(s) URL")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(f"{what} must use https (allow_http=True to override)")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loop_client(own: dict[asyncio.AbstractEventLoop, httpx.AsyncClient]) -> httpx.AsyncClient:
    """The async client made for the running loop in ``own`` (made now if there is none; those
    of closed loops are dropped): a client is bound to the loop that first used it."""
    loop = asyncio.get_running_loop()
    client = own.get(loop)
    if client is None:
        for old in [lp for lp in own if lp.is_closed()]:
            del own[old]
        client = own[loop] = new_client(httpx.AsyncClient)
    return client


def new_client(cls: type[Any]) -> Any:
    # No kept-alive connections: fetches are minutes apart, and a pooled connection is what a
    # fork would share between processes and what a deadline could not reach.
    return cls(follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))


class Sockets:
    """Remembers the sockets a sync fetch opens (httpx ``trace`` extension), so the deadline
    can shut them down and the abandoned thread ends instead of waiting on the server."""

    def __init__(self) -> None:
        self._streams: list[Any] = []

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self._streams.append(info.get("return_value"))

    def abort(self) -> None:
        for stream in self._streams:
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)


class Flight:
    """One sync fetch: waiters wait on ``done``; ``close`` aborts its sockets and joins its
    thread (``None`` when it runs in the caller's thread: ``prefetch``)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.sockets = Sockets()
        self.thread: threading.Thread | None = None


class _Decoder:
    """Content-Encoding decoding whose output is capped *while* decoding: a 200 KiB gzip body
    can inflate to hundreds of MiB, so the cap must apply to each step, not to the result."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self._zlib: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            # RFC 9110 §8.4.1: gzip, or deflate = the zlib format; 32 + 15 reads either header.
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            raise FetchFailed("unsupported Content-Encoding")

    def decode(self, data: bytes, room: int) -> bytes:
        """At most ``room + 1`` bytes of output (one more than fits means too large)."""
        if self._zlib is None:
            return data
        try:
            return bytes(self._zlib.decompress(data, room + 1))
        except zlib.error as exc:
            raise FetchFailed("bad compressed body") from exc

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise FetchFailed("truncated compressed body")


def retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header in seconds from ``now`` (epoch): delay-seconds or an
    HTTP-date (RFC 9110 §10.2.3); ``None`` when absent or unreadable. Unbounded: the caller
    caps it."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(min(int(value[:12]), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 §5.6.7: an HTTP-date is GMT
        return None
    return max(0.0, when.timestamp() - now)


class _Body:
    """What both drivers do with a streamed response: status, size caps, deadline."""

    def __init__(self, response: httpx.Response, max_bytes: int, deadline: float) -> None:
        status = response.status_code
        if status != 200:
            # Redirects included: a JWKS URL that moves is configuration to fix, and following
            # it would let whoever controls the redirect choose our keys.
            wait = None
            if status in (429, 503):  # RFC 6585 §4, RFC 9110 §15.6.4: may say when to retry
                wait = retry_after(response.headers.get("retry-after"), time.time())
            raise FetchFailed(f"HTTP status {status}", status=status, retry_after=wait)
        length = response.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            raise FetchFailed("response too large" if length.isdigit() else "bad Content-Length")
        self.headers: Mapping[str, str] = dict(response.headers)
        self._decoder = _Decoder(response.headers.get("content-encoding", ""))
        self._chunks: list[bytes] = []
        self._raw = 0
        self._size = 0
        self._max = max_bytes
        self._deadline = deadline

    def add(self, raw: bytes) -> None:
        # Both sizes are capped: the bytes on the wire and the bytes they decode to.
        self._raw += len(raw)
        if self._raw > self._max:
            raise FetchFailed("response too large")  # abandoned: never buffered whole
        chunk = self._decoder.decode(raw, self._max - self._size)
        self._size += len(chunk)
        if self._size > self._max:
            raise FetchFailed("response too large (decoded)")
        if time.monotonic() > self._deadline:
            raise FetchFailed("timed out")  # a slow drip must not outlast the total timeout
        self._chunks.append(chunk)

    def result(self) -> tuple[bytes, Mapping[str, str]]:
        self._decoder.finish()
        return b"".join(self._chunks), self.headers


def _request(data: bytes | None, headers: Mapping[str, str] | None) -> dict[str, Any]:
    """The method, body and headers of a GET (``data`` None) or a form POST."""
    sent = {"Accept": "application/json", "Accept-Encoding": _ACCEPT_ENCODING, **(headers or {})}
    if data is None:
        return {"method": "GET", "headers": sent}
    return {"method": "POST", "content": data, "headers": sent}


def _translate(exc: httpx.HTTPError, url: str) -> FetchFailed:
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed("timed out", url)
    return FetchFailed(f"transport error: {type(exc).__name__}", url)


class SyncGet:
    """One GET of a fetch (sync): the caller runs the whole fetch under one deadline."""

    def __init__(
        self, client: httpx.Client, timeout: float, max_bytes: int, sockets: Sockets
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._deadline = time.monotonic() + timeout
        self._sockets = sockets

    def __call__(
        self, url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[bytes, Mapping[str, str]]:
        """GET ``url``, or POST ``data`` to it (with ``headers`` added)."""
        try:
            with self._client.stream(
                url=url,
                timeout=self._timeout,
                follow_redirects=False,
                extensions={"trace": self._sockets.trace},
                **_request(data, headers),
            ) as response:
                body = _Body(response, self._max_bytes, self._deadline)
                for chunk in response.iter_raw():
                    body.add(chunk)
                return body.result()
        except FetchFailed as exc:
            exc.url = exc.url or url
            raise
        except httpx.HTTPError as exc:
            raise _translate(exc, url) from exc


class AsyncGet:
    """One GET of a fetch (async): the caller runs the whole fetch under one deadline."""

    def __init__(self, client: httpx.AsyncClient, timeout: float, max_bytes: int) -> None:
        self._client = client
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._deadline = time.monotonic() + timeout

    async def __call__(
        self, url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[bytes, Mapping[str, str]]:
        """GET ``url``, or POST ``data`` to it (with ``headers`` added)."""
        try:
            async with self._client.stream(
                url=url,
                timeout=self._timeout,
                follow_redirects=False,
                **_request(data, headers),
            ) as response:
                body = _Body(response, self._max_bytes, self._deadline)
                async for chunk in response.aiter_raw():
                    body.add(chunk)
                return body.result()
        except FetchFailed as exc:
            exc.url = exc.url or url
            raise
        except httpx.HTTPError as exc:
            raise _translate(exc, url) from exc
