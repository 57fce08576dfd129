# ruff: noqa: F811 - the fixtures of tests/test_introspection.py and test_shared_cache.py, imported
"""Review R27B of issue 27 (opaque tokens, RFC 7662; RFC 9701 answers; the shared store): a
regression test per finding, named after it and the RFC section (notes/reviews/r27b.md); each
failed before its fix."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from jwt_guard import (
    ClaimMissing,
    DPoP,
    Introspection,
    InvalidToken,
)

from .conftest import FakeClock
from .servers import IntrospectionServer
from .test_introspection import (  # noqa: F401 - fixtures
    OPAQUE,
    Run,
    active,
    make_endpoint,
    run,
    server,
    verifier_for,
)

# -- R27B-6: a refresh token passes when the answer has no token_type ---------------------------


@pytest.mark.parametrize(
    "marks",
    [
        # oidc-provider 8 (lib/actions/introspection.js): "token_type: token.kind !==
        # 'RefreshToken' ? token.tokenType : undefined": the member is left out for a refresh
        # token and only for one; token_type_hint=access_token falls back to refresh tokens.
        pytest.param({"token_type": None, "scope": "openid offline_access"}, id="oidc-provider"),
        # Servers that echo the token's own claims say it in "typ" (Keycloak: "Refresh").
        pytest.param({"token_type": None, "typ": "Refresh"}, id="typ-Refresh"),
        # Ory Hydra / fosite and AWS Cognito say it in "token_use".
        pytest.param({"token_type": None, "token_use": "refresh_token"}, id="token_use"),
    ],
)
async def test_r27b_6_rfc7662_2_2_a_refresh_token_without_token_type_is_not_an_access_token(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, marks: dict[str, Any],
) -> None:  # fmt: skip
    # check_token_type returned when token_type was absent (RFC 7662 §2.2: OPTIONAL); the
    # project's own reference server leaves it out exactly for refresh tokens, so a client's
    # long-lived refresh token (RFC 6749 §1.5, never for a resource server) was an access token
    # at a verifier without audience=.
    server.tokens[OPAQUE] = active(clock, aud=None, **marks)
    verifier = verifier_for(make_endpoint(server.url), clock, audience=None)
    with pytest.raises(InvalidToken) as caught:
        await run(verifier, OPAQUE)
    assert caught.value.code in ("claim_missing", "claim_invalid")


@pytest.mark.parametrize(
    "marks",
    [
        pytest.param({"token_type": "bearer"}, id="RFC 6750 Bearer"),
        pytest.param({"token_type": None, "typ": "Bearer"}, id="Keycloak typ"),
        pytest.param({"token_type": None, "token_use": "access_token"}, id="Hydra token_use"),
    ],
)
async def test_r27b_6_rfc7662_2_2_an_answer_that_names_an_access_token_passes(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, marks: dict[str, Any],
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock, **marks)
    assert (await run(verifier_for(make_endpoint(server.url), clock), OPAQUE)).subject == "alice"


async def test_r27b_6_rfc7662_2_2_untyped_answers_only_by_the_loudly_named_opt_out(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    server.tokens[OPAQUE] = active(clock, token_type=None)
    server.tokens["refresh"] = active(clock, token_type=None, typ="Refresh")
    with pytest.raises(ClaimMissing) as caught:
        await run(verifier_for(make_endpoint(server.url), clock), OPAQUE)
    assert caught.value.detail["claim"] == "token_type"
    assert "untyped_answers_are_access_tokens=True" in caught.value.detail["reason"]
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        endpoint = make_endpoint(server.url, untyped_answers_are_access_tokens=True)
    assert "untyped_answers_are_access_tokens=True" in caplog.text  # said at start-up
    verifier = verifier_for(endpoint, clock)
    assert (await run(verifier, OPAQUE)).subject == "alice"
    with pytest.raises(InvalidToken):  # a refresh token said so is refused all the same
        await run(verifier, "refresh")


# -- R27B-3: token_type DPoP without cnf.jkt passes as a bearer token ---------------------------


async def test_r27b_3_rfc9449_6_2_token_type_dpop_without_cnf_jkt_is_not_a_bearer_token(
    server: IntrospectionServer, make_endpoint: Callable[..., Introspection], run: Run,
    clock: FakeClock,
) -> None:  # fmt: skip
    # RFC 9449 §6.2: a DPoP-bound token's answer says token_type "DPoP" and gives the key in
    # cnf.jkt. An answer that says DPoP and leaves cnf out (a server bug, a proxy that strips
    # members) names a sender-constrained token whose key is unknown here: taken without a
    # proof, a stolen DPoP token was a bearer token.
    server.tokens[OPAQUE] = active(clock, token_type="DPoP")
    verifier = verifier_for(make_endpoint(server.url), clock, dpop=DPoP())
    with pytest.raises(InvalidToken) as caught:
        await run(verifier, OPAQUE)
    assert caught.value.detail["claim"] == "cnf"
