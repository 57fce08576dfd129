"""One total deadline for a blocking call, the same for the sync and the async world.

Socket timeouts bound each *read*, not the call: a server that sends its status line and
headers one byte at a time, each byte just inside the read timeout, holds a blocking client for
as long as it likes. The async world has :func:`asyncio.timeout`; the sync world gets
:func:`call_with_deadline`, which runs the call in a short-lived daemon thread and stops waiting
at the deadline. Both raise :class:`DeadlineExceeded`.

Used for every outgoing call the package makes (JWKS, OIDC discovery); the Redis denylist can use
it for a client object handed in without a socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["DeadlineExceeded", "acall_with_deadline", "call_with_deadline"]

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call did not finish within its total deadline."""

    #: The thread still running the call, when :func:`call_with_deadline` stopped waiting for
    #: it (aborted, so it ends soon): a background caller joins it, so no thread outlives it.
    worker: threading.Thread | None = None


def call_with_deadline(
    fn: Callable[[], T], seconds: float, *, abort: Callable[[], None] | None = None
) -> T:
    """``fn()``, or :class:`DeadlineExceeded` once ``seconds`` have passed.

    ``fn`` runs in a daemon thread. At the deadline ``abort`` is called (to close the socket the
    call is blocked on, so the thread ends soon) and the caller gets :class:`DeadlineExceeded`
    at once, its ``worker`` the thread; whatever ``fn`` returns later is dropped. Otherwise the
    thread has ended when this returns (a thread left running would be inherited, stopped, by
    a fork). The thread costs ~0.1 ms: meant for calls that are rare (a key-set fetch) or slow
    anyway.
    """
    done = threading.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the caller, who re-raises it
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run, name="jwt_guard-deadline", daemon=True)
    # A thread that cannot start raises RuntimeError here, to the caller: nothing is held.
    worker.start()
    if not done.wait(seconds):
        if abort is not None:
            with contextlib.suppress(Exception):  # best effort: the deadline holds anyway
                abort()
        exceeded = DeadlineExceeded(f"no answer within {seconds:g} s")
        exceeded.worker = worker
        raise exceeded
    worker.join()  # it has set ``done``: it is returning
    if failure:
        raise failure[0]
    return outcome[0]


async def acall_with_deadline(call: Awaitable[T], seconds: float) -> T:
    """``await call``, cancelled with :class:`DeadlineExceeded` once ``seconds`` have passed."""
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError as exc:
        if isinstance(exc, DeadlineExceeded):
            raise
        raise DeadlineExceeded(f"no answer within {seconds:g} s") from exc
