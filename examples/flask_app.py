"""A Flask API protected by jwt_guard.

An app factory: ``create_app()`` reads its settings from the environment when it is called,
never at import (``flask --app examples.flask_app`` finds and calls it); a test calls
``create_app(verifier)``::

    JWT_GUARD_ISSUER=https://issuer.example JWT_GUARD_AUDIENCE=orders-api \
    JWT_GUARD_JWKS_URL=https://issuer.example/.well-known/jwks.json \
    flask --app examples.flask_app run
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, jsonify

from jwt_guard import Verifier
from jwt_guard.flask import JWTGuard, current_principal, require_roles

# jwt_guard says why it refuses a request in INFO lines (logger "jwt_guard"); uvicorn and
# `flask run` configure only their own loggers, so the app configures the rest.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

api = Blueprint("api", __name__)


@api.get("/api/me")
def me() -> Any:
    return jsonify(
        sub=current_principal.subject,
        roles=sorted(current_principal.roles),
        scopes=sorted(current_principal.scopes),
    )


@api.get("/api/admin")
@require_roles("admin")
def admin() -> Any:
    return jsonify(message=f"hello admin {current_principal.identity}")


@api.get("/health")
def health() -> Any:
    return jsonify(status="ok")


def create_app(verifier: Verifier | None = None) -> Flask:
    """The app, trusting ``verifier`` (default: ``Verifier.from_env()``, the ``JWT_GUARD_*``
    variables)."""
    app = Flask(__name__)
    JWTGuard(
        app,
        verifier=verifier or Verifier.from_env(),
        cookie="access_token",
        exclude=["/health"],
    )
    app.register_blueprint(api)
    return app
