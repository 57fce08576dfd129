"""The sources: everything that does I/O for verification, each with a sync and an async driver.

Remote key sets (JWKS over HTTP, OIDC discovery), the one total deadline for a blocking call,
the Redis connection and the Redis-backed stores (denylist, DPoP replay cache), the options read
from the environment, and the :class:`~jwt_guard.Verifier`, whose two drivers (``verify``,
``averify``) run the core's steps and do the I/O between them.

May import: ``jwt_guard._core`` and this folder. Never the HTTP layer, the integrations, the
tools or the public modules.
"""
