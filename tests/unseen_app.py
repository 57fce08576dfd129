"""Apps for tests/test_log.py, each run in a process of its own, with Python's logging as a
server leaves it (nothing configured for the ``jwt_guard`` logger):

    uvicorn tests.unseen_app:asgi                 # ASGI middleware (Starlette)
    flask --app tests.unseen_app:flask_app run    # Flask extension
    gunicorn tests.unseen_app:wsgi                # WSGI middleware

``python -m tests.unseen_app ADAPTER SETTING`` refuses requests in this process, then in a
forked child, then here again, with the logging ``SETTING`` names (see :data:`SETTINGS`).
``UNSEEN_APP_LOG_REJECTIONS`` (``DEBUG``) turns the lines down on every app.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwt_guard import JWTGuardMiddleware, JWTGuardWSGIMiddleware
from jwt_guard.flask import JWTGuard
from jwt_guard.testing import LocalIssuer

from .forking import in_child

ISSUER = LocalIssuer()
LEVEL = getattr(logging, os.environ.get("UNSEEN_APP_LOG_REJECTIONS", "INFO"))
OPTIONS: dict[str, Any] = {"exclude": ["/health"], "log_rejections": LEVEL}
#: A token that is not a JWT: refused with token_malformed (its line says segments=1).
NOT_A_JWT = {"Authorization": "Bearer opaque-token"}


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid()})


asgi = Starlette(
    routes=[Route("/health", _health), Route("/api/me", _health)],
    middleware=[Middleware(JWTGuardMiddleware, verifier=ISSUER.verifier(), **OPTIONS)],
)


def _plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"pid": %d}' % os.getpid()]


wsgi = JWTGuardWSGIMiddleware(_plain, verifier=ISSUER.verifier(), **OPTIONS)

flask_app = Flask(__name__)
JWTGuard(flask_app, verifier=ISSUER.verifier(), **OPTIONS)


@flask_app.get("/health")
@flask_app.get("/api/me")
def _flask_health() -> dict[str, int]:
    return {"pid": os.getpid()}


def _configure_nothing() -> None:
    pass


def _silence() -> None:
    logging.getLogger("jwt_guard").setLevel(logging.ERROR)  # a deliberate choice: no warning


def _level_without_handler() -> None:
    logging.getLogger("jwt_guard").setLevel(logging.INFO)  # enabled, but nothing writes INFO


def _basic_config() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


SETTINGS: dict[str, Callable[[], None]] = {
    "nothing": _configure_nothing,
    "level-without-handler": _level_without_handler,
    "silenced": _silence,
    "basic-config": _basic_config,
}


def refuse(adapter: str, times: int) -> None:
    """``times`` requests with a token that is not a JWT, through ``adapter`` in this process."""
    if adapter == "asgi":

        async def calls() -> None:
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                for _ in range(times):
                    assert (await client.get("/api/me", headers=NOT_A_JWT)).status_code == 401

        asyncio.run(calls())
        return
    app = flask_app if adapter == "flask" else wsgi
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://app") as client:
        for _ in range(times):
            assert client.get("/api/me", headers=NOT_A_JWT).status_code == 401


def main(adapter: str, setting: str) -> None:
    SETTINGS[setting]()
    refuse(adapter, 2)
    print("-- fork --", file=sys.stderr, flush=True)

    def child() -> bool:
        print(f"-- child {os.getpid()} --", file=sys.stderr, flush=True)
        refuse(adapter, 2)
        print("-- child done --", file=sys.stderr, flush=True)
        return True

    assert in_child(child)
    print("-- parent again --", file=sys.stderr, flush=True)
    refuse(adapter, 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
