"""Apps for tests/test_fork.py, served by a real gunicorn with ``--preload``.

The verifier is built and its keys fetched at import, in the gunicorn master, before it forks
its workers: what ``--preload`` (or a ``create_app`` that calls ``verifier.prefetch()``) does
in production. Settings come from the environment the test sets.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request  # at module level: FastAPI reads the annotations

from jwt_guard import JWKSKeys, JWTGuardMiddleware, Principal, RedisCache, Verifier

_SHARED = os.environ.get("FORK_SHARED_CACHE")  # a redis:// URL: tests/test_shared_cache.py
VERIFIER = Verifier(
    keys=JWKSKeys(
        os.environ["FORK_JWKS_URL"],
        cooldown=0,
        shared_cache=(
            RedisCache(_SHARED, integrity_key=os.environ["FORK_SHARED_CACHE_KEY"])
            if _SHARED
            else None
        ),
    ),
    algorithms=["ES256"],
    issuer=os.environ["FORK_ISSUER"],
    audience=os.environ["FORK_AUDIENCE"],
    cache_size=0,
)
VERIFIER.prefetch(required=True)  # in the master: the workers inherit what this leaves behind


def _answer(user: object) -> dict[str, Any]:
    subject = user.subject if isinstance(user, Principal) else None
    return {"pid": os.getpid(), "sub": subject}


def _flask() -> Any:
    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard, current_principal

    app = Flask(__name__)
    JWTGuard(app, verifier=VERIFIER)

    @app.get("/me")
    def me() -> Any:
        return jsonify(_answer(current_principal or None))

    return app


def _fastapi() -> Any:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(JWTGuardMiddleware, verifier=VERIFIER)

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return _answer(request.user)

    return app


flask_app = _flask() if os.environ.get("FORK_APP") == "flask" else None
fastapi_app = _fastapi() if os.environ.get("FORK_APP") == "fastapi" else None
