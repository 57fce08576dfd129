"""The integrations' private parts: one framework's idiom on top of the HTTP layer, no rules.

The public integrations are ``jwt_guard.fastapi``, ``jwt_guard.flask`` and ``jwt_guard.mcp``;
this folder holds what they need beyond one module (the FastAPI ``/docs`` login, the scopes
of the MCP operations).

May import: ``jwt_guard._core``, ``jwt_guard._sources``, ``jwt_guard._http`` with the adapters,
and this folder. Never the tools.
"""
