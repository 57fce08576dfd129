"""One total deadline for a blocking call, the same for the sync and the async world.

Socket timeouts bound each *read*, not the call: a server that sends its status line and
headers one byte at a time, each byte just inside the read timeout, holds a blocking client for
as long as it likes. The async world has :func:`asyncio.timeout`; the sync world gets
:func:`call_with_deadline`, which runs the call in a short-lived daemon thread and stops waiting
at the deadline. Both raise :class:`DeadlineExceeded`.

Used for every outgoing call the package makes (JWKS, OIDC discovery); the Redis denylist can use
it for a client object handed in without a socket timeout. :class:`OptionalCalls` bounds the calls
to a helper that may be skipped (a shared cache): a share of the caller's deadline each, a miss
when it runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = [
    "OPTIONAL_PAUSE",
    "OPTIONAL_SHARE",
    "DeadlineExceeded",
    "OptionalCalls",
    "acall_with_deadline",
    "call_with_deadline",
]

logger = logging.getLogger("jwt_guard")

#: The share of a caller's deadline one call to an optional helper may take: the rest is left
#: for the call it stands in front of (the endpoint, the key set's provider).
OPTIONAL_SHARE = 0.5
#: After a call to an optional helper ran out of time, it is not called for this long (each
#: caller would wait its bound): the Redis stores' known-down time.
OPTIONAL_PAUSE = 1.0
#: Sync calls to an optional helper left waiting past their bound, at most (each holds a
#: thread); past this a call is skipped at once.
OPTIONAL_PENDING = 8

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


class OptionalCalls:
    """Calls to an optional helper (a shared cache) within a bound each: one that fails or runs
    out of time gives the caller's ``default`` (a miss, a write not made) and never delays it
    past the bound. After one ran out of time the helper is not called for ``pause`` seconds
    (each caller would wait its bound) and ``on_slow(what, seconds)`` is told (to log it).

    A sync call runs in a thread of its own (a helper's call may block for ever: only a thread
    can be given up on), and at most ``max_pending`` such threads are left waiting on a helper
    that does not answer; past that a call is skipped at once."""

    def __init__(
        self,
        on_slow: Callable[[str, float], None],
        *,
        pause: float = OPTIONAL_PAUSE,
        max_pending: int = OPTIONAL_PENDING,
    ) -> None:
        self._on_slow = on_slow
        self._pause = pause
        self._max_pending = max_pending
        self.reset()

    def reset(self) -> None:
        """Fresh state (also in a forked child: the parent's threads do not exist there)."""
        self._pending = threading.BoundedSemaphore(self._max_pending)
        self._skip_until = float("-inf")

    def _skipped(self, seconds: float) -> bool:
        return seconds <= 0 or time.monotonic() < self._skip_until

    def _slow(self, what: str, seconds: float) -> None:
        self._skip_until = time.monotonic() + self._pause
        self._on_slow(what, seconds)

    def call(
        self, command: Callable[[], Any], seconds: float, what: str, default: Any = None
    ) -> Any:
        """``command()`` within ``seconds``, else ``default``."""
        if self._skipped(seconds):
            return default
        pending = self._pending
        if not pending.acquire(blocking=False):
            return default
        ran = False

        def run() -> Any:
            nonlocal ran
            ran = True
            try:
                return command()
            finally:
                pending.release()

        try:
            return call_with_deadline(run, seconds)
        except DeadlineExceeded:
            self._slow(what, seconds)
        except Exception:  # optional: a failing helper is a miss
            logger.debug("shared cache %s failed", what, exc_info=True)
        finally:
            if not ran:  # the thread never started
                pending.release()
        return default

    async def acall(
        self, command: Awaitable[Any], seconds: float, what: str, default: Any = None
    ) -> Any:
        """``await command`` within ``seconds`` (cancelled then), else ``default``."""
        if self._skipped(seconds):
            if inspect.iscoroutine(command):
                command.close()  # never awaited: no "never awaited" warning
            return default
        try:
            return await acall_with_deadline(command, seconds)
        except DeadlineExceeded:
            self._slow(what, seconds)
        except Exception:  # optional: a failing helper is a miss
            logger.debug("shared cache %s failed", what, exc_info=True)
        return default
