"""The tools' private parts: making tokens, the demo's issuer and page.

The public tools are ``jwt_guard.cli``, ``jwt_guard.demo``, ``jwt_guard.testing``,
``jwt_guard.providers`` and ``jwt_guard.pytest_plugin``. Tokens are made here with PyJWT, never on
the verification path.

May import: everything below (core, sources, HTTP layer, integrations) and this folder.
"""
