"""One log line per rejected request, rate-limited per code.

The line carries the error's ``code``, HTTP status and ``detail`` twice: in the message, for a
plain formatter, and as ``extra`` fields (``jwt_guard_code``, ``jwt_guard_status``,
``jwt_guard_detail``) that JSON formatters pick up. ``detail`` holds only safe facts (see
``_core.errors``), so the line never contains a token.

A refusal whose line no handler would write (Python's default: no handler configured, and the
last-resort handler writes WARNING and up only) is a silent 401: the first one of a process
logs one WARNING instead, with the reason and how to see the next ones (issue 25).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Final

from .errors import ConfigurationError, JWTGuardError, format_detail

__all__ = [
    "DEFAULT_LOG_LIMIT",
    "LOG_WINDOW",
    "RejectionLog",
    "logger",
    "reaches_a_handler",
    "refusal_text",
]

logger = logging.getLogger("jwt_guard")

#: Lines per code per :data:`LOG_WINDOW`. A flood of garbage tokens (all ``token_malformed``)
#: then costs a handful of lines a minute, while a rare code still gets its own line.
DEFAULT_LOG_LIMIT: Final = 10
LOG_WINDOW: Final = 60.0


def refusal_text(exc: JWTGuardError) -> str:
    """A refusal as its log line says it: ``refused <code> (<status>): <detail>``."""
    return f"refused {exc.code} ({exc.status_code}): {format_detail(exc.detail) or '-'}"


def reaches_a_handler(log: logging.Logger, level: int) -> bool:
    """Whether a line at ``level`` on ``log`` is written somewhere, as :mod:`logging` decides it:
    the logger is enabled for it, and a handler up the chain (while loggers propagate) takes
    ``level``; with no handler anywhere, the last-resort handler (WARNING and up) writes it.
    A ``NullHandler`` counts: whoever added one chose silence."""
    if not log.isEnabledFor(level):
        return False
    found = False
    current: logging.Logger | None = log
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level:
                return True
        current = current.parent if current.propagate else None
    last = logging.lastResort
    return not found and last is not None and level >= last.level


class _Unseen:
    """Whether this process checked that refusal lines reach a handler (per level), and whether
    it said once that they do not. Started afresh in a forked child: each process says it."""

    def __init__(self) -> None:
        #: The levels checked; once checked, a set lookup is the whole cost of a refusal.
        self.checked: set[int] = set()
        self.warned = False
        self.lock = threading.Lock()

    def reset(self) -> None:
        self.checked.clear()
        self.warned = False
        self.lock = threading.Lock()  # another thread may have held it at the fork

    def check(self, level: int, exc: JWTGuardError) -> None:
        """The first refusal at ``level`` in this process: one WARNING (once per process, with
        this refusal's reason) when no handler would write its line."""
        with self.lock:
            if level in self.checked:
                return
            # Lines turned down below INFO (log_rejections=logging.DEBUG) were hidden on purpose.
            unseen = level >= logging.INFO and not reaches_a_handler(logger, level)
            warn = unseen and not self.warned
            self.warned = self.warned or warn
            self.checked.add(level)
        if warn:
            name = logging.getLevelName(level)
            spelled = f"logging.{name}" if isinstance(getattr(logging, name, None), int) else level
            logger.warning(
                "%s -- jwt_guard says why it refuses a request in %s lines on the 'jwt_guard' "
                "logger, and no handler writes them here. To see them: "
                "logging.basicConfig(level=logging.INFO), or a handler on "
                "logging.getLogger('jwt_guard') and .setLevel(%s); or read exc.detail in the "
                "on_error hook. (Said once per process.)",
                refusal_text(exc),
                name,
                spelled,
            )


_UNSEEN = _Unseen()
_CHECKED = _UNSEEN.checked  # the same set for the life of the process (reset clears it)
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_UNSEEN.reset)


class _Window:
    __slots__ = ("count", "started", "suppressed")

    def __init__(self, started: float) -> None:
        self.started = started
        self.count = 0
        self.suppressed = 0


class RejectionLog:
    """Writes rejection lines at ``level`` (``None``: none), at most ``limit`` per code per
    minute; the next line of a code says how many of its lines were left out."""

    def __init__(
        self,
        level: int | None = logging.INFO,
        limit: int = DEFAULT_LOG_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
            raise ConfigurationError(
                "log_level must be a logging level (e.g. logging.INFO) or None"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError("log_limit must be a positive number of lines a minute")
        self.level = level
        self.limit = limit
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, code: str) -> int | None:
        """Whether a line about ``code`` may be written now: ``None`` if not (it is counted as
        left out), else how many lines of ``code`` were left out before it."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(code)
            if window is None or now - window.started >= LOG_WINDOW:
                suppressed = window.suppressed if window is not None else 0
                # The codes are a fixed set (ours), so this dict stays small.
                window = self._windows[code] = _Window(now)
            else:
                suppressed = 0
            if window.count >= self.limit:
                window.suppressed += 1
                return None
            window.count += 1
        return suppressed

    def line(self, code: str, message: str, *args: object) -> None:
        """Write ``message % args`` at ``level`` unless ``code`` used up its lines this minute;
        for a condition that repeats with every request (a full cache, a store that is down)."""
        level = self.level
        if level is None or not logger.isEnabledFor(level):
            return
        suppressed = self.admit(code)
        if suppressed is None:
            return
        if suppressed:
            message += " [%d earlier lines suppressed]"
            args += (suppressed,)
        logger.log(level, message, *args)

    def __call__(self, exc: JWTGuardError) -> None:
        level = self.level
        if level is None:
            return
        if level not in _CHECKED:  # the first refusal at this level in this process
            _UNSEEN.check(level, exc)
        if not logger.isEnabledFor(level):
            return
        code = exc.code
        suppressed = self.admit(code)
        if suppressed is None:
            return
        message = "refused %s (%d): %s"
        args: tuple[object, ...] = (code, exc.status_code, format_detail(exc.detail) or "-")
        if suppressed:
            message += " [%d earlier %s lines suppressed]"
            args += (suppressed, code)
        logger.log(
            level,
            message,
            *args,
            extra={
                "jwt_guard_code": code,
                "jwt_guard_status": exc.status_code,
                "jwt_guard_detail": exc.detail,
            },
        )
