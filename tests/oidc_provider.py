"""A real authorization server for the tests: panva's oidc-provider (npm) on a free loopback
port, started and stopped by the tests as tests/redis_server.py does redis-server.

``bash scripts/test-env.sh`` installs it (``npm ci`` in tests/oidc_provider/, node and npm with
apt-get when run as root). tests/oidc_provider/server.mjs configures it: opaque access tokens from
the client_credentials grant for one resource server (``aud`` :data:`AUDIENCE`), introspection
(RFC 7662) for clients authenticating with client_secret_basic, client_secret_post and
private_key_jwt (RFC 7523), JWT introspection responses (RFC 9701) and revocation (RFC 7009).
oidc-provider takes an ``http://127.0.0.1`` issuer as it is: only its redirect URIs and client
metadata documents must be https, and client_credentials needs neither.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jwt.algorithms import RSAAlgorithm

from jwt_guard._tools.signing import PrivateKey, generate_key, public_jwk

from .redis_server import free_port

HERE = Path(__file__).parent / "oidc_provider"
#: The resource server's identifier: the ``aud`` of every access token the provider issues.
AUDIENCE = "api://notes"
SCOPE = "notes:read notes:write"
#: The provider's answers are slow on a loaded 2-core machine: a liveness bound, not a timing.
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Client:
    """A client registered at the provider, with what it authenticates with."""

    client_id: str
    auth_method: str
    client_secret: str | None = None
    private_key: PrivateKey | None = None


def node_binary() -> str:
    path = shutil.which("node")
    if path is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "oidc-provider is not installed: `bash scripts/test-env.sh` installs node (apt-get, "
            "as root) and runs `npm ci` in tests/oidc_provider"
        )
    return path


class OIDCProvider:
    """oidc-provider in a node process on one loopback port, its issuer ``http://127.0.0.1:PORT``.

    ``clients`` holds a client per client authentication method (``client_secret_basic``,
    ``client_secret_post``, ``private_key_jwt``), each allowed the client_credentials grant, to
    introspect and to ask for RFC 9701 responses (signed RS256 with the provider's key).
    """

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.signing_key = generate_key("RS256")
        self.clients: dict[str, Client] = {
            "client_secret_basic": Client(
                "rs-basic", "client_secret_basic", client_secret=secrets.token_urlsafe(32)
            ),
            "client_secret_post": Client(
                "rs-post", "client_secret_post", client_secret=secrets.token_urlsafe(32)
            ),
            "private_key_jwt": Client(
                "rs-jwt", "private_key_jwt", private_key=generate_key("ES256")
            ),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tmp / "oidc-provider.log"

    def _config(self) -> dict[str, Any]:
        private = dict(RSAAlgorithm.to_jwk(self.signing_key, as_dict=True))  # type: ignore[arg-type]
        private.update(kid="op-1", use="sig", alg="RS256")
        private.pop("key_ops", None)
        clients = []
        for client in self.clients.values():
            metadata: dict[str, Any] = {
                "client_id": client.client_id,
                "token_endpoint_auth_method": client.auth_method,
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "scope": SCOPE,
                "introspection_signed_response_alg": "RS256",
            }
            if client.client_secret is not None:
                metadata["client_secret"] = client.client_secret
            if client.private_key is not None:
                metadata["jwks"] = {"keys": [public_jwk(client.private_key, alg="ES256")]}
                metadata["token_endpoint_auth_signing_alg"] = "ES256"
            clients.append(metadata)
        return {
            "issuer": self.issuer,
            "port": self.port,
            "resource": "https://notes.example/",
            "audience": AUDIENCE,
            "scope": SCOPE,
            "clients": clients,
            "jwks": {"keys": [private]},
            "cookieKeys": [secrets.token_urlsafe(32)],
        }

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.issuer}/token/introspection"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def client(self, auth_method: str) -> Client:
        return self.clients[auth_method]

    def token(self, scope: str = SCOPE) -> str:
        """A new opaque access token from the token endpoint (client_credentials)."""
        client = self.clients["client_secret_basic"]
        assert client.client_secret is not None
        response = httpx.post(
            self.token_endpoint,
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client.client_id, client.client_secret),
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def revoke(self, token: str) -> None:
        client = self.clients["client_secret_basic"]
        assert client.client_secret is not None
        response = httpx.post(
            f"{self.issuer}/token/revocation",
            data={"token": token},
            auth=(client.client_id, client.client_secret),
        )
        response.raise_for_status()

    def start(self) -> None:
        config = self.tmp / "oidc-provider.json"
        config.write_text(json.dumps(self._config()))
        # Its output goes to a file, read for the readiness line: no pipe and no reader thread
        # live beside the tests (a test that forks wants no other thread running).
        self._log = self.tmp / "oidc-provider.log"
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(
                [node_binary(), str(HERE / "server.mjs"), str(config)],
                cwd=HERE,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "test"},
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while "ready " not in self.output():
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.stop()
                raise RuntimeError("oidc-provider did not start:\n" + self.output())
            time.sleep(0.05)

    def output(self) -> str:
        """What the node process wrote (its warnings, the readiness line)."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            proc.wait(10)


@contextmanager
def run_oidc_provider(tmp: Path) -> Iterator[OIDCProvider]:
    """Start oidc-provider; yields it (its ``issuer``, ``clients``, ``token()``)."""
    provider = OIDCProvider(tmp)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
