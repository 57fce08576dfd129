"""The core: every rule of verification, and no I/O.

Parsing the compact token, the algorithm table, loading and selecting keys, the claim rules,
the principal, the per-issuer policies, the verified-token cache, the order of the steps, the DPoP
proof checks, revocation rules and the in-memory stores, the error tree and the rate-limited log
line of a rejection. Nothing here opens a socket or starts a thread: where a step needs the
outside world it returns what it needs, and a driver (``jwt_guard._sources``) does the I/O.

May import: the standard library, ``cryptography``, the optional extras (``opentelemetry-api``,
``pydantic``), and other modules of this folder. Never
anything above it (``_sources``, ``_http``, ``_integrations``, ``_tools``, the public modules).
"""
