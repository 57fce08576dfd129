from __future__ import annotations

from collections.abc import Callable

import pytest

from jwt_guard.testing import LocalIssuer


class FakeClock:
    """A clock the tests move by hand, so time-based rules are tested without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def _issuers() -> dict[str, LocalIssuer]:
    # Key generation is the slow part; one issuer per algorithm per session.
    return {}


@pytest.fixture
def make_issuer(_issuers: dict[str, LocalIssuer], clock: FakeClock) -> Callable[..., LocalIssuer]:
    def make(algorithm: str = "RS256") -> LocalIssuer:
        cached = _issuers.get(algorithm)
        if cached is None:
            cached = _issuers[algorithm] = LocalIssuer(algorithm=algorithm, kid=f"{algorithm}-1")
        cached.clock = clock
        return cached

    return make


@pytest.fixture
def issuer(make_issuer: Callable[..., LocalIssuer]) -> LocalIssuer:
    return make_issuer("RS256")
