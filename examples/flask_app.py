"""A Flask API protected by jwt_guard.

    JWT_GUARD_ISSUER=https://issuer.example JWT_GUARD_AUDIENCE=orders-api \
    JWT_GUARD_JWKS_URL=https://issuer.example/.well-known/jwks.json \
    flask --app examples.flask_app run
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify

from jwt_guard import Verifier
from jwt_guard.flask import JWTGuard, current_principal, require_roles

# jwt_guard says why it refuses a request in INFO lines (logger "jwt_guard"); uvicorn and
# `flask run` configure only their own loggers, so the app configures the rest.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

app = Flask(__name__)
# The README runs the examples in one shell, with the FastAPI example's own
# JWT_GUARD_DOCS_CLIENT_ID: not a jwt_guard setting.
verifier = Verifier.from_env(ignore_unknown=["JWT_GUARD_DOCS_*"])
JWTGuard(app, verifier=verifier, cookie="access_token", exclude=["/health"])


@app.get("/api/me")
def me() -> Any:
    return jsonify(
        sub=current_principal.subject,
        roles=sorted(current_principal.roles),
        scopes=sorted(current_principal.scopes),
    )


@app.get("/api/admin")
@require_roles("admin")
def admin() -> Any:
    return jsonify(message=f"hello admin {current_principal.identity}")


@app.get("/health")
def health() -> Any:
    return jsonify(status="ok")
