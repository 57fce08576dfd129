from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from jwt_guard._core import errors as _errors
from jwt_guard._core import log as _log
from jwt_guard._sources.jwks import JWKSKeys
from jwt_guard.testing import LocalIssuer

from .apps import flask_app, starlette_app
from .leaks import _nothing_leaks, _private_tempdir  # noqa: F401 (autouse fixtures)
from .oidc_provider import OIDCProvider, run_oidc_provider
from .servers import run_wsgi


class FakeClock:
    """A clock the tests move by hand, so time-based rules are tested without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fetch_over(source: JWKSKeys) -> None:
    """Wait until the source's background sync fetch is over (its thread has ended): an event,
    not a guess at how long a fetch takes (issue 23, item 5)."""
    flight = source._flight
    if flight is not None and flight.thread is not None:
        flight.thread.join(30)  # a liveness bound
        assert not flight.thread.is_alive(), "the background fetch did not end"


async def fetches_over(source: JWKSKeys) -> None:
    """:func:`fetch_over` for both drivers: the sync fetch thread, and this loop's tasks."""
    fetch_over(source)
    loop = asyncio.get_running_loop()
    tasks = [task for task in source._background if task.get_loop() is loop]
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


@pytest.fixture(autouse=True, scope="session")
def _unseen_reasons_said() -> None:
    """pytest's log capture is not an app's logging: the one warning about refusal reasons that
    no handler writes (tests/test_log.py checks it in processes of their own) counts as said,
    so that no test's log records depend on which test refused first."""
    _log._UNSEEN.warned = True


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    """panva's oidc-provider, a real authorization server issuing opaque tokens, on a free
    loopback port for the session (tests/oidc_provider.py)."""
    with run_oidc_provider(tmp_path_factory.mktemp("oidc-provider")) as provider:
        yield provider


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


AppFactory = Callable[..., httpx.AsyncClient]


@contextlib.asynccontextmanager
async def _clients(kind: str, issuer: LocalIssuer) -> AsyncIterator[AppFactory]:
    clients: list[httpx.AsyncClient] = []
    with contextlib.ExitStack() as servers:

        def make(verifier: Any = None, **options: Any) -> httpx.AsyncClient:
            verifier = verifier or issuer.verifier()
            if kind == "asgi":
                app = starlette_app(verifier, **options)
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )
            else:
                options.pop("websocket_query_param", None)  # no WebSockets in WSGI
                app = flask_app(verifier, extension=kind == "wsgi", **options)
                base = servers.enter_context(run_wsgi(app))
                client = httpx.AsyncClient(base_url=base)
            clients.append(client)
            return client

        yield make
        for client in clients:
            await client.aclose()


@pytest.fixture(params=["asgi", "wsgi"])  # the adapter behaviour suite runs on both
async def make_client(
    request: pytest.FixtureRequest, issuer: LocalIssuer
) -> AsyncIterator[AppFactory]:
    async with _clients(request.param, issuer) as make:
        yield make


@pytest.fixture(params=["asgi", "wsgi", "wsgi-plain"])
async def make_any_client(
    request: pytest.FixtureRequest, issuer: LocalIssuer
) -> AsyncIterator[AppFactory]:
    """Also the plain WSGI middleware on a Flask app without the Flask extension."""
    async with _clients(request.param, issuer) as make:
        yield make


class Drive:
    """A verifier's sync or async driver: a test taking the ``drive`` fixture runs on both."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def verify(self, verifier: Any, token: str) -> Any:
        if self.mode == "sync":
            return verifier.verify(token)
        return await verifier.averify(token)


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Drive:
    return Drive(request.param)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_EXCEPTION_NAMES = [
    name
    for name, obj in {**vars(_errors), **vars(builtins)}.items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def assert_no_leak(response: httpx.Response, *secrets: str) -> None:
    """Nothing in the answer but fixed texts: no token, claim, kid, URL, exception or trace."""
    text = response.text + json.dumps(dict(response.headers))
    for secret in secrets:
        assert secret not in text
    for marker in ("Traceback", 'File "', *_EXCEPTION_NAMES):
        assert marker not in text, marker


def challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]
