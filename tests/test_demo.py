"""The demo end to end under a real uvicorn server: the API fetches the JWKS over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jwt_guard.demo import build_app

from .conftest import FakeClock
from .redis_server import free_port
from .servers import run_uvicorn


@pytest.fixture
def demo() -> Iterator[tuple[str, FakeClock]]:
    import time

    clock = FakeClock(time.time())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_uvicorn(build_app(base, clock=clock), port=port) as url:
        assert url == base
        yield base, clock


def login(base: str, user: str) -> httpx.Response:
    return httpx.post(f"{base}/login", json={"username": user, "password": user})


def test_login_me_admin_logout(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    response = login(base, "alice")
    assert response.status_code == 200
    body = response.json()
    token = body["access_token"]
    cookies = {c.name: c for c in response.cookies.jar}
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    assert cookies["access_token"].has_nonstandard_attr("HttpOnly")
    assert "samesite=strict" in response.headers.get_list("set-cookie")[0].lower()
    auth = {"Authorization": f"Bearer {token}"}
    me = httpx.get(f"{base}/api/me", headers=auth).json()
    assert me["sub"] == "alice" and me["roles"] == ["admin"]
    assert httpx.get(f"{base}/api/admin", headers=auth).status_code == 200
    bob = login(base, "bob").json()["access_token"]
    bob_admin = httpx.get(f"{base}/api/admin", headers={"Authorization": f"Bearer {bob}"})
    assert bob_admin.status_code == 403
    assert httpx.post(f"{base}/logout", headers=auth).status_code == 200
    revoked = httpx.get(f"{base}/api/me", headers=auth)
    assert revoked.status_code == 401 and revoked.json()["code"] == "token_revoked"
    assert httpx.get(f"{base}/health").json()["status"] == "ok"


def test_wrong_password_and_bad_body(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    bad = httpx.post(f"{base}/login", json={"username": "alice", "password": "bob"})
    assert bad.status_code == 401
    assert httpx.post(f"{base}/login", content=b"[1").status_code == 400
    assert httpx.post(f"{base}/login", json=["x"]).status_code == 400


def test_refresh_rotates_refresh_tokens(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    refresh = login(base, "bob").json()["refresh_token"]
    first = httpx.post(f"{base}/refresh", json={"refresh_token": refresh})
    assert first.status_code == 200 and first.json()["access_token"]
    reused = httpx.post(f"{base}/refresh", json={"refresh_token": refresh})
    assert reused.status_code == 401


def test_rotate_keys_and_first_token_after_rotation_passes(
    demo: tuple[str, FakeClock],
) -> None:
    base, clock = demo
    old = login(base, "alice").json()["access_token"]
    old_auth = {"Authorization": f"Bearer {old}"}
    first_kid = httpx.get(f"{base}/api/me", headers=old_auth).json()["kid"]
    bob = login(base, "bob").json()["access_token"]
    denied = httpx.post(f"{base}/admin/rotate-keys", headers={"Authorization": f"Bearer {bob}"})
    assert denied.status_code == 403
    rotated = httpx.post(f"{base}/admin/rotate-keys", headers=old_auth)
    assert rotated.status_code == 200
    new_kid = rotated.json()["kid"]
    assert new_kid != first_kid
    jwks = httpx.get(f"{base}/.well-known/jwks.json").json()
    assert {k["kid"] for k in jwks["keys"]} == {first_kid, new_kid}  # old key kept
    clock.advance(3)  # past the demo's 2 s unknown-kid cooldown
    fresh = login(base, "alice").json()["access_token"]
    me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {fresh}"})
    assert me.status_code == 200 and me.json()["kid"] == new_kid
    assert httpx.get(f"{base}/api/me", headers=old_auth).status_code == 200


def test_discovery_document(demo: tuple[str, FakeClock]) -> None:
    base, _ = demo
    doc = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert doc["issuer"] == base and doc["jwks_uri"] == f"{base}/.well-known/jwks.json"
