"""The verified identity handed to the application."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["Principal"]


class Principal:
    """Who the verified token speaks for, and what it grants.

    Immutable. Satisfies Starlette's ``BaseUser`` protocol (``is_authenticated``,
    ``display_name``, ``identity``) so ``request.user`` works unchanged. The raw token is not
    kept, so it cannot leak through a repr or a log line.
    """

    __slots__ = (
        "_audience",
        "_claims",
        "_expires_at",
        "_header",
        "_issuer",
        "_roles",
        "_scopes",
        "_subject",
        "_token_id",
    )

    _audience: tuple[str, ...]
    _claims: Mapping[str, Any]
    _expires_at: float | None
    _header: Mapping[str, Any]
    _issuer: str | None
    _roles: frozenset[str]
    _scopes: frozenset[str]
    _subject: str | None
    _token_id: str | None

    def __init__(
        self,
        *,
        claims: Mapping[str, Any],
        header: Mapping[str, Any],
        roles: frozenset[str] = frozenset(),
        scopes: frozenset[str] = frozenset(),
    ) -> None:
        sub = claims.get("sub")
        iss = claims.get("iss")
        aud = claims.get("aud")
        jti = claims.get("jti")
        exp = claims.get("exp")
        object.__setattr__(self, "_claims", MappingProxyType(dict(claims)))
        object.__setattr__(self, "_header", MappingProxyType(dict(header)))
        object.__setattr__(self, "_subject", sub if isinstance(sub, str) else None)
        object.__setattr__(self, "_issuer", iss if isinstance(iss, str) else None)
        audience: tuple[str, ...]
        if isinstance(aud, str):
            audience = (aud,)
        elif isinstance(aud, list):
            audience = tuple(a for a in aud if isinstance(a, str))
        else:
            audience = ()
        object.__setattr__(self, "_audience", audience)
        object.__setattr__(self, "_token_id", jti if isinstance(jti, str) else None)
        object.__setattr__(
            self,
            "_expires_at",
            exp if (type(exp) is int or type(exp) is float) else None,
        )
        object.__setattr__(self, "_roles", frozenset(roles))
        object.__setattr__(self, "_scopes", frozenset(scopes))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Principal is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Principal is immutable")

    def __repr__(self) -> str:
        return (
            f"Principal(subject={self._subject!r}, issuer={self._issuer!r}, "
            f"roles={sorted(self._roles)!r}, scopes={sorted(self._scopes)!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Principal):
            return NotImplemented
        return self._claims == other._claims and self._header == other._header

    def __hash__(self) -> int:
        return hash((self._subject, self._issuer, self._token_id))

    @property
    def subject(self) -> str | None:
        return self._subject

    @property
    def issuer(self) -> str | None:
        return self._issuer

    @property
    def audience(self) -> tuple[str, ...]:
        return self._audience

    @property
    def claims(self) -> Mapping[str, Any]:
        return self._claims

    @property
    def header(self) -> Mapping[str, Any]:
        return self._header

    @property
    def roles(self) -> frozenset[str]:
        return self._roles

    @property
    def scopes(self) -> frozenset[str]:
        return self._scopes

    @property
    def token_id(self) -> str | None:
        return self._token_id

    @property
    def expires_at(self) -> float | None:
        return self._expires_at

    def has_roles(self, *roles: str) -> bool:
        """True when every given role is held (exact names, no substring matching)."""
        return self._roles.issuperset(roles)

    def has_scopes(self, *scopes: str) -> bool:
        """True when every given scope is granted."""
        return self._scopes.issuperset(scopes)

    # Starlette BaseUser protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        name = self._claims.get("preferred_username") or self._claims.get("name")
        if isinstance(name, str):
            return name
        return self._subject or ""

    @property
    def identity(self) -> str:
        return self._subject or ""
