"""The verified identity handed to the application."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from .scopes import ScopeHierarchy
from .typed import claims_as

__all__ = ["FrozenDict", "FrozenList", "Principal", "read_only_mapping", "verified_principal"]


def _read_only(*args: Any, **kwargs: Any) -> Any:
    raise TypeError("verified claims are read-only (copy them to change them)")


class FrozenList(list[Any]):
    """A JSON array inside verified claims: still a ``list`` (``isinstance``, ``==``,
    ``json.dumps``), but it cannot be changed in place, because a cached principal is shared by
    every request that presents the same token. ``list(x)`` or ``copy.copy(x)`` gives a plain,
    changeable list."""

    __slots__ = ()

    append = extend = insert = remove = pop = clear = sort = reverse = _read_only
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (list, (list(self),))


class FrozenDict(dict[str, Any]):
    """A JSON object inside verified claims: still a ``dict``, but read-only (see
    :class:`FrozenList`); ``dict(x)`` or ``copy.copy(x)`` gives a plain dict."""

    __slots__ = ()

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (dict, (dict(self),))


def _frozen(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return FrozenList([_frozen(v) for v in value])
    if kind is dict:
        return FrozenDict({k: _frozen(v) for k, v in value.items()})
    return value


def read_only_mapping(mapping: Mapping[str, Any]) -> MappingProxyType[str, Any]:
    """A deeply read-only view: the top level behind a ``MappingProxyType``, nested arrays and
    objects frozen. Copies only when there is something nested to freeze; JSON scalars are
    immutable already."""
    for value in mapping.values():
        kind = type(value)
        if kind is list or kind is dict:
            return MappingProxyType({k: _frozen(v) for k, v in mapping.items()})
    if isinstance(mapping, MappingProxyType):
        return mapping
    return MappingProxyType(mapping if type(mapping) is dict else dict(mapping))


T = TypeVar("T")


class Principal:
    """Who the verified token speaks for, and what it grants.

    Deeply immutable: ``claims`` and ``header`` are read-only mappings whose nested arrays and
    objects are :class:`FrozenList` / :class:`FrozenDict`. Satisfies Starlette's ``BaseUser``
    protocol (``is_authenticated``, ``display_name``, ``identity``) so ``request.user`` works
    unchanged. The raw token is not
    kept, so it cannot leak through a repr or a log line.
    """

    __slots__ = ("_auth", "_claims", "_header", "_hierarchy", "_roles", "_scopes")

    _claims: Mapping[str, Any]
    _header: Mapping[str, Any]
    _roles: frozenset[str]
    _scopes: frozenset[str]
    #: The scope hierarchy of the token's issuer (``scope_implies``), or ``None``.
    _hierarchy: ScopeHierarchy | None
    #: The ASGI adapter's read-only ``AuthCredentials`` for these scopes, made on first use
    #: (``asgi.place``) and then shared, like the principal, by every request with the token.
    _auth: Any

    def __init__(
        self,
        *,
        claims: Mapping[str, Any],
        header: Mapping[str, Any],
        roles: frozenset[str] = frozenset(),
        scopes: frozenset[str] = frozenset(),
        scope_implies: Mapping[str, str | Iterable[str]] | ScopeHierarchy | None = None,
    ) -> None:
        # Deeply read-only: a cached principal is handed to every request that presents the
        # same token, so one request's claims["groups"].append(...) must not reach the next.
        # Frozen once, when the token is first verified; a cache hit costs nothing more.
        _fill(
            self,
            read_only_mapping(claims),
            read_only_mapping(header),
            roles if type(roles) is frozenset else frozenset(roles),
            scopes if type(scopes) is frozenset else frozenset(scopes),
            scope_implies
            if scope_implies is None or isinstance(scope_implies, ScopeHierarchy)
            else ScopeHierarchy(scope_implies),
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Principal is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Principal is immutable")

    def __repr__(self) -> str:
        return (
            f"Principal(subject={self.subject!r}, issuer={self.issuer!r}, "
            f"roles={sorted(self._roles)!r}, scopes={sorted(self._scopes)!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Principal):
            return NotImplemented
        return self._claims == other._claims and self._header == other._header

    def __hash__(self) -> int:
        return hash((self.subject, self.issuer, self.token_id))

    def _string(self, name: str) -> str | None:
        value = self._claims.get(name)
        return value if isinstance(value, str) else None

    def _date(self, name: str) -> float | None:
        value = self._claims.get(name)
        return value if (type(value) is int or type(value) is float) else None

    @property
    def subject(self) -> str | None:
        """The ``sub`` claim, or ``None`` when it is missing or not a string."""
        return self._string("sub")

    @property
    def issuer(self) -> str | None:
        """The ``iss`` claim, or ``None`` when it is missing or not a string."""
        return self._string("iss")

    @property
    def audience(self) -> tuple[str, ...]:
        """The ``aud`` claim as a tuple of strings (empty without one)."""
        aud = self._claims.get("aud")
        if isinstance(aud, str):
            return (aud,)
        if isinstance(aud, list):
            return tuple(a for a in aud if isinstance(a, str))
        return ()

    @property
    def claims(self) -> Mapping[str, Any]:
        """Every claim of the token, read-only."""
        return self._claims

    @property
    def header(self) -> Mapping[str, Any]:
        """The token's protected header, read-only."""
        return self._header

    @property
    def roles(self) -> frozenset[str]:
        """The roles read from the verifier's ``roles_claim`` paths."""
        return self._roles

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the token itself grants (its ``scope``/``scp`` claim, as configured)."""
        return self._scopes

    @property
    def effective_scopes(self) -> frozenset[str]:
        """The token's scopes with every scope they imply under the issuer's ``scope_implies``.

        The same as :attr:`scopes` without a hierarchy: what :meth:`has_scopes`, the requirements
        and MCP ``tool_scopes`` decide on."""
        hierarchy = self._hierarchy
        return self._scopes if hierarchy is None else hierarchy.effective(self._scopes)

    @property
    def token_id(self) -> str | None:
        """The ``jti`` claim, or ``None`` when it is missing or not a string."""
        return self._string("jti")

    @property
    def expires_at(self) -> float | None:
        """The ``exp`` claim, epoch seconds, or ``None`` when it is missing."""
        return self._date("exp")

    @property
    def acr(self) -> str | None:
        """The authentication context class of the login behind the token.

        OIDC Core §2, RFC 9068 §2.2.1; RFC 9470 §6.1."""
        return self._string("acr")

    @property
    def authorization_details(self) -> tuple[Mapping[str, Any], ...]:
        """The token's RFC 9396 authorization details, ``()`` without the claim.

        Each entry is a read-only object (its ``type`` and fields). Their shape was checked when
        the token was verified (RFC 9396 §2, §9.1): an array of objects, each with a ``type``
        string."""
        details = self._claims.get("authorization_details")
        return tuple(details) if isinstance(details, list) else ()

    @property
    def auth_time(self) -> float | None:
        """When the user last authenticated, epoch seconds.

        OIDC Core §2, RFC 9068 §2.2.1; RFC 9470 §6.1."""
        return self._date("auth_time")

    def claims_as(self, model: type[T]) -> T:
        """The claims as a ``model`` instance: a pydantic model or a dataclass.

        A pydantic model is validated by pydantic; a dataclass gets strict JSON types, checked
        here (pydantic not needed). Raises :class:`ClaimInvalid` (401 ``claim_invalid``, the
        reason in its ``detail``)."""
        return claims_as(self._claims, model)

    def has_roles(self, *roles: str) -> bool:
        """True when every given role is held (exact names, no substring matching)."""
        return self._roles.issuperset(roles)

    def has_scopes(self, *scopes: str) -> bool:
        """True when every given scope is granted.

        By the token itself, or through a broader scope it holds (the issuer's
        ``scope_implies``)."""
        held = self._scopes
        if held.issuperset(scopes):
            return True  # the token names them all: no hierarchy lookup
        hierarchy = self._hierarchy
        return hierarchy is not None and all(hierarchy.grants(held, s) for s in scopes)

    # Starlette BaseUser protocol
    @property
    def is_authenticated(self) -> bool:
        """Always ``True`` (Starlette's ``BaseUser``)."""
        return True

    @property
    def display_name(self) -> str:
        """``preferred_username``, else ``name``, else the subject (Starlette's ``BaseUser``)."""
        name = self._claims.get("preferred_username") or self._claims.get("name")
        if isinstance(name, str):
            return name
        return self.subject or ""

    @property
    def identity(self) -> str:
        """The subject, ``""`` without one (Starlette's ``BaseUser``)."""
        return self.subject or ""


# The slots written through their descriptors: Principal.__setattr__ refuses every write, and
# object.__setattr__ by name costs several times more than the descriptor's own setter.
_set_claims = Principal.__dict__["_claims"].__set__
_set_header = Principal.__dict__["_header"].__set__
_set_roles = Principal.__dict__["_roles"].__set__
_set_scopes = Principal.__dict__["_scopes"].__set__
_set_hierarchy = Principal.__dict__["_hierarchy"].__set__
_set_auth = Principal.__dict__["_auth"].__set__


def _fill(
    principal: Principal,
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
    roles: frozenset[str],
    scopes: frozenset[str],
    hierarchy: ScopeHierarchy | None,
) -> None:
    _set_claims(principal, claims)
    _set_header(principal, header)
    _set_roles(principal, roles)
    _set_scopes(principal, scopes)
    _set_hierarchy(principal, hierarchy)
    _set_auth(principal, None)


def verified_principal(
    claims: dict[str, Any],
    header: MappingProxyType[str, Any],
    roles: frozenset[str],
    scopes: frozenset[str],
    hierarchy: ScopeHierarchy | None = None,
    *,
    flat: bool,
) -> Principal:
    """The principal of a token the verifier has just accepted, without the checks and copies
    of ``Principal(...)``: ``header`` is read-only already (the verifier makes it once per
    distinct header), and ``flat`` says the claims JSON opened no nested array or object (no
    ``[``, no ``{`` but the first), so a read-only view of ``claims`` is all it needs."""
    principal: Principal = object.__new__(Principal)
    _fill(
        principal,
        MappingProxyType(claims) if flat else read_only_mapping(claims),
        header,
        roles,
        scopes,
        hierarchy,
    )
    return principal
