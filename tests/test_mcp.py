"""An MCP server (the official SDK, streamable HTTP) behind jwt_guard, end to end.

Everything is real and on 127.0.0.1: the example server (``examples/mcp_server.py``) under
uvicorn, a small OAuth authorization server under uvicorn that issues ``LocalIssuer`` tokens
for the client-credentials grant, and the SDK's own client (``mcp.Client`` over
``streamable_http_client``, with the SDK's ``ClientCredentialsOAuthProvider`` where it logs in).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.types import Completion, ResourceTemplateReference
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from examples import mcp_server
from jwt_guard import (
    ConfigurationError,
    JWKSKeys,
    ProtectedResource,
    Verifier,
    require_acr,
    require_scopes,
)
from jwt_guard._integrations.mcp_operations import (
    MAX_TEMPLATED_URI,
    OperationScopes,
    UnmatchedResource,
)
from jwt_guard.mcp import MAX_BODY_BYTES, protect
from jwt_guard.testing import LocalIssuer

from .servers import loopback_socket, run_uvicorn

CLIENT_ID = "notes-agent"
CLIENT_SECRET = "agent-secret-that-is-long-enough"


@dataclass
class AuthorizationServer:
    """An RFC 8414 authorization server with a client-credentials token endpoint."""

    url: str
    issuer: LocalIssuer
    token_requests: list[dict[str, str]] = field(default_factory=list)
    #: The paths of the metadata and key requests it answered, in order.
    served: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            self.served.append(request.url.path)
            return JSONResponse(self.issuer.jwks)

        async def metadata(request: Request) -> JSONResponse:
            self.served.append(request.url.path)
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks.json",
                    "grant_types_supported": ["client_credentials"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                }
            )

        async def token(request: Request) -> JSONResponse:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.token_requests.append(form)
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            scopes = form.get("scope", "").split()
            access = self.issuer.mint(
                sub=CLIENT_ID,
                audience=form["resource"],  # RFC 8707: the token is for the server asked for
                scopes=scopes,
                client_id=CLIENT_ID,
            )
            return JSONResponse(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": " ".join(scopes),
                }
            )

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/token", token, methods=["POST"]),
                Route("/jwks.json", jwks),
            ]
        )


@dataclass
class Deployment:
    mcp_url: str
    metadata_url: str
    auth: AuthorizationServer

    @property
    def issuer(self) -> LocalIssuer:
        return self.auth.issuer


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    # One per test: servers shared by a module would close a test's connections, and end the
    # worker threads it made them start, after the test (the leak check sees them).
    as_sock, mcp_sock = loopback_socket(), loopback_socket()
    as_url = f"http://127.0.0.1:{as_sock.getsockname()[1]}"
    mcp_base = f"http://127.0.0.1:{mcp_sock.getsockname()[1]}"
    mcp_url = f"{mcp_base}/mcp"
    auth = AuthorizationServer(as_url, LocalIssuer(issuer=as_url, audience=mcp_url))
    # Configured from its own document (issue 26, item 5): the authorization server's keys
    # found through its RFC 8414 metadata (it publishes no OpenID configuration; item 4).
    app = mcp_server.build(mcp_url, None, as_url)
    with run_uvicorn(auth.app(), sock=as_sock), run_uvicorn(app, sock=mcp_sock):
        yield Deployment(mcp_url, f"{mcp_base}/.well-known/oauth-protected-resource/mcp", auth)


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    challenge: str | None
    body: bytes


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@asynccontextmanager
async def connect(
    url: str,
    seen: list[Exchange],
    *,
    token: str | None = None,
    auth: httpx2.Auth | None = None,
    mode: str | None = None,
) -> AsyncIterator[Client]:
    """The SDK's client over real HTTP, recording every HTTP exchange it makes in ``seen``;
    ``mode`` picks the SDK's protocol path (``"legacy"`` or ``"2026-07-28"``)."""

    async def record(response: httpx2.Response) -> None:
        if b"subscriptions/listen" not in response.request.content:
            await response.aread()  # a listen stream's body ends only when the stream does
        seen.append(
            Exchange(
                response.request.method,
                str(response.request.url),
                response.status_code,
                response.headers.get("www-authenticate"),
                response.content if response.is_stream_consumed else b"",
            )
        )

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, auth=auth, event_hooks={"response": [record]}) as http,
        Client(
            streamable_http_client(url, http_client=http), **({"mode": mode} if mode else {})
        ) as client,
    ):
        yield client


@contextmanager
def refused() -> Iterator[None]:
    """The SDK client cannot connect or call (what it raises is its own business)."""
    # What it raises is the SDK's business; the assertions are on the HTTP exchanges.
    with pytest.raises(Exception):
        yield


def params(challenge: str | None) -> dict[str, str]:
    assert challenge is not None and challenge.startswith("Bearer")
    return {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', challenge)}


def text_of(result: Any) -> Any:
    assert not result.is_error, result
    return json.loads(result.content[0].text)


# -- the end-to-end scenario ---------------------------------------------------------------------


async def test_no_token_gets_401_with_resource_metadata(deployment: Deployment) -> None:
    seen: list[Exchange] = []
    with refused():
        async with connect(deployment.mcp_url, seen) as client:
            await client.call_tool("whoami", {})
    mcp = [e for e in seen if e.url == deployment.mcp_url]
    assert mcp and all(e.status == 401 for e in mcp)
    assert params(mcp[0].challenge) == {
        "realm": "api",
        "scope": "notes:read notes:write",  # scopes_supported: what the client asks for
        "resource_metadata": deployment.metadata_url,  # RFC 9728 §5.1
    }


async def test_client_discovers_metadata_logs_in_and_calls_a_tool(
    deployment: Deployment,
) -> None:
    before = len(deployment.auth.token_requests)
    seen: list[Exchange] = []
    provider = ClientCredentialsOAuthProvider(
        server_url=deployment.mcp_url,
        storage=MemoryStorage(),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer=deployment.auth.url,
    )
    async with connect(deployment.mcp_url, seen, auth=provider) as client:
        whoami = text_of(await client.call_tool("whoami", {}))
        count = text_of(await client.call_tool("add_note", {"text": "hello"}))
    assert whoami == {
        "sub": CLIENT_ID,
        "scopes": ["notes:read", "notes:write"],
        "client_id": CLIENT_ID,  # the SDK's get_access_token() sees the same principal
    }
    assert count == 1
    # The first request was refused with the pointer to the metadata, which the client fetched
    # and followed to the authorization server.
    assert seen[0].url == deployment.mcp_url and seen[0].status == 401
    documents = [e for e in seen if e.url == deployment.metadata_url]
    assert len(documents) == 1 and documents[0].status == 200
    document = json.loads(documents[0].body)
    assert document == {
        "resource": deployment.mcp_url,
        "authorization_servers": [deployment.auth.url],
        "scopes_supported": ["notes:read", "notes:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Notes (MCP)",
    }
    # RFC 8707: the client asked for a token for this server, with the advertised scopes.
    (request,) = deployment.auth.token_requests[before:]
    assert request["resource"] == deployment.mcp_url
    assert request["scope"] == "notes:read notes:write"


async def test_rfc9728_server_configured_from_its_document_finds_rfc8414_keys(
    deployment: Deployment,
) -> None:
    # The example builds its verifier with resource.verifier(): its one authorization server
    # publishes RFC 8414 metadata only, and the keys come from that document's jwks_uri.
    token = deployment.issuer.mint(sub="carol", scopes=["notes:read"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=token) as client:
        assert text_of(await client.call_tool("whoami", {}))["sub"] == "carol"
    assert deployment.auth.served[:2] == ["/.well-known/oauth-authorization-server", "/jwks.json"]


async def test_local_issuer_token_calls_tools(deployment: Deployment) -> None:
    token = deployment.issuer.mint(sub="alice", scopes=["notes:read", "notes:write"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=token) as client:
        assert text_of(await client.call_tool("whoami", {}))["sub"] == "alice"
        assert text_of(await client.call_tool("add_note", {"text": "one"})) == 1
        assert text_of(await client.call_tool("list_notes", {})) == {"notes": ["one"]}
    assert all(e.status < 400 for e in seen)


async def test_token_for_another_audience_fails(deployment: Deployment) -> None:
    other = deployment.mcp_url.replace("/mcp", "/other-mcp")
    token = deployment.issuer.mint(audience=other, scopes=["notes:read", "notes:write"])
    seen: list[Exchange] = []
    with refused():
        async with connect(deployment.mcp_url, seen, token=token) as client:
            await client.call_tool("whoami", {})
    mcp = [e for e in seen if e.url == deployment.mcp_url]
    assert mcp and all(e.status == 401 for e in mcp)
    found = params(mcp[0].challenge)
    assert found["error"] == "invalid_token"
    assert found["resource_metadata"] == deployment.metadata_url
    assert json.loads(mcp[0].body)["code"] == "audience_invalid"


async def test_tool_needing_a_missing_scope_gets_403_insufficient_scope(
    deployment: Deployment,
) -> None:
    token = deployment.issuer.mint(sub="bob", scopes=["notes:read"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=token) as client:
        assert text_of(await client.call_tool("whoami", {}))["sub"] == "bob"
        result = await client.call_tool("list_notes", {})  # allowed: no scope gate
        assert text_of(result) == {"notes": []}
        with refused():
            await client.call_tool("add_note", {"text": "not allowed"})
    (denied,) = [e for e in seen if e.status == 403]
    assert denied.method == "POST" and denied.url == deployment.mcp_url
    assert params(denied.challenge) == {
        "realm": "api",
        "error": "insufficient_scope",
        "error_description": "The token lacks a required scope.",
        "scope": "notes:write",  # what the client must ask for (MCP scope challenge)
        "resource_metadata": deployment.metadata_url,
    }
    assert not any("not allowed" in notes for notes in mcp_server.NOTES.values())


async def test_in_tool_scope_check_is_a_tool_error(deployment: Deployment) -> None:
    token = deployment.issuer.mint(sub="carol", scopes=["notes:write"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=token) as client:
        result = await client.call_tool("list_notes", {})
    assert result.is_error
    assert result.content[0].text.endswith("The token lacks a required scope: notes:read")


# -- the scope gate, request by request ----------------------------------------------------------


def call(name: str, request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": {"text": "x"}},
    }


async def raw_post(deployment: Deployment, token: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            deployment.mcp_url,
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )


async def test_gate_refuses_a_call_without_its_scope(deployment: Deployment) -> None:
    token = deployment.issuer.mint(sub="mallory", scopes=["notes:read"])
    response = await raw_post(deployment, token, json.dumps(call("add_note")).encode())
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"id": NaN}',
        b"\xff\xfe\x00",
        # RFC 8259 §4: duplicate names mean what each parser decides; the gate must never read
        # "whoami" where the SDK reads "add_note", so it reads neither.
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
        b'"params":{"name":"whoami","name":"add_note","arguments":{"text":"x"}}}',
        # RFC 8259 §8.1: UTF-8 only (Python's json would read UTF-16, the SDK's parser not).
        json.dumps(call("add_note")).encode("utf-16"),
        # RFC 8259 §6: a number no double holds (was a 500: the gate re-serialized it).
        b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":1e400}}',
    ],
    ids=["syntax", "nan", "bytes", "duplicate-names", "utf-16", "out-of-range"],
)
async def test_gate_refuses_bodies_it_cannot_read(deployment: Deployment, body: bytes) -> None:
    token = deployment.issuer.mint(scopes=["notes:read", "notes:write"])
    response = await raw_post(deployment, token, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == -32700


async def test_gate_refuses_oversized_bodies(deployment: Deployment) -> None:
    token = deployment.issuer.mint(scopes=["notes:read", "notes:write"])
    response = await raw_post(deployment, token, b" " * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413


async def test_metadata_is_public_and_cacheable(deployment: Deployment) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(deployment.metadata_url)
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert response.json()["resource"] == deployment.mcp_url


# -- configuration -------------------------------------------------------------------------------


def test_resource_must_be_the_servers_audience() -> None:
    issuer = LocalIssuer(audience="https://mcp.example.com/mcp")
    elsewhere = ProtectedResource("https://other.example.com/mcp", ["https://login.example.com"])
    with pytest.raises(ConfigurationError, match="audiences"):
        protect(Starlette(), verifier=issuer.verifier(), protected_resource=elsewhere)


@pytest.mark.parametrize(
    "tool_scopes",
    [{"add_note": "notes:write"}, {"add_note": []}, {"add_note": ["two words"]}, {1: ["x"]}],
)
def test_invalid_tool_scopes_are_refused(tool_scopes: Any) -> None:
    issuer = LocalIssuer(audience="https://mcp.example.com/mcp")
    resource = ProtectedResource("https://mcp.example.com/mcp", ["https://login.example.com"])
    with pytest.raises(ConfigurationError):
        protect(
            Starlette(),
            verifier=issuer.verifier(),
            protected_resource=resource,
            tool_scopes=tool_scopes,
        )
    with pytest.raises(ConfigurationError):
        protect(Starlette(), verifier=issuer.verifier(), protected_resource=None)  # type: ignore[arg-type]


async def test_session_is_bound_to_the_principal_that_opened_it(deployment: Deployment) -> None:
    """The SDK refuses another principal's session id: it needs its own identity object."""
    alice = deployment.issuer.mint(sub="alice", client_id="app", scopes=["notes:read"])
    eve = deployment.issuer.mint(sub="eve", client_id="app", scopes=["notes:read"])
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(headers=headers) as http:
        opened = await http.post(
            deployment.mcp_url, json=initialize, headers={"Authorization": f"Bearer {alice}"}
        )
        assert opened.status_code == 200
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        other = await http.post(
            deployment.mcp_url, json=ping, headers={**session, "Authorization": f"Bearer {eve}"}
        )
        own = await http.post(
            deployment.mcp_url, json=ping, headers={**session, "Authorization": f"Bearer {alice}"}
        )
    assert other.status_code == 404  # as if the session did not exist
    assert own.status_code == 200


async def test_example_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://mcp.example.com/mcp"
    monkeypatch.setenv("MCP_SERVER_URL", url)
    monkeypatch.setenv("MCP_ISSUER", "https://login.example.com")
    app = mcp_server.create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as http:
        document = await http.get("/.well-known/oauth-protected-resource/mcp")
        missing = await http.post("/mcp", json=call("whoami"))
    assert document.json()["resource"] == url
    assert document.json()["authorization_servers"] == ["https://login.example.com"]
    assert missing.status_code == 401
    assert params(missing.headers["www-authenticate"])["resource_metadata"] == (
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    )


# -- what protect() leaves alone, and what it answers itself (ASGI in process) -------------------

URL = "https://mcp.example.com/mcp"
ISSUER = LocalIssuer(audience=URL)


class RecordingEndpoint(StreamableHTTPASGIApp):
    """The SDK's endpoint class, recording what reaches it instead of running a session (the
    bytes the SDK would parse, the headers and user it would see)."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, dict[str, str], object]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        self.seen.append((body, dict(request.headers), scope.get("user")))
        await JSONResponse({"ok": True})(scope, receive, send)


def custom_app(endpoint: Any = None) -> tuple[Starlette, RecordingEndpoint]:
    """A server's app as ``streamable_http_app()`` builds it: the MCP route, custom routes."""
    recorder = endpoint or RecordingEndpoint()

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        user = request.user
        return JSONResponse(
            {
                "sha256": hashlib.sha256(body).hexdigest(),
                "length": len(body),
                "content_length": request.headers.get("content-length"),
                "user": type(user).__name__,
            }
        )

    @require_scopes("admin")
    async def admin(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @require_acr("mfa")
    async def stepup(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/mcp", endpoint=recorder),
            Route("/hook", echo, methods=["POST"]),
            Route("/public-hook", echo, methods=["POST"]),
            Route("/admin", admin),
            Route("/stepup", stepup),
        ]
    )
    return app, recorder


def registering(
    *, tools: tuple[str, ...] = ("add_note",), resources: tuple[str, ...] = ()
) -> MCPServer:
    """An ``MCPServer`` registering these tools and resources (for ``protect(server=...)``
    where the endpoint is a stand-in, not one of an ``MCPServer``)."""
    server = MCPServer("registrations")
    for name in tools:
        server.tool(name=name)(lambda: "")
    readers = {"path": lambda path: path, "id": lambda id: id}  # the SDK reads the parameters
    for uri in resources:
        (variable,) = re.findall(r"\{\W?(\w+)\}", uri)
        server.resource(uri, name=uri)(readers[variable])
    return server


def protected(app: Starlette, verifier: Any = None, **options: Any) -> Starlette:
    return protect(
        app,
        verifier=verifier or ISSUER.verifier(),
        protected_resource=ProtectedResource(URL, ["https://login.example.com"]),
        tool_scopes={"add_note": ["notes:write"]},
        exclude=["/public-hook"],
        **{"server": registering(), **options},
    )


@asynccontextmanager
async def in_process(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as http:
        yield http


BODIES = [
    (b"a=1&b=%C3%A9", "application/x-www-form-urlencoded"),  # was a JSON-RPC parse error
    (b'{"b": 1.0,  "a": "\\u00e9", "a": 2}', "application/json"),  # was re-serialized
    (b"x" * (MAX_BODY_BYTES + 1), "application/octet-stream"),  # was a 413
    (b"not json", "application/json"),
]


@pytest.mark.parametrize(("body", "content_type"), BODIES, ids=["form", "json", "large", "text"])
@pytest.mark.parametrize("path", ["/hook", "/public-hook"])
async def test_custom_routes_get_their_bodies_untouched(
    body: bytes, content_type: str, path: str
) -> None:
    """Only the MCP endpoint's bodies are read (webhook signatures over the raw body hold)."""
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:read"])
    async with in_process(protected(app)) as http:
        response = await http.post(
            path,
            content=body,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert response.json()["content_length"] == str(len(body))
    assert recorder.seen == []


async def test_custom_routes_are_still_guarded_and_see_the_principal() -> None:
    app, _ = custom_app()
    token = ISSUER.mint(scopes=["notes:read"])
    async with in_process(protected(app)) as http:
        anonymous = await http.post("/hook", content=b"{}")
        signed_in = await http.post(
            "/hook", content=b"{}", headers={"Authorization": f"Bearer {token}"}
        )
    assert anonymous.status_code == 401
    assert signed_in.json()["user"] == "Principal"  # jwt_guard's, as under the middleware


async def test_the_sdk_gets_the_original_bytes_without_the_token() -> None:
    """The gate decides on its parse; the SDK parses the bytes as sent (no re-serialization),
    and neither the SDK nor a tool sees the token (MCP authorization: no token passthrough)."""
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:write"])
    body = (
        b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call",\n'
        b' "params": {"name": "add_note", "arguments": {"text": "caf\\u00e9", "n": 1.50}}}'
    )
    async with in_process(protected(app)) as http:
        response = await http.post(
            "/mcp",
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "X-Other": "kept",
            },
        )
    assert response.status_code == 200
    ((seen_body, headers, user),) = recorder.seen
    assert seen_body == body
    assert headers["content-length"] == str(len(body))
    assert "authorization" not in headers and "dpop" not in headers
    assert headers["x-other"] == "kept"
    assert type(user).__name__ == "AuthenticatedUser"  # the SDK's own identity object


async def test_out_of_range_number_is_a_parse_error_not_a_500() -> None:
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:write"])
    async with in_process(protected(app)) as http:
        response = await http.post(
            "/mcp",
            content=b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
            b'"params":{"name":"add_note","arguments":{"n":-1e400}}}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == -32700
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("path", "claims", "status", "error"),
    [
        ("/admin", {"scopes": ["notes:read"]}, 403, "insufficient_scope"),
        ("/stepup", {"acr": "pwd"}, 401, "insufficient_user_authentication"),
    ],
)
async def test_requirements_on_custom_routes_are_answered_not_500(
    path: str, claims: dict[str, Any], status: int, error: str
) -> None:
    """protect() installs the middleware inside the app: Starlette's error middleware would
    turn a JWTGuardError that crossed it into a 500."""
    app, _ = custom_app()
    token = ISSUER.mint(**claims)
    async with in_process(protected(app)) as http:
        response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    found = params(response.headers["www-authenticate"])
    assert found["error"] == error
    assert found["resource_metadata"] == (
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    )


async def test_jwks_down_is_a_503_with_retry_after() -> None:
    dead = loopback_socket()
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/jwks"
    dead.close()  # nothing listens there any more
    issuer = LocalIssuer(audience=URL)
    verifier = Verifier(
        keys=JWKSKeys(dead_url, timeout=0.5),
        algorithms=[issuer.algorithm],
        issuer=issuer.issuer,
        audience=URL,
    )
    app, recorder = custom_app()
    async with in_process(protected(app, verifier=verifier)) as http:
        response = await http.post(
            "/mcp",
            json=call("add_note"),
            headers={"Authorization": f"Bearer {issuer.mint(scopes=['notes:write'])}"},
        )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "jwks_unavailable"
    assert recorder.seen == []


def test_protect_needs_the_sdks_app() -> None:
    with pytest.raises(ConfigurationError, match="no MCP streamable HTTP endpoint"):
        protected(Starlette(routes=[Route("/mcp", lambda request: JSONResponse({}))]))
    app, _ = custom_app()
    protected(app)
    with pytest.raises(ConfigurationError, match="already protected"):
        protected(app)


def mounted_sse(app: Starlette, server: MCPServer) -> None:
    app.mount("/legacy", server.sse_app())


def mounted_endpoint(app: Starlette, server: MCPServer) -> None:
    (route,) = [r for r in app.routes if isinstance(r, Route) and r.path == "/mcp"]
    app.mount("/again", route.endpoint)


def mounted_manager(app: Starlette, server: MCPServer) -> None:
    (route,) = [r for r in app.routes if isinstance(r, Route) and r.path == "/mcp"]
    app.mount("/again", route.endpoint.session_manager.handle_request)


@pytest.mark.parametrize(
    "add", [mounted_sse, mounted_endpoint, mounted_manager], ids=["sse", "endpoint", "manager"]
)
def test_issue22_mcp_a_transport_the_gate_does_not_wrap_is_refused_at_start_up(add: Any) -> None:
    """Review of issue 22: protect() wrapped only the streamable HTTP routes it found and
    guarded every other route as a custom route. An SSE transport mounted beside them (the
    SDK's ``sse_app()``), or the same endpoint mounted again, took ``tools/call`` past
    ``tool_scopes``: a ``notes:read`` token ran ``add_note`` over ``/legacy/sse``. Such an app
    is refused at start-up, naming the path."""
    server = MCPServer("notes")
    app = server.streamable_http_app()
    add(app, server)
    with pytest.raises(ConfigurationError, match="does not gate"):
        protected(app)


async def test_a_token_without_subject_cannot_own_notes(deployment: Deployment) -> None:
    """The example keys notes by issuer and subject; no subject, no notes (not a shared "")."""
    claims = deployment.issuer.claims(scopes=["notes:read", "notes:write"])
    del claims["sub"]
    token = deployment.issuer.mint(claims)
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=token) as client:
        result = await client.call_tool("add_note", {"text": "orphan"})
    assert result.is_error
    assert not any("orphan" in notes for notes in mcp_server.NOTES.values())


# -- issue 22: the gate reads every POST and decides on the message the SDK runs ----------------
#
# The SDK (2.3) picks one of two paths by the MCP-Protocol-Version header: the handshake-era
# transport (pydantic_core, Content-Type exactly application/json) or the 2026-07-28 entry
# (Python's json on the bytes, any Content-Type that *starts with* application/json). These
# tests drive the real SDK app, in process with its lifespan running, on both paths.

LEGACY, MODERN = "2025-11-25", "2026-07-28"
ACCEPT = "application/json, text/event-stream"
SCOPED = {"whoami": ["notes:read"], "add_note": ["notes:write"]}
RESOURCE_SCOPES = {"notes://{owner}": ["notes:read"], "config://app": ["admin"]}
PROMPT_SCOPES = {"draft": ["notes:write"]}
# Minted at import, on the real clock: valid for a day, not the default 5 minutes (a loaded
# machine reached these tests more than 5 minutes after collection, and all of them got 401).
READ_ONLY = ISSUER.mint(sub="mallory", scopes=["notes:read"], ttl=86400)
READ_WRITE = ISSUER.mint(sub="alice", scopes=["notes:read", "notes:write"], ttl=86400)
NO_SCOPES = ISSUER.mint(sub="nobody", scopes=[], ttl=86400)


def sdk_app(ran: list[str], **options: Any) -> Starlette:
    """A real SDK server (stateless, JSON responses) whose tools record each run, protected
    with ``whoami`` needing ``notes:read`` and ``add_note`` needing ``notes:write``."""
    server = MCPServer("notes")

    # Coroutines: the SDK runs a plain function in a worker thread, which would outlive a test.
    @server.tool()
    async def whoami() -> str:
        ran.append("whoami")
        return "you"

    @server.tool()
    async def add_note(text: str) -> str:
        ran.append("add_note")
        return "saved"

    @server.resource("notes://{owner}")
    async def notes_of(owner: str) -> str:
        ran.append(f"notes://{owner}")
        return "notes"

    @server.resource("config://app")
    async def config() -> str:
        ran.append("config://app")
        return "{}"

    @server.prompt()
    async def draft(topic: str) -> str:
        ran.append("draft")
        return f"Draft a note on {topic}"

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        ran.append(f"complete {getattr(ref, 'name', None) or ref.uri}")
        return Completion(values=["alice"])

    app = server.streamable_http_app(
        json_response=True,
        stateless_http=True,
        transport_security=TransportSecuritySettings(
            allowed_hosts=["mcp.example.com"], allowed_origins=["https://mcp.example.com"]
        ),
        **options,
    )
    resource = ProtectedResource(URL, ["https://login.example.com"])
    return protect(
        app,
        verifier=ISSUER.verifier(),
        protected_resource=resource,
        tool_scopes=SCOPED,
        resource_scopes=RESOURCE_SCOPES,
        prompt_scopes=PROMPT_SCOPES,
    )


@asynccontextmanager
async def running_sdk(**options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    ran: list[str] = []
    app = sdk_app(ran, **options)
    async with app.router.lifespan_context(app), in_process(app) as http:
        yield http, ran


def tool_call(name: str, version: str, **extra: Any) -> dict[str, Any]:
    """A ``tools/call`` as a client on ``version``'s path sends it (2026-07-28: the
    per-request envelope in ``params._meta``)."""
    params: dict[str, Any] = {"name": name, "arguments": {"text": "x"}, **extra}
    if version == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def path_headers(version: str, token: str, name: str = "add_note") -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": ACCEPT,
        "MCP-Protocol-Version": version,
    }
    if version == MODERN:  # the 2026-07-28 client mirrors the method and name (SEP-2243)
        headers |= {"Mcp-Method": "tools/call", "Mcp-Name": name}
    return headers


paths = pytest.mark.parametrize("version", [LEGACY, MODERN], ids=["2025-11-25", "2026-07-28"])


@paths
async def test_issue22_both_sdk_paths_run_tools_the_token_may_call(version: str) -> None:
    """The baseline the refusals below are measured against: on both paths a call the token
    covers runs, one it does not is a 403 and runs nothing."""
    async with running_sdk() as (http, ran):
        allowed = await http.post(
            "/mcp", json=tool_call("add_note", version), headers=path_headers(version, READ_WRITE)
        )
        denied = await http.post(
            "/mcp", json=tool_call("add_note", version), headers=path_headers(version, READ_ONLY)
        )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"]["content"][0]["text"] == "saved"
    assert denied.status_code == 403 and denied.json()["code"] == "insufficient_scope"
    assert ran == ["add_note"]


@paths
@pytest.mark.parametrize(
    "content_type",
    ["application/jsonx", "application/json-seq", "application/json-patch+json"],
)
async def test_issue22_mcp_content_type_prefix_bypass(version: str, content_type: str) -> None:
    """Issue 22 item 1: the gate read only ``application/json`` bodies, the 2026-07-28 path
    of the SDK runs any Content-Type starting with it: a ``notes:read`` token ran
    ``add_note`` (200, the note stored). Now the gate refuses, with its own answer."""
    async with running_sdk() as (http, ran):
        response = await http.post(
            "/mcp",
            json=tool_call("add_note", version),
            headers={**path_headers(version, READ_ONLY), "Content-Type": content_type},
        )
    assert response.status_code == 415
    assert response.json()["error"] == {
        "code": -32600,
        "message": "Unsupported Media Type: the body must be application/json",
    }
    assert ran == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({}, 415),  # no Content-Type at all
        ({"Content-Type": "application/json, text/plain"}, 415),
        ({"Content-Type": "application/json; charset=utf-16"}, 415),
        ({"Content-Type": "application/json; profile=x"}, 415),
        ({"Content-Encoding": "gzip"}, 415),  # the SDK decodes none: it would run other bytes
        ({"Content-Length": "x"}, 400),
    ],
    ids=["text", "none", "list", "utf-16", "parameter", "gzip", "length"],
)
async def test_issue22_mcp_gate_reads_every_post_whatever_its_headers(
    headers: dict[str, str], status: int
) -> None:
    """No header makes the gate pass a POST on unread: what it will not read is refused
    before the SDK sees it (these reached the SDK's endpoint before)."""
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:read", "notes:write"])
    body = json.dumps(call("whoami")).encode()
    request = httpx.Request(
        "POST",
        "https://mcp.example.com/mcp",
        content=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    for name, value in headers.items():
        request.headers[name] = value
    if "Content-Type" not in headers and "content-type" in request.headers:
        del request.headers["content-type"]
    async with in_process(protected(app)) as http:
        response = await http.send(request)
    assert response.status_code == status
    assert response.json()["jsonrpc"] == "2.0" and response.json()["error"]["code"] == -32600
    assert recorder.seen == []


async def test_issue22_mcp_two_content_types_are_refused() -> None:
    """The SDK reads the first Content-Type; the old gate read the body when any said JSON."""
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:read", "notes:write"])
    raw = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/jsonx"),
        (b"content-type", b"application/json"),
    ]
    status, _ = await asgi_post(protected(app), raw, [json.dumps(call("whoami")).encode()])
    assert status == 415
    assert recorder.seen == []


async def asgi_post(
    app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes], *, disconnect: bool = False
) -> tuple[int | None, bytes]:
    """One POST to /mcp straight through ASGI: the body in ``chunks`` (``more_body`` on all
    but the last, or on all and then a disconnect), headers exactly as given."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": disconnect or i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"mcp.example.com"), *headers],
        "server": ("mcp.example.com", 443),
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize("length", [b"x", b"\xb2", b"-1", b"1e3"], ids=["x", "sup2", "neg", "exp"])
async def test_issue22_mcp_content_length_not_a_number_is_refused(length: bytes) -> None:
    """Not a 500 (``"²".isdigit()`` is true, ``int("²")`` raises)."""
    app, recorder = custom_app()
    headers = [
        (b"authorization", f"Bearer {READ_WRITE}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", length),
    ]
    status, body = await asgi_post(protected(app), headers, [json.dumps(call("whoami")).encode()])
    assert status == 400 and json.loads(body)["error"]["code"] == -32600
    assert recorder.seen == []


async def test_issue22_mcp_content_length_past_int_digits_limit_is_not_500() -> None:
    """Review of issue 22: a Content-Length of ASCII digits longer than Python's integer
    conversion limit (4300 digits) made ``int()`` raise inside the gate: a 500. Leading zeros
    do not make a number large."""
    body = json.dumps(call("whoami")).encode()
    for length, status in [(b"9" * 5000, 413), (b"0" * 5000 + str(len(body)).encode(), 200)]:
        app, recorder = custom_app()
        headers = [
            (b"authorization", f"Bearer {READ_WRITE}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", length),
        ]
        assert (await asgi_post(protected(app), headers, [body]))[0] == status
        assert len(recorder.seen) == (status == 200)


async def test_issue22_mcp_client_gone_mid_body_runs_nothing() -> None:
    """A client that leaves before its body ends sent no message: the old gate handed the
    SDK what had arrived as if it were the whole body."""
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:read", "notes:write"])
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
    ]
    first = json.dumps(call("whoami")).encode()  # a complete message, and more to come
    status, _ = await asgi_post(protected(app), headers, [first], disconnect=True)
    assert status is None  # nobody to answer
    assert recorder.seen == []


async def test_issue22_mcp_batch_is_refused_not_decided_per_member() -> None:
    """Neither SDK path runs a batch (MCP dropped JSON-RPC batching in 2025-06-18): the gate
    refuses one instead of deciding its members as if they would run."""
    app, recorder = custom_app()
    async with in_process(protected(app)) as http:
        response = await http.post(
            "/mcp",
            content=json.dumps([call("whoami", 1), call("whoami", 2)]).encode(),
            headers={"Authorization": f"Bearer {READ_WRITE}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"] == {"code": -32600, "message": "Invalid Request"}
    assert recorder.seen == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Mcp-Method": "tools/list"},  # the body is a tools/call
        {"Mcp-Name": "whoami"},  # the body calls add_note
        {"Mcp-Name": "=?base64?d2hvYW1p?="},  # "whoami" in the SDK's header encoding
        {"Mcp-Name": "=?base64?not base64?="},
    ],
    ids=["method", "name", "name-base64", "name-malformed"],
)
async def test_issue22_mcp_routing_headers_that_disagree_with_the_body_are_refused(
    headers: dict[str, str],
) -> None:
    """An intermediary may route or authorize on Mcp-Method/Mcp-Name; the SDK runs the body.
    The gate decides on the body and refuses a request whose headers say otherwise."""
    app, recorder = custom_app()
    async with in_process(protected(app)) as http:
        response = await http.post(
            "/mcp",
            json=call("add_note"),
            headers={"Authorization": f"Bearer {READ_WRITE}", **headers},
        )
    assert response.status_code == 400
    assert response.json()["error"] == {"code": -32600, "message": "Invalid Request"}
    assert recorder.seen == []


@pytest.mark.parametrize(
    "name", ["mcp-protocol-version", "mcp-method", "mcp-name"], ids=lambda n: n
)
async def test_issue22_mcp_routing_header_sent_twice_is_refused(name: str) -> None:
    """The SDK picks its protocol path by the first MCP-Protocol-Version header."""
    app, recorder = custom_app()
    first, second = {
        "mcp-protocol-version": (LEGACY, MODERN),
        "mcp-method": ("tools/call", "tools/call"),
        "mcp-name": ("add_note", "add_note"),
    }[name]
    headers = [
        (b"authorization", f"Bearer {READ_WRITE}".encode()),
        (b"content-type", b"application/json"),
        (name.encode(), first.encode()),
        (name.encode(), second.encode()),
    ]
    status, body = await asgi_post(protected(app), headers, [json.dumps(call("add_note")).encode()])
    assert status == 400 and json.loads(body)["error"]["code"] == -32600
    assert recorder.seen == []


@pytest.mark.parametrize(
    "value",
    [b"=?base64?\xe9?=", b"=?base64?YWRk\xff?="],
    ids=["latin-1", "high-byte"],
)
async def test_issue22_mcp_name_header_not_ascii_is_refused_not_500(value: bytes) -> None:
    """Review of issue 22: an ``Mcp-Name`` in the SDK's ``=?base64?...?=`` form whose payload
    is not ASCII made the SDK's decoder raise ``ValueError`` inside the gate: a 500 for any
    token holder. It matches no name, so it is the gate's 400."""
    app, recorder = custom_app()
    headers = [
        (b"authorization", f"Bearer {READ_WRITE}".encode()),
        (b"content-type", b"application/json"),
        (b"mcp-name", value),
    ]
    status, body = await asgi_post(protected(app), headers, [json.dumps(call("add_note")).encode()])
    assert status == 400 and json.loads(body)["error"] == {
        "code": -32600,
        "message": "Invalid Request",
    }
    assert recorder.seen == []


async def test_issue22_mcp_matching_routing_headers_pass() -> None:
    app, recorder = custom_app()
    async with in_process(protected(app)) as http:
        response = await http.post(
            "/mcp",
            json=call("add_note"),
            headers={
                "Authorization": f"Bearer {READ_WRITE}",
                "Mcp-Method": "tools/call",
                "Mcp-Name": "=?base64?YWRkX25vdGU=?=",  # "add_note", as the SDK encodes it
                "Content-Type": "Application/JSON; charset=UTF-8",
            },
        )
    assert response.status_code == 200
    assert len(recorder.seen) == 1


@paths
@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        # Escapes decode the same for the gate and both SDK parsers: still add_note.
        (lambda b: b.replace(b'"add_note"', b'"add\\u005fnote"'), 403),
        # RFC 8259 §8.1: Python's json (the 2026-07-28 path) reads past a BOM.
        (lambda b: b"\xef\xbb\xbf" + b, 400),
        # Duplicate names: last wins in both SDK parsers; the gate reads neither.
        (lambda b: b.replace(b'"name": "add_note"', b'"name": "add_note", "name": "whoami"'), 400),
        (
            lambda b: b.replace(
                b'"method": "tools/call"', b'"method": "ping", "method": "tools/call"'
            ),
            400,
        ),
        # UTF-16: Python's json reads it from bytes.
        (lambda b: b.decode().encode("utf-16"), 400),
        # Not one message: nothing either path runs.
        (lambda b: b"[" + b + b"]", 400),
    ],
    ids=["escape", "bom", "duplicate-name", "duplicate-method", "utf-16", "batch"],
)
async def test_issue22_mcp_body_is_decided_as_the_sdk_reads_it(
    version: str, mutate: Any, status: int
) -> None:
    async with running_sdk() as (http, ran):
        body = mutate(json.dumps(tool_call("add_note", version)).encode())
        response = await http.post("/mcp", content=body, headers=path_headers(version, READ_ONLY))
    assert response.status_code == status, response.text
    assert ran == []


@paths
async def test_issue22_mcp_lone_surrogate_is_refused(version: str) -> None:
    """RFC 8259 §8.2: Python's json keeps a lone surrogate, pydantic_core refuses the body;
    what such a string means depends on the parser, so the gate runs neither."""
    async with running_sdk() as (http, ran):
        body = json.dumps(tool_call("add_note", version)).encode()
        lone = await http.post(
            "/mcp",
            content=body.replace(b'"x"', b'"\\ud800"'),
            headers=path_headers(version, READ_WRITE),
        )
        assert lone.status_code == 400 and lone.json()["error"]["code"] == -32700
        assert ran == []
        pair = await http.post(  # a surrogate pair is one character (U+1F600): fine
            "/mcp",
            content=body.replace(b'"x"', b'"\\ud83d\\ude00"'),
            headers=path_headers(version, READ_WRITE),
        )
    assert pair.status_code == 200, pair.text
    assert ran == ["add_note"]


async def test_mcp_preflight_without_token_reaches_no_sdk_code() -> None:
    """The SDK opens a session for any request without a session id: an unauthenticated
    preflight must not get there (the middleware answers it, issue 22 item 2)."""
    app, recorder = custom_app()
    async with in_process(protected(app)) as http:
        response = await http.options(
            "/mcp",
            headers={
                "Origin": "https://elsewhere.example",
                "Access-Control-Request-Method": "POST",
            },
        )
    assert response.status_code == 401
    assert recorder.seen == []


async def test_issue22_mcp_other_methods_are_refused_not_passed_on() -> None:
    app, recorder = custom_app()
    async with in_process(protected(app)) as http:
        response = await http.put(
            "/mcp", json=call("add_note"), headers={"Authorization": f"Bearer {READ_WRITE}"}
        )
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST, DELETE"
    assert recorder.seen == []


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_issue22_sdk_client_on_both_paths(deployment: Deployment, mode: str) -> None:
    """The SDK's own client, over real HTTP, on each path: the gate reads what it sends."""
    token = deployment.issuer.mint(sub=f"dana-{mode}", scopes=["notes:read"])
    versions: set[str | None] = set()

    async def record(request: httpx2.Request) -> None:
        if request.method == "POST":
            versions.add(request.headers.get("mcp-protocol-version"))

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, event_hooks={"request": [record]}
        ) as http,
        Client(streamable_http_client(deployment.mcp_url, http_client=http), mode=mode) as client,
    ):
        assert text_of(await client.call_tool("whoami", {}))["sub"] == f"dana-{mode}"
        with refused():
            await client.call_tool("add_note", {"text": f"not allowed {mode}"})
    assert not any(f"not allowed {mode}" in notes for notes in mcp_server.NOTES.values())
    # The path the SDK's server took, chosen by this header.
    assert versions == ({MODERN} if mode == MODERN else {None, LEGACY})


async def test_issue22_mcp_chunked_body_is_read_and_bounded(deployment: Deployment) -> None:
    """Transfer-Encoding: chunked (no Content-Length) over real HTTP: read and decided, and
    refused past the limit while it streams."""

    async def chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    token = deployment.issuer.mint(sub="erin", scopes=["notes:read"])
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": ACCEPT,
    }
    async with httpx.AsyncClient() as http:
        small = await http.post(
            deployment.mcp_url,
            content=chunks(json.dumps(call("add_note")).encode()),
            headers=headers,
        )
        large = await http.post(
            deployment.mcp_url, content=chunks(b" " * (MAX_BODY_BYTES + 1), 65536), headers=headers
        )
    assert small.request.headers["transfer-encoding"] == "chunked"
    assert small.status_code == 403 and small.json()["code"] == "insufficient_scope"
    assert large.status_code == 413


# -- issue 22: property: whatever the body and headers, a tool runs only when the gate said so --


@pytest.fixture(scope="module")
def live_sdk() -> Iterator[tuple[BlockingPortal, Starlette, list[str]]]:
    """The SDK app of :func:`sdk_app` with its lifespan running in a portal's event loop."""
    ran: list[str] = []
    app = sdk_app(ran)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        yield portal, app, ran


def body_variants(message: dict[str, Any]) -> dict[str, bytes]:
    """Spellings of ``message`` on which parsers are known to differ, and some plain ones."""
    plain = json.dumps(message).encode()
    name = message["params"]["name"]
    other = "whoami" if name == "add_note" else "add_note"
    escaped = "".join(f"\\u{ord(c):04x}" for c in name).encode()
    return {
        "plain": plain,
        "compact": json.dumps(message, separators=(",", ":")).encode(),
        "escaped": plain.replace(f'"{name}"'.encode(), b'"' + escaped + b'"'),
        "name-twice": plain.replace(b'"name": ', f'"name": "{other}", "name": '.encode()),
        "name-twice-after": plain.replace(
            f'"name": "{name}"'.encode(), f'"name": "{name}", "name": "{other}"'.encode()
        ),
        "params-twice": plain.replace(
            b'"params": ', f'"params": {{"name": "{other}"}}, "params": '.encode()
        ),
        "bom": b"\xef\xbb\xbf" + plain,
        "utf-16": plain.decode().encode("utf-16"),
        "utf-16-le": plain.decode().encode("utf-16-le"),
        "batch": b"[" + plain + b"]",
        "no-id": json.dumps({k: v for k, v in message.items() if k != "id"}).encode(),
        "id-null": json.dumps({**message, "id": None}).encode(),
        "surrogate": plain.replace(b'"x"', b'"\\udc00"'),
        "nan": plain.replace(b'"x"', b"NaN"),
        "trailing": plain + b" \r\n\t",
        "garbage": plain + b"}",
    }


@st.composite
def mcp_posts(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    """A POST as a client on one of the SDK's paths sends it, then perhaps bent: another
    spelling of the body, another Content-Type, headers that disagree or are added."""
    version = draw(st.sampled_from([LEGACY, MODERN, LEGACY, MODERN, None, "2099-01-01", ""]))
    name = draw(st.sampled_from(["whoami", "add_note"]))
    envelope = version if draw(st.integers(0, 3)) else draw(st.sampled_from([LEGACY, MODERN]))
    message = tool_call(name, MODERN if envelope == MODERN else LEGACY)
    variants = body_variants(message)
    variant = draw(st.sampled_from(["plain", "plain", "compact", *sorted(variants)]))
    token = draw(st.sampled_from([READ_ONLY, NO_SCOPES]))
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    media = draw(
        st.one_of(
            st.sampled_from(
                [
                    None,
                    "application/json",
                    "Application/JSON",
                    "application/json; charset=utf-8",
                    "application/json;charset=utf-16",
                    "application/jsonx",
                    "application/json-seq",
                    "application/json-patch+json",
                    "application/json, text/plain",
                    "text/plain",
                ]
            ),
            st.builds(
                str.__add__,
                st.sampled_from(["application/json", "application/", "APPLICATION/JSON"]),
                st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
            ),
        )
    )
    if media is not None:
        headers["Content-Type"] = media
    for header, usual, others in [
        ("Mcp-Method", "tools/call", [None, "tools/list"]),
        ("Mcp-Name", name, [None, "whoami", "add_note"]),
        ("Content-Encoding", None, ["identity", "gzip"]),
    ]:
        value = draw(st.sampled_from([usual, usual, usual, *others]))
        if value is not None:
            headers[header] = value
    return variant, headers, variants[variant]


@settings(
    max_examples=int(os.environ.get("JWT_GUARD_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(post=mcp_posts())
def test_issue22_mcp_property_a_tool_runs_only_when_the_gate_allowed_it(
    live_sdk: tuple[BlockingPortal, Starlette, list[str]], post: tuple[str, dict[str, str], bytes]
) -> None:
    """For generated bodies, Content-Types and headers, on both SDK paths: the tokens hold at
    most ``notes:read``, so ``add_note`` never runs, and ``whoami`` runs only for a token
    holding ``notes:read`` (the gate checked it). Every refusal is the gate's, not a 500."""
    portal, app, ran = live_sdk
    variant, headers, body = post

    async def send() -> httpx.Response:
        async with in_process(app) as http:
            return await http.post("/mcp", content=body, headers=headers)

    before = len(ran)
    response = portal.call(send)
    runs = ran[before:]
    assert "add_note" not in runs, (variant, headers, response.text)
    if runs:
        assert runs == ["whoami"] and headers["Authorization"] == f"Bearer {READ_ONLY}"
    assert response.status_code < 500, (variant, headers, response.text)


# -- issue 26, item 3: every named operation, decided on the message ----------------------------

NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def named_call(method: str, name: str, version: str) -> dict[str, Any]:
    """A ``tools/call``, ``prompts/get`` or ``resources/read`` as a client on ``version``'s
    path sends it (2026-07-28: the per-request envelope in ``params._meta``)."""
    params: dict[str, Any] = {NAMED[method]: name}
    if method != "resources/read":
        params["arguments"] = {"text": "x"} if method == "tools/call" else {"topic": "x"}
    if version == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def named_headers(method: str, name: str, version: str, token: str) -> dict[str, str]:
    headers = {**path_headers(version, token)}
    if version == MODERN:  # the 2026-07-28 client mirrors the method and name (SEP-2243)
        headers |= {"Mcp-Method": method, "Mcp-Name": name}
    return headers


@paths
@pytest.mark.parametrize(
    ("method", "name", "needs", "ran"),
    [
        ("prompts/get", "draft", "notes:write", "draft"),
        ("resources/read", "notes://alice", "notes:read", "notes://alice"),  # by template
        ("resources/read", "notes://al%20ice", "notes:read", "notes://al ice"),
        ("resources/read", "config://app", "admin", "config://app"),  # by URI
    ],
)
async def test_issue26_mcp_prompt_and_resource_scopes_are_decided_on_the_message(
    version: str, method: str, name: str, needs: str, ran: str
) -> None:
    """MCP authorization: scopes per operation. Before, only ``tools/call`` had them: a
    ``prompts/get`` or ``resources/read`` ran for any token."""
    holds = ISSUER.mint(sub="alice", scopes=[needs], ttl=86400)
    async with running_sdk() as (http, done):
        denied = await http.post(
            "/mcp",
            json=named_call(method, name, version),
            headers=named_headers(method, name, version, NO_SCOPES),
        )
        assert done == []
        allowed = await http.post(
            "/mcp",
            json=named_call(method, name, version),
            headers=named_headers(method, name, version, holds),
        )
    assert denied.status_code == 403 and denied.json()["code"] == "insufficient_scope"
    assert f'scope="{needs}"' in denied.headers["www-authenticate"]
    assert allowed.status_code == 200, allowed.text
    assert done == [ran]


@paths
@pytest.mark.parametrize(
    "uri",
    [
        "notes://a:b",  # ':' is reserved: a level-1 expansion encodes it, the SDK reads it
        "notes://a@b",
        "notes://a b",
        "notes://",  # an empty value
        "notes://a%2",  # a broken percent-encoding
        "notes://a%zz",
    ],
)
async def test_issue26_mcp_resource_template_matched_strictly_or_refused(
    version: str, uri: str
) -> None:
    """A URI the SDK may route to ``notes://{owner}`` but that no RFC 6570 level-1 expansion
    produces is refused, not let through without the template's scopes."""
    async with running_sdk() as (http, done):
        response = await http.post(
            "/mcp",
            json=named_call("resources/read", uri, version),
            headers=named_headers("resources/read", uri, version, NO_SCOPES),
        )
    assert response.status_code == 400
    assert response.json()["error"] == {"code": -32600, "message": "Invalid Request"}
    assert done == []


@paths
async def test_issue26_mcp_unlisted_operations_run_for_any_token(version: str) -> None:
    """What no table names needs no scope (as tools before): another template's URI, and a
    URI the template's variable cannot span ('/')."""
    async with running_sdk() as (http, done):
        for uri in ["other://x", "notes://a/b"]:
            response = await http.post(
                "/mcp",
                json=named_call("resources/read", uri, version),
                headers=named_headers("resources/read", uri, version, NO_SCOPES),
            )
            # The SDK's own answer, not the gate's: its "Unknown resource" JSON-RPC error
            # (HTTP 400 on 2026-07-28, 200 before).
            assert response.status_code == (400 if version == MODERN else 200)
            assert response.json()["error"]["message"] == f"Unknown resource: {uri}"
    assert done == []


@pytest.mark.parametrize(
    ("method", "body_name", "header"),
    [
        ("prompts/get", "draft", "other"),
        ("resources/read", "notes://alice", "config://public"),
        ("resources/read", "notes://alice", "=?base64?Y29uZmlnOi8vcHVibGlj?="),  # the same
    ],
)
async def test_issue26_mcp_name_must_agree_with_the_body_for_prompts_and_resources(
    method: str, body_name: str, header: str
) -> None:
    """2026-07-28: ``Mcp-Name`` mirrors ``params.name`` (prompts) and ``params.uri``
    (resources); an intermediary may route on it, the SDK runs the body."""
    holds = ISSUER.mint(sub="alice", scopes=["notes:read", "notes:write"], ttl=86400)
    async with running_sdk() as (http, done):
        headers = named_headers(method, body_name, MODERN, holds) | {"Mcp-Name": header}
        response = await http.post(
            "/mcp", json=named_call(method, body_name, MODERN), headers=headers
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == -32600
    assert done == []


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_issue26_sdk_client_reads_resources_and_prompts_as_its_scopes_allow(
    deployment: Deployment, mode: str
) -> None:
    """The SDK's own client over uvicorn, on each path: a resource by template and a prompt,
    each refused with 403 naming its scope, then allowed with it."""
    reader = deployment.issuer.mint(sub=f"rita-{mode}", scopes=["notes:read"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=reader, mode=mode) as client:
        read = await client.read_resource("notes://0")
        assert read.contents[0].text == "no note 0"
        with refused():
            await client.get_prompt("draft_note", {"topic": "x"})
    (denied,) = [e for e in seen if e.status == 403]
    assert params(denied.challenge)["scope"] == "notes:write"
    writer = deployment.issuer.mint(sub=f"walt-{mode}", scopes=["notes:write"])
    seen.clear()
    async with connect(deployment.mcp_url, seen, token=writer, mode=mode) as client:
        prompt = await client.get_prompt("draft_note", {"topic": "tea"})
        assert "tea" in prompt.messages[0].content.text
        with refused():
            await client.read_resource("notes://0")
    (denied,) = [e for e in seen if e.status == 403]
    assert params(denied.challenge)["scope"] == "notes:read"


@pytest.mark.parametrize(
    "template",
    [
        "file://{+path}",  # level 2: reserved expansion crosses '/'
        "file://{#part}",
        "x://{/a}",  # level 3 operators
        "x://a{?q}",
        "x://{a,b}",
        "x://{a:3}",  # level 4 modifiers
        "x://{a*}",
        "x://{a}{b}",  # two variables, nothing between
        "x://{a",
        "x://a}",
    ],
)
def test_issue26_resource_scopes_take_rfc6570_level_1_templates_only(template: str) -> None:
    with pytest.raises(ConfigurationError, match="resource_scopes"):
        protected(custom_app()[0], resource_scopes={template: ["notes:read"]})


@pytest.mark.parametrize(
    "options",
    [
        {"prompt_scopes": {"draft": "notes:write"}},  # a string, not a list
        {"prompt_scopes": {"draft": []}},
        {"resource_scopes": {"notes://a b": ["notes:read"]}},
        {"resource_scopes": ["notes://a"]},
        {"tool_scopes": {"add_note": ["notes write"]}},
    ],
)
def test_issue26_operation_scopes_are_checked_when_protecting(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="non-empty lists of scopes"):
        protect(
            custom_app()[0],
            verifier=ISSUER.verifier(),
            protected_resource=ProtectedResource(URL, ["https://login.example.com"]),
            **options,
        )


def test_issue26_resource_templates_match_in_linear_time_and_every_match_counts() -> None:
    scopes = OperationScopes(
        resources={
            "x://{a}-{b}-{c}": ["x"],
            "notes://{owner}": ["notes:read"],
            "notes://{owner}/history": ["history:read"],
            "notes://{owner}-{day}": ["daily"],
        }
    )
    # A URI a backtracking regular expression takes cubic time on: read once, refused.
    with pytest.raises(UnmatchedResource):
        scopes.needed("resources/read", "x://" + "-" * 8000 + "!")
    with pytest.raises(UnmatchedResource):
        scopes.needed("resources/read", "x://" + "a" * (MAX_TEMPLATED_URI + 1))
    assert scopes.needed("resources/read", "x://a-b-c-d") == ("x",)
    # Both templates match: the gate cannot know which the SDK picks, so both are needed.
    assert scopes.needed("resources/read", "notes://al-ice") == ("notes:read", "daily")
    assert scopes.needed("resources/subscribe", "notes://alice/history") == ("history:read",)
    assert scopes.needed("resources/list", "notes://alice") is None


def completion_call(ref: dict[str, Any], version: str) -> dict[str, Any]:
    params: dict[str, Any] = {"ref": ref, "argument": {"name": "owner", "value": "a"}}
    if version == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": 1, "method": "completion/complete", "params": params}


def completion_headers(version: str, token: str) -> dict[str, str]:
    headers = {**path_headers(version, token)}
    if version == MODERN:
        headers |= {"Mcp-Method": "completion/complete"}
        del headers["Mcp-Name"]
    return headers


@paths
@pytest.mark.parametrize(
    ("ref", "needs"),
    [
        ({"type": "ref/prompt", "name": "draft"}, ["notes:write"]),
        ({"type": "ref/resource", "uri": "notes://{owner}"}, ["notes:read"]),  # as listed
        ({"type": "ref/resource", "uri": "config://app"}, ["admin"]),
    ],
)
async def test_issue26_mcp_completion_needs_the_scopes_of_what_it_completes(
    version: str, ref: dict[str, Any], needs: list[str]
) -> None:
    """A completion offers values for a prompt's or a template's arguments, which a server
    draws from what they serve (note owners, say): it needed no scope at all before."""
    holds = ISSUER.mint(sub="alice", scopes=needs, ttl=86400)
    async with running_sdk() as (http, done):
        denied = await http.post(
            "/mcp",
            json=completion_call(ref, version),
            headers=completion_headers(version, NO_SCOPES),
        )
        assert done == []
        allowed = await http.post(
            "/mcp", json=completion_call(ref, version), headers=completion_headers(version, holds)
        )
    assert denied.status_code == 403 and denied.json()["code"] == "insufficient_scope"
    assert f'scope="{" ".join(needs)}"' in denied.headers["www-authenticate"]
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"]["completion"]["values"] == ["alice"]
    assert len(done) == 1


@paths
async def test_issue26_mcp_completion_ref_naming_a_prompt_and_a_resource_needs_both(
    version: str,
) -> None:
    """The gate does not guess which of the two the SDK's model would read."""
    ref = {"name": "draft", "uri": "config://app"}
    async with running_sdk() as (http, done):
        for scopes in (["notes:write"], ["admin"]):
            token = ISSUER.mint(sub="alice", scopes=scopes, ttl=86400)
            denied = await http.post(
                "/mcp",
                json=completion_call(ref, version),
                headers=completion_headers(version, token),
            )
            assert denied.status_code == 403
            assert 'scope="notes:write admin"' in denied.headers["www-authenticate"]
    assert done == []


@paths
@pytest.mark.parametrize(
    "ref", [None, "draft", {"type": "ref/prompt", "name": 1}, {"uri": "notes://a:b"}]
)
async def test_issue26_mcp_completion_without_a_readable_ref_is_refused(
    version: str, ref: Any
) -> None:
    async with running_sdk() as (http, done):
        response = await http.post(
            "/mcp",
            json=completion_call(ref, version),
            headers=completion_headers(version, NO_SCOPES),
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == -32600
    assert done == []


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_issue26_sdk_client_completes_a_template_only_with_its_scope(
    deployment: Deployment, mode: str
) -> None:
    """The SDK's own client over uvicorn: the example completes ``notes://{index}`` with the
    caller's note numbers, which only a token that may read the notes gets."""
    ref = ResourceTemplateReference(uri="notes://{index}")
    both = deployment.issuer.mint(sub=f"cleo-{mode}", scopes=["notes:read", "notes:write"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=both, mode=mode) as client:
        await client.call_tool("add_note", {"text": "one"})
        done = await client.complete(ref, {"name": "index", "value": ""})
    assert done.completion.values == ["0"]
    writer = deployment.issuer.mint(sub=f"cleo-{mode}", scopes=["notes:write"])
    seen.clear()
    with refused():
        async with connect(deployment.mcp_url, seen, token=writer, mode=mode) as client:
            await client.complete(ref, {"name": "index", "value": ""})
    (denied,) = [e for e in seen if e.status == 403]
    assert params(denied.challenge)["scope"] == "notes:read"


# -- issue 26, review h8: what the gate missed --------------------------------------------------

ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}


#: Seconds before a test that a listen stream could hold open gives up (a failure, not a hang).
STREAM_GUARD = 20


def listen_call(notifications: Any, version: str) -> dict[str, Any]:
    """A ``subscriptions/listen`` (2026-07-28; the SDK answers it as an unknown method before)."""
    params: dict[str, Any] = {"notifications": notifications}
    if version == MODERN:
        params["_meta"] = ENVELOPE
    return {"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen", "params": params}


def listen_headers(version: str, token: str) -> dict[str, str]:
    headers = {**path_headers(version, token)}
    if version == MODERN:
        headers |= {"Mcp-Method": "subscriptions/listen"}
        del headers["Mcp-Name"]
    return headers


@paths
@pytest.mark.parametrize(
    ("uris", "needs"),
    [
        (["config://app"], "admin"),  # by URI
        (["notes://alice"], "notes:read"),  # by template
        (["other://x", "config://app", "notes://bob"], "admin notes:read"),  # every one
    ],
)
async def test_issue26_review_f1_listen_resource_subscriptions_need_the_resources_scopes(
    version: str, uris: list[str], needs: str
) -> None:
    """Review h8 F1: MCP 2026-07-28 subscribes to a resource's changes with
    ``subscriptions/listen`` (``params.notifications.resourceSubscriptions``), which replaced
    the gated ``resources/subscribe`` and which ``MCPServer`` serves by default; it ran for any
    token. Each URI needs the scopes of reading it, all of them in one challenge."""
    # Let through, the stream of a 2026-07-28 listen would never end: bounded.
    with anyio.fail_after(STREAM_GUARD):
        async with running_sdk() as (http, done):
            response = await http.post(
                "/mcp",
                json=listen_call({"resourceSubscriptions": uris}, version),
                headers=listen_headers(version, NO_SCOPES),
            )
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert f'scope="{needs}"' in response.headers["www-authenticate"]
    assert done == []


@paths
@pytest.mark.parametrize(
    "notifications",
    [
        None,
        ["config://app"],
        {"resourceSubscriptions": "config://app"},  # a string, not a list
        {"resourceSubscriptions": [1]},
        {"resourceSubscriptions": ["notes://a:b"]},  # only a lenient template reading
        {"resource_subscriptions": ["config://app"]},  # kept by the SDK's model, unread
        {"taskIds": ["t1"]},  # an extension's member: what it subscribes to is unknown
    ],
)
async def test_issue26_review_f1_listen_the_gate_cannot_read_is_refused(
    version: str, notifications: Any
) -> None:
    with anyio.fail_after(STREAM_GUARD):
        async with running_sdk() as (http, done):
            response = await http.post(
                "/mcp",
                json=listen_call(notifications, version),
                headers=listen_headers(version, READ_WRITE),
            )
    assert response.status_code == 400 and response.json()["error"]["code"] == -32600
    assert done == []


async def test_issue26_review_f1_sdk_client_listens_to_a_resource_only_with_its_scope(
    deployment: Deployment,
) -> None:
    """The SDK's own client over uvicorn (``listen`` is 2026-07-28 only): a token without
    ``notes:read`` is refused with the scope challenge, one with it is acknowledged."""
    writer = deployment.issuer.mint(sub="lena", scopes=["notes:write"])
    seen: list[Exchange] = []
    with refused(), anyio.fail_after(STREAM_GUARD):
        async with (
            connect(deployment.mcp_url, seen, token=writer, mode=MODERN) as client,
            client.listen(resource_subscriptions=["notes://0"]),
        ):
            pass
    (denied,) = [e for e in seen if e.status == 403]
    assert params(denied.challenge)["scope"] == "notes:read"
    reader = deployment.issuer.mint(sub="lena", scopes=["notes:read"])
    async with (
        connect(deployment.mcp_url, seen, token=reader, mode=MODERN) as client,
        client.listen(resource_subscriptions=["notes://0"]) as subscription,
    ):
        assert subscription.honored.resource_subscriptions == ["notes://0"]


@paths
@pytest.mark.parametrize(
    "ref",
    [
        {"type": "ref/resource", "uri": "notes://{owner}/"},  # no template of the server's
        {"type": "ref/resource", "uri": "x://y"},
        {"type": "ref/prompt", "name": "draft-note"},
    ],
)
async def test_issue26_review_f2_completion_of_a_ref_nothing_registers_is_refused(
    version: str, ref: dict[str, Any]
) -> None:
    """Review h8 F2: the gate takes a completion's scopes from its ``ref``; a ref that names
    no registered prompt or template needed no scope, and a handler matching loosely answered
    it. With prompt or resource scopes set, such a ref is refused before the SDK sees it."""
    async with running_sdk() as (http, done):
        response = await http.post(
            "/mcp",
            json=completion_call(ref, version),
            headers=completion_headers(version, READ_WRITE),
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == -32600
    assert done == []


@pytest.mark.parametrize("mode", ["legacy", MODERN])
@pytest.mark.parametrize("uri", ["notes://{index}/", "x://y"])
async def test_issue26_review_f2_example_completion_of_a_ref_no_table_names_leaks_note_numbers(
    deployment: Deployment, mode: str, uri: str
) -> None:
    """The example's completion handler answered every ``ResourceTemplateReference``: a token
    without ``notes:read`` got its note numbers by completing a ref no table names. The SDK's
    own client over uvicorn, on both paths: refused, nothing completed."""
    writer = deployment.issuer.mint(sub=f"wren-{mode}", scopes=["notes:write"])
    seen: list[Exchange] = []
    async with connect(deployment.mcp_url, seen, token=writer, mode=mode) as client:
        await client.call_tool("add_note", {"text": "diary"})
        with refused():
            done = await client.complete(
                ResourceTemplateReference(uri=uri), {"name": "index", "value": ""}
            )
            assert done.completion.values == []  # (a failure message: no values either)
    assert [e.status for e in seen if e.status >= 400] == [400]


@pytest.mark.parametrize(
    ("registers", "options", "names"),
    [
        # The SDK's template crosses '/'; the level-1 look-alike the gate matches does not.
        (
            {"resources": ("files://{+path}",)},
            {"resource_scopes": {"files://{path}": ["r"]}},
            "files://{path}",
        ),
        # F4: a listed URI no resource registers: the SDK runs the template for it.
        (
            {"resources": ("notes://{id}",)},
            {"resource_scopes": {"notes://{id}": ["secret"], "notes://a@b": ["public"]}},
            "notes://a@b",
        ),
        ({}, {"prompt_scopes": {"draft-note": ["notes:write"]}}, "draft-note"),
        ({}, {"tool_scopes": {"add-note": ["notes:write"]}}, "did you mean 'add_note'"),
    ],
    ids=["template-look-alike", "unregistered-uri", "prompt-typo", "tool-typo"],
)
def test_issue26_review_f3_a_name_the_server_does_not_register_is_refused_at_start_up(
    registers: dict[str, Any], options: dict[str, Any], names: str
) -> None:
    """Review h8 F3, F4: the scope tables were never checked against what the SDK registers;
    a typo or a look-alike left what it meant open to every token, silently."""
    server = registering(**registers)

    @server.prompt()
    async def draft_note(topic: str) -> str:
        return topic

    app = server.streamable_http_app(json_response=True, stateless_http=True)
    with pytest.raises(ConfigurationError, match=re.escape(names)):
        protect(
            app,
            verifier=ISSUER.verifier(),
            protected_resource=ProtectedResource(URL, ["https://login.example.com"]),
            **options,
        )


async def test_issue26_review_f3_level1_lookalike_lets_the_sdk_template_serve_without_scope() -> (
    None
):
    """What the start-up check closes: with ``files://{path}`` accepted, ``files://a/b`` ran the
    SDK's ``files://{+path}`` for a token without the scope. Now only the template's own text
    is accepted, and an operator template cannot be given scopes; left unlisted, it serves
    every token, like any resource no table names."""
    server = registering(resources=("files://{+path}", "notes://{id}"))
    app = server.streamable_http_app(
        json_response=True,
        stateless_http=True,
        transport_security=TransportSecuritySettings(
            allowed_hosts=["mcp.example.com"], allowed_origins=["https://mcp.example.com"]
        ),
    )
    options: dict[str, Any] = {
        "verifier": ISSUER.verifier(),
        "protected_resource": ProtectedResource(URL, ["https://login.example.com"]),
    }
    for listed in ("files://{path}", "files://{+path}"):
        with pytest.raises(ConfigurationError, match="resource_scopes"):
            protect(app, **options, resource_scopes={listed: ["files:read"]})
    protect(app, **options, resource_scopes={"notes://{id}": ["notes:read"]})
    async with app.router.lifespan_context(app), in_process(app) as http:
        for uri, status in (("notes://a", 403), ("files://a/b", 200)):
            response = await http.post(
                "/mcp",
                json=named_call("resources/read", uri, MODERN),
                headers=named_headers("resources/read", uri, MODERN, NO_SCOPES),
            )
            assert response.status_code == status, (uri, response.text)


def test_issue26_review_f3_server_option_must_be_the_apps_server() -> None:
    app = registering().streamable_http_app(json_response=True, stateless_http=True)
    for server in (registering(), "notes"):
        with pytest.raises(ConfigurationError, match="server="):
            protect(
                app,
                verifier=ISSUER.verifier(),
                protected_resource=ProtectedResource(URL, ["https://login.example.com"]),
                tool_scopes={"add_note": ["notes:write"]},
                server=server,  # type: ignore[arg-type]
            )
