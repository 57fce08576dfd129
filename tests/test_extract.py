"""Token extraction and the CSRF rule, driven directly with request views."""

from __future__ import annotations

from typing import Any

import pytest

from jwt_guard import CSRF, CSRFFailed, InvalidRequest
from jwt_guard._http.extract import (
    RequestView,
    bearer_token,
    check_csrf,
    extract,
    is_token68,
    override_params,
    parse_cookies,
)


def view(method: str = "POST", **headers: str) -> RequestView:
    cookie = headers.pop("cookie", "")
    return RequestView(
        method=method,
        scheme="https",
        host="api.example",
        path="/x",
        authorization=[],
        cookie_headers=[cookie] if cookie else [],
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


@pytest.mark.parametrize(
    "value,token",
    [
        ("Bearer abc", "abc"),
        ("bearer   abc.def", "abc.def"),
        ("BEARER a-b_c~d+e/f==", "a-b_c~d+e/f=="),
        ("Basic dXNlcg==", None),
        ("Bearerish abc", None),
        ("DPoP abc", None),
    ],
)
def test_bearer_token(value: str, token: str | None) -> None:
    assert bearer_token(value) == token


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer\ta"])
def test_malformed_bearer(value: str) -> None:
    with pytest.raises(InvalidRequest):
        bearer_token(value)


def test_token68() -> None:
    assert is_token68("abc.DEF-_~+/==")
    assert not is_token68("a=b") and not is_token68("é") and not is_token68("")


def test_parse_cookies_keeps_every_value() -> None:
    assert parse_cookies(['a=1; b="2"; a=3', "c=4; junk"]) == {
        "a": ["1", "3"],
        "b": ["2"],
        "c": ["4"],
    }


def test_extract_prefers_one_token_and_refuses_two() -> None:
    found = extract(["Bearer t1"], ["at=t1"], header=True, cookie="at")
    assert found is not None and found.source == "header"
    with pytest.raises(InvalidRequest):
        extract(["Bearer t1"], ["at=t2"], header=True, cookie="at")
    with pytest.raises(InvalidRequest):
        extract(
            [],
            [],
            "access_token=a&access_token=b",
            header=True,
            cookie=None,
            query_param="access_token",
        )
    assert extract(["Bearer t1"], [], header=False, cookie=None) is None


@pytest.mark.parametrize(
    "method,headers,ok",
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("POST", {}, False),
        ("POST", {"cookie": "csrf_token=s3cret", "x_csrf_token": "s3cret"}, True),
        ("POST", {"cookie": "csrf_token=s3cret", "x_csrf_token": "other"}, False),
        ("POST", {"cookie": "csrf_token=a; csrf_token=b", "x_csrf_token": "a"}, False),
        ("POST", {"x_csrf_token": "x"}, False),  # header without the cookie
        ("POST", {"origin": "https://api.example"}, True),
        ("POST", {"origin": "https://api.example.evil"}, False),
        ("POST", {"origin": "http://api.example"}, False),  # scheme differs
        ("POST", {"sec_fetch_site": "same-origin"}, True),
        ("POST", {"sec_fetch_site": "same-site"}, False),
        ("GET", {"x_http_method_override": "DELETE"}, False),
        ("GET", {"x_http_method_override": "GET"}, True),
    ],
)
def test_csrf_rule(method: str, headers: dict[str, Any], ok: bool) -> None:
    request = view(method, **headers)
    if ok:
        check_csrf(request, CSRF())
    else:
        with pytest.raises(CSRFFailed):
            check_csrf(request, CSRF())


@pytest.mark.parametrize(
    "query",
    [
        "_method=DELETE",
        "%5Fmethod=DELETE",
        "%5fmethod=DELETE",
        "_%6Dethod=PUT",
        "_METHOD=PATCH",
        "a=1&%5F%6D%65%74%68%6F%64=DELETE",
        "_method=",
        "%5Fmethod",
        "x=_method",  # a value, not a name
        "_methods=DELETE",
        "%255Fmethod=DELETE",  # decodes once, to %5Fmethod: not the name
        "_method%00=DELETE",
        "%E2%80%8B_method=DELETE",
        "a=%5Fmethod",
        "",
    ],
)
def test_override_params_reads_names_as_starlette_and_werkzeug_do(query: str) -> None:
    # The gate decides on what the app will read: Starlette's query_params and Werkzeug's
    # args, the name compared case-insensitively as the override check does.
    from starlette.datastructures import QueryParams
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    starlette = [v for k, v in QueryParams(query.encode()).multi_items() if k.lower() == "_method"]
    args = Request(EnvironBuilder(query_string=query).get_environ()).args
    werkzeug = [v for k, v in args.items(multi=True) if k.lower() == "_method"]
    assert override_params(query) == starlette == werkzeug


def test_websocket_csrf_is_about_the_origin() -> None:
    check_csrf(view("GET"), CSRF(), websocket=True)  # no Origin: not a browser
    check_csrf(view("GET", origin="https://api.example"), CSRF(), websocket=True)
    with pytest.raises(CSRFFailed):
        check_csrf(view("GET", origin="https://evil.example"), CSRF(), websocket=True)
    trusted = CSRF(trusted_origins=["https://app.example/"])
    check_csrf(view("GET", origin="https://APP.example"), trusted, websocket=True)
