"""Property-based fuzzing of the parser, the verifier and whole requests through both adapters.

CI runs a bounded number of examples. For a long campaign:

    JWT_GUARD_FUZZ_EXAMPLES=200000 python -m pytest tests/security/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwt_guard import JWTGuardError
from jwt_guard._core.parse import parse_compact
from jwt_guard.testing import LocalIssuer

from ..apps import flask_app, starlette_app

EXAMPLES = int(os.environ.get("JWT_GUARD_FUZZ_EXAMPLES", "600"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
ALLOWED_STATUSES = {200, 400, 401, 403, 503}

ISSUER = LocalIssuer(algorithm="ES256", kid="fuzz")
VALID = ISSUER.mint(ttl=10**7, roles=["admin"], scopes=["read"])
TOKEN_CHARS = st.sampled_from(
    list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \t,;\"'\\{}[]:é\x00")
)


@st.composite
def mutated_tokens(draw: Any) -> str:
    """Valid tokens with flips, cuts, insertions and swapped segments."""
    token = VALID
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "swap", "dup"]))
        if not token:
            break
        i = draw(st.integers(0, len(token) - 1))
        if op == "flip":
            token = token[:i] + draw(TOKEN_CHARS) + token[i + 1 :]
        elif op == "cut":
            token = token[:i] + token[i + draw(st.integers(1, 20)) :]
        elif op == "insert":
            token = token[:i] + draw(st.text(TOKEN_CHARS, max_size=10)) + token[i:]
        elif op == "swap":
            parts = token.split(".")
            draw(st.randoms()).shuffle(parts)
            token = ".".join(parts)
        else:
            parts = token.split(".")
            token = token + "." + parts[draw(st.integers(0, len(parts) - 1))]
    return token


@FUZZ
@given(st.one_of(st.text(max_size=300), mutated_tokens(), st.binary(max_size=200)))
def test_parser_only_raises_our_errors(data: Any) -> None:
    with contextlib.suppress(JWTGuardError):
        parse_compact(data)


VERIFIER = ISSUER.verifier(cache_size=0)


@FUZZ
@given(mutated_tokens())
def test_verifier_only_raises_our_errors(token: str) -> None:
    try:
        principal = VERIFIER.verify(token)
    except JWTGuardError as exc:
        assert exc.status_code in (400, 401, 403, 503)
    else:
        assert principal.subject == "user-1"  # only an intact token can pass


header_values = st.one_of(
    st.just("Bearer " + VALID),
    mutated_tokens().map(lambda t: "Bearer " + t),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
    st.sampled_from(["Bearer", "Basic dXNlcjpwYXNz", "bearer  x", "Bearer a,b", ""]),
)
cookie_values = st.one_of(
    st.just(f"at={VALID}"),
    mutated_tokens().map(lambda t: f"at={t}"),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
    st.just(f"at={VALID}; at=x"),
)
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "DELETE", "HEAD", "OPTIONS"]),
        "path": st.sampled_from(["/me", "/admin", "/scoped", "/health", "/nope"]),
        "authorization": st.lists(header_values, max_size=2),
        "cookie": st.lists(cookie_values, max_size=2),
        "extra": st.dictionaries(
            st.sampled_from(
                ["origin", "sec-fetch-site", "x-csrf-token", "x-http-method-override", "host"]
            ),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
            max_size=3,
        ),
    }
)


def _headers(req: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    headers = [(b"authorization", v.encode("latin-1")) for v in req["authorization"]]
    headers += [(b"cookie", v.encode("latin-1")) for v in req["cookie"]]
    headers += [(k.encode(), v.encode("latin-1")) for k, v in req["extra"].items()]
    return headers


ASGI_APP = starlette_app(ISSUER.verifier(), cookie="at", exclude=["/health"])


@FUZZ
@given(requests)
def test_asgi_requests_end_in_allowed_statuses(req: dict[str, Any]) -> None:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": req["method"],
        "scheme": "http",
        "path": req["path"],
        "raw_path": req["path"].encode(),
        "root_path": "",
        "query_string": b"",
        "headers": _headers(req),
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(ASGI_APP(scope, receive, send))  # an exception escaping fails the test
    assert statuses and statuses[0] in ALLOWED_STATUSES | {404, 405}


# Werkzeug's client builds a PEP 3333 environ (latin-1 header strings), as real servers do.
WSGI_APP = flask_app(ISSUER.verifier(), cookie="at", exclude=["/health"])
WSGI_APP.config["PROPAGATE_EXCEPTIONS"] = True  # an unexpected exception fails the test
WSGI_CLIENT = WSGI_APP.test_client()


@FUZZ
@given(requests)
def test_wsgi_requests_end_in_allowed_statuses(req: dict[str, Any]) -> None:
    headers = _headers(req)
    # The WSGI transport keeps one value per header name, as WSGI servers join repeats.
    merged: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        merged[name] = merged[name] + "," + value if name in merged else value
    response = WSGI_CLIENT.open(req["path"], method=req["method"], headers=list(merged.items()))
    assert response.status_code in ALLOWED_STATUSES | {404, 405}
    assert response.status_code != 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
jwk_like = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "XYZ", ""]) | json_values,
        "kid": st.text(max_size=10) | json_values,
        "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "HS256", "none"]) | json_values,
        "use": st.sampled_from(["sig", "enc"]) | json_values,
        "key_ops": st.lists(st.sampled_from(["verify", "sign"])) | json_values,
        "crv": st.sampled_from(["P-256", "P-384", "Ed25519", "secp256k1"]) | json_values,
        "n": st.text("ABCDEFabcdef0123456789-_", max_size=40) | json_values,
        "e": st.sampled_from(["AQAB", "Aw", ""]) | json_values,
        "x": st.text("ABCDEFabcdef0123456789-_", max_size=60) | json_values,
        "y": st.text("ABCDEFabcdef0123456789-_", max_size=60) | json_values,
        "d": json_values,
        "k": json_values,
    },
)
jwks_documents = st.one_of(
    json_values,
    st.fixed_dictionaries({"keys": st.lists(jwk_like | json_values, max_size=5)}),
    st.builds(
        lambda keys: {"keys": [*keys, ISSUER.jwks["keys"][0]]}, st.lists(jwk_like, max_size=3)
    ),
)


@FUZZ
@given(st.one_of(jwks_documents.map(lambda d: json.dumps(d).encode()), st.binary(max_size=100)))
def test_jwks_document_parser_only_fails_cleanly(body: bytes) -> None:
    from jwt_guard._core.jwks_policy import FetchFailed, parse_document

    try:
        key_set = parse_document(body, None)
    except FetchFailed:
        return
    assert len(key_set) >= 1
