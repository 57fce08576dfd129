"""Cheap refusals (issue 22 item 8): a refused request costs no more than before the reasons.

A flood of garbage or tampered tokens cost 40 µs a request against 26 µs before the reasons
work: every refusal built its ``detail`` (lists of kids, sorted algorithms) whether anything read
it or not, and its answer (challenge, JSON body) from scratch. Speed is measured in
``benchmarks/`` (the rejection-flood rows); here the mechanism is tested: a detail is built only
when something reads it (a log line that is not rate-limited away, ``debug``, ``on_error``), and
an answer is made once per kind of error, then copied. Both adapters.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from jwt_guard import ClaimInvalid, JWTGuardError, MalformedToken
from jwt_guard._core import steps as _steps
from jwt_guard._http.answer import Answer, Responder
from jwt_guard._http.guard import Guard
from jwt_guard.testing import LocalIssuer

from .apps import flask_app, starlette_app
from .conftest import AppFactory, bearer


def _tampered(issuer: LocalIssuer) -> str:
    header, payload, signature = issuer.mint().split(".")
    return f"{header}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def counted(fn: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    """``fn`` (which still runs), counting its calls in ``calls``; a method stays a method."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapper


async def test_issue22_detail_is_not_built_when_its_log_line_is_rate_limited_away(
    make_client: AppFactory,
    issuer: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No debug, no on_error, one log line a minute: the first refusal's line reads the
    detail, the flood behind it builds none (it built one per request)."""
    signature_details: list[int] = []
    monkeypatch.setattr(
        _steps, "_signature_detail", counted(_steps._signature_detail, signature_details)
    )
    places: list[int] = []
    monkeypatch.setattr(Guard, "_places", counted(Guard._places, places))
    client = make_client(issuer.verifier(), log_limit=1)
    with caplog.at_level(logging.INFO, logger="jwt_guard"):
        for _ in range(12):
            response = await client.get("/me", headers=bearer(_tampered(issuer)))
            assert response.json()["code"] == "signature_invalid"
            response = await client.get("/me")
            assert response.json()["code"] == "token_missing"
    assert len(signature_details) == 1
    assert len(places) == 1
    lines = {r.jwt_guard_code: r.jwt_guard_detail for r in caplog.records}  # type: ignore[attr-defined]
    assert set(lines["signature_invalid"]) == {"alg", "kid", "keys_tried"}
    assert lines["token_missing"] == {"looked_in": ["Authorization: Bearer header"]}


@pytest.mark.parametrize("reader", ["on_error", "debug"])
async def test_issue22_detail_is_built_for_whoever_reads_it(
    make_client: AppFactory,
    issuer: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    reader: str,
) -> None:
    """Past the log limit, on_error and the debug body still get every refusal's detail."""
    seen: list[dict[str, Any]] = []

    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        seen.append(exc.detail)
        return answer

    options: dict[str, Any] = {"on_error": on_error} if reader == "on_error" else {"debug": True}
    client = make_client(issuer.verifier(), log_limit=1, **options)
    for _ in range(5):
        response = await client.get("/me", headers=bearer(_tampered(issuer)))
        assert response.status_code == 401
        if reader == "debug":
            seen.append(response.json()["detail"])
    assert len(seen) == 5
    assert all(d == seen[0] and set(d) == {"alg", "kid", "keys_tried"} for d in seen)


class _CountingJSON:
    """The ``json`` module as ``_answer`` sees it, counting the bodies encoded."""

    def __init__(self) -> None:
        self.dumps_calls = 0

    def dumps(self, *args: Any, **kwargs: Any) -> str:
        self.dumps_calls += 1
        return json.dumps(*args, **kwargs)


async def test_issue22_an_answer_is_made_once_per_kind_of_refusal(
    make_client: AppFactory, issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of the same refusal encodes its body once; every answer is the same bytes."""
    from jwt_guard._http import answer as _answer

    counting = _CountingJSON()
    monkeypatch.setattr(_answer, "json", counting)
    client = make_client(issuer.verifier())
    answers = []
    for token in ["a.b", "garbage", _tampered(issuer), _tampered(issuer)] * 5:
        response = await client.get("/me", headers=bearer(token))
        answers.append((response.status_code, response.headers["www-authenticate"], response.text))
    assert counting.dumps_calls == 2  # token_malformed, signature_invalid
    assert len(set(answers)) == 2
    assert answers[0][2] == (
        '{"error":"invalid_token","error_description":"The access token is malformed.",'
        '"code":"token_malformed"}'
    )


def test_issue22_on_error_changing_a_ready_answer_does_not_change_the_next() -> None:
    """Each refusal gets its own Answer (and header list) to shape, copied from the ready one."""
    given: list[Answer] = []

    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        given.append(answer)
        answer.headers.append(("x-request", str(len(given))))
        answer.status = 418
        return answer

    responder = Responder("api", on_error)
    first, second = responder.answer(MalformedToken()), responder.answer(MalformedToken())
    assert first.headers[-1] == ("x-request", "1") and second.headers[-1] == ("x-request", "2")
    assert [h for h in second.headers if h[0] == "x-request"] == [("x-request", "2")]
    plain = Responder("api", None).answer(MalformedToken())
    assert plain.status == 401 and not any(h[0] == "x-request" for h in plain.headers)


def test_issue22_a_detail_builder_runs_once_when_read() -> None:
    built: list[int] = []

    def build() -> dict[str, Any]:
        built.append(1)
        return {"reason": "r", "segments": 2}

    exc = MalformedToken(detail=build)
    exc.add_detail("part", "header")
    exc.add_detail("reason", "not this one")  # setdefault: the builder's value stays
    assert built == []
    assert exc.detail == {"reason": "r", "segments": 2, "part": "header"}
    assert list(exc.detail) == ["reason", "segments", "part"]  # the log line's order
    assert built == [1]
    exc.add_detail("more", 1)
    assert exc.detail["more"] == 1 and built == [1]
    assert MalformedToken().detail == {} and MalformedToken(detail={"a": 1}).detail == {"a": 1}


def _cyclic_garbage(call: Callable[[], object], times: int = 50) -> float:
    """Objects per call that only the cycle collector frees (its pauses are a load's p99)."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(times):
            call()
        return gc.collect() / times
    finally:
        gc.enable()


@pytest.mark.parametrize("adapter", ["asgi", "wsgi", "flask"])
def test_issue22_a_refused_request_leaves_no_garbage_cycle(
    issuer: LocalIssuer, adapter: str
) -> None:
    """The Flask extension kept the refusal in the environ with its traceback, whose frames
    hold the environ: ~75 objects per refused request for the cycle collector (none before),
    whose pauses took the load campaign's garbage phase p99 from 15 to 102 ms. A refused
    request now leaves no more cyclic garbage than an accepted one of the same app."""
    from werkzeug.test import EnvironBuilder

    verifier = issuer.verifier()
    token = issuer.mint(ttl=3600)
    verifier.verify(token)
    if adapter == "asgi":
        app = starlette_app(verifier)
        loop = asyncio.new_event_loop()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        def request(value: str) -> Callable[[], object]:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/me",
                "raw_path": b"/me",
                "root_path": "",
                "query_string": b"",
                "headers": [(b"host", b"t"), (b"authorization", b"Bearer " + value.encode())],
                "client": ("127.0.0.1", 5000),
                "server": ("127.0.0.1", 80),
            }
            return lambda: loop.run_until_complete(app(dict(scope), receive, send))

    else:
        loop = None
        wsgi = flask_app(verifier, extension=adapter == "flask").wsgi_app

        def request(value: str) -> Callable[[], object]:
            def one() -> None:
                environ = EnvironBuilder("/me", headers=bearer(value)).get_environ()
                result = wsgi(environ, lambda status, headers, *a: None)
                b"".join(result)
                getattr(result, "close", lambda: None)()

            return one

    accepted, refused = request(token), request("abc.def")
    accepted()
    refused()
    try:
        assert _cyclic_garbage(refused) <= _cyclic_garbage(accepted)
    finally:
        if loop is not None:
            loop.close()


def test_an_error_subclass_that_skips_init_has_an_empty_detail() -> None:
    class AppError(JWTGuardError):
        status_code = 401

        def __init__(self) -> None:  # no super().__init__(): an app's own error
            Exception.__init__(self, "app")

    exc = AppError()
    assert exc.detail == {}
    answer = Responder("api", None, debug=True).answer(exc)
    assert answer.status == 401 and b'"detail":{}' in answer.body


@pytest.mark.parametrize("shaping", ["none", "after_request", "error_handler", "blueprint"])
def test_issue22_flask_refusal_dispatches_only_when_the_app_shapes_answers(
    issuer: LocalIssuer, shaping: str
) -> None:
    """The Flask extension answered every refusal through a whole Flask dispatch (so that
    flask-cors's after_request hook puts its headers on our 401): a refused garbage token cost
    about 7 times what it cost before (11 → 76 µs). An app with no after_request hook and no
    error handler of its own gets the same answer from the middleware, without a dispatch; an
    app with one still gets it from Flask, with the hook's or handler's say."""
    from flask import Blueprint, Flask, jsonify
    from werkzeug.test import Client

    from jwt_guard import AuthenticationRequired
    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    extension = JWTGuard(app, verifier=issuer.verifier())
    assert extension.middleware is not None
    dispatched: list[int] = []
    extension.middleware.app = counted(extension.middleware.app, dispatched)

    @app.get("/me")
    def me() -> Any:
        return jsonify({"ok": True})

    if shaping == "after_request":

        @app.after_request
        def stamp(response: Any) -> Any:
            response.headers["X-Stamped"] = "1"
            return response

    elif shaping == "error_handler":

        @app.errorhandler(AuthenticationRequired)
        def own(exc: Exception) -> Any:
            return jsonify({"own": True}), 401

    elif shaping == "blueprint":
        blueprint = Blueprint("bp", __name__)

        @blueprint.after_app_request
        def stamp_all(response: Any) -> Any:
            response.headers["X-Stamped"] = "1"
            return response

        app.register_blueprint(blueprint)

    client = Client(app)
    refused = [client.get("/me", headers=bearer("abc.def")), client.get("/me")]
    assert [r.status_code for r in refused] == [401, 401]
    assert refused[0].headers["WWW-Authenticate"].startswith("Bearer")
    if shaping == "none":
        assert dispatched == []  # answered by the middleware, no Flask dispatch
        assert refused[0].get_json()["error"] == "invalid_token"
    else:
        assert len(dispatched) == 2  # Flask answered, so the app had its say
        if shaping == "error_handler":
            assert refused[1].get_json() == {"own": True}
        else:
            assert all(r.headers["X-Stamped"] == "1" for r in refused)
    accepted = client.get("/me", headers=bearer(issuer.mint()))
    assert accepted.status_code == 200


@pytest.mark.parametrize("reader", ["log", "debug", "on_error"])
async def test_issue22_review_a_detail_builder_that_raises_is_no_500(
    make_any_client: AppFactory,
    issuer: LocalIssuer,
    reader: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A builder is run by whoever reads the detail, inside the answer layer: one that trips
    (an app's hook building from a claim the token lacks) made the refusal a 500."""
    seen: list[dict[str, Any]] = []

    def on_error(exc: JWTGuardError, answer: Answer) -> Answer:
        seen.append(exc.detail)
        return answer

    def hook(claims: Any) -> bool:
        raise ClaimInvalid(detail=lambda: {"tenant": claims["tenant"]})

    options: dict[str, Any] = {"log_rejections": logging.INFO if reader == "log" else None}
    if reader == "debug":
        options["debug"] = True
    if reader == "on_error":
        options["on_error"] = on_error
    client = make_any_client(issuer.verifier(validate=hook), **options)
    with caplog.at_level(logging.INFO, logger="jwt_guard"):
        response = await client.get("/me", headers=bearer(issuer.mint()))
    assert response.status_code == 401 and response.json()["code"] == "claim_invalid"
    if reader == "log":
        assert any("the detail builder raised KeyError" in r.getMessage() for r in caplog.records)
    if reader == "debug":
        seen.append(response.json()["detail"])
    if reader != "log":
        assert seen == [{"detail_error": "the detail builder raised KeyError"}]
