"""Optional dependencies: a missing extra is an ImportError that says what to install."""

from __future__ import annotations

__all__ = ["MissingExtra"]


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` line."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(
            f'{feature} needs the "{module}" package, which is not installed: '
            f'pip install "jwt_guard[{extra}]"',
            name=module,
        )
        self.extra = extra
