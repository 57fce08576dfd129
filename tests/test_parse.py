"""Strict compact JWS parsing (RFC 7515 §7.1, §5.2)."""

from __future__ import annotations

import base64
import json

import pytest

from jwt_guard import MalformedToken, TokenTooLarge
from jwt_guard._core.parse import b64url_decode, parse_compact, parse_json


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HEADER = b64(b'{"alg":"RS256"}')
PAYLOAD = b64(b'{"sub":"a"}')
SIG = b64(b"\x01" * 16)


def test_parses_three_segments() -> None:
    parsed = parse_compact(f"{HEADER}.{PAYLOAD}.{SIG}")
    assert parsed.header == {"alg": "RS256"}
    assert parsed.payload == {"sub": "a"}
    assert parsed.signature == b"\x01" * 16
    assert parsed.signing_input == f"{HEADER}.{PAYLOAD}".encode()


@pytest.mark.parametrize(
    "token",
    [
        f"{HEADER}.{PAYLOAD}",  # two segments
        f"{HEADER}.{PAYLOAD}.{SIG}.{SIG}",  # four
        f"{HEADER}.{PAYLOAD}.{SIG}.{SIG}.{SIG}",  # JWE-like five parts
        f"{HEADER}.{PAYLOAD}.",  # unsigned (alg none style)
        f"{HEADER}..{SIG}",  # empty payload
        f" {HEADER}.{PAYLOAD}.{SIG}",  # whitespace
        f"{HEADER}.{PAYLOAD}.{SIG}\n",
        f"{HEADER}.{PAYLOAD}.{SIG}=",  # padding
        f"{HEADER}.{PAYLOAD}==.{SIG}",
        f"{HEADER}.{PAYLOAD}.{SIG}+/",  # standard base64 alphabet
        f"{HEADER}.{PAYLOAD}.A",  # length % 4 == 1
        "",
        "....",
    ],
)
def test_rfc7515_7_1_rejects_malformed_compact(token: str) -> None:
    with pytest.raises(MalformedToken):
        parse_compact(token)


def test_rfc7515_7_1_rejects_padding() -> None:
    padded = b64(b'{"alg":"RS256","x":1}') + "="
    with pytest.raises(MalformedToken):
        parse_compact(f"{padded}.{PAYLOAD}.{SIG}")


def test_non_canonical_base64url_is_rejected() -> None:
    # "QR" decodes like "QQ" (b"A") if the unused bits are ignored.
    assert b64url_decode("QQ") == b"A"
    with pytest.raises(MalformedToken):
        b64url_decode("QR")


def test_oversized_token_is_rejected_before_decoding() -> None:
    # Not even valid base64: the size check must come first.
    with pytest.raises(TokenTooLarge):
        parse_compact("!" * 9000, max_bytes=8192)


def test_rejects_non_string_tokens() -> None:
    with pytest.raises(MalformedToken):
        parse_compact(b"a.b.c")


@pytest.mark.parametrize(
    "raw",
    [
        b"[1,2]",  # not an object
        b'"text"',
        b"null",
        b'{"alg":"RS256","alg":"none"}',  # duplicate member
        b'{"a":{"b":1,"b":2}}',  # nested duplicate
        b'{"exp":NaN}',
        b'{"exp":Infinity}',
        b"\xff\xfe{\x00}\x00",  # UTF-16
        b'{"a":"\xc3"}',  # invalid UTF-8
        b"{" * 5000,  # nesting bomb (also invalid)
        b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}",  # deep but valid nesting
        b'{"n":' + b"9" * 5000 + b"}",  # integer beyond int_max_str_digits
        b"{} x",
    ],
)
def test_rfc7515_5_2_json_must_be_a_strict_object(raw: bytes) -> None:
    with pytest.raises(MalformedToken):
        parse_json(raw)


def test_duplicate_header_names_rejected_in_token() -> None:
    header = b64(b'{"alg":"RS256","kid":"a","kid":"b"}')
    with pytest.raises(MalformedToken):
        parse_compact(f"{header}.{PAYLOAD}.{SIG}")


def test_large_floats_parse_as_numbers() -> None:
    assert json.loads("1e400") == float("inf")  # the claim layer must refuse this
    assert parse_json(b'{"exp":1e400}') == {"exp": float("inf")}
