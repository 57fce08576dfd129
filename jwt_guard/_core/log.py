"""One log line per rejected request, rate-limited per code.

The line carries the error's ``code``, HTTP status and ``detail`` twice: in the message, for a
plain formatter, and as ``extra`` fields (``jwt_guard_code``, ``jwt_guard_status``,
``jwt_guard_detail``) that JSON formatters pick up. ``detail`` holds only safe facts (see
``_core.errors``), so the line never contains a token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from .errors import ConfigurationError, JWTGuardError, format_detail

__all__ = ["DEFAULT_LOG_LIMIT", "LOG_WINDOW", "RejectionLog", "logger"]

logger = logging.getLogger("jwt_guard")

#: Lines per code per :data:`LOG_WINDOW`. A flood of garbage tokens (all ``token_malformed``)
#: then costs a handful of lines a minute, while a rare code still gets its own line.
DEFAULT_LOG_LIMIT: Final = 10
LOG_WINDOW: Final = 60.0


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
        if level is None or not logger.isEnabledFor(level):
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
