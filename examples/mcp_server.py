"""An MCP server (the official ``mcp`` SDK, streamable HTTP) protected by jwt_guard.

    MCP_SERVER_URL=https://mcp.example.com/mcp MCP_ISSUER=https://login.example.com \
    uvicorn --factory examples.mcp_server:create_app

``MCP_ISSUER`` is the authorization server (discovery gives its keys: its OpenID configuration
or its RFC 8414 metadata). Tokens must be issued for ``MCP_SERVER_URL`` (their ``aud``,
RFC 8707); the tool ``add_note`` and the prompt ``draft_note`` need the ``notes:write`` scope,
the resources ``notes://{index}`` ``notes:read``. Clients find the authorization server through
``/.well-known/oauth-protected-resource/mcp`` (RFC 9728), named in every 401.
"""

from __future__ import annotations

import os
import urllib.parse

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)
from starlette.applications import Starlette

from jwt_guard import ProtectedResource, Verifier
from jwt_guard.mcp import get_principal, protect, require_scopes

NOTES: dict[str, list[str]] = {}


def owner(ctx: Context) -> str:
    """Whose notes: the token's issuer and subject (a subject is unique per issuer only,
    OIDC Core §2). A token without ``sub`` speaks for nobody in particular: refused."""
    principal = get_principal(ctx)
    if not principal.subject:
        raise ToolError("The token does not name a subject.")
    return f"{principal.issuer} {principal.subject}"


def make_server() -> MCPServer:
    server = MCPServer("notes")

    @server.tool()
    def whoami(ctx: Context) -> dict[str, object]:
        """Who the token speaks for."""
        principal = get_principal(ctx)
        sdk_token = get_access_token()  # the SDK's own view works too
        return {
            "sub": principal.subject,
            "scopes": sorted(principal.scopes),
            "client_id": sdk_token.client_id if sdk_token else None,
        }

    @server.tool()
    def add_note(text: str, ctx: Context) -> int:
        """Save a note (needs notes:write, checked before the call by protect())."""
        notes = NOTES.setdefault(owner(ctx), [])
        notes.append(text)
        return len(notes)

    @server.tool()
    def list_notes(ctx: Context) -> dict[str, list[str]]:
        """The caller's notes; the tool checks the scope itself."""
        require_scopes(ctx, "notes:read")
        return {"notes": NOTES.get(owner(ctx), [])}

    @server.resource("notes://{index}")
    def note(index: str, ctx: Context) -> str:
        """One of the caller's notes (needs notes:read, checked by protect())."""
        notes = NOTES.get(owner(ctx), [])
        return (
            notes[int(index)] if index.isdigit() and int(index) < len(notes) else f"no note {index}"
        )

    @server.prompt()
    def draft_note(topic: str) -> str:
        """A prompt to draft a note (needs notes:write, checked by protect())."""
        return f"Draft a short note about {topic}, then save it with add_note."

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        """The caller's note numbers for ``notes://{index}`` (needs notes:read, checked by
        protect() as for reading the resources). protect() decides on the ref's name, so
        this dispatches on exactly that name: any other ref gets nothing."""
        token = get_access_token()
        if (
            not isinstance(ref, ResourceTemplateReference)
            or ref.uri != "notes://{index}"
            or argument.name != "index"
            or token is None
        ):
            return None
        notes = NOTES.get(f"{token.claims.get('iss')} {token.subject}", [])
        numbers = [str(i) for i in range(len(notes))]
        return Completion(values=[n for n in numbers if n.startswith(argument.value)])

    return server


def build(server_url: str, verifier: Verifier | None, authorization_server: str) -> Starlette:
    """The protected app for an MCP endpoint at ``server_url``; without a ``verifier``, the
    resource's own document makes one (its authorization server found by discovery)."""
    parts = urllib.parse.urlsplit(server_url)
    app = make_server().streamable_http_app(
        streamable_http_path=parts.path or "/mcp",
        # The SDK's DNS-rebinding check: only requests addressed to this server's host.
        transport_security=TransportSecuritySettings(
            allowed_hosts=[parts.netloc],
            allowed_origins=[f"{parts.scheme}://{parts.netloc}"],
        ),
    )
    resource = ProtectedResource(
        server_url,  # the server's canonical URL: tokens for other servers are refused
        [authorization_server],
        scopes_supported=["notes:read", "notes:write"],
        resource_name="Notes (MCP)",
    )
    return protect(
        app,
        verifier=verifier or resource.verifier(algorithms=["RS256", "ES256"]),
        protected_resource=resource,
        tool_scopes={"add_note": ["notes:write"]},
        resource_scopes={"notes://{index}": ["notes:read"]},  # a URI or RFC 6570 level 1
        prompt_scopes={"draft_note": ["notes:write"]},
    )


def create_app() -> Starlette:
    return build(os.environ["MCP_SERVER_URL"], None, os.environ["MCP_ISSUER"])
