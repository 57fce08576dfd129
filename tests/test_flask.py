"""Flask and plain WSGI: the extension, config from app.config, threads, a real server."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify

from jwt_guard import ConfigurationError, JWKSKeys
from jwt_guard.flask import JWTGuard, current_principal, get_principal, require_roles
from jwt_guard.testing import JWKSServer, LocalIssuer
from jwt_guard.wsgi import JWTGuardWSGIMiddleware

from .servers import run_wsgi


@pytest.fixture
def real_issuer() -> LocalIssuer:
    return LocalIssuer(algorithm="ES256")


def test_extension_reads_app_config(real_issuer: LocalIssuer) -> None:
    with JWKSServer(lambda: real_issuer.jwks) as jwks:
        app = Flask(__name__)
        app.config.update(
            JWT_GUARD_ISSUER=real_issuer.issuer,
            JWT_GUARD_AUDIENCE=["x", real_issuer.audience],
            JWT_GUARD_JWKS_URL=jwks.url,
            JWT_GUARD_ALGORITHMS=["ES256"],
            JWT_GUARD_EXCLUDE=["/health"],
            JWT_GUARD_REALM="flask-api",
        )
        JWTGuard(app)

        @app.get("/me")
        def me() -> Any:
            return jsonify(sub=current_principal.subject)

        @app.get("/health")
        def health() -> Any:
            return jsonify(anonymous=get_principal() is None)

        client = app.test_client()
        token = real_issuer.mint(sub="fl")
        assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).json == {"sub": "fl"}
        missing = client.get("/me")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="flask-api"'
        assert client.get("/health").json == {"anonymous": True}
        assert jwks.count == 1


def test_extension_config_errors_are_clear() -> None:
    app = Flask(__name__)
    app.config["JWT_GUARD_ISSUER"] = "https://idp.example"
    with pytest.raises(ConfigurationError, match="AUDIENCE"):
        JWTGuard(app)


def test_flask_decorators_with_test_client(real_issuer: LocalIssuer) -> None:
    app = Flask(__name__)
    JWTGuard(app, verifier=real_issuer.verifier())

    @app.get("/admin")
    @require_roles("admin")
    def admin() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    user = client.get("/admin", headers={"Authorization": f"Bearer {real_issuer.mint()}"})
    assert user.status_code == 403
    assert user.json is not None and user.json["code"] == "insufficient_role"
    admin_token = real_issuer.mint(roles=["admin"])
    ok = client.get("/admin", headers={"Authorization": f"Bearer {admin_token}"})
    assert ok.status_code == 200


def test_plain_wsgi_app_gets_principal_in_environ(real_issuer: LocalIssuer) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        principal = environ["jwt_guard.principal"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [principal.subject.encode()]

    wrapped = JWTGuardWSGIMiddleware(app, verifier=real_issuer.verifier())
    with run_wsgi(wrapped) as base:
        token = real_issuer.mint(sub="plain")
        response = httpx.get(base + "/", headers={"Authorization": f"Bearer {token}"})
        assert response.text == "plain"
        assert httpx.get(base + "/").status_code == 401


def test_32_threads_on_cold_cache_make_one_jwks_request(real_issuer: LocalIssuer) -> None:
    """Every request arrives while the one fetch is in flight: the JWKS answer is held until
    all 32 are in the app (events, not a delay hoping they are), and the fetch's timeout is
    far above what a loaded machine needs (a waiter that gave up would answer 503)."""
    with JWKSServer(lambda: real_issuer.jwks) as jwks:
        source = JWKSKeys(jwks.url, timeout=60)
        app = Flask(__name__)
        JWTGuard(app, verifier=real_issuer.verifier(keys=source))
        arrived: list[int] = []
        all_in = threading.Event()
        guarded = app.wsgi_app

        def counting(environ: Any, start_response: Any) -> Any:
            arrived.append(1)  # list.append is atomic
            if len(arrived) == 32:
                all_in.set()
            return guarded(environ, start_response)

        app.wsgi_app = counting  # type: ignore[method-assign]

        @app.get("/me")
        def me() -> Any:
            return jsonify(sub=current_principal.subject)

        with run_wsgi(app) as base:
            statuses: list[int] = []

            def worker(i: int) -> None:
                token = real_issuer.mint(sub=f"u{i}")
                response = httpx.get(
                    base + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=60
                )
                statuses.append(response.status_code)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
            with jwks.held():
                for t in threads:
                    t.start()
                assert all_in.wait(60)  # a liveness bound
            for t in threads:
                t.join()
        assert statuses == [200] * 32
        assert jwks.count == 1
        source.close()


def test_flask_example(monkeypatch: pytest.MonkeyPatch, real_issuer: LocalIssuer) -> None:
    import importlib
    import sys

    with JWKSServer(lambda: real_issuer.jwks) as jwks:
        monkeypatch.setenv("JWT_GUARD_ISSUER", real_issuer.issuer)
        monkeypatch.setenv("JWT_GUARD_AUDIENCE", real_issuer.audience)
        monkeypatch.setenv("JWT_GUARD_JWKS_URL", jwks.url)
        monkeypatch.setenv("JWT_GUARD_ALGORITHMS", "ES256")
        sys.modules.pop("examples.flask_app", None)
        app = importlib.import_module("examples.flask_app").create_app()
        client = app.test_client()
        assert client.get("/health").json == {"status": "ok"}
        assert client.get("/api/me").status_code == 401
        bob = {"Authorization": f"Bearer {real_issuer.mint(sub='bob', roles=['user'])}"}
        assert client.get("/api/me", headers=bob).json == {
            "sub": "bob",
            "roles": ["user"],
            "scopes": [],
        }
        assert client.get("/api/admin", headers=bob).status_code == 403
        alice = {"Authorization": f"Bearer {real_issuer.mint(sub='alice', roles=['admin'])}"}
        assert client.get("/api/admin", headers=alice).status_code == 200
