"""The HTTP layer: from a request to a principal or an RFC 6750 answer, for ASGI and WSGI alike.

Reading the token from a request (header, cookie, WebSocket handshake; the CSRF check), the
guard (extract, verify, answer), the answers (status, ``WWW-Authenticate``), route guards and
requirements, token cookies, the RFC 9728 metadata document, and the ASGI and WSGI type
aliases. The public adapters ``jwt_guard.asgi`` and ``jwt_guard.wsgi`` belong to this
layer; they only read the request and write the answer.

May import: ``jwt_guard._core``, ``jwt_guard._sources``, this folder and the two adapters
``jwt_guard.asgi``/``jwt_guard.wsgi``. Never the integrations or the tools.
"""
