"""Real servers on 127.0.0.1 for tests: uvicorn (ASGI) and a threaded WSGI server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn

from jwt_guard.testing import _ClosingThreads


def loopback_socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1 with a free port, for an app that must know its
    own URL before it starts (pass it to ``run_uvicorn(app, sock=...)``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, with an event set once it listens (or once it gave up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def serve_in_thread(self, sockets: list[socket.socket] | None) -> None:
        try:
            self.run(sockets=sockets)
        finally:
            self.ready.set()  # it did not start, or it stopped


@contextmanager
def run_uvicorn(app: Any, *, sock: socket.socket | None = None, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields the base URL."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "log_level": "warning",
        "ws": "websockets-sansio",
        "lifespan": "on",
    }
    settings.update(config)
    server = _Uvicorn(uvicorn.Config(app, **settings))
    thread = threading.Thread(
        target=server.serve_in_thread, args=([sock] if sock else None,), daemon=True
    )
    thread.start()
    server.ready.wait(60)  # a liveness bound
    if not server.started:
        server.should_exit = True
        thread.join()
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)  # a liveness bound: a thread still alive fails the leak check


class _ThreadingWSGIServer(_ClosingThreads, WSGIServer):
    request_queue_size = 64  # many clients connect at once in some tests (the default is 5)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def run_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app with the stdlib's wsgiref (threaded) on 127.0.0.1; yields the URL."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.close_all()  # every connection closed, every handler thread joined
        thread.join()
