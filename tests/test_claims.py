"""Claim rules, driven directly (no tokens, no keys)."""

from __future__ import annotations

from typing import Any

import pytest

from jwt_guard import ClaimInvalid, ClaimMissing, TokenExpired, TokenNotYetValid
from jwt_guard._core.claims import (
    check_time_claims,
    collect_strings,
    normalize_typ,
    resolve_claim_path,
)

CLAIMS: dict[str, Any] = {
    "realm_access": {"roles": ["a"]},
    "resource_access": {"my.client": {"roles": ["b"]}, "other": {"roles": ["c"]}},
    "https://example.com/roles": ["d"],
    "a.b": {"c": ["e"]},
    "scope": "x  y z",
    "scp": ["w"],
}


@pytest.mark.parametrize(
    "path,expected",
    [
        ("realm_access.roles", ["a"]),
        ("resource_access.my.client.roles", ["b"]),
        ("resource_access.other.roles", ["c"]),
        ("https://example.com/roles", ["d"]),
        ("a.b.c", ["e"]),
        ("missing", None),
        ("realm_access.roles.deeper", None),
        ("scope.x", None),
    ],
)
def test_resolve_claim_path(path: str, expected: Any) -> None:
    assert resolve_claim_path(CLAIMS, path) == expected


def test_collect_scopes_splits_strings_and_merges_lists() -> None:
    assert collect_strings(CLAIMS, ("scope", "scp"), split=True) == {"x", "y", "z", "w"}
    assert collect_strings({"roles": "a b"}, ("roles",), split=False) == {"a b"}
    with pytest.raises(ClaimInvalid):
        collect_strings({"roles": [1]}, ("roles",), split=False)


def test_time_claim_boundaries() -> None:
    now = 1_000.0
    assert check_time_claims({"exp": 1_010}, now, 0, None) == 1_010
    with pytest.raises(TokenExpired):
        check_time_claims({"exp": 1_000}, now, 0, None)  # "before exp", so equal is expired
    assert check_time_claims({"exp": 995}, now, 5.5, None) == 995
    with pytest.raises(TokenNotYetValid):
        check_time_claims({"nbf": 1_001}, now, 0, None)
    assert check_time_claims({"nbf": 1_000}, now, 0, None) is None
    with pytest.raises(ClaimMissing):
        check_time_claims({}, now, 0, 60)
    with pytest.raises(ClaimInvalid):
        check_time_claims({"exp": None}, now, 0, None)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("at+jwt", "at+jwt"),
        ("application/at+JWT", "at+jwt"),
        ("JWT", "jwt"),
        ("APPLICATION/x", "x"),
    ],
)
def test_normalize_typ(raw: str, expected: str) -> None:
    assert normalize_typ(raw) == expected
