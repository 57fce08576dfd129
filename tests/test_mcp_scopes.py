"""Issue 26 end to end: scope hierarchies and the challenges an MCP client acts on.

Real parts only: the example MCP server (the official SDK, streamable HTTP) behind
``jwt_guard.mcp.protect`` under uvicorn, the small OAuth authorization server of
``test_mcp.py`` under uvicorn, and the SDK's own client, on both of its protocol paths
(2025-11-25 and 2026-07-28), with the SDK's ``ClientCredentialsOAuthProvider`` where it logs in.

MCP authorization (2026-07-28): the server "MUST account for scope hierarchies"; a 403
``insufficient_scope`` names the scopes the operation needs in one challenge, and the client
asks for them (step-up); the client asks at its first login for the ``scope`` of the first 401.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from examples import mcp_server
from jwt_guard import ProtectedResource, Verifier
from jwt_guard.mcp import protect
from jwt_guard.testing import LocalIssuer

from .servers import loopback_socket, run_uvicorn
from .test_mcp import (
    CLIENT_ID,
    CLIENT_SECRET,
    LEGACY,
    MODERN,
    AuthorizationServer,
    Exchange,
    MemoryStorage,
    connect,
    params,
    refused,
    text_of,
)

#: The notes vocabulary of the authorization server: admin ⊃ write ⊃ read.
HIERARCHY = {"notes:admin": ["notes:write"], "notes:write": ["notes:read"]}
SUPPORTED = ["notes:read", "notes:write", "notes:admin"]


def with_notes(**options: Any) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("notes", [options], indirect=True, ids=[""])


both_paths = pytest.mark.parametrize("mode", ["legacy", MODERN], ids=[LEGACY, MODERN])


def build(
    url: str, verifier: Verifier, issuer: str, tool_scopes: dict[str, list[str]], **options: Any
) -> Starlette:
    """The example's notes server, protected with these scopes and metadata options."""
    parts = urllib.parse.urlsplit(url)
    app = mcp_server.make_server().streamable_http_app(
        streamable_http_path=parts.path,
        transport_security=TransportSecuritySettings(
            allowed_hosts=[parts.netloc], allowed_origins=[f"{parts.scheme}://{parts.netloc}"]
        ),
    )
    resource = ProtectedResource(url, [issuer], SUPPORTED, allow_http=True, **options)
    return protect(app, verifier=verifier, protected_resource=resource, tool_scopes=tool_scopes)


@dataclass
class Notes:
    url: str
    auth: AuthorizationServer

    @property
    def issuer(self) -> LocalIssuer:
        return self.auth.issuer


@pytest.fixture
def notes(request: pytest.FixtureRequest) -> Iterator[Notes]:
    """Servers for one test; ``with_notes(tool_scopes=..., **ProtectedResource options)``."""
    options: dict[str, Any] = dict(getattr(request, "param", {}))
    tool_scopes = options.pop("tool_scopes", {"add_note": ["notes:write"]})
    as_sock, mcp_sock = loopback_socket(), loopback_socket()
    as_url = f"http://127.0.0.1:{as_sock.getsockname()[1]}"
    url = f"http://127.0.0.1:{mcp_sock.getsockname()[1]}/mcp"
    auth = AuthorizationServer(as_url, LocalIssuer(issuer=as_url, audience=url))
    verifier = auth.issuer.verifier(scope_implies=HIERARCHY)
    app = build(url, verifier, as_url, tool_scopes, **options)
    with run_uvicorn(auth.app(), sock=as_sock), run_uvicorn(app, sock=mcp_sock):
        yield Notes(url, auth)


def login(notes: Notes) -> ClientCredentialsOAuthProvider:
    return ClientCredentialsOAuthProvider(
        server_url=notes.url,
        storage=MemoryStorage(),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer=notes.auth.url,
    )


@both_paths
async def test_issue26_mcp_broader_scope_calls_a_tool_needing_a_narrower_one(
    notes: Notes, mode: str
) -> None:
    """A token holding only ``notes:admin`` calls ``add_note`` (``tool_scopes``:
    ``notes:write``) and ``list_notes`` (its own ``require_scopes(ctx, "notes:read")``)."""
    token = notes.issuer.mint(sub=f"root-{mode}", scopes=["notes:admin"])
    seen: list[Exchange] = []
    async with connect(notes.url, seen, token=token, mode=mode) as client:
        assert text_of(await client.call_tool("add_note", {"text": f"admin {mode}"})) == 1
        assert text_of(await client.call_tool("list_notes", {})) == {"notes": [f"admin {mode}"]}
        whoami = text_of(await client.call_tool("whoami", {}))
    assert whoami["scopes"] == ["notes:admin"]  # principal.scopes: the token's own
    assert all(e.status < 400 for e in seen)


@both_paths
@with_notes(tool_scopes={"add_note": ["notes:write", "files:write"]})
async def test_issue26_mcp_403_names_every_missing_scope_in_one_challenge(
    notes: Notes, mode: str
) -> None:
    token = notes.issuer.mint(sub=f"reader-{mode}", scopes=["notes:read"])
    seen: list[Exchange] = []
    async with connect(notes.url, seen, token=token, mode=mode) as client:
        with refused():
            await client.call_tool("add_note", {"text": "not allowed"})
    (denied,) = [e for e in seen if e.status == 403]
    found = params(denied.challenge)
    assert found["error"] == "insufficient_scope"
    assert found["scope"] == "notes:write files:write"  # both, in one challenge
    assert found["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")


@both_paths
@with_notes(challenge_scopes=["notes:read"])
async def test_issue26_mcp_client_asks_for_the_401s_scope_then_steps_up(
    notes: Notes, mode: str
) -> None:
    """The first 401 names ``notes:read`` (``challenge_scopes``, the least to start with, not
    all of ``scopes_supported``): the SDK's client asks for exactly that. ``add_note`` is then
    refused with a 403 naming ``notes:write``; the client asks for it too and the call runs."""
    before = len(notes.auth.token_requests)
    seen: list[Exchange] = []
    async with connect(notes.url, seen, auth=login(notes), mode=mode) as client:
        listed = text_of(await client.call_tool("list_notes", {}))
        count = text_of(await client.call_tool("add_note", {"text": f"stepped up {mode}"}))
    assert listed == {"notes": []} and count == 1
    first, *_ = [e for e in seen if e.url == notes.url and e.status == 401]
    assert params(first.challenge)["scope"] == "notes:read"
    login_request, step_up = notes.auth.token_requests[before:]
    assert login_request["scope"] == "notes:read"  # what the 401 named
    (denied,) = [e for e in seen if e.status == 403]
    assert params(denied.challenge)["scope"] == "notes:write"
    assert step_up["scope"].split() == ["notes:read", "notes:write"]  # SEP-2350: kept + new
