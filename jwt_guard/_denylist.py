"""Revocation: a denylist of token ids (``jti``) and of subjects, checked after the signature."""

from __future__ import annotations

import abc

from ._principal import Principal

__all__ = ["Denylist"]


class Denylist(abc.ABC):
    """Where revocations are stored. ``check``/``acheck`` raise ``TokenRevoked``."""

    @abc.abstractmethod
    def check(self, principal: Principal, leeway: float) -> None:
        """Raise if the principal's token is revoked (sync driver)."""

    @abc.abstractmethod
    async def acheck(self, principal: Principal, leeway: float) -> None:
        """Raise if the principal's token is revoked (async driver)."""
