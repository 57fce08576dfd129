"""The error tree: stable codes, RFC 6750 error names, HTTP statuses, fixed messages."""

from __future__ import annotations

import inspect

import pytest

import jwt_guard
from jwt_guard._core import errors as _errors

ERRORS = [
    obj
    for obj in vars(_errors).values()
    if inspect.isclass(obj) and issubclass(obj, jwt_guard.JWTGuardError)
]

MINIMUM_CODES = {
    "token_missing",
    "token_malformed",
    "token_too_large",
    "algorithm_not_allowed",
    "key_not_found",
    "signature_invalid",
    "token_expired",
    "token_not_yet_valid",
    "token_issued_in_future",
    "issuer_invalid",
    "audience_invalid",
    "claim_missing",
    "claim_invalid",
    "type_invalid",
    "critical_header_unsupported",
    "token_revoked",
    "jwks_unavailable",
    "denylist_unavailable",
    "insufficient_role",
    "insufficient_scope",
    "csrf_failed",
    # RFC 9449 (DPoP)
    "dpop_proof_missing",
    "dpop_proof_invalid",
    "dpop_proof_replayed",
    "dpop_key_mismatch",
    "dpop_nonce_required",
    "dpop_bound_token_as_bearer",
}


def test_minimum_codes_exist() -> None:
    assert MINIMUM_CODES <= {cls.code for cls in ERRORS}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_each_error_maps_to_one_answer(cls: type[jwt_guard.JWTGuardError]) -> None:
    assert cls.__doc__ and "\n" not in cls.__doc__.strip()
    if cls is jwt_guard.JWTGuardError or cls is jwt_guard.ConfigurationError:
        return
    assert cls.status_code in (400, 401, 403, 429, 503)
    expected = {
        400: {"invalid_request"},
        # RFC 9470 §3 adds insufficient_user_authentication to the 401 errors; RFC 9449 §7.1
        # a broken DPoP proof, and "use a server nonce".
        401: {
            "invalid_token",
            "insufficient_user_authentication",
            "invalid_dpop_proof",
            "use_dpop_nonce",
            None,
        },
        403: {"insufficient_scope", None},
        429: {None},  # RFC 6585 §4: no challenge, the credentials were fine
        503: {None},
    }[cls.status_code]
    assert cls.error in expected
    if issubclass(cls, jwt_guard.InvalidDPoPProof):
        assert cls.status_code == 401 and cls.error in ("invalid_dpop_proof", "use_dpop_nonce")
    elif issubclass(cls, jwt_guard.InvalidToken):
        assert cls.status_code == 401 and cls.error == "invalid_token"
    err = cls(nonce="n") if cls is jwt_guard.DPoPNonceRequired else cls()
    assert err.description and err.code
    # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in err.description)
    assert repr(err) == f"{cls.__name__}(code={cls.code!r})"


def test_service_unavailable_has_retry_after() -> None:
    assert jwt_guard.KeySourceUnavailable(retry_after=7).retry_after == 7
    assert jwt_guard.KeySourceUnavailable(retry_after=0).retry_after == 1


def test_too_many_requests_has_retry_after() -> None:
    assert jwt_guard.DPoPRateLimited(retry_after=7).retry_after == 7
    assert jwt_guard.DPoPRateLimited(retry_after=-3).retry_after == 1


def test_all_is_complete_and_sorted() -> None:
    public = {
        name
        for name, obj in vars(jwt_guard).items()
        if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
    }
    assert public <= set(jwt_guard.__all__)
    assert len(set(jwt_guard.__all__)) == len(jwt_guard.__all__)
    for name in jwt_guard.__all__:
        assert hasattr(jwt_guard, name)
    assert {cls.__name__ for cls in ERRORS} <= set(jwt_guard.__all__)
