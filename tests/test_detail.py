"""Why was I refused? Every error code carries a ``detail`` of safe facts (issue #14).

One table over every code the error tree can produce per request. Each row makes the rejection
happen for real, through both adapters (ASGI and WSGI) with ``debug=True``, and checks:

* the body's ``code`` and the exact keys of its ``detail``;
* one INFO log line with the same code and detail as ``extra`` fields;
* ``on_error`` receives the exception with that detail;
* no token, token segment, signature, secret or private claim value (``sub``, ``email``)
  appears in the detail, the log or the answer.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from jwt_guard import (
    ClientCertificate,
    DPoP,
    DPoPNonces,
    Introspection,
    JWKSKeys,
    JWTGuardError,
    MemoryDenylist,
    MemoryReplayCache,
    RedisDenylist,
    RedisReplayCache,
    StaticKeys,
    Verifier,
)
from jwt_guard._core import errors as _errors
from jwt_guard._core.dpop import jwk_thumbprint
from jwt_guard._http.answer import Answer
from jwt_guard.testing import (
    LocalIssuer,
    compact,
    dpop_jwk,
    dpop_proof,
    make_client_certificate,
)

from .conftest import AppFactory, FakeClock
from .servers import IntrospectionServer

SUB = "sub-SECRET-4242"
EMAIL = "alice@secret.example"
HMAC_SECRET = "hmac-SECRET-" + "x" * 40
PRIVATE = (SUB, EMAIL, HMAC_SECRET)

NOW = 1_800_000_000

#: A client certificate for the certificate-bound tokens' rows (RFC 8705), and the address
#: both adapters' clients connect from (ASGITransport's client, the WSGI server's peer).
_CERT = make_client_certificate()
_LOOPBACK = ["127.0.0.1"]


@dataclass
class Case:
    code: str
    status: int
    keys: set[str]
    token: Callable[[LocalIssuer], str | None] = lambda i: i.mint(sub=SUB, email=EMAIL)
    verifier: Callable[[LocalIssuer], Verifier] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    method: str = "GET"
    path: str = "/me"
    headers: Callable[[str | None], dict[str, str]] = lambda t: (
        {"Authorization": f"Bearer {t}"} if t is not None else {}
    )
    #: A verifier on a server the test runs meanwhile (instead of ``verifier``).
    serving: Callable[[LocalIssuer], contextlib.AbstractContextManager[Verifier]] | None = None


def _verifier(case: Case, issuer: LocalIssuer, stack: contextlib.ExitStack) -> Verifier:
    if case.serving is not None:
        return stack.enter_context(case.serving(issuer))
    return case.verifier(issuer) if case.verifier else issuer.verifier()


def _introspecting(status: int) -> Callable[[LocalIssuer], Iterator[Verifier]]:
    """A verifier that introspects every token at an endpoint on 127.0.0.1 (RFC 7662) that
    knows no token (``status`` 200), or answers ``status``."""

    @contextlib.contextmanager
    def serve(issuer: LocalIssuer) -> Iterator[Verifier]:
        with IntrospectionServer() as server:
            server.status = status
            endpoint = Introspection(server.url, client_id="rs", client_secret="x", timeout=2)
            yield Verifier(introspection=endpoint, issuer=issuer.issuer, clock=issuer.clock)

    return serve


def _claims(idp: LocalIssuer, **extra: Any) -> dict[str, Any]:
    return idp.claims(sub=SUB, email=EMAIL, **extra)


def _revoked(issuer: LocalIssuer) -> Verifier:
    return issuer.verifier(denylist=MemoryDenylist(clock=issuer.clock))


CASES = [
    Case("token_missing", 401, {"looked_in"}, token=lambda i: None),
    Case(
        "multiple_tokens",
        400,
        {"reason"},
        options={"cookie": "access"},
        headers=lambda t: {"Authorization": f"Bearer {t}", "Cookie": "access=other.token.x"},
    ),
    Case(
        "header_malformed",
        400,
        {"reason"},
        headers=lambda t: {"Authorization": f"Bearer {t} {t}"},
    ),
    Case(
        "cookie_malformed",
        400,
        {"reason", "source"},
        options={"cookie": "access"},
        headers=lambda t: {"Cookie": f"access={t}!x"},
    ),
    Case("token_malformed", 401, {"reason", "segments"}, token=lambda i: "abc.def"),
    Case("token_too_large", 401, {"length", "limit"}, token=lambda i: "a" * 9000),
    Case(
        "algorithm_not_allowed",
        401,
        {"alg", "allowed"},
        token=lambda i: compact({"alg": "HS256", "kid": i.kid}, _claims(i), b"s" * 32),
    ),
    Case(
        "critical_header_unsupported",
        401,
        {"crit", "supported"},
        token=lambda i: i.mint(_claims(i), header={"crit": ["exp"], "exp": 1}),
    ),
    Case(
        "type_invalid",
        401,
        {"typ", "expected"},
        verifier=lambda i: i.verifier(typ="at+jwt"),
    ),
    Case(
        "key_not_found",
        401,
        {"kid", "alg", "key_set_kids"},
        token=lambda i: i.mint(_claims(i), kid="no-such-kid"),
    ),
    Case(
        "signature_invalid",
        401,
        {"alg", "kid", "keys_tried"},
        token=lambda i: compact({"alg": "RS256", "kid": i.kid}, _claims(i), b"\x01" * 256),
    ),
    Case(
        "token_expired",
        401,
        {"claim", "exp", "now", "leeway", "expired_seconds_ago"},
        token=lambda i: i.mint(_claims(i, expired=True)),
    ),
    Case(
        "token_too_old",
        401,
        {"claim", "iat", "now", "leeway", "max_token_age", "age_seconds"},
        verifier=lambda i: i.verifier(max_token_age=60),
        token=lambda i: i.mint(_claims(i, iat=NOW - 3600)),
    ),
    Case(
        "token_not_yet_valid",
        401,
        {"claim", "nbf", "now", "leeway", "valid_in_seconds"},
        token=lambda i: i.mint(_claims(i, nbf=NOW + 3600)),
    ),
    Case(
        "token_issued_in_future",
        401,
        {"claim", "iat", "now", "leeway", "issued_in_seconds"},
        token=lambda i: i.mint(_claims(i, iat=NOW + 3600)),
    ),
    Case(
        "auth_time_in_future",
        401,
        {"claim", "auth_time", "now", "leeway", "logged_in_in_seconds"},
        token=lambda i: i.mint(_claims(i, auth_time=NOW + 3600)),
    ),
    Case(
        "issuer_invalid",
        401,
        {"expected", "found", "hint"},
        token=lambda i: i.mint(_claims(i, issuer=i.issuer + "/")),
    ),
    Case(
        "audience_invalid",
        401,
        {"expected", "found"},
        token=lambda i: i.mint(_claims(i, audience="some-other-api")),
    ),
    Case(
        "claim_missing",
        401,
        {"claim", "required"},
        token=lambda i: i.mint(_claims(i, exp=None)),
    ),
    Case(
        "claim_invalid",
        401,
        {"claim", "reason", "found"},
        token=lambda i: i.mint(_claims(i, exp="tomorrow")),
    ),
    Case("token_revoked", 401, {"revoked", "reason"}, verifier=_revoked),
    Case(
        "insufficient_role",
        403,
        {"required", "mode", "present", "missing"},
        path="/admin",
        token=lambda i: i.mint(_claims(i, roles=["user"])),
    ),
    Case(
        "insufficient_scope",
        403,
        {"required", "mode", "present", "missing"},
        path="/scoped",
        token=lambda i: i.mint(_claims(i, scopes=["read"])),
    ),
    Case(
        "insufficient_authorization_details",
        403,
        {"type", "present_types", "fields", "reason"},
        path="/payments",
        token=lambda i: i.mint(_claims(i, scopes=["payments"])),
    ),
    Case(
        "acr_not_satisfied",
        401,
        {"required_acr", "acr"},
        path="/strong",
        token=lambda i: i.mint(_claims(i, acr="weak")),
    ),
    Case(
        "authentication_too_old",
        401,
        {"max_age", "auth_time", "now", "leeway", "age_seconds"},
        path="/recent",
        token=lambda i: i.mint(_claims(i, auth_time=NOW - 86400)),
    ),
    Case(
        "csrf_failed",
        403,
        {"origin", "own_origin", "reason"},
        method="POST",
        options={"cookie": "access"},
        headers=lambda t: {"Cookie": f"access={t}", "Origin": "https://evil.example"},
    ),
    Case(
        "jwks_unavailable",
        503,
        {"url", "reason", "retry_after"},
        # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        verifier=lambda i: i.verifier(keys=JWKSKeys("http://127.0.0.1:9/jwks.json", timeout=2)),
    ),
    Case(
        "denylist_unavailable",
        503,
        {"store", "reason"},
        verifier=lambda i: i.verifier(denylist=RedisDenylist("redis://127.0.0.1:9/0")),
    ),
    Case("token_inactive", 401, {"endpoint", "active"}, serving=_introspecting(200)),
    Case(
        "introspection_unavailable",
        503,
        {"endpoint", "reason", "status", "retry_after"},
        serving=_introspecting(500),
    ),
]

# DPoP (RFC 9449): a fixed public URL, so the proof is the same for both adapters.
_DPOP_KEY = ec.generate_private_key(ec.SECP256R1())
_DPOP_URL = "https://api.example"


def _dpop(issuer: LocalIssuer, **options: Any) -> Verifier:
    return issuer.verifier(dpop=DPoP(external_url=_DPOP_URL, **options))


@functools.cache
def _fapi() -> LocalIssuer:
    """An authorization server signing with PS256, an algorithm of the FAPI 2.0 profile."""
    return LocalIssuer(algorithm="PS256", clock=lambda: NOW)


def _bound(issuer: LocalIssuer) -> str:
    return issuer.mint(_claims(issuer, cnf={"jkt": jwk_thumbprint(dpop_jwk(_DPOP_KEY))}))


def _dpop_headers(**changes: Any) -> Callable[[str | None], dict[str, str]]:
    def headers(token: str | None) -> dict[str, str]:
        assert token is not None
        options: dict[str, Any] = {"access_token": token, "iat": NOW, **changes}
        proof = dpop_proof(_DPOP_KEY, options.pop("method", "GET"), _DPOP_URL + "/me", **options)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}

    return headers


class _AlwaysSeen(MemoryReplayCache):
    """Every proof looks replayed: the answer to a replay, without a first request."""

    def first_use(self, key: str, ttl: int, jkt: str = "") -> bool:
        return False


def _key_at_its_share(issuer: LocalIssuer) -> Verifier:
    """The client key already holds its whole share (1) of the memory replay cache."""
    cache = MemoryReplayCache(max_entries=10, clock=issuer.clock)
    cache.first_use("earlier proof", 60, jwk_thumbprint(dpop_jwk(_DPOP_KEY)))
    return _dpop(issuer, replay=cache)


CASES += [
    Case(
        "dpop_proof_missing",
        401,
        {"dpop_headers"},
        verifier=_dpop,
        token=_bound,
        headers=lambda t: {"Authorization": f"DPoP {t}"},
    ),
    Case(
        "dpop_proof_invalid",
        401,
        {"reason", "expected"},
        verifier=_dpop,
        token=_bound,
        headers=_dpop_headers(method="POST"),
    ),
    Case(
        "dpop_proof_replayed",
        401,
        {"reason"},
        verifier=lambda i: _dpop(i, replay=_AlwaysSeen()),
        token=_bound,
        headers=_dpop_headers(),
    ),
    Case("dpop_key_mismatch", 401, {"reason"}, verifier=_dpop, headers=_dpop_headers()),
    Case(
        "dpop_nonce_required",
        401,
        {"reason"},
        verifier=lambda i: _dpop(i, nonce=DPoPNonces("n" * 32)),
        token=_bound,
        headers=_dpop_headers(),
    ),
    Case("dpop_bound_token_as_bearer", 401, {"reason"}, verifier=_dpop, token=_bound),
    Case(
        "token_binding_unsupported",
        401,
        {"reason", "cnf"},
        token=lambda i: i.mint(_claims(i, cnf={"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O8"})),
    ),
    *(
        Case(
            code,
            status,
            keys,
            verifier=lambda i: i.verifier(mtls=True),
            token=lambda i: i.mint(_claims(i), certificate=_CERT),
            options={"client_certificate": ClientCertificate.header(trusted_proxies=_LOOPBACK)},
            headers=lambda t, sent=sent: {"Authorization": f"Bearer {t}", **sent},
        )
        for code, status, keys, sent in (
            ("client_certificate_missing", 401, {"reason"}, {}),
            (
                "certificate_binding_mismatch",
                401,
                {"reason", "expected", "presented"},
                {"Client-Cert": make_client_certificate().client_cert_header},
            ),
            ("client_certificate_invalid", 400, {"reason"}, {"Client-Cert": ":x:"}),
        )
    ),
    Case(
        "token_not_sender_constrained",
        401,
        {"profile", "reason", "cnf"},
        verifier=lambda i: _fapi().verifier(profile="fapi2", dpop=DPoP(algorithms=["ES256"])),
        token=lambda i: _fapi().mint(_claims(_fapi())),
    ),
    Case(
        "request_url_invalid",
        400,
        {"reason"},
        verifier=lambda i: i.verifier(dpop=DPoP()),
        token=_bound,
        headers=lambda t: {**_dpop_headers()(t), "Host": "x:99999"},
    ),
    Case(
        "host_not_allowed",
        400,
        {"reason"},
        verifier=lambda i: i.verifier(dpop=DPoP(allowed_hosts=["api.example"])),
        token=_bound,
        headers=lambda t: {**_dpop_headers()(t), "Host": "other.example"},
    ),
    Case(
        "dpop_rate_limited",
        429,
        {"store", "reason", "per_key"},
        verifier=_key_at_its_share,
        token=_bound,
        headers=_dpop_headers(),
    ),
    Case(
        "dpop_replay_unavailable",
        503,
        {"store", "reason"},
        verifier=lambda i: _dpop(i, replay=RedisReplayCache("redis://127.0.0.1:9/0")),
        token=_bound,
        headers=_dpop_headers(),
    ),
]

# Codes of base classes that no request raises as such.
_ABSTRACT = {
    "jwt_guard_error",
    "configuration_invalid",
    "token_invalid",
    "invalid_request",
    "forbidden",
    "service_unavailable",
    "too_many_requests",
}
# Codes given at the raise site rather than by a class.
_EXTRA_CODES = {
    "multiple_tokens",
    "header_malformed",
    "cookie_malformed",
    "token_too_old",
    "request_url_invalid",
    "host_not_allowed",
    "auth_time_in_future",
    "client_certificate_invalid",
}


def test_the_table_covers_every_code() -> None:
    classes = [
        c for c in vars(_errors).values() if inspect.isclass(c) and issubclass(c, JWTGuardError)
    ]
    codes = {c.code for c in classes} - _ABSTRACT | _EXTRA_CODES
    assert {case.code for case in CASES} == codes


def _leaks(text: str, token: str | None) -> list[str]:
    needles = list(PRIVATE)
    if token:
        needles.append(token)
        needles += [part for part in token.split(".") if len(part) >= 8]
    return [n for n in needles if n in text]


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Servers a case runs during the test (``Case.serving``), stopped after it."""
    with contextlib.ExitStack() as servers:
        yield servers


@pytest.fixture
def issuer_at_now(issuer: LocalIssuer, clock: FakeClock) -> LocalIssuer:
    clock.now = NOW
    return issuer


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code)
async def test_every_rejection_has_a_safe_detail(
    case: Case,
    make_client: AppFactory,
    issuer_at_now: LocalIssuer,
    caplog: pytest.LogCaptureFixture,
    stack: contextlib.ExitStack,
) -> None:
    issuer = issuer_at_now
    token = case.token(issuer)
    verifier = _verifier(case, issuer, stack)
    if case.code == "token_revoked":
        assert token is not None
        verifier.revoke(token)
    seen: list[JWTGuardError] = []

    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        seen.append(exc)
        return answer

    with caplog.at_level(logging.INFO, logger="jwt_guard"):
        client = make_client(verifier, debug=True, on_error=on_error, **case.options)
        response = await client.request(case.method, case.path, headers=case.headers(token))
    assert response.status_code == case.status, response.text
    body = response.json()
    assert body["code"] == case.code
    assert set(body["detail"]) == case.keys, body["detail"]

    # on_error gets the exception with its detail (item 3).
    assert [e.code for e in seen] == [case.code]
    assert json.loads(json.dumps(seen[0].detail, default=str)) == body["detail"]

    # One INFO line with the code and the detail as structured fields (item 2).
    lines = [r for r in caplog.records if getattr(r, "jwt_guard_code", None) == case.code]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert lines[0].jwt_guard_status == case.status  # type: ignore[attr-defined]
    assert lines[0].jwt_guard_detail == seen[0].detail  # type: ignore[attr-defined]
    assert lines[0].getMessage().startswith(f"refused {case.code} ({case.status}): ")

    # Nothing private anywhere: detail, every log record, the whole answer.
    logged = "\n".join(
        r.getMessage() + json.dumps(getattr(r, "jwt_guard_detail", None), default=str)
        for r in caplog.records
    )
    answer = response.text + json.dumps(dict(response.headers))
    for where, text in (
        ("detail", json.dumps(seen[0].detail, default=str)),
        ("log", logged),
        ("answer", answer),
    ):
        assert _leaks(text, token) == [], where


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code)
async def test_without_debug_the_body_has_no_detail(
    case: Case, make_client: AppFactory, issuer_at_now: LocalIssuer, stack: contextlib.ExitStack
) -> None:
    issuer = issuer_at_now
    token = case.token(issuer)
    verifier = _verifier(case, issuer, stack)
    if case.code == "token_revoked":
        assert token is not None
        verifier.revoke(token)
    client = make_client(verifier, **case.options)
    response = await client.request(case.method, case.path, headers=case.headers(token))
    assert response.status_code == case.status
    assert set(response.json()) == {"error", "error_description", "code"}


def test_detail_of_a_verifier_error_without_an_adapter(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier()
    with pytest.raises(JWTGuardError) as caught:
        verifier.verify(issuer.mint(audience="orders"))
    assert caught.value.detail == {"expected": [issuer.audience], "found": "orders"}
    assert str(caught.value) == "The token audience is not accepted."  # fixed text only


def test_hmac_secret_never_in_detail(issuer: LocalIssuer) -> None:
    from jwt_guard.testing import forge

    verifier = Verifier(
        keys=StaticKeys.from_secret(HMAC_SECRET), algorithms=["HS256"], audience="api"
    )
    token = forge({"alg": "HS256"}, {"exp": NOW * 2, "aud": "x"}, b"wrong-secret" * 4, "HS256")
    with pytest.raises(JWTGuardError) as caught:
        verifier.verify(token)
    assert caught.value.code == "signature_invalid"
    assert _leaks(json.dumps(caught.value.detail), token) == []


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _handler(formatter: logging.Formatter | None = None) -> Iterator[_Keep]:
    """A handler on the jwt_guard logger at INFO, as an application would add one."""
    handler = _Keep()
    if formatter is not None:
        handler.setFormatter(formatter)
    logger = logging.getLogger("jwt_guard")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.mark.parametrize(
    "value,shown",
    [
        ("x" * 500, "x" * 200 + "..."),
        (list(range(30)), [*range(20), "... 10 more"]),
        ({"a": 1}, "<object>"),
        (frozenset({"b", "a"}), ["a", "b"]),
        (None, None),
    ],
)
def test_safe_value_bounds_what_a_token_can_put_in_a_line(value: Any, shown: Any) -> None:
    assert _errors.safe_value(value) == shown


async def test_answer_never_fails_on_odd_detail(issuer: LocalIssuer) -> None:
    from jwt_guard._http.answer import Responder

    exc = JWTGuardError(detail={"when": object()})
    exc.status_code = 401
    answer = Responder("api", None, debug=True).answer(exc)
    assert answer.status == 401 and b'"when"' in answer.body


def test_debug_logs_a_warning_at_start_up(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.applications import Starlette

    from jwt_guard import JWTGuardMiddleware
    from jwt_guard.wsgi import JWTGuardWSGIMiddleware

    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        JWTGuardMiddleware(Starlette(), verifier=issuer.verifier())
        JWTGuardWSGIMiddleware(lambda e, s: [], verifier=issuer.verifier())
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        JWTGuardMiddleware(Starlette(), verifier=issuer.verifier(), debug=True)
        JWTGuardWSGIMiddleware(lambda e, s: [], verifier=issuer.verifier(), debug=True)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert all("debug=True" in r.getMessage() for r in caplog.records)


async def test_rejection_lines_are_rate_limited_per_code(
    make_client: AppFactory, issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(issuer.verifier(), log_limit=3)
    with caplog.at_level(logging.INFO, logger="jwt_guard"):
        for _ in range(20):  # a flood of garbage
            assert (await client.get("/me", headers={"Authorization": "Bearer a.b"})).status_code
        response = await client.get("/me")  # another code still gets its line
    codes = [getattr(r, "jwt_guard_code", None) for r in caplog.records]
    assert response.status_code == 401
    assert codes.count("token_malformed") == 3
    assert codes.count("token_missing") == 1


def test_rate_limit_window_reports_what_it_left_out() -> None:
    from jwt_guard._core.log import LOG_WINDOW, RejectionLog

    now = [0.0]
    with _handler() as handler:
        log = RejectionLog(logging.INFO, 2, clock=lambda: now[0])
        for _ in range(5):
            log(_errors.MalformedToken())
        now[0] += LOG_WINDOW
        log(_errors.MalformedToken())
    messages = [r.getMessage() for r in handler.records]
    assert len(messages) == 3
    assert messages[2].endswith("[3 earlier token_malformed lines suppressed]")


@pytest.mark.parametrize("level", [None, logging.DEBUG])
async def test_rejection_lines_can_be_turned_down_or_off(
    make_client: AppFactory,
    issuer: LocalIssuer,
    caplog: pytest.LogCaptureFixture,
    level: int | None,
) -> None:
    client = make_client(issuer.verifier(), log_rejections=level)
    with caplog.at_level(logging.DEBUG, logger="jwt_guard"):
        assert (await client.get("/me")).status_code == 401
    lines = [r for r in caplog.records if hasattr(r, "jwt_guard_code")]
    assert [r.levelno for r in lines] == ([] if level is None else [level])


async def test_json_formatter_picks_up_the_fields(
    make_client: AppFactory, issuer: LocalIssuer
) -> None:
    """A JSON formatter that dumps a record's extra attributes gets code and detail."""
    standard = set(vars(logging.makeLogRecord({})))

    class JSONFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            extra = {k: v for k, v in vars(record).items() if k not in standard}
            return json.dumps({"message": record.getMessage(), **extra}, default=str)

    with _handler(JSONFormatter()) as handler:
        client = make_client(issuer.verifier())
        token = issuer.mint(audience="wrong-api")
        await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    lines = [handler.format(r) for r in handler.records]
    line = json.loads(lines[-1])
    assert line["jwt_guard_code"] == "audience_invalid"
    assert line["jwt_guard_status"] == 401
    assert line["jwt_guard_detail"] == {"expected": [issuer.audience], "found": "wrong-api"}
    assert token not in lines[-1]


async def test_per_route_guards_take_debug_and_log_the_rejection(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx
    from fastapi import Depends, FastAPI
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from jwt_guard import RouteGuard
    from jwt_guard.fastapi import JWTBearer

    guard = RouteGuard(issuer.verifier(), debug=True)

    @guard.protect
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({})

    api = FastAPI()
    bearer_guard = JWTBearer(issuer.verifier(), debug=True, log_rejections=logging.WARNING)

    @api.get("/me", dependencies=[Depends(bearer_guard)])
    async def api_me() -> dict[str, str]:
        return {}

    token = issuer.mint(audience="some-other-api")
    for app, level in (
        (Starlette(routes=[Route("/me", me)]), logging.INFO),
        (api, logging.WARNING),
    ):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="jwt_guard"):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["detail"] == {
            "expected": [issuer.audience],
            "found": "some-other-api",
        }
        lines = [r for r in caplog.records if getattr(r, "jwt_guard_code", None)]
        assert [(r.jwt_guard_code, r.levelno) for r in lines] == [("audience_invalid", level)]  # type: ignore[attr-defined]
