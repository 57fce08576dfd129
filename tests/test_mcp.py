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
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
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

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
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
    app = mcp_server.build(mcp_url, auth.issuer.verifier(), as_url)
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
    url: str, seen: list[Exchange], *, token: str | None = None, auth: httpx2.Auth | None = None
) -> AsyncIterator[Client]:
    """The SDK's client over real HTTP, recording every HTTP exchange it makes in ``seen``."""

    async def record(response: httpx2.Response) -> None:
        await response.aread()
        seen.append(
            Exchange(
                response.request.method,
                str(response.request.url),
                response.status_code,
                response.headers.get("www-authenticate"),
                response.content,
            )
        )

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, auth=auth, event_hooks={"response": [record]}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
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


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(call("add_note")).encode(),
        json.dumps([call("whoami", 1), call("add_note", 2)]).encode(),  # a batch
    ],
)
async def test_gate_refuses_a_call_without_its_scope(deployment: Deployment, body: bytes) -> None:
    token = deployment.issuer.mint(sub="mallory", scopes=["notes:read"])
    response = await raw_post(deployment, token, body)
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


async def test_gate_leaves_other_media_types_to_the_sdk(deployment: Deployment) -> None:
    token = deployment.issuer.mint(scopes=["notes:read", "notes:write"])
    async with httpx.AsyncClient() as http:
        response = await http.post(
            deployment.mcp_url,
            content=b"hello",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "text/plain",
                "Accept": "application/json, text/event-stream",
            },
        )
    # The SDK's own refusal (its transport security check here, else its 415), not the gate's
    # JSON-RPC parse error.
    assert response.status_code in (400, 415)
    assert "Content-Type" in response.text and "jsonrpc" not in response.text


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


def protected(app: Starlette, verifier: Any = None, **options: Any) -> Starlette:
    return protect(
        app,
        verifier=verifier or ISSUER.verifier(),
        protected_resource=ProtectedResource(URL, ["https://login.example.com"]),
        tool_scopes={"add_note": ["notes:write"]},
        exclude=["/public-hook"],
        **options,
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


async def test_the_gate_passes_other_media_types_on_unread() -> None:
    app, recorder = custom_app()
    token = ISSUER.mint(scopes=["notes:write"])
    async with in_process(protected(app)) as http:
        response = await http.post(
            "/mcp",
            content=b"hello",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        )
    assert response.status_code == 200
    assert [body for body, _, _ in recorder.seen] == [b"hello"]


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
